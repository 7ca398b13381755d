"""Dice plus cross-entropy or focal loss, as in nnU-Net and MONAI (docs: Losses › Dice + cross-entropy).

Both losses prepare their inputs once (one log-softmax or log-sigmoid) and evaluate the
Dice part and the cross-entropy / focal part on them. The region options act on the Dice
part only; the cross-entropy / focal part always covers every class and alone sees label
smoothing (docs: Concepts › Label smoothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from . import validation as v
from ._typing import Array, Epsilon
from .distribution import (
    binary_focal_crossentropy,
    categorical_focal_weights,
    class_weighted_crossentropy,
    weighted_focal_crossentropy,
)
from .domains import NONNEGATIVE, SMOOTHING, UNIT_INTERVAL, Boolean, PerClass
from .generalized_dice import WEIGHTING, generalized_dice_kernel
from .inputs import Prepared, prepare
from .region import focal_tversky_kernel

_UNIT, _NONNEG = UNIT_INTERVAL, NONNEGATIVE


def _uses_sigmoid(from_logits: bool | str, num_classes: int) -> bool:
    """A sigmoid activation: one channel, or ``from_logits="sigmoid"`` (docs: Losses › Dice + cross-entropy)."""
    return num_classes == 1 or from_logits == "sigmoid"


def _dice(inputs: Prepared, *, epsilon: Epsilon, **region: Any) -> Array:
    """``1 - DSC``: :func:`~lossfns.f1_loss` on the prepared inputs, with the region options."""
    return focal_tversky_kernel(inputs, alpha=0.5, beta=0.5, gamma=1.0, epsilon=epsilon, **region)


def _weighted_sum(weight_a: float, a: Array, weight_b: float, b: Array) -> Array:
    """``w_a·a + w_b·b``, without multiplying by a weight of 1 (one operation each way)."""
    if weight_a != 1.0:
        a = weight_a * a
    if weight_b != 1.0:
        b = weight_b * b
    return a + b


def _binary_alpha(alpha: float | Sequence[float] | None) -> float | None:
    """``alpha`` of the binary focal part: ``None`` or one weight in [0, 1]."""
    if isinstance(alpha, tuple):
        raise ValueError(
            f"alpha must be None or one number in [0, 1] with a sigmoid activation (one channel or "
            f"from_logits='sigmoid'), where the focal part is binary; got {alpha!r}"
        )
    return None if alpha is None else UNIT_INTERVAL.check("alpha", alpha)


def _focal_part(inputs: Prepared, *, sigmoid: bool, alpha: float | Sequence[float] | None, gamma: float,
                label_smoothing: float) -> Array:
    """Categorical focal loss over every class, or binary focal loss with a sigmoid."""
    if sigmoid:
        return binary_focal_crossentropy(inputs, alpha=_binary_alpha(alpha), gamma=gamma,
                                         label_smoothing=label_smoothing)
    weights = categorical_focal_weights(alpha, inputs.num_classes)
    return weighted_focal_crossentropy(inputs, class_weights=weights, gamma=gamma,
                                       label_smoothing=label_smoothing)


def _cross_entropy_part(inputs: Prepared, *, sigmoid: bool, class_weights: Sequence[float] | None,
                        label_smoothing: float) -> Array:
    """Cross-entropy over every class, weighted by class as torch's ``CrossEntropyLoss(weight)``
    (normalised by the weights of the labels), or binary with ``pos_weight`` for a sigmoid."""
    if sigmoid:
        return binary_focal_crossentropy(inputs, alpha=None, gamma=0.0, label_smoothing=label_smoothing,
                                         positive_weights=class_weights)
    if class_weights is None:
        return weighted_focal_crossentropy(inputs, class_weights=(1.0,), gamma=0.0,
                                           label_smoothing=label_smoothing)
    return class_weighted_crossentropy(inputs, class_weights=class_weights, label_smoothing=label_smoothing)


@v.validated(ce_weight=_NONNEG, dice_weight=_NONNEG, epsilon=SMOOTHING, label_smoothing=_UNIT,
             ce_class_weights=PerClass(), squared_pred=Boolean())
def dice_ce_loss(y_true: Array, y_pred: Array, *, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 epsilon: float | tuple[float, float] = 1e-5, label_smoothing: float = 0.0,
                 ce_class_weights: Sequence[float] | None = None, squared_pred: bool = False,
                 average: Literal["macro", "micro", "weighted"] = "macro",
                 class_weights: Sequence[float] | None = None, include_background: bool = True,
                 background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                 from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                 ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                 all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Dice loss plus cross-entropy (nnU-Net's and MONAI's default segmentation loss).

    .. math::
        L = w_{CE}\,\mathrm{CE} + w_{Dice}\,(1 - \mathrm{DSC})

    ``1 - DSC`` is :func:`~lossfns.f1_loss` with the same ``epsilon`` and region options.
    ``CE`` is :func:`~lossfns.categorical_crossentropy` over every class, or
    :func:`~lossfns.binary_crossentropy` when the activation is a sigmoid (``y_pred`` has
    one channel, or ``from_logits="sigmoid"``): a softmax cross-entropy over one channel
    would be identically 0. MONAI's ``DiceCELoss(smooth_nr=s, smooth_dr=s, softmax=True)``
    on logits equals this with ``epsilon = s / 2``, averaged over the batch; nnU-Net's
    ``DC_and_CE_loss`` equals it with ``include_background=False`` minus ``dice_weight``.

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      ce_weight: weight of the cross-entropy part, >= 0.
      dice_weight: weight of the Dice part, >= 0.
      epsilon: Dice smoothing, >= 0.
      label_smoothing: in [0, 1], applied to the cross-entropy part only (see
        :func:`~lossfns.categorical_crossentropy`).
      ce_class_weights: one weight per class for the cross-entropy part, or ``None``. With
        a softmax, ``Σ m·Σ_c w_c y_c (-log p_c) / Σ m·Σ_c w_c y_c`` (torch's
        ``CrossEntropyLoss(weight=w)`` with ``batch=True``); with a sigmoid, torch's
        ``pos_weight`` per channel.
      squared_pred: the Dice denominator's sums are ``Σ m·p²`` and ``Σ m·y²`` (MONAI's
        ``squared_pred``).
      average, class_weights, include_background, background_index, soft_label: the region
        options of :func:`~lossfns.f1_loss`, for the Dice part only.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation). With ``batch=True`` both parts
        are batch quantities (global Dice, cross-entropy over every element of the batch).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical
      image segmentation", Nature Methods, 2021.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])   # [batch, elements, classes]
      >>> print(np.round(lossfns.dice_ce_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.718]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label,
                     per_class={"class_weights": class_weights, "ce_class_weights": ce_class_weights,
                                "background_index": background_index})
    sigmoid = _uses_sigmoid(from_logits, inputs.num_classes)
    cross_entropy = _cross_entropy_part(inputs, sigmoid=sigmoid, class_weights=ce_class_weights,
                                        label_smoothing=label_smoothing)
    dice = _dice(inputs, epsilon=epsilon, average=average, class_weights=class_weights,
                 include_background=include_background, background_index=background_index,
                 squared_pred=squared_pred)
    return _weighted_sum(ce_weight, cross_entropy, dice_weight, dice)


@v.validated(focal_weight=_NONNEG, dice_weight=_NONNEG, alpha=PerClass(allow_scalar=True), gamma=_NONNEG,
             epsilon=SMOOTHING, label_smoothing=_UNIT, squared_pred=Boolean())
def dice_focal_loss(y_true: Array, y_pred: Array, *, focal_weight: float = 1.0, dice_weight: float = 1.0,
                    alpha: float | Sequence[float] | None = None, gamma: float = 2.0,
                    epsilon: float | tuple[float, float] = 1e-5, label_smoothing: float = 0.0,
                    squared_pred: bool = False, average: Literal["macro", "micro", "weighted"] = "macro",
                    class_weights: Sequence[float] | None = None, include_background: bool = True,
                    background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                    from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                    ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                    all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Dice loss plus focal loss.

    .. math::
        L = w_{FL}\,\mathrm{FL}(\alpha, \gamma) + w_{Dice}\,(1 - \mathrm{DSC})

    ``1 - DSC`` is :func:`~lossfns.f1_loss` with the same ``epsilon`` and region options.
    ``FL`` is :func:`~lossfns.categorical_focal_loss` over every class, or
    :func:`~lossfns.binary_focal_loss` when the activation is a sigmoid (``y_pred`` has one
    channel, or ``from_logits="sigmoid"``), where ``alpha=None`` weighs both terms 1.
    MONAI's ``DiceFocalLoss`` differs: with ``softmax=True`` its focal part is still a
    sigmoid focal loss of the softmax probabilities, and ``include_background=False`` drops
    the background from its focal part too.

    Args:
      y_true, y_pred: as in :func:`~lossfns.dice_ce_loss`.
      focal_weight: weight of the focal part, >= 0.
      dice_weight: weight of the Dice part, >= 0.
      alpha: ``None`` (every class 1), one number for every class, or one per class; with a
        sigmoid activation ``None`` or one number in [0, 1] (the weight of positives).
      gamma: focusing exponent, >= 0.
      epsilon: Dice smoothing, >= 0.
      label_smoothing: in [0, 1], applied to the focal part only.
      squared_pred: as in :func:`~lossfns.dice_ce_loss`.
      average, class_weights, include_background, background_index, soft_label: the region
        options of :func:`~lossfns.f1_loss`, for the Dice part only.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.dice_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.4163]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label, per_class={"class_weights": class_weights, "alpha": alpha,
                                                       "background_index": background_index})
    sigmoid = _uses_sigmoid(from_logits, inputs.num_classes)
    focal = _focal_part(inputs, sigmoid=sigmoid, alpha=alpha, gamma=gamma, label_smoothing=label_smoothing)
    dice = _dice(inputs, epsilon=epsilon, average=average, class_weights=class_weights,
                 include_background=include_background, background_index=background_index,
                 squared_pred=squared_pred)
    return _weighted_sum(focal_weight, focal, dice_weight, dice)


@v.validated(gdl_weight=_NONNEG, focal_weight=_NONNEG, weighting=WEIGHTING, gamma=_NONNEG,
             alpha=PerClass(allow_scalar=True), epsilon=SMOOTHING, label_smoothing=_UNIT)
def generalized_dice_focal_loss(y_true: Array, y_pred: Array, *, gdl_weight: float = 1.0,
                                focal_weight: float = 1.0,
                                weighting: Literal["square", "simple", "uniform"] = "square",
                                gamma: float = 2.0, alpha: float | Sequence[float] | None = None,
                                epsilon: float | tuple[float, float] = 1e-5, label_smoothing: float = 0.0,
                                include_background: bool = True, background_index: int = 0,
                                soft_label: bool = False, class_axis: int = -1,
                                from_logits: bool | Literal["softmax", "sigmoid"] = False,
                                mask: Array | None = None, ignore_index: int | None = None,
                                batch: bool = False, validate: bool = False,
                                all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Generalized Dice plus focal loss (MONAI's ``GeneralizedDiceFocalLoss``).

    .. math::
        L = w_{GDL}\,L_{GDL} + w_{FL}\,\mathrm{FL}(\alpha, \gamma)

    ``L_GDL`` is :func:`~lossfns.generalized_dice_loss` (``weighting``, ``epsilon``,
    ``include_background`` and ``soft_label`` act on it alone); ``FL`` is
    :func:`~lossfns.categorical_focal_loss` over every class, or
    :func:`~lossfns.binary_focal_loss` with a sigmoid (one channel, or
    ``from_logits="sigmoid"``), as in :func:`~lossfns.dice_focal_loss`. The inputs are
    prepared once. MONAI's focal part is a sigmoid focal loss even with ``softmax=True``:
    ``GeneralizedDiceFocalLoss(sigmoid=True)`` equals this with ``from_logits="sigmoid"``
    (averaged over the batch); with ``softmax=True`` only its Generalized Dice part matches.

    Args:
      y_true, y_pred: as in :func:`~lossfns.dice_ce_loss`.
      gdl_weight: weight of the Generalized Dice part, >= 0.
      focal_weight: weight of the focal part, >= 0.
      weighting: ``"square"``, ``"simple"`` or ``"uniform"`` (Generalized Dice).
      gamma: focusing exponent, >= 0.
      alpha: as in :func:`~lossfns.dice_focal_loss`.
      epsilon: Generalized Dice smoothing, >= 0, or a ``(numerator, denominator)`` pair.
      label_smoothing: in [0, 1], applied to the focal part only.
      include_background, background_index, soft_label: for the Generalized Dice part.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Sudre et al., DLMIA 2017 (Generalized Dice); Lin et al., ICCV 2017 (focal loss).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.generalized_dice_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.4324]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label, per_class={"alpha": alpha, "background_index": background_index})
    sigmoid = _uses_sigmoid(from_logits, inputs.num_classes)
    focal = _focal_part(inputs, sigmoid=sigmoid, alpha=alpha, gamma=gamma, label_smoothing=label_smoothing)
    dice = generalized_dice_kernel(inputs, weighting=weighting, epsilon=epsilon,
                                   include_background=include_background, background_index=background_index)
    return _weighted_sum(gdl_weight, dice, focal_weight, focal)


__all__ = ["dice_ce_loss", "dice_focal_loss", "generalized_dice_focal_loss"]
