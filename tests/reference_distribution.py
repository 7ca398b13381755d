"""Float64 NumPy reference for the distribution, compound and Unified Focal losses (SPEC §5-§6).

Written from the formulas in SPEC, independently of ``lossfns`` (and of
``reference_region.py``). Clarity wins over memory and speed: sparse labels are one-hot
encoded and the class axis is moved last.

After :func:`prepare` every array is class-last: labels ``y`` and probabilities ``p`` are
``[B, d1, ..., dk, C]``, element weights ``m`` are ``[B, d1, ..., dk]``.

Conventions fixed here (SPEC §2, §5):

* probabilities are clipped to ``[1e-7, 1 - 1e-7]`` inside log terms and focal factors only;
  confusion sums use the unclipped ``p``;
* with logits, log terms come from log-softmax / log-sigmoid and nothing is clipped;
* a single-channel input of a categorical loss becomes ``[1 - p, p]`` / ``[1 - y, y]``; for
  sigmoid logits ``z`` that is exactly the softmax of ``[0, z]``, which is how it is built here;
* ``Σ m·ℓ / Σ m`` is 0 where ``Σ m = 0``; a Tversky index ``0 / 0`` (ε = 0, empty class) is 1.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

CLIP = 1e-7


# --------------------------------------------------------------------------- helpers


def log_softmax(z):
    """Log-softmax over the last axis."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_sigmoid(z):
    """``log σ(z) = -log(1 + e^{-z})``, finite for any ``z``."""
    return -np.logaddexp(0.0, -z)


def softmax(z):
    return np.exp(log_softmax(z))


def sigmoid(z):
    return np.exp(log_sigmoid(z))


def one_hot(labels, num_classes):
    return (labels[..., None] == np.arange(num_classes)).astype(np.float64)


def clip(p):
    return np.clip(p, CLIP, 1.0 - CLIP)


def prepare(y_true, y_pred, *, class_axis=-1, from_logits=False, mask=None, ignore_index=None,
            batch=False, binary=False):
    """Class-last float64 inputs of one loss call.

    Returns a namespace with

    * ``y``, ``p``: labels and probabilities ``[B, ..., C]`` (``C >= 2`` unless ``binary``);
    * ``log_p``, ``log_q``: ``log p`` and ``log(1 - p)`` for the log terms;
    * ``p_f``, ``q_f``: ``p`` and ``1 - p`` for the focal factors;
    * ``m``: element weights ``[B, ...]``; ``batch``: whether the batch axis is reduced too.

    ``binary`` keeps every channel as its own sigmoid problem (binary losses); otherwise a
    single channel is expanded to two classes, background first.
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true)
    axis = class_axis % y_pred.ndim
    num_classes = y_pred.shape[axis]
    z = np.moveaxis(y_pred, axis, -1)
    element_shape = z.shape[:-1]

    dense = y_true.shape == y_pred.shape and not (num_classes == 1 and y_true.dtype.kind in "iu")
    if dense:
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
            m = np.where(labels == ignore_index, 0.0, m)
            labels = np.where(labels == ignore_index, 0, labels)
        y = labels[..., None].astype(np.float64) if num_classes == 1 else one_hot(labels, num_classes)

    if binary:
        if from_logits:
            return SimpleNamespace(
                y=y, p=sigmoid(z), log_p=log_sigmoid(z), log_q=log_sigmoid(-z),
                p_f=sigmoid(z), q_f=sigmoid(-z), m=m, batch=batch,
            )
        p = clip(z)
        return SimpleNamespace(y=y, p=z, log_p=np.log(p), log_q=np.log(1.0 - p), p_f=p,
                               q_f=1.0 - p, m=m, batch=batch)

    if num_classes == 1:
        y = np.concatenate([1.0 - y, y], axis=-1)
        if from_logits:  # sigmoid logits: [σ(-z), σ(z)] is the softmax of [0, z]
            z = np.concatenate([np.zeros_like(z), z], axis=-1)
        else:
            z = np.concatenate([1.0 - z, z], axis=-1)
    activation = None
    if from_logits is True or from_logits == "softmax" or (from_logits and num_classes == 1):
        activation = "softmax"
    elif from_logits == "sigmoid":
        activation = "sigmoid"

    if activation == "softmax":
        log_p = log_softmax(z)
        p = np.exp(log_p)
        q_f = 1.0 - p
    elif activation == "sigmoid":
        log_p = log_sigmoid(z)
        p = sigmoid(z)
        q_f = sigmoid(-z)
    else:
        p = z
        log_p = np.log(clip(p))
        q_f = 1.0 - clip(p)
    return SimpleNamespace(y=y, p=p, log_p=log_p, log_q=None, p_f=None, q_f=q_f, m=m, batch=batch)


def element_mean(inputs, per_element):
    """``Σ m·ℓ / Σ m`` over each sample's elements (every element with ``batch``); 0 if ``Σ m = 0``."""
    m = inputs.m
    axes = tuple(range(0 if inputs.batch else 1, m.ndim))
    total = (m * per_element).sum(axis=axes)
    count = m.sum(axis=axes)
    return np.where(count > 0, total / np.where(count > 0, count, 1.0), 0.0)


