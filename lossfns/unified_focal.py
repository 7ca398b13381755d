r"""The Unified Focal loss family (Yeung et al. 2022), for any number of classes (docs: Losses › Unified Focal family).

Class ``background_index`` is the background; every other class is "rare". A
single-channel binary input is expanded to ``[1 - p, p]`` first. The modified Tversky
index weighs false negatives by δ and false positives by ``1 - δ``:

.. math::
    mTI_c = \frac{TP_c + \epsilon}{TP_c + \delta\,FN_c + (1-\delta)\,FP_c + \epsilon}

**γ means opposite things in the two focal Tversky losses of this library.**
:func:`~lossfns.focal_tversky_loss` (tensorflow-mri) computes ``(1 - TI)**γ``; the functions
here compute ``(1 - mTI)**(1 - γ)``. Both default to γ = 0.75.

Reference: Yeung, Sala, Schönlieb & Rundo, "Unified Focal loss: Generalising Dice and cross
entropy-based losses to handle class imbalanced medical image segmentation", Computerized
Medical Imaging and Graphics 95, 2022.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from . import numerics as nx
from . import validation as v
from ._typing import Array, Epsilon
from .confusion import confusion_sums
from .distribution import class_constants, weighted_focal_crossentropy
from .domains import NONNEGATIVE, SMOOTHING, UNIFIED_FOCAL_GAMMA, UNIT_INTERVAL
from .inputs import Prepared, prepare
from .region import combine_classes, tversky_index


def _prepare(y_true: Array, y_pred: Array, background_index: int,
             options: dict[str, Any]) -> tuple[Prepared, int]:
    inputs = prepare(y_true, y_pred, two_channels=True, per_class={"background_index": background_index},
                     **options)
    return inputs, background_index % inputs.num_classes


_UNIT, _NONNEG, _GAMMA_AT_MOST_ONE = UNIT_INTERVAL, NONNEGATIVE, UNIFIED_FOCAL_GAMMA


def _focal_part(inputs: Prepared, background: int, *, delta: float, gamma: float, asymmetric: bool) -> Array:
    weights = class_constants(inputs.num_classes, background, background_value=1.0 - delta, rare_value=delta)
    # The asymmetric form keeps the focal factor on the background only.
    return weighted_focal_crossentropy(
        inputs, class_weights=weights, gamma=0.0 if asymmetric else gamma,
        background_gamma=gamma, background=background,
    )


def _tversky_part(inputs: Prepared, background: int, *, delta: float, gamma: float, epsilon: Epsilon,
                  asymmetric: bool) -> Array:
    xp = inputs.xp

    sums = confusion_sums(inputs)

    def class_loss(tp: Array, predicted: Array, actual: Array) -> Array:
        index = tversky_index(xp, tp, predicted, actual, alpha=1.0 - delta, beta=delta, epsilon=epsilon)
        complement = 1.0 - index
        focal = nx.guarded_power(xp, complement, 1.0 - gamma)
        if not asymmetric:
            return focal
        is_background = xp.asarray(
            [c == background for c in range(inputs.num_classes)], device=inputs.device
        )
        # The background term is never focal (suppressed), only rare classes are enhanced.
        return xp.where(is_background, complement, focal)

    return combine_classes(inputs, (sums.tp, sums.predicted, sums.actual), class_loss, support=sums.actual)


@v.validated(two_channels=True, delta=_UNIT, gamma=_NONNEG)
def symmetric_focal_loss(y_true: Array, y_pred: Array, *, delta: float = 0.7, gamma: float = 2.0,
                         background_index: int = 0, class_axis: int = -1,
                         from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                         ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                         all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Symmetric focal loss: the focal factor on every class.

    .. math::
        \ell = \sum_c w_c\,(1 - p_c)^{\gamma}\,(-y_c \log p_c),\qquad
        w_{bg} = 1 - \delta,\; w_{rare} = \delta

    averaged over elements (mask-weighted).

    Args:
      y_true: dense labels ``[batch, ..., classes]`` or integer class indices.
      y_pred: probabilities or logits (``from_logits``).
      delta: weight of the rare classes in [0, 1] (background: ``1 - delta``).
      gamma: focal exponent, >= 0.
      background_index: the background class.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.symmetric_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.0792]
    """
    inputs, background = _prepare(y_true, y_pred, background_index, dict(
        class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
        batch=batch, validate=validate, all_reduce=all_reduce))
    return _focal_part(inputs, background, delta=delta, gamma=gamma, asymmetric=False)


