"""Distribution losses: binary and categorical cross-entropy and focal loss.

Docs: Losses › Distribution and compound losses.

Per-element losses, averaged over the elements of each sample with the mask as weights.
With probabilities, ``p`` is clipped to ``[1e-7, 1 - 1e-7]`` inside the logs and focal
factors; with logits every log comes from log-softmax / log-sigmoid and nothing is clipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array
from .domains import NONNEGATIVE, UNIT_INTERVAL, FromLogits, OrNone, PerClass
from .inputs import Prepared, prepare

_SIGMOID_ONLY = FromLogits(binary=True)


def class_constants(num_classes: int, background: int, *, background_value: float,
                    rare_value: float) -> tuple[float, ...]:
    """A per-class tuple: ``background_value`` at ``background``, ``rare_value`` elsewhere."""
    return tuple(background_value if c == background else rare_value for c in range(num_classes))


def _per_label(inputs: Prepared, values: Sequence[float]) -> Array | float:
    """``values[label]`` per element for sparse labels, without a one-hot."""
    # Compared with == only (no set, no hashing): under torch.compile the values may be
    # symbolic floats, which compare (Dynamo guards on the outcome) but do not hash.
    xp = inputs.xp
    first = values[0]
    others = [value for value in values if not value == first]
    if not others:
        return first
    if all(value == others[0] for value in others):  # background vs rare: a where on the labels
        rare_first = len(others) > len(values) - len(others)  # the value fewer classes hold
        minority, majority = (first, others[0]) if rare_first else (others[0], first)
        chosen = None
        for c, value in enumerate(values):
            if value == minority:
                hit = inputs.labels == c
                chosen = hit if chosen is None else chosen | hit
        return xp.where(chosen, xp.asarray(minority, dtype=inputs.dtype, device=inputs.device), majority)
    # A full-shape table to gather from: gathering from the broadcast [C] vector fails for
    # labels sharded over a JAX mesh, and the full shape needs no shape arithmetic.
    return pr.gather(inputs, pr.class_vector(inputs, values) + xp.zeros_like(inputs.reference))


def focal_factor(inputs: Prepared, complement: Array, *, gamma: float, background_gamma: float,
                 is_background: Array | None) -> Array:
    """``(1 - p)**γ`` with its own γ for the background class, from a guarded power.

    ``complement`` is ``1 - clip(p)`` or exact from logits, never negative: no clamp needed.
    """
    xp = inputs.xp
    rare = nx.guarded_power(xp, complement, gamma, clamp=False)
    if background_gamma == gamma:
        return rare
    return xp.where(is_background, nx.guarded_power(xp, complement, background_gamma, clamp=False), rare)


def _dense_focal_terms(inputs: Prepared, target: Array | float, *, class_weights: Sequence[float],
                       gamma: float, background_gamma: float, background: int) -> Array:
    r"""``Σ_c w_c (1 - p_c)^{γ_c} (-target_c \log p_c)`` with a size-1 class axis.

    ``target`` is a dense label array or a scalar constant (the uniform ``s/C`` of label
    smoothing, which broadcasts against the class axis without a full-size label array).
    """
    xp = inputs.xp
    # y·log p, negated only after the class sum: a negation of the full-size array would
    # cost a pass each way.
    log_likelihood = target * pr.log_probabilities(inputs)
    terms = log_likelihood
    if gamma != 0:
        terms = terms * nx.guarded_power(xp, pr.complement(inputs), gamma, clamp=False)
    if any(not w == class_weights[0] for w in class_weights):  # == only: see _per_label
        terms = terms * pr.class_vector(inputs, class_weights)
    elif class_weights[0] != 1.0:
        terms = terms * class_weights[0]
    terms = -xp.sum(terms, axis=inputs.class_axis, keepdims=True)
    if background_gamma != gamma:
        # Only the background has its own exponent: correct its slice instead of
        # selecting between two full-size powers (a third of the work of a where).
        complement = pr.complement_at(inputs, background)
        correction = (nx.guarded_power(xp, complement, background_gamma, clamp=False)
                      - nx.guarded_power(xp, complement, gamma, clamp=False))
        background_ce = -pr.take_class(inputs, log_likelihood, background)
        terms = terms + class_weights[background] * background_ce * correction
    return terms


def _sparse_focal_terms(inputs: Prepared, *, class_weights: Sequence[float], gamma: float,
                        background_gamma: float, background: int) -> Array:
    r"""The labelled class's ``w (1 - p)^γ (-\log p)``, gathered: never a one-hot."""
    terms = pr.labelled_cross_entropy(inputs)
    weight = _per_label(inputs, class_weights)
    if not (isinstance(weight, float) and weight == 1.0):
        terms = terms * weight
    if gamma != 0 or background_gamma != 0:
        is_background = None if background_gamma == gamma else inputs.labels == background
        terms = terms * focal_factor(
            inputs, pr.labelled_complement(inputs), gamma=gamma,
            background_gamma=background_gamma, is_background=is_background,
        )
    return terms