def confusion(inputs):
    """``(TP, FP, FN)`` per sample and class, ``[B, C]`` (``[C]`` with ``batch``)."""
    y, p, m = inputs.y, inputs.p, inputs.m[..., None]
    axes = tuple(range(0 if inputs.batch else 1, y.ndim - 1))
    tp = (m * y * p).sum(axis=axes)
    fp = (m * (1.0 - y) * p).sum(axis=axes)
    fn = (m * y * (1.0 - p)).sum(axis=axes)
    return tp, fp, fn


def tversky_index(inputs, *, fp_weight, fn_weight, epsilon):
    """``(TP + ε) / (TP + a·FP + b·FN + ε)`` per class; 1 for ``0 / 0``."""
    tp, fp, fn = confusion(inputs)
    numerator = tp + epsilon
    denominator = tp + fp_weight * fp + fn_weight * fn + epsilon
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 1.0)


def power(x, exponent):
    """``max(x, 0) ** exponent`` with ``0 ** 0 = 1``."""
    return np.maximum(x, 0.0) ** exponent


def class_weights(num_classes, background_index, *, background, rare):
    w = np.full(num_classes, float(rare))
    w[background_index] = background
    return w


def weighted_focal_ce(inputs, weights, gammas):
    """Per sample ``mean_elements Σ_c w_c (1 - p_c)^{γ_c} (-y_c log p_c)``."""
    terms = np.asarray(weights) * power(inputs.q_f, np.asarray(gammas)) * (-inputs.y * inputs.log_p)
    return element_mean(inputs, terms.sum(axis=-1))


# --------------------------------------------------------------------------- §5


def binary_crossentropy(y_true, y_pred, **options):
    return binary_focal_loss(y_true, y_pred, alpha=None, gamma=0.0, **options)


def binary_focal_loss(y_true, y_pred, *, alpha=0.25, gamma=2.0, **options):
    d = prepare(y_true, y_pred, binary=True, **options)
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)
    positive = a_pos * d.y * power(d.q_f, gamma) * d.log_p
    negative = a_neg * (1.0 - d.y) * power(d.p_f, gamma) * d.log_q
    return element_mean(d, -(positive + negative).mean(axis=-1))


def categorical_crossentropy(y_true, y_pred, **options):
    d = prepare(y_true, y_pred, **options)
    return element_mean(d, -(d.y * d.log_p).sum(axis=-1))


def categorical_focal_loss(y_true, y_pred, *, alpha=None, gamma=2.0, **options):
    d = prepare(y_true, y_pred, **options)
    weights = 1.0 if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), d.y.shape[-1:])
    return weighted_focal_ce(d, weights, gamma)


def combo_loss(y_true, y_pred, *, alpha=0.5, beta=0.5, epsilon=1e-5, background_index=0, **options):
    d = prepare(y_true, y_pred, **options)
    weights = class_weights(d.y.shape[-1], background_index, background=1.0 - beta, rare=beta)
    cross_entropy = weighted_focal_ce(d, weights, 0.0)
    dice = tversky_index(d, fp_weight=0.5, fn_weight=0.5, epsilon=epsilon).mean(axis=-1)
    return alpha * cross_entropy - (1.0 - alpha) * dice


