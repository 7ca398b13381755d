"""Generalized Dice loss (Sudre et al. 2017): one Dice ratio with per-class weights.

Docs: Losses › Generalized Dice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array, Epsilon, Namespace
from .confusion import confusion_sums
from .domains import SMOOTHING, Choice
from .inputs import Prepared, prepare
from .region import kept_classes

WEIGHTINGS = ("square", "simple", "uniform")
WEIGHTING = Choice(WEIGHTINGS, strings_only=True)


def class_weights_from_labels(xp: Namespace, actual: Array, weighting: str) -> Array:
    """``w_c = 1/A_c²``, ``1/A_c`` or 1 from the label sums ``A_c = Σ m·y_c`` (``[..., classes]``).

    A class absent from the labels (``A_c = 0``, an infinite weight) takes the largest weight
    of the present classes along the last axis, as MONAI does; with no class present every
    weight is 0. ``actual`` holds no prediction, so no gradient reaches ``y_pred`` this way.

    A label mass whose ``A_c`` (or ``A_c²``) is below the dtype's smallest normal number
    (soft labels from a confident teacher: ``A ≈ 1e-20`` in float32) counts as absent too:
    there ``1/A²`` overflows to infinity on NumPy and torch, while JAX and TensorFlow flush
    the subnormal to 0. One threshold gives every backend the absent class's weight.
    """
    if weighting == "uniform":
        return xp.ones_like(actual)
    denominator = actual * actual if weighting == "square" else actual
    present = denominator >= float(xp.finfo(denominator.dtype).smallest_normal)
    denominator = xp.where(present, denominator, 0.0)
    weights = nx.safe_divide(xp, xp.ones_like(denominator), denominator)  # 0 where absent
    largest = xp.max(weights, axis=-1, keepdims=True)
    return xp.where(present, weights, largest)


@v.validated(weighting=WEIGHTING, epsilon=SMOOTHING)
def generalized_dice_loss(y_true: Array, y_pred: Array, *,
                          weighting: Literal["square", "simple", "uniform"] = "square",
                          epsilon: float | tuple[float, float] = 1e-5, include_background: bool = True,
                          background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                          from_logits: bool | Literal["softmax", "sigmoid"] = False,
                          mask: Array | None = None, ignore_index: int | None = None, batch: bool = False,
                          validate: bool = False,
                          all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Generalized Dice loss (Sudre et al. 2017), classes summed inside one ratio.

    .. math::
        L = 1 - \frac{2 \sum_c w_c\,TP_c + \epsilon}{\sum_c w_c\,(2\,TP_c + FP_c + FN_c) + \epsilon}
        \qquad w_c = 1/A_c^2,\ 1/A_c \text{ or } 1, \quad A_c = TP_c + FN_c = \sum m\,y_c

    A class absent from the labels takes the largest weight of the present classes (of the
    sample, of the batch with ``batch=True``), as in MONAI; with no class present the loss is
    0, also at ``epsilon = 0`` (where MONAI gives NaN). The weights are constants of the
    labels: no gradient flows through them. With ``batch=True`` they come from the batch
    sums after ``all_reduce``, so a data-parallel batch loss is exact. MONAI's
    ``GeneralizedDiceLoss(w_type=W, smooth_nr=ε, smooth_dr=ε)`` equals this with the same ε.

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      weighting: ``"square"`` (default), ``"simple"`` or ``"uniform"``.
      epsilon: smoothing added to numerator and denominator, >= 0.
      include_background: keep class ``background_index`` (dropped before the weights).
      background_index: the background class.
      soft_label: the ``|p - y|`` form of the confusion terms, for soft labels.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
      unbalanced segmentations", DLMIA 2017.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.generalized_dice_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.3191]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label, per_class={"background_index": background_index})
    return generalized_dice_kernel(inputs, weighting=weighting, epsilon=epsilon,
                                   include_background=include_background, background_index=background_index)


def generalized_dice_kernel(inputs: Prepared, *, weighting: str, epsilon: Epsilon,
                            include_background: bool = True, background_index: int = 0) -> Array:
    """Generalized Dice of prepared inputs (the confusion sums after ``all_reduce``)."""
    xp = inputs.xp
    sums = confusion_sums(inputs)  # after all_reduce: weights of the global batch
    kept = kept_classes(inputs.num_classes, include_background, background_index)
    tp, predicted, actual = pr.select_classes(inputs, kept, sums.tp, sums.predicted, sums.actual, axis=-1)
    weights = class_weights_from_labels(xp, actual, weighting)
    numerator = 2.0 * xp.sum(weights * tp, axis=-1)
    denominator = xp.sum(weights * (predicted + actual), axis=-1)  # 2TP + FP + FN = P + A
    return 1.0 - nx.smoothed_ratio(xp, numerator, denominator, epsilon)


__all__ = ["generalized_dice_kernel", "generalized_dice_loss"]
