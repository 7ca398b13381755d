"""Float64 NumPy reference for label smoothing (SPEC §15) and Dice + CE / focal (SPEC §12).

Written from the SPEC's formulas, independently of ``lossfns`` and of the other references.
Clarity wins over speed: sparse labels become an explicit one-hot, smoothing is applied to
that one-hot (``y' = (1 - s) y + s / C`` or ``(1 - s) y + s / 2``), and the class axis is
moved last.

Conventions (SPEC §2, §3, §5): probabilities are clipped to ``[1e-7, 1 - 1e-7]`` inside the
log terms and focal factors only (never in the Dice sums); with logits the logs come from
log-softmax / log-sigmoid and nothing is clipped; ``Σ m·ℓ / Σ m`` is 0 where ``Σ m = 0``; a
Dice index ``0 / 0`` is 1.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

CLIP = 1e-7


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _divide(numerator, denominator, default):
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, numerator / safe, default)


def inputs(y_true, y_pred, *, activation, class_axis=-1, mask=None, ignore_index=None, batch=False,
           expand=False):
    """Class-last float64 arrays of one call.

    ``activation`` is ``None`` (probabilities), ``"softmax"`` or ``"sigmoid"``; ``expand``
    turns one channel into ``[1 - p, p]`` (softmax logits ``[0, z]``) for categorical losses.
    Returns ``y`` (one-hot / dense labels), ``p``, ``log_p``, ``log_q = log(1 - p)``,
    ``q_f = 1 - p`` and ``p_f = p`` for focal factors, ``m`` and ``batch``.
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true)
    axis = class_axis % y_pred.ndim
    channels = y_pred.shape[axis]
    z = np.moveaxis(y_pred, axis, -1)
    dense = y_true.shape == y_pred.shape and not (channels == 1 and y_true.dtype.kind in "iu")
    m = np.ones(z.shape[:-1])
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float64)
        m = m * np.broadcast_to(np.squeeze(mask, axis=axis) if mask.ndim == y_pred.ndim else mask, m.shape)
    if dense:
        y = np.moveaxis(y_true.astype(np.float64), axis, -1)
    else:
        labels = (y_true if y_true.ndim == y_pred.ndim - 1 else np.squeeze(y_true, axis=axis)).astype(np.int64)
        if ignore_index is not None:
            m = np.where(labels == ignore_index, 0.0, m)
            labels = np.where(labels == ignore_index, 0, labels)
        if channels == 1:
            y = labels[..., None].astype(np.float64)
        else:
            y = (labels[..., None] == np.arange(channels)).astype(np.float64)  # explicit one-hot
    if expand and channels == 1:
        y = np.concatenate([1.0 - y, y], axis=-1)
        if activation is not None:
            z, activation = np.concatenate([np.zeros_like(z), z], axis=-1), "softmax"
        else:
            z = np.concatenate([1.0 - z, z], axis=-1)
    if activation == "softmax":
        log_p = _log_softmax(z)
        p = np.exp(log_p)
        log_q, q_f, p_f = None, 1.0 - p, p
    elif activation == "sigmoid":
        log_p, log_q = _log_sigmoid(z), _log_sigmoid(-z)
        p, q_f = np.exp(log_p), np.exp(log_q)
        p_f = p
    else:
        p = z
        clipped = np.clip(p, CLIP, 1.0 - CLIP)
        log_p, log_q, q_f, p_f = np.log(clipped), np.log(1.0 - clipped), 1.0 - clipped, clipped
    return SimpleNamespace(y=y, p=p, log_p=log_p, log_q=log_q, q_f=q_f, p_f=p_f, m=m, batch=batch)


def element_mean(d, per_element):
    axes = tuple(range(0 if d.batch else 1, d.m.ndim))
    return _divide((d.m * per_element).sum(axis=axes), d.m.sum(axis=axes), 0.0)


def smoothed(y, s, classes):
    return (1.0 - s) * y + s / classes


# --------------------------------------------------------------------------- the terms


