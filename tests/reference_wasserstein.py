"""Float64 NumPy references for the Generalized Wasserstein Dice loss and the Top-k
cross-entropy (SPEC §22), written from the SPEC's formulas with dense one-hot labels and
plain loops; nothing here calls ``lossfns``. Inputs are made class-last by
``reference_region.prepare_reference`` (itself a reference).
"""

from __future__ import annotations

import math

import numpy as np
from reference_region import prepare_reference


def _two_channels(y, p):
    """A single channel as ``[1 - y, y]`` / ``[1 - p, p]`` (SPEC §2's categorical rule)."""
    if p.shape[-1] != 1:
        return y, p
    return np.concatenate([1 - y, y], axis=-1), np.concatenate([1 - p, p], axis=-1)


def wasserstein_dice_reference(y_true, y_pred, *, distance_matrix, weighting="default", epsilon=1e-5,
                               background_index=0, batch=False, **prepare_options):
    """``1 − (2·TP + ε_n) / (denominator + ε_d)`` per sample (or for the whole batch), with
    ``W_il = Σ_c M[l, c]·p_ic`` and ``M`` divided by its maximum; 0 where the ratio is 0/0."""
    y, p, m = prepare_reference(y_true, y_pred, **prepare_options)
    y, p = _two_channels(y, p)
    matrix = np.asarray(distance_matrix, dtype=np.float64)
    matrix = matrix / matrix.max()
    eps_n, eps_d = epsilon if isinstance(epsilon, tuple) else (epsilon, epsilon)
    num_classes = p.shape[-1]
    sets = [(y.reshape(-1, num_classes), p.reshape(-1, num_classes), m.reshape(-1))] if batch else [
        (y[b].reshape(-1, num_classes), p[b].reshape(-1, num_classes), m[b].reshape(-1)) for b in range(len(p))]
    losses = []
    for ys, ps, ms in sets:
        costs = ps @ matrix.T  # costs[i, l] = Σ_c M[l, c] p[i, c]
        mass = np.array([np.sum(ms * ys[:, l]) for l in range(num_classes)])
        if weighting == "default":
            alpha = np.array([0.0 if l == background_index % num_classes else 1.0 for l in range(num_classes)])
        else:
            alpha = 1.0 / (mass + 1.0)
        tp = sum(np.sum(ms * ys[:, l] * alpha[l] * (1 - costs[:, l])) for l in range(num_classes))
        errors = sum(np.sum(ms * ys[:, l] * costs[:, l]) for l in range(num_classes))
        if weighting == "default":
            denominator = 2 * tp + errors
        else:
            denominator = sum(np.sum(ms * ys[:, l] * alpha[l] * (2 - costs[:, l])) for l in range(num_classes))
        if denominator + eps_d == 0:
            losses.append(0.0)
        else:
            losses.append(1 - (2 * tp + eps_n) / (denominator + eps_d))
    return np.asarray(losses[0]) if batch else np.array(losses)


def _element_cross_entropy(y, p, sigmoid):
    """Per-element CE of class-last float64 ``y``, ``p``: categorical, or with a sigmoid the
    mean over the channels of the binary CE. ``p`` is clipped to [1e-7, 1 − 1e-7] (logits
    are turned into exact log-probabilities by the caller instead)."""
    if sigmoid:
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=-1)
    return -np.sum(y * np.log(p), axis=-1)


def topk_reference(y_true, y_pred, *, k=10.0, batch=False, from_logits=False, **prepare_options):
    """Mean of the ``max(1, ⌊n·k/100⌋)`` largest ``m·CE`` over the elements with ``m > 0``
    (``n`` of them) per sample (or over the batch); 0 where ``n = 0``."""
    num_classes = np.shape(y_pred)[prepare_options.get("class_axis", -1)]
    sigmoid = num_classes == 1 or from_logits == "sigmoid"
    y, p, m = prepare_reference(y_true, y_pred, from_logits=from_logits, **prepare_options)
    if from_logits:  # exact logs of the logits, nothing clipped
        z = np.moveaxis(np.asarray(y_pred, dtype=np.float64), prepare_options.get("class_axis", -1) % np.ndim(y_pred), -1)
        if sigmoid:
            log_p, log_q = -np.logaddexp(0, -z), -np.logaddexp(0, z)
            ce = -np.mean(y * log_p + (1 - y) * log_q, axis=-1)
        else:
            log_p = z - z.max(-1, keepdims=True)
            log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
            ce = -np.sum(y * log_p, axis=-1)
    else:
        ce = _element_cross_entropy(y, np.clip(p, 1e-7, 1 - 1e-7), sigmoid)
    values = m * ce
    sets = [(values.reshape(-1), m.reshape(-1))] if batch else [(values[b].reshape(-1), m[b].reshape(-1))
                                                                 for b in range(len(values))]
    losses = []
    for v, w in sets:
        kept = np.sort(v[w > 0])[::-1]
        n = kept.size
        if n == 0:
            losses.append(0.0)
            continue
        count = max(1, math.floor(n * k / 100))
        losses.append(kept[:count].mean())
    return np.asarray(losses[0]) if batch else np.array(losses)
