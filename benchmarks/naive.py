r"""The naive baseline: each loss written straight from its paper, in PyTorch.

This is what one would type from the formulas: one temporary per term, dense float
one-hot targets (sparse labels are expanded with ``one_hot``), the input dtype throughout
and plain powers. Layout ``[batch, C, *spatial]``; every function returns the batch mean.

* Dice / Tversky (Salehi 2017): ``TP = Σ y p``, ``FP = Σ (1-y) p``, ``FN = Σ y (1-p)``,
  ``1 - (TP + ε) / (TP + α FP + β FN + ε)``, averaged over classes.
* Categorical focal (Lin 2017), softmax: ``-Σ_c (1 - p_c)^γ y_c log p_c``.
* Binary focal (Lin 2017), sigmoid: ``-[α y (1-p)^γ log p + (1-α)(1-y) p^γ log(1-p)]``.
* Asymmetric Unified Focal (Yeung 2022, eq. 22): ``λ L_aF + (1-λ) L_aFT``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dense_target(target, probs):
    """Float one-hot ``[B, C, ...]`` from integer labels ``[B, ...]``; dense targets as given."""
    if target.dtype.is_floating_point:
        return target
    onehot = F.one_hot(target, probs.shape[1])
    return onehot.movedim(-1, 1).to(probs.dtype)


def _spatial(x):
    return tuple(range(2, x.ndim))


def tversky(target, probs, alpha=0.3, beta=0.7, epsilon=1e-5):
    y = dense_target(target, probs)
    dims = _spatial(probs)
    tp = (y * probs).sum(dims)
    fp = ((1 - y) * probs).sum(dims)
    fn = (y * (1 - probs)).sum(dims)
    index = (tp + epsilon) / (tp + alpha * fp + beta * fn + epsilon)
    return (1 - index).mean()


def dice(target, probs, epsilon=1e-5):
    return tversky(target, probs, alpha=0.5, beta=0.5, epsilon=epsilon)


def categorical_focal(target, logits, gamma=2.0):
    y = dense_target(target, logits)
    log_p = torch.log_softmax(logits, dim=1)
    p = torch.exp(log_p)
    focal = (1 - p) ** gamma
    return -(focal * y * log_p).sum(1).mean()


def binary_focal(target, logits, alpha=0.25, gamma=2.0):
    y = dense_target(target, logits)
    p = torch.sigmoid(logits)
    positive = alpha * y * (1 - p) ** gamma * F.logsigmoid(logits)
    negative = (1 - alpha) * (1 - y) * p**gamma * F.logsigmoid(-logits)
    return -(positive + negative).mean()


def asymmetric_unified_focal(target, probs, weight=0.5, delta=0.6, gamma=0.5, epsilon=1e-7):
    y = dense_target(target, probs)
    clipped = probs.clamp(1e-7, 1 - 1e-7)
    cross_entropy = -y * torch.log(clipped)
    background = (1 - delta) * (1 - clipped[:, :1]) ** gamma * cross_entropy[:, :1]
    rare = delta * cross_entropy[:, 1:]
    focal = (background.sum(1) + rare.sum(1)).mean()

    dims = _spatial(probs)
    tp = (y * probs).sum(dims)
    fn = (y * (1 - probs)).sum(dims)
    fp = ((1 - y) * probs).sum(dims)
    index = (tp + epsilon) / (tp + delta * fn + (1 - delta) * fp + epsilon)
    tversky_terms = torch.cat([1 - index[:, :1], (1 - index[:, 1:]) ** (1 - gamma)], dim=1)
    focal_tversky = tversky_terms.mean(1).mean()
    return weight * focal + (1 - weight) * focal_tversky


#: Benchmark loss name -> naive implementation.
NAIVE = {
    "dice": dice,
    "tversky": tversky,
    "categorical_focal": categorical_focal,
    "binary_focal": binary_focal,
    "unified_focal": asymmetric_unified_focal,
}