def categorical_focal_term(d, *, alpha=None, gamma=0.0, label_smoothing=0.0):
    """``mean_elements −Σ_c α_c (1 − p_c)^γ y'_c log p_c``."""
    classes = d.y.shape[-1]
    alpha = np.ones(classes) if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), classes)
    y = smoothed(d.y, label_smoothing, classes)
    factor = np.ones_like(d.q_f) if gamma == 0 else d.q_f ** gamma
    return element_mean(d, -(alpha * factor * y * d.log_p).sum(axis=-1))


def binary_focal_term(d, *, alpha=None, gamma=0.0, label_smoothing=0.0):
    """``mean_elements mean_c −[α y' (1−p)^γ log p + (1−α)(1−y') p^γ log(1−p)]``."""
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)
    y = smoothed(d.y, label_smoothing, 2)
    pos_factor = 1.0 if gamma == 0 else d.q_f ** gamma
    neg_factor = 1.0 if gamma == 0 else d.p_f ** gamma
    terms = a_pos * y * pos_factor * d.log_p + a_neg * (1.0 - y) * neg_factor * d.log_q
    return element_mean(d, -terms.mean(axis=-1))


def dice_term(d, *, epsilon=1e-5, average="macro", class_weights=None, include_background=True,
              background_index=0, soft_label=False):
    """``1 − (2TP + 2ε) / (2TP + FP + FN + 2ε)`` per class, combined by ``average``."""
    y, p, m = d.y, d.p, d.m[..., None]
    axes = tuple(range(0 if d.batch else 1, y.ndim - 1))
    if soft_label:
        sum_p, sum_y = (m * p).sum(axis=axes), (m * y).sum(axis=axes)
        tp = (sum_p + sum_y - (m * np.abs(p - y)).sum(axis=axes)) / 2
        fp, fn = sum_p - tp, sum_y - tp
    else:
        tp, fp, fn = ((m * y * p).sum(axis=axes), (m * (1 - y) * p).sum(axis=axes),
                      (m * y * (1 - p)).sum(axis=axes))
    classes = list(range(y.shape[-1]))
    if not include_background:
        classes.remove(background_index % y.shape[-1])
    tp, fp, fn = tp[..., classes], fp[..., classes], fn[..., classes]

    def loss(tp, fp, fn):
        return 1.0 - _divide(2 * tp + 2 * epsilon, 2 * tp + fp + fn + 2 * epsilon, 1.0)

    if average == "micro":
        return loss(tp.sum(-1), fp.sum(-1), fn.sum(-1))
    losses = loss(tp, fp, fn)
    if average == "macro":
        return losses.mean(-1)
    if class_weights is None:
        support = tp + fn
        weights = _divide(support, support.sum(-1, keepdims=True), 0.0)
    else:
        weights = np.asarray(class_weights, dtype=np.float64)[classes]
    return (weights * losses).sum(-1)


# --------------------------------------------------------------------------- public losses

COMMON = ("class_axis", "mask", "ignore_index", "batch")
REGION = ("average", "class_weights", "include_background", "background_index", "soft_label")


def _split(options):
    common = {k: options[k] for k in COMMON if k in options}
    region = {k: options[k] for k in REGION if k in options}
    unknown = set(options) - set(COMMON) - set(REGION) - {"from_logits"}
    assert not unknown, unknown
    return common, region


def binary_crossentropy(y_true, y_pred, *, label_smoothing=0.0, from_logits=False, **options):
    d = inputs(y_true, y_pred, activation="sigmoid" if from_logits else None, **_split(options)[0])
    return binary_focal_term(d, label_smoothing=label_smoothing)


def binary_focal_loss(y_true, y_pred, *, alpha=0.25, gamma=2.0, label_smoothing=0.0, from_logits=False,
                      **options):
    d = inputs(y_true, y_pred, activation="sigmoid" if from_logits else None, **_split(options)[0])
    return binary_focal_term(d, alpha=alpha, gamma=gamma, label_smoothing=label_smoothing)


def _categorical_activation(from_logits, channels):
    if from_logits is False:
        return None
    if from_logits == "sigmoid" or (from_logits is True and channels == 1):
        return "sigmoid"
    return "softmax"


