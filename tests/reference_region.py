"""Float64 NumPy reference for the confusion terms and the region losses (SPEC §2-§4).

Written from the formulas in SPEC, independently of ``lossfns``: it one-hot encodes sparse
labels and moves the class axis last, which the library must not do, because here clarity
matters more than memory or speed.

Shapes: ``y_pred`` is ``[B, d1, ..., dk, C]`` with the class axis at ``class_axis``; after
:func:`prepare_reference` everything is class-last, ``y``/``p`` ``[B, ..., C]`` and the
element weights ``m`` ``[B, ...]``.
"""

from __future__ import annotations

import numpy as np


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # tanh form: no overflow for large |z|


def prepare_reference(y_true, y_pred, *, class_axis=-1, from_logits=False, mask=None,
                      ignore_index=None):
    """Class-last float64 ``(y, p, m)``: dense labels, probabilities and element weights.

    Sparse labels are integer class indices with the class axis absent or of size 1; with a
    single channel they are the 0/1 target itself. ``ignore_index`` labels get weight 0.
    ``from_logits=True`` is softmax for several classes and sigmoid for one.
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true)
    axis = class_axis % y_pred.ndim
    num_classes = y_pred.shape[axis]
    p = np.moveaxis(y_pred, axis, -1)
    element_shape = p.shape[:-1]

    if y_true.shape == y_pred.shape and not (num_classes == 1 and y_true.dtype.kind in "iu"):
        y = np.moveaxis(y_true.astype(np.float64), axis, -1)
        labels = None
    else:
        labels = y_true if y_true.ndim == y_pred.ndim - 1 else np.squeeze(y_true, axis=axis)
        labels = labels.astype(np.int64)

    m = np.ones(element_shape)
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float64)
        if mask.ndim == y_pred.ndim:
            mask = np.squeeze(mask, axis=axis)
        m = m * np.broadcast_to(mask, element_shape)

    if labels is not None:
        if ignore_index is not None:
            ignored = labels == ignore_index
            m = np.where(ignored, 0.0, m)
            labels = np.where(ignored, 0, labels)
        if num_classes == 1:
            y = labels[..., None].astype(np.float64)
        else:
            y = np.zeros(element_shape + (num_classes,))
            for c in range(num_classes):
                y[..., c] = labels == c

    if from_logits is True:
        from_logits = "softmax" if num_classes > 1 else "sigmoid"
    if from_logits == "softmax":
        p = _softmax(p)
    elif from_logits == "sigmoid":
        p = _sigmoid(p)
    return y, p, m


def confusion_reference(y, p, m, *, batch=False):
    """``(TP, FP, FN, TN)`` from class-last ``y``, ``p`` and weights ``m``.

    Each is ``[B, C]``, or ``[C]`` with ``batch=True`` (the batch axis is summed too).
    """
    m = m[..., None]
    first_axis = 0 if batch else 1
    axes = tuple(range(first_axis, y.ndim - 1))
    tp = np.sum(m * y * p, axis=axes)
    fp = np.sum(m * (1 - y) * p, axis=axes)
    fn = np.sum(m * y * (1 - p), axis=axes)
    tn = np.sum(m * (1 - y) * (1 - p), axis=axes)
    return tp, fp, fn, tn


def tversky_index(tp, fp, fn, alpha, beta, epsilon):
    """``(TP + ε) / (TP + α FP + β FN + ε)``; an empty class with ε = 0 (0/0) counts as 1."""
    numerator = tp + epsilon
    denominator = tp + alpha * fp + beta * fn + epsilon
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 1.0, numerator / safe)


def focal_tversky_reference(y_true, y_pred, *, alpha=0.3, beta=0.7, gamma=0.75, epsilon=1e-5,
                            average="macro", class_weights=None, include_background=True,
                            background_index=0, batch=False, **prepare_options):
    """Focal Tversky loss ``(1 - TI)^γ`` per class, combined over classes by ``average``.

    Returns ``[B]``, or a 0-d array with ``batch=True``.
    """
    y, p, m = prepare_reference(y_true, y_pred, **prepare_options)
    tp, fp, fn, _ = confusion_reference(y, p, m, batch=batch)
    num_classes = y.shape[-1]
    kept = [c for c in range(num_classes)
            if include_background or c != background_index % num_classes]
    tp, fp, fn = tp[..., kept], fp[..., kept], fn[..., kept]

    def class_loss(tp_, fp_, fn_):
        ti = tversky_index(tp_, fp_, fn_, alpha, beta, epsilon)
        return np.maximum(1.0 - ti, 0.0) ** gamma

    if average == "micro":
        return np.asarray(class_loss(tp.sum(-1), fp.sum(-1), fn.sum(-1)))
    losses = class_loss(tp, fp, fn)
    if average == "macro":
        return np.asarray(losses.mean(-1))
    if average != "weighted":
        raise ValueError(average)
    if class_weights is not None:
        weights = np.asarray(class_weights, dtype=np.float64)[kept]
    else:
        support = tp + fn
        total = support.sum(-1, keepdims=True)
        weights = np.where(total == 0, 0.0, support / np.where(total == 0, 1.0, total))
    return np.asarray((weights * losses).sum(-1))


def tversky_reference(y_true, y_pred, *, alpha=0.3, beta=0.7, epsilon=1e-5, **options):
    return focal_tversky_reference(y_true, y_pred, alpha=alpha, beta=beta, gamma=1.0,
                                   epsilon=epsilon, **options)


def f1_reference(y_true, y_pred, *, epsilon=1e-5, **options):
    return focal_tversky_reference(y_true, y_pred, alpha=0.5, beta=0.5, gamma=1.0,
                                   epsilon=epsilon, **options)


def iou_reference(y_true, y_pred, *, epsilon=1e-5, **options):
    return focal_tversky_reference(y_true, y_pred, alpha=1.0, beta=1.0, gamma=1.0,
                                   epsilon=epsilon, **options)


#: Reference of each region loss by the name of its ``lossfns`` function.
REFERENCES = {
    "tversky_loss": tversky_reference,
    "focal_tversky_loss": focal_tversky_reference,
    "f1_loss": f1_reference,
    "dice_loss": f1_reference,
    "iou_loss": iou_reference,
    "jaccard_loss": iou_reference,
}


# --- Random test inputs ---------------------------------------------------------------------


def random_inputs(seed, *, spatial=(4, 3), num_classes=3, batch_size=3, labels="onehot",
                  logits=False, mask=False, class_axis=-1, ignore_index=None, empty_class=False):
    """NumPy ``(y_true, y_pred, mask)`` with the class axis of ``y_pred`` at ``class_axis``.

    ``labels``: ``"onehot"``, ``"onehot_int"``, ``"bool"``, ``"soft"`` (uniform in [0, 1]),
    ``"sparse"`` (class axis absent) or ``"sparse_unit"`` (class axis of size 1). With one
    channel, sparse labels are a 0/1 map. ``ignore_index`` relabels about a fifth of the
    elements; ``empty_class`` leaves the last class out of every label. ``mask`` is ``None``
    or weights in [0, 1] with about a third zeros, shaped like ``y_pred`` without the class axis.
    """
    rng = np.random.default_rng(seed)
    shape = (batch_size,) + tuple(spatial)
    used_classes = max(num_classes - 1, 1) if empty_class else num_classes
    index = rng.integers(0, max(used_classes, 2) if num_classes == 1 else used_classes, size=shape)
    if logits:
        p = rng.normal(scale=2.0, size=shape + (num_classes,))
    else:
        p = rng.uniform(size=shape + (num_classes,))
        if num_classes > 1:
            p = p / p.sum(-1, keepdims=True)

    if num_classes == 1:
        onehot = index[..., None].astype(np.float64)
    else:
        onehot = (index[..., None] == np.arange(num_classes)).astype(np.float64)
    if labels == "onehot":
        y = onehot
    elif labels == "onehot_int":
        y = onehot.astype(np.int32)
    elif labels == "bool":
        y = onehot.astype(bool)
    elif labels == "soft":
        y = rng.uniform(size=onehot.shape)
    elif labels in ("sparse", "sparse_unit"):
        y = index.astype(np.int64)
        if ignore_index is not None:
            y = np.where(rng.uniform(size=shape) < 0.2, ignore_index, y)
        if labels == "sparse_unit":
            y = y[..., None]
    else:
        raise ValueError(labels)

    axis = class_axis % (len(shape) + 1)
    y_pred = np.moveaxis(p, -1, axis)
    y_true = y if labels == "sparse" else np.moveaxis(y, -1, axis)
    weights = None
    if mask:
        weights = rng.uniform(size=shape) * (rng.uniform(size=shape) > 0.33)
    return y_true, y_pred, weights