def weighted_focal_crossentropy(inputs: Prepared, *, class_weights: Sequence[float],
                                gamma: float, background_gamma: float | None = None,
                                background: int = 0, label_smoothing: float = 0.0) -> Array:
    r"""Per-sample mean of ``Σ_c w_c (1 - p_c)^{γ_c} (-y'_c \log p_c)``.

    ``γ_c`` is ``background_gamma`` for the background class and ``gamma`` for the others;
    ``y' = (1 - s) y + s / C`` with ``s = label_smoothing`` (docs: Concepts › Label smoothing). This one term gives
    categorical cross-entropy, categorical focal loss, the weighted cross-entropy of Combo
    loss and both focal losses of the Unified Focal family.
    """
    return pr.weighted_mean(inputs, focal_crossentropy_terms(
        inputs, class_weights=class_weights, gamma=gamma, background_gamma=background_gamma,
        background=background, label_smoothing=label_smoothing))


def class_weighted_crossentropy(inputs: Prepared, *, class_weights: Sequence[float],
                                label_smoothing: float = 0.0) -> Array:
    r"""``Σ_i m_i Σ_c w_c y'_ic (-\log p_ic) / Σ_i m_i Σ_c w_c y'_ic`` per sample (the batch
    with ``batch=True``): torch's ``CrossEntropyLoss(weight=w)`` normalisation, 0 where the
    weights sum to 0. An out-of-range label weighs nothing (no class)."""
    xp = inputs.xp
    terms = focal_crossentropy_terms(inputs, class_weights=class_weights, gamma=0.0,
                                     label_smoothing=label_smoothing)
    s = label_smoothing
    if inputs.target is None:
        weight = _per_label(inputs, class_weights)
        _, in_range = pr.labelled_index(inputs)
        weight = xp.astype(in_range, inputs.dtype) * weight if in_range is not None else weight
        if s:
            weight = (1.0 - s) * weight + s / inputs.num_classes * sum(class_weights)
    else:
        target = inputs.target if not s else (1.0 - s) * inputs.target + s / inputs.num_classes
        weight = xp.sum(target * pr.class_vector(inputs, class_weights), axis=inputs.class_axis, keepdims=True)
    return pr.weighted_ratio(inputs, terms, weight)


def focal_crossentropy_terms(inputs: Prepared, *, class_weights: Sequence[float], gamma: float,
                             background_gamma: float | None = None, background: int = 0,
                             label_smoothing: float = 0.0) -> Array:
    """The per-element terms of :func:`weighted_focal_crossentropy` (size-1 class axis)."""
    background_gamma = gamma if background_gamma is None else background_gamma
    focal: dict[str, Any] = {"class_weights": class_weights, "gamma": gamma,
                             "background_gamma": background_gamma, "background": background}
    s = label_smoothing
    if inputs.target is None:  # sparse: the labelled class plus the uniform part, no one-hot
        terms = _sparse_focal_terms(inputs, **focal)
        if s:
            uniform = _dense_focal_terms(inputs, s / inputs.num_classes, **focal)
            terms = (1.0 - s) * terms + uniform
    else:
        target = inputs.target
        if s:
            target = (1.0 - s) * target + s / inputs.num_classes
        terms = _dense_focal_terms(inputs, target, **focal)
    return terms


def _binary_terms(inputs: Prepared, log_p: Array, log_q: Array, *, alpha: float | None, gamma: float,
                  positive: bool) -> Array:
    """The positive ``-α (1-p)^γ log p`` or negative ``-(1-α) p^γ log(1-p)`` term.

    Signs and α are folded into one constant: every full-size operation is one pass in
    eager mode.
    """
    if positive:
        log_x, log_other, weight = log_p, log_q, -1.0 if alpha is None else -alpha
    else:
        log_x, log_other, weight = log_q, log_p, -1.0 if alpha is None else alpha - 1.0
    term = log_x * weight
    if gamma != 0:
        term = term * inputs.xp.exp(gamma * log_other)
    return term