def categorical_crossentropy(y_true, y_pred, *, label_smoothing=0.0, from_logits=False, **options):
    return categorical_focal_loss(y_true, y_pred, alpha=None, gamma=0.0, label_smoothing=label_smoothing,
                                  from_logits=from_logits, **options)


def categorical_focal_loss(y_true, y_pred, *, alpha=None, gamma=2.0, label_smoothing=0.0,
                           from_logits=False, **options):
    channels = np.shape(y_pred)[options.get("class_axis", -1)]
    activation = _categorical_activation(from_logits, channels)
    d = inputs(y_true, y_pred, activation=activation, expand=True, **_split(options)[0])
    return categorical_focal_term(d, alpha=alpha, gamma=gamma, label_smoothing=label_smoothing)


def _compound(y_true, y_pred, *, from_logits, options, focal):
    """``(focal part, 1 − DSC)`` of SPEC §12 on one set of inputs."""
    common, region = _split(options)
    channels = np.shape(y_pred)[common.get("class_axis", -1)]
    sigmoid = channels == 1 or from_logits == "sigmoid"
    if sigmoid:
        d = inputs(y_true, y_pred, activation="sigmoid" if from_logits else None, **common)
        part = binary_focal_term(d, **focal)
    else:
        d = inputs(y_true, y_pred, activation="softmax" if from_logits else None, **common)
        part = categorical_focal_term(d, **focal)
    return part, region, d


def dice_ce_loss(y_true, y_pred, *, ce_weight=1.0, dice_weight=1.0, epsilon=1e-5, label_smoothing=0.0,
                 from_logits=False, **options):
    ce, region, d = _compound(y_true, y_pred, from_logits=from_logits, options=options,
                              focal=dict(label_smoothing=label_smoothing))
    return ce_weight * ce + dice_weight * dice_term(d, epsilon=epsilon, **region)


def dice_focal_loss(y_true, y_pred, *, focal_weight=1.0, dice_weight=1.0, alpha=None, gamma=2.0,
                    epsilon=1e-5, label_smoothing=0.0, from_logits=False, **options):
    focal, region, d = _compound(y_true, y_pred, from_logits=from_logits, options=options,
                                 focal=dict(alpha=alpha, gamma=gamma, label_smoothing=label_smoothing))
    return focal_weight * focal + dice_weight * dice_term(d, epsilon=epsilon, **region)


# --------------------------------------------------------------------------- inputs


def random_case(seed, *, shape=(3, 4, 5), classes=3, labels="onehot", from_logits=False, class_axis=-1,
                masked=False, ignore=False, dtype=np.float64):
    """``(y_true, y_pred, options)`` with the class axis at ``class_axis``.

    ``labels``: ``"onehot"``, ``"sparse"`` (integers without the class axis) or ``"soft"``.
    Probabilities are a softmax (or a sigmoid for one channel) of random logits.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=shape + (classes,))
    if from_logits:
        pred = z
    elif classes == 1:
        pred = 1.0 / (1.0 + np.exp(-z))
    else:
        pred = np.exp(_log_softmax(z))
    index = rng.integers(0, max(classes, 2), size=shape)
    if ignore:
        index[rng.random(shape) < 0.2] = 255
    if labels == "sparse":
        true = index
    elif labels == "soft":
        true = rng.dirichlet(np.ones(classes), size=shape) if classes > 1 else rng.random(shape + (1,))
    elif classes == 1:
        true = index[..., None].astype(np.float64)
    else:
        true = (index[..., None] == np.arange(classes)).astype(np.float64)
    options = {}
    if masked:
        mask = (rng.random(shape) > 0.3).astype(np.float64)
        mask[0] = 0.0  # a fully masked sample
        options["mask"] = mask
    if ignore:
        options["ignore_index"] = 255
    axis = class_axis % (len(shape) + 1)
    if axis != len(shape):
        pred = np.moveaxis(pred, -1, axis)
        if labels != "sparse":
            true = np.moveaxis(true, -1, axis)
        options["class_axis"] = class_axis
    return true, pred.astype(dtype), options
