"""Float64 NumPy references for the skeleton recall loss (SPEC §22) and the authors' formula.

Written from the SPEC and from the authors' code, independently of ``lossfns``: the class
axis is moved last, the skeleton classes are compared one class at a time, and every ratio
is formed in Python floats. Inputs are small, so clarity wins over speed.
"""

from __future__ import annotations

import numpy as np


def _probabilities(y_pred, from_logits):
    """Softmax over the last axis (sigmoid for one class, or when asked), or the input."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if from_logits is False:
        return y_pred
    if from_logits == "sigmoid" or (from_logits is True and y_pred.shape[-1] == 1):
        return 1.0 / (1.0 + np.exp(-y_pred))
    shifted = np.exp(y_pred - y_pred.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def skeleton_recall_reference(skeletons, y_pred, *, epsilon=1.0, include_background=False,
                              background_index=0, class_axis=-1, from_logits=False, mask=None,
                              batch=False):
    """``1 − mean_{c ∈ K} (Σ m·p_c·[s = c] + ε_n) / (Σ m·[s = c] + ε_d)`` per sample (or batch)."""
    p = _probabilities(np.moveaxis(np.asarray(y_pred), class_axis, -1), from_logits)
    s = np.asarray(skeletons)
    if s.ndim == p.ndim:  # a size-1 class axis
        s = np.moveaxis(s, class_axis, -1)[..., 0]
    m = np.ones(s.shape) if mask is None else np.broadcast_to(np.asarray(mask, dtype=np.float64), s.shape)
    eps_n, eps_d = epsilon if isinstance(epsilon, tuple) else (epsilon, epsilon)
    classes = p.shape[-1]
    if classes == 1:  # one channel: the foreground, skeleton label 1
        kept, label_of = [0], {0: 1}
    else:
        kept = [c for c in range(classes) if include_background or c != background_index % classes]
        label_of = {c: c for c in kept}
    sets = [(s, p, m)] if batch else [(s[b], p[b], m[b]) for b in range(s.shape[0])]
    losses = []
    for ss, ps, ms in sets:
        recalls = []
        for c in kept:
            on = (ss == label_of[c]).astype(np.float64)
            numerator = float(np.sum(ms * ps[..., c] * on)) + eps_n
            denominator = float(np.sum(ms * on)) + eps_d
            recalls.append(1.0 if denominator == 0 else numerator / denominator)
        losses.append(1.0 - sum(recalls) / len(recalls))
    return np.array(losses[0] if batch else losses)


def authors_skeleton_recall(logits, skel, *, smooth=1.0, batch_dice=False, loss_mask=None):
    """The authors' ``SoftSkeletonRecallLoss(apply_nonlin=softmax, do_bg=False)`` forward, in NumPy.

    From MIC-DKFZ/Skeleton-Recall, nnunetv2/training/loss/dice.py: ``x`` channels-first
    ``(b, c, ...)`` and softmaxed over the channels, the background channel dropped; ``skel``
    a label map ``(b, 1, ...)`` or ``(b, ...)`` scattered into a one-hot whose background is
    dropped too; ``loss_mask`` ``(b, 1, ...)``. ``rec = (Σ x·y + smooth) / clip(Σ y + smooth,
    1e-8)`` over the spatial axes (and the batch with ``batch_dice``), ``−rec.mean()``.
    """
    x = np.asarray(logits, dtype=np.float64)
    x = np.exp(x - x.max(axis=1, keepdims=True))
    x = (x / x.sum(axis=1, keepdims=True))[:, 1:]
    y = np.asarray(skel)
    if y.ndim != x.ndim:
        y = y[:, None]
    y_onehot = (y == np.arange(x.shape[1] + 1).reshape((1, -1) + (1,) * (x.ndim - 2)))[:, 1:]
    y_onehot = y_onehot.astype(np.float64)
    axes = tuple(range(2, x.ndim))
    weight = 1.0 if loss_mask is None else np.asarray(loss_mask, dtype=np.float64)
    sum_gt = (y_onehot * weight).sum(axes)
    inter_rec = (x * y_onehot * weight).sum(axes)
    if batch_dice:
        sum_gt, inter_rec = sum_gt.sum(0), inter_rec.sum(0)
    rec = (inter_rec + smooth) / np.clip(sum_gt + smooth, 1e-8, None)
    return -rec.mean()