def hybrid_focal_loss(y_true, y_pred, *, weight=0.5, focal_alpha=None, focal_gamma=2.0,
                      tversky_alpha=0.3, tversky_beta=0.7, tversky_gamma=0.75, epsilon=1e-5, **options):
    focal = categorical_focal_loss(y_true, y_pred, alpha=focal_alpha, gamma=focal_gamma, **options)
    d = prepare(y_true, y_pred, **options)
    ti = tversky_index(d, fp_weight=tversky_alpha, fn_weight=tversky_beta, epsilon=epsilon)
    focal_tversky = power(1.0 - ti, tversky_gamma).mean(axis=-1)
    return weight * focal + (1.0 - weight) * focal_tversky


# --------------------------------------------------------------------------- §6


def symmetric_focal_loss(y_true, y_pred, *, delta=0.7, gamma=2.0, background_index=0, **options):
    d = prepare(y_true, y_pred, **options)
    weights = class_weights(d.y.shape[-1], background_index, background=1.0 - delta, rare=delta)
    return weighted_focal_ce(d, weights, gamma)


def asymmetric_focal_loss(y_true, y_pred, *, delta=0.7, gamma=2.0, background_index=0, **options):
    d = prepare(y_true, y_pred, **options)
    num_classes = d.y.shape[-1]
    weights = class_weights(num_classes, background_index, background=1.0 - delta, rare=delta)
    gammas = class_weights(num_classes, background_index, background=gamma, rare=0.0)
    return weighted_focal_ce(d, weights, gammas)


def _modified_tversky_losses(y_true, y_pred, delta, epsilon, options):
    d = prepare(y_true, y_pred, **options)
    return 1.0 - tversky_index(d, fp_weight=1.0 - delta, fn_weight=delta, epsilon=epsilon)


def symmetric_focal_tversky_loss(y_true, y_pred, *, delta=0.7, gamma=0.75, epsilon=1e-7,
                                 background_index=0, **options):
    del background_index  # every class is treated alike
    losses = _modified_tversky_losses(y_true, y_pred, delta, epsilon, options)
    return power(losses, 1.0 - gamma).mean(axis=-1)


def asymmetric_focal_tversky_loss(y_true, y_pred, *, delta=0.7, gamma=0.75, epsilon=1e-7,
                                  background_index=0, **options):
    losses = _modified_tversky_losses(y_true, y_pred, delta, epsilon, options)
    exponents = class_weights(losses.shape[-1], background_index, background=1.0, rare=1.0 - gamma)
    return power(losses, exponents).mean(axis=-1)


def symmetric_unified_focal_loss(y_true, y_pred, *, weight=0.5, delta=0.6, gamma=0.5, epsilon=1e-7,
                                 background_index=0, **options):
    common = dict(delta=delta, gamma=gamma, background_index=background_index, **options)
    return (weight * symmetric_focal_loss(y_true, y_pred, **common)
            + (1.0 - weight) * symmetric_focal_tversky_loss(y_true, y_pred, epsilon=epsilon, **common))


def asymmetric_unified_focal_loss(y_true, y_pred, *, weight=0.5, delta=0.6, gamma=0.5, epsilon=1e-7,
                                  background_index=0, **options):
    common = dict(delta=delta, gamma=gamma, background_index=background_index, **options)
    return (weight * asymmetric_focal_loss(y_true, y_pred, **common)
            + (1.0 - weight) * asymmetric_focal_tversky_loss(y_true, y_pred, epsilon=epsilon, **common))


# --------------------------------------------------------------------------- test inputs


