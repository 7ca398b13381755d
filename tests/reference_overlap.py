"""Float64 NumPy references for Generalized Dice, MCC, soft-label confusion terms and deep
supervision (SPEC §3, §13, §14, §19), written from the SPEC's formulas with plain loops.

Inputs are turned class-last by ``reference_region.prepare_reference`` (itself a reference);
nothing here calls ``lossfns``.
"""

from __future__ import annotations

import math

import numpy as np
from reference_region import prepare_reference


def overlap_sums(y, p, m, *, batch=False, soft_label=False):
    """``(TP, FP, FN, TN)`` per sample and class (``[C]`` with ``batch``), SPEC §3.

    ``soft_label``: ``TP = (Σ m·p + Σ m·y − Σ m·|p − y|) / 2``, ``FP = Σ m·p − TP``,
    ``FN = Σ m·y − TP``, ``TN = Σ m − Σ m·p − Σ m·y + TP``; otherwise the product form.
    """
    m = m[..., None]
    axes = tuple(range(0 if batch else 1, y.ndim - 1))
    total = np.sum(m * np.ones_like(p), axis=axes)
    if soft_label:
        predicted, actual = np.sum(m * p, axis=axes), np.sum(m * y, axis=axes)
        tp = (predicted + actual - np.sum(m * np.abs(p - y), axis=axes)) / 2
        return tp, predicted - tp, actual - tp, total - predicted - actual + tp
    return (np.sum(m * y * p, axis=axes), np.sum(m * (1 - y) * p, axis=axes),
            np.sum(m * y * (1 - p), axis=axes), np.sum(m * (1 - y) * (1 - p), axis=axes))


def _kept(num_classes, include_background, background_index):
    return [c for c in range(num_classes) if include_background or c != background_index % num_classes]


def gdl_weights(support, weighting):
    """``w_c`` of one sample (or the batch) from ``A_c``: MONAI's rule for absent classes."""
    if weighting == "uniform":
        return np.ones_like(support)
    power = 2 if weighting == "square" else 1
    weights = [1.0 / a**power if a > 0 else math.inf for a in support]
    finite = [w for w in weights if w != math.inf]
    largest = max(finite) if finite else 0.0
    return np.array([largest if w == math.inf else w for w in weights])


def generalized_dice_reference(y_true, y_pred, *, weighting="square", epsilon=1e-5,
                               include_background=True, background_index=0, batch=False,
                               soft_label=False, **prepare_options):
    """``1 − (2 Σ w TP + ε) / (Σ w (2TP + FP + FN) + ε)``; 0 where that is 0/0."""
    y, p, m = prepare_reference(y_true, y_pred, **prepare_options)
    tp, fp, fn, _ = overlap_sums(y, p, m, batch=batch, soft_label=soft_label)
    kept = _kept(y.shape[-1], include_background, background_index)
    tp, fp, fn = (np.atleast_2d(t[..., kept]) for t in (tp, fp, fn))
    losses = []
    for tp_s, fp_s, fn_s in zip(tp, fp, fn):
        w = gdl_weights(tp_s + fn_s, weighting)
        numerator = 2 * np.sum(w * tp_s) + epsilon
        denominator = np.sum(w * (2 * tp_s + fp_s + fn_s)) + epsilon
        losses.append(0.0 if denominator == 0 else 1 - numerator / denominator)
    return np.asarray(losses[0]) if batch else np.array(losses)


def mcc_value(tp, fp, fn, tn, epsilon):
    """One class's MCC; ε = 0 with a zero denominator gives 1 if FP = FN = 0, else 0."""
    root = math.sqrt(max((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn), 0.0))
    if root + epsilon == 0:
        return 1.0 if fp == 0 and fn == 0 else 0.0
    return (tp * tn - fp * fn) / (root + epsilon)


def mcc_reference(y_true, y_pred, *, epsilon=1e-5, average="macro", class_weights=None,
                  include_background=True, background_index=0, batch=False, soft_label=False,
                  **prepare_options):
    y, p, m = prepare_reference(y_true, y_pred, **prepare_options)
    terms = overlap_sums(y, p, m, batch=batch, soft_label=soft_label)
    kept = _kept(y.shape[-1], include_background, background_index)
    tp, fp, fn, tn = (np.atleast_2d(t[..., kept]) for t in terms)
    losses = []
    for s in range(tp.shape[0]):
        if average == "micro":
            losses.append(1 - mcc_value(tp[s].sum(), fp[s].sum(), fn[s].sum(), tn[s].sum(), epsilon))
            continue
        per_class = np.array([1 - mcc_value(tp[s, c], fp[s, c], fn[s, c], tn[s, c], epsilon)
                              for c in range(len(kept))])
        if average == "macro":
            losses.append(per_class.mean())
        elif class_weights is not None:
            losses.append(np.sum(np.asarray(class_weights, dtype=np.float64)[kept] * per_class))
        else:
            support = tp[s] + fn[s]
            total = support.sum()
            losses.append(0.0 if total == 0 else np.sum(support / total * per_class))
    return np.asarray(losses[0]) if batch else np.array(losses)


def deep_supervision_weights(weights, levels):
    """SPEC §19's level weights."""
    if weights is None:
        raw = np.array([2.0**-i for i in range(levels)])
        if levels > 1:
            raw[-1] = 0.0
        return raw / raw.sum()
    if weights == "exp":
        return np.array([max(0.5**i, 1 / 16) for i in range(levels)])
    if weights == "same":
        return np.ones(levels)
    return np.asarray(weights, dtype=np.float64)


def centre_downsample(x, factors_by_axis):
    """Keep index ``f·j + ⌊f/2⌋`` along each axis ``a`` with factor ``f`` in ``factors_by_axis``."""
    for axis, factor in factors_by_axis.items():
        size = x.shape[axis] // factor
        x = np.take(x, [factor * j + factor // 2 for j in range(size)], axis=axis)
    return x