@v.validated(two_channels=True, delta=_UNIT, gamma=_NONNEG)
def asymmetric_focal_loss(y_true: Array, y_pred: Array, *, delta: float = 0.7, gamma: float = 2.0,
                          background_index: int = 0, class_axis: int = -1,
                          from_logits: bool | Literal["softmax", "sigmoid"] = False,
                          mask: Array | None = None, ignore_index: int | None = None, batch: bool = False,
                          validate: bool = False,
                          all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Asymmetric focal loss: the focal factor suppresses the background only.

    .. math::
        \ell = (1-\delta)(1 - p_{bg})^{\gamma}(-y_{bg}\log p_{bg})
             + \delta \sum_{c \ne bg} (-y_c \log p_c)

    averaged over elements (mask-weighted). Arguments as in :func:`symmetric_focal_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.asymmetric_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.266]
    """
    inputs, background = _prepare(y_true, y_pred, background_index, dict(
        class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
        batch=batch, validate=validate, all_reduce=all_reduce))
    return _focal_part(inputs, background, delta=delta, gamma=gamma, asymmetric=True)


@v.validated(two_channels=True, delta=_UNIT, gamma=_GAMMA_AT_MOST_ONE, epsilon=SMOOTHING)
def symmetric_focal_tversky_loss(y_true: Array, y_pred: Array, *, delta: float = 0.7, gamma: float = 0.75,
                                 epsilon: float | tuple[float, float] = 1e-7, background_index: int = 0,
                                 soft_label: bool = False, class_axis: int = -1,
                                 from_logits: bool | Literal["softmax", "sigmoid"] = False,
                                 mask: Array | None = None, ignore_index: int | None = None,
                                 batch: bool = False, validate: bool = False,
                                 all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Symmetric focal Tversky loss: the focal exponent on every class.

    .. math::
        L = \frac{1}{C}\sum_c (1 - mTI_c)^{1-\gamma}

    Args:
      y_true, y_pred, background_index, class_axis, from_logits, mask, ignore_index, batch,
        validate, all_reduce: as in :func:`symmetric_focal_loss`.
      soft_label: the ``|p - y|`` form of the confusion terms of the Tversky part.
      delta: weight of false negatives in [0, 1] (false positives: ``1 - delta``).
      gamma: in [0, 1]; the exponent is ``1 - gamma`` (γ = 0 is the Tversky loss).
      epsilon: smoothing, >= 0 (1e-7 as in the authors' code).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.symmetric_focal_tversky_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.7346]
    """
    inputs, background = _prepare(y_true, y_pred, background_index, dict(
        class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
        batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label))
    return _tversky_part(inputs, background, delta=delta, gamma=gamma, epsilon=epsilon, asymmetric=False)


@v.validated(two_channels=True, delta=_UNIT, gamma=_GAMMA_AT_MOST_ONE, epsilon=SMOOTHING)
def asymmetric_focal_tversky_loss(y_true: Array, y_pred: Array, *, delta: float = 0.7, gamma: float = 0.75,
                                  epsilon: float | tuple[float, float] = 1e-7, background_index: int = 0,
                                  soft_label: bool = False, class_axis: int = -1,
                                  from_logits: bool | Literal["softmax", "sigmoid"] = False,
                                  mask: Array | None = None, ignore_index: int | None = None,
                                  batch: bool = False, validate: bool = False,
                                  all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Asymmetric focal Tversky loss: focal enhancement of the rare classes only.

    .. math::
        L = \frac{1}{C}\Big[(1 - mTI_{bg}) + \sum_{c \ne bg} (1 - mTI_c)^{1-\gamma}\Big]

    Arguments as in :func:`symmetric_focal_tversky_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.asymmetric_focal_tversky_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.507]
    """
    inputs, background = _prepare(y_true, y_pred, background_index, dict(
        class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
        batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label))
    return _tversky_part(inputs, background, delta=delta, gamma=gamma, epsilon=epsilon, asymmetric=True)


def _unified(y_true: Array, y_pred: Array, *, weight: float, delta: float, gamma: float, epsilon: Epsilon,
             background_index: int, options: dict[str, Any], asymmetric: bool) -> Array:
    inputs, background = _prepare(y_true, y_pred, background_index, options)
    focal = _focal_part(inputs, background, delta=delta, gamma=gamma, asymmetric=asymmetric)
    tversky = _tversky_part(inputs, background, delta=delta, gamma=gamma, epsilon=epsilon, asymmetric=asymmetric)
    return weight * focal + (1.0 - weight) * tversky


@v.validated(two_channels=True, weight=_UNIT, delta=_UNIT, gamma=_GAMMA_AT_MOST_ONE, epsilon=SMOOTHING)
def symmetric_unified_focal_loss(y_true: Array, y_pred: Array, *, weight: float = 0.5, delta: float = 0.6,
                                 gamma: float = 0.5, epsilon: float | tuple[float, float] = 1e-7,
                                 background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                                 from_logits: bool | Literal["softmax", "sigmoid"] = False,
                                 mask: Array | None = None, ignore_index: int | None = None,
                                 batch: bool = False, validate: bool = False,
                                 all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Symmetric Unified Focal loss (Yeung et al. 2022, eq. 19).

    .. math::
        L = \lambda\,L_{sF}(\delta, \gamma) + (1 - \lambda)\,L_{sFT}(\delta, \gamma)

    λ (``weight``) weighs the focal part, as in the paper and MONAI; the authors' repository
    puts it on the Tversky part (the two agree at λ = 0.5). With γ = 0 and δ = 0.5, λ = 0 is
    the Dice loss and λ = 1 half the categorical cross-entropy.

    Args:
      y_true, y_pred, background_index, class_axis, from_logits, mask, ignore_index, batch,
        validate, all_reduce: as in :func:`symmetric_focal_loss`.
      soft_label: the ``|p - y|`` form of the confusion terms of the Tversky part.
      weight: λ in [0, 1].
      delta: in [0, 1], shared by both parts.
      gamma: in [0, 1], shared by both parts.
      epsilon: Tversky smoothing, >= 0.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.symmetric_unified_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.3569]
    """
    return _unified(y_true, y_pred, weight=weight, delta=delta, gamma=gamma, epsilon=epsilon,
                    background_index=background_index, asymmetric=False, options=dict(
                        class_axis=class_axis, from_logits=from_logits, mask=mask,
                        ignore_index=ignore_index, batch=batch, validate=validate,
                        all_reduce=all_reduce, soft_label=soft_label))