def random_case(seed, *, shape, classes, class_axis=-1, labels="dense", logits=False,
                mask=False, ignore_index=None, dtype=np.float64):
    """Random ``(y_true, y_pred, options)`` for one loss call, as NumPy arrays.

    Args:
      shape: ``[B, d1, ..., dk]``, the element shape.
      classes: size of the class axis (1: single-channel binary).
      class_axis: where the class axis goes.
      labels: ``"dense"`` (one-hot, or 0/1 for one channel), ``"soft"`` (labels in [0, 1]),
        ``"sparse"`` (class axis absent) or ``"sparse1"`` (class axis of size 1).
      logits: ``y_pred`` holds logits in [-4, 4] and this is ``from_logits`` (``True`` or
        ``"sigmoid"``); else probabilities bounded away from 0 and 1 (softmax of such logits,
        or uniform in [0.02, 0.98]).
      mask: ``True`` adds a random 0/1/0.5 mask with the last sample fully masked;
        ``"sample"`` one weight per sample, shaped ``[B, 1, ..., 1]`` to broadcast.
      ignore_index: with sparse labels, mark ~20% of the elements with this label.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    num_labels = max(classes, 2)
    hard = rng.integers(0, num_labels, size=shape)
    z = rng.uniform(-4.0, 4.0, size=shape + (classes,))
    if logits:
        y_pred = z
    elif classes == 1:
        y_pred = rng.uniform(0.02, 0.98, size=shape + (1,))
    else:
        y_pred = softmax(z)
    if labels in ("dense", "soft"):
        y_true = hard[..., None].astype(np.float64) if classes == 1 else one_hot(hard, classes)
        if labels == "soft":
            y_true = rng.uniform(0.0, 1.0, size=y_true.shape)
            if classes > 1:
                y_true = y_true / y_true.sum(axis=-1, keepdims=True)
        y_true = np.moveaxis(y_true, -1, class_axis)
    else:
        if ignore_index is not None:
            hard = np.where(rng.uniform(size=shape) < 0.2, ignore_index, hard)
        y_true = hard if labels == "sparse" else np.expand_dims(hard, axis=-1)
        if labels == "sparse1":
            y_true = np.moveaxis(y_true, -1, class_axis)
    options = {"class_axis": class_axis}
    if logits:
        options["from_logits"] = logits
    if mask == "sample":
        options["mask"] = rng.uniform(0.5, 2.0, size=shape[:1] + (1,) * (len(shape) - 1)).astype(dtype)
    elif mask:
        weights = rng.choice([0.0, 0.5, 1.0], size=shape)
        weights[-1] = 0.0
        options["mask"] = weights.astype(dtype)
    if ignore_index is not None:
        options["ignore_index"] = ignore_index
    y_pred = np.moveaxis(y_pred, -1, class_axis).astype(dtype)
    if y_true.dtype.kind == "f":
        y_true = y_true.astype(dtype)
    return y_true, y_pred, options


#: Settings of :func:`random_case` that together cover SPEC §2: dense, soft and sparse labels,
#: 0-D to 3-D spatial shapes, one channel and C = 2, 3, 5, the class axis first or last, masks
#: (per element and broadcast per sample), ``ignore_index``, softmax and sigmoid logits and
#: ``batch=True``. ``background_index`` is used only by losses that
#: take it.
CASES = {
    "dense-2d-c3-background2": dict(shape=(2, 5, 4), classes=3, background_index=2),
    "soft-0d-c3-sigmoid": dict(shape=(6,), classes=3, labels="soft", logits="sigmoid"),
    "sparse-1d-c5-axis1-logits": dict(shape=(3, 6), classes=5, class_axis=1, labels="sparse", logits=True),
    "sparse-3d-c2-mask-ignore": dict(shape=(3, 3, 4, 2), classes=2, labels="sparse", mask=True, ignore_index=2),
    "binary-2d-c1-sample-mask": dict(shape=(2, 4, 5), classes=1, mask="sample"),
    "binary-1d-c1-sparse1-logits-mask": dict(shape=(3, 8), classes=1, labels="sparse1", logits=True, mask=True),
    "dense-2d-c3-axis1-mask-batch": dict(shape=(2, 4, 3), classes=3, class_axis=1, mask=True, batch=True),
}
#: The cases also run in float32 (each float32 case costs JAX a compilation per loss).
FLOAT32_CASES = ("dense-2d-c3-background2", "sparse-1d-c5-axis1-logits", "sparse-3d-c2-mask-ignore",
                 "binary-1d-c1-sparse1-logits-mask", "dense-2d-c3-axis1-mask-batch")


def case_inputs(name, seed, dtype=np.float64):
    """``(y_true, y_pred, options, background_index)`` of the case called ``name``."""
    settings = dict(CASES[name])
    batch = settings.pop("batch", False)
    background_index = settings.pop("background_index", None)
    y_true, y_pred, options = random_case(seed, dtype=dtype, **settings)
    if batch:
        options["batch"] = True
    return y_true, y_pred, options, background_index