def binary_focal_crossentropy(inputs: Prepared, *, alpha: float | None, gamma: float,
                              label_smoothing: float = 0.0,
                              positive_weights: Sequence[float] | None = None) -> Array:
    """Per-sample mean over elements and channels of the binary (focal) cross-entropy.

    The focal factors are ``exp(γ·log(1-p))`` and ``exp(γ·log p)``: finite for logits of any
    size and exactly 1 at γ = 0. Label smoothing replaces ``y`` by ``(1 - s) y + s/2`` in
    the weights of the two terms only; the focal factors and α stay as they are (docs: Concepts › Label smoothing).
    ``positive_weights`` (one per channel) multiply the positive terms: torch's ``pos_weight``.
    """
    xp = inputs.xp
    log_p, log_q = pr.log_probabilities(inputs), pr.log_complement(inputs)
    focal: dict[str, Any] = {"alpha": alpha, "gamma": gamma}
    negative = _binary_terms(inputs, log_p, log_q, positive=False, **focal)

    def weighted(positive: Array, per_label: bool = False) -> Array:
        if positive_weights is None:
            return positive
        return positive * (_per_label(inputs, positive_weights) if per_label
                           else pr.class_vector(inputs, positive_weights))

    if inputs.target is not None:  # y·pos + (1 - y)·neg = neg + y·(pos - neg)
        positive = weighted(_binary_terms(inputs, log_p, log_q, positive=True, **focal))
        target = inputs.target
        if label_smoothing:
            target = (1.0 - label_smoothing) * target + label_smoothing / 2
        terms = xp.sum(negative + target * (positive - negative), axis=inputs.class_axis, keepdims=True)
    else:
        # The positive term only at the labelled channel, from the gathered logs; the
        # negative term zeroed there (not subtracted: that would cancel large terms).
        # A label outside [0, C) (unvalidated) hits no channel, as `labels == c` would.
        index, in_range = pr.labelled_index(inputs)
        at_label = _binary_terms(inputs, xp.take_along_axis(log_p, index, axis=inputs.class_axis),
                                 xp.take_along_axis(log_q, index, axis=inputs.class_axis),
                                 positive=True, **focal)
        at_label = pr.zero_out_of_range(inputs, weighted(at_label, per_label=True), in_range)
        other = xp.where(pr.class_mask(inputs), 0.0, negative)
        terms = xp.sum(other, axis=inputs.class_axis, keepdims=True) + at_label
        if label_smoothing:  # y'·pos + (1 - y')·neg = (1 - s)(y·pos + (1 - y)·neg) + s/2·(pos + neg)
            positive = weighted(_binary_terms(inputs, log_p, log_q, positive=True, **focal))
            both = xp.sum(positive + negative, axis=inputs.class_axis, keepdims=True)
            terms = (1.0 - label_smoothing) * terms + label_smoothing / 2 * both
    return pr.weighted_mean(inputs, terms / float(inputs.num_classes))


@v.validated(label_smoothing=UNIT_INTERVAL, from_logits=_SIGMOID_ONLY)
def binary_crossentropy(y_true: Array, y_pred: Array, *, label_smoothing: float = 0.0, class_axis: int = -1,
                        from_logits: bool | Literal["sigmoid"] = False, mask: Array | None = None,
                        ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                        all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Binary cross-entropy, averaged over channels and elements.

    .. math::
        \ell = \operatorname{mean}_c -\left[y_c \log p_c + (1 - y_c)\log(1 - p_c)\right]

    Every channel is an independent binary problem (multi-label); logits always go through
    a sigmoid. Matches ``keras.losses.BinaryCrossentropy`` per sample.

    Args:
      y_true: dense labels in [0, 1] of ``y_pred``'s shape, or integer labels (for a single
        channel the 0/1 label map itself; for C channels class indices, one-hot per element).
      y_pred: probabilities, or logits with ``from_logits=True``/``"sigmoid"``.
      label_smoothing: ``s`` in [0, 1]; ``y`` is replaced by ``(1 - s) y + s/2``, as in
        Keras.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9], [0.2], [0.6]]])       # [batch, elements, 1 channel]
      >>> print(np.round(lossfns.binary_crossentropy(np.array([[1, 0, 1]]), probs), 4))
      [0.2798]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate,
                     all_reduce=all_reduce, binary_loss=True)
    return binary_focal_crossentropy(inputs, alpha=None, gamma=0.0, label_smoothing=label_smoothing)


@v.validated(alpha=OrNone(UNIT_INTERVAL), gamma=NONNEGATIVE, label_smoothing=UNIT_INTERVAL,
             from_logits=_SIGMOID_ONLY)