@v.validated(two_channels=True, weight=_UNIT, delta=_UNIT, gamma=_GAMMA_AT_MOST_ONE, epsilon=SMOOTHING)
def asymmetric_unified_focal_loss(y_true: Array, y_pred: Array, *, weight: float = 0.5, delta: float = 0.6,
                                  gamma: float = 0.5, epsilon: float | tuple[float, float] = 1e-7,
                                  background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                                  from_logits: bool | Literal["softmax", "sigmoid"] = False,
                                  mask: Array | None = None, ignore_index: int | None = None,
                                  batch: bool = False, validate: bool = False,
                                  all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Asymmetric Unified Focal loss (Yeung et al. 2022, eq. 22).

    .. math::
        L = \lambda\,L_{aF}(\delta, \gamma) + (1 - \lambda)\,L_{aFT}(\delta, \gamma)

    Arguments as in :func:`symmetric_unified_focal_loss`. MONAI 1.6.1's
    ``AsymmetricUnifiedFocalLoss`` averages its focal part over classes and defaults δ = 0.7;
    it agrees with this function at λ = 0.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.asymmetric_unified_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.3278]
    """
    return _unified(y_true, y_pred, weight=weight, delta=delta, gamma=gamma, epsilon=epsilon,
                    background_index=background_index, asymmetric=True, options=dict(
                        class_axis=class_axis, from_logits=from_logits, mask=mask,
                        ignore_index=ignore_index, batch=batch, validate=validate,
                        all_reduce=all_reduce, soft_label=soft_label))


__all__ = [
    "asymmetric_focal_loss",
    "asymmetric_focal_tversky_loss",
    "asymmetric_unified_focal_loss",
    "symmetric_focal_loss",
    "symmetric_focal_tversky_loss",
    "symmetric_unified_focal_loss",
]