def binary_focal_loss(y_true: Array, y_pred: Array, *, alpha: float | None = 0.25, gamma: float = 2.0,
                      label_smoothing: float = 0.0, class_axis: int = -1,
                      from_logits: bool | Literal["sigmoid"] = False, mask: Array | None = None,
                      ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                      all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Binary focal loss (Lin et al. 2017), averaged over channels and elements.

    .. math::
        \ell = \operatorname{mean}_c -\left[\alpha\,y\,(1-p)^{\gamma}\log p
               + (1-\alpha)(1-y)\,p^{\gamma}\log(1-p)\right]

    ``alpha=None`` weighs both terms 1. Matches ``keras.losses.BinaryFocalCrossentropy``
    (``apply_class_balancing=True``) for 0/1 labels.

    Args:
      y_true, y_pred: as in :func:`binary_crossentropy`.
      alpha: weight of the positive term in [0, 1], or ``None``.
      gamma: focusing exponent, >= 0.
      label_smoothing: ``s`` in [0, 1]; ``y`` is replaced by ``(1 - s) y + s/2`` where it
        weighs the two terms; the focal factors and α are unchanged (Keras' own
        ``BinaryFocalCrossentropy`` smooths those too).
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9], [0.2], [0.6]]])
      >>> print(np.round(lossfns.binary_focal_loss(np.array([[1, 0, 1]]), probs), 4))
      [0.0091]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate,
                     all_reduce=all_reduce, binary_loss=True)
    return binary_focal_crossentropy(inputs, alpha=alpha, gamma=gamma, label_smoothing=label_smoothing)


@v.validated(label_smoothing=UNIT_INTERVAL)
def categorical_crossentropy(y_true: Array, y_pred: Array, *, label_smoothing: float = 0.0,
                             class_axis: int = -1, from_logits: bool | Literal["softmax", "sigmoid"] = False,
                             mask: Array | None = None, ignore_index: int | None = None, batch: bool = False,
                             validate: bool = False,
                             all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Categorical cross-entropy, averaged over elements.

    .. math::
        \ell = -\sum_c y_c \log p_c

    A single-channel input is expanded to ``[1 - p, p]``. With ``from_logits=True`` the
    log-probabilities come from a log-softmax over the class axis. Unlike Keras, ``y_pred``
    is not renormalised over the classes: probabilities are taken as given.

    Args:
      y_true: dense labels of ``y_pred``'s shape, or integer class indices.
      y_pred: probabilities (summing to 1 over the class axis) or logits.
      label_smoothing: ``s`` in [0, 1]; ``y`` is replaced by ``(1 - s) y + s/C`` (C after
        the single-channel expansion), as in Keras. Sparse labels are not expanded:
        ``-(1 - s) \log p_{label} - (s/C) \sum_c \log p_c``.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.categorical_crossentropy(np.array([[0, 1, 1]]), probs), 4))
      [0.4149]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate,
                     all_reduce=all_reduce, two_channels=True)
    return weighted_focal_crossentropy(inputs, class_weights=(1.0,), gamma=0.0,
                                       label_smoothing=label_smoothing)


def categorical_focal_weights(alpha: float | Sequence[float] | None, num_classes: int) -> Sequence[float]:
    """``alpha`` of the categorical focal loss (checked) as one weight per class."""
    if alpha is None:
        return (1.0,) * num_classes
    if isinstance(alpha, float):
        return (alpha,) * num_classes
    return alpha


@v.validated(two_channels=True, alpha=PerClass(allow_scalar=True), gamma=NONNEGATIVE,
             label_smoothing=UNIT_INTERVAL)
def categorical_focal_loss(y_true: Array, y_pred: Array, *, alpha: float | Sequence[float] | None = None,
                           gamma: float = 2.0, label_smoothing: float = 0.0, class_axis: int = -1,
                           from_logits: bool | Literal["softmax", "sigmoid"] = False,
                           mask: Array | None = None, ignore_index: int | None = None, batch: bool = False,
                           validate: bool = False,
                           all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Categorical focal loss (Lin et al. 2017), averaged over elements.

    .. math::
        \ell = -\sum_c \alpha_c\,(1 - p_c)^{\gamma}\,y_c \log p_c

    Args:
      y_true, y_pred: as in :func:`categorical_crossentropy`.
      alpha: ``None`` (every class 1), one number for every class, or one per class.
      gamma: focusing exponent, >= 0.
      label_smoothing: ``s`` in [0, 1]; ``y`` is replaced by ``(1 - s) y + s/C`` (C after
        the single-channel expansion); the focal factors and α are unchanged.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.categorical_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.1133]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate,
                     all_reduce=all_reduce, two_channels=True, per_class={"alpha": alpha})
    weights = categorical_focal_weights(alpha, inputs.num_classes)
    return weighted_focal_crossentropy(inputs, class_weights=weights, gamma=gamma,
                                       label_smoothing=label_smoothing)


__all__ = ["binary_crossentropy", "binary_focal_loss", "categorical_crossentropy", "categorical_focal_loss"]
