"""Region losses of the tensorflow-mri family: Tversky, focal Tversky, F1/Dice, IoU/Jaccard.

Each is a formula over the confusion terms (docs: Losses › Region losses), averaged over classes by ``average``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array, Epsilon, Namespace
from .confusion import ConfusionSums, confusion_sums
from .domains import AVERAGES, NONNEGATIVE, SMOOTHING, Boolean, Choice
from .inputs import Prepared, prepare


def tversky_index(xp: Namespace, tp: Array, predicted: Array, actual: Array, *, alpha: float, beta: float,
                  epsilon: Epsilon) -> Array:
    r"""``TI = (TP + ε_n) / (TP + α·FP + β·FN + ε_d)`` from the sums ``TP``, ``P = TP + FP`` and
    ``A = TP + FN`` (``ε`` a number or an ``(ε_n, ε_d)`` pair).

    FP and FN are differences taken first, so a class predicted exactly (``P == TP``,
    ``A == TP``) gets ``TI = 1`` exactly: a fractional power of ``1 - TI`` would otherwise
    amplify one ulp of rounding a million times. Dice (``α = β = 1/2``: ``(P + A)/2``) and
    IoU (``α = β = 1``: ``P + A - TP``) have shorter forms that are just as exact. With
    ``ε_d > 0`` the denominator is at least ``ε_d`` for inputs in [0, 1]; a zero denominator
    (``ε_d = 0`` and an empty class that is not predicted) gives ``TI = 1``.
    """
    if alpha == beta == 0.5:
        denominator = (predicted + actual) * 0.5
    elif alpha == beta == 1.0:
        denominator = predicted + actual - tp
    elif alpha == beta:
        denominator = tp + alpha * (predicted + actual - 2.0 * tp)
    else:
        denominator = tp + alpha * (predicted - tp) + beta * (actual - tp)
    return nx.smoothed_ratio(xp, tp, denominator, epsilon)


#: The averages of a loss with per-class values: ``"none"`` returns them.
AVERAGE_OR_NONE = Choice(AVERAGES + ("none",))


def kept_classes(num_classes: int, include_background: bool, background_index: int, *,
                 one_channel_is_foreground: bool = False) -> list[int]:
    """The classes a loss averages over: all, or all but the background.

    A single channel without its background leaves no class (an error), unless
    ``one_channel_is_foreground`` (the structure losses): then that channel is kept.
    """
    kept = list(range(num_classes))
    if include_background or (one_channel_is_foreground and num_classes == 1):
        return kept
    kept.remove(v.check_background_index(background_index, num_classes))
    if not kept:
        raise ValueError("include_background=False leaves no class: y_pred has 1 class")
    return kept


def combine_classes(inputs: Prepared, terms: Sequence[Array], class_loss: Callable[..., Array], *,
                    support: Array, average: str = "macro", class_weights: Sequence[float] | None = None,
                    include_background: bool = True, background_index: int = 0) -> Array:
    """``class_loss(*terms)`` per class, combined over the classes (docs: Losses › Region losses).

    * ``macro``: the mean of the per-class losses.
    * ``micro``: each term summed over the classes first, then one formula.
    * ``weighted``: ``Σ_c w_c · loss_c`` with ``class_weights`` as given, or the label
      support ``A_c / Σ A`` per sample (0 where a sample has no support).
    * ``none``: the per-class losses themselves, ``[..., kept classes]``.

    ``terms`` are per-class sums ``[..., classes]`` and ``support`` is ``A_c = TP_c + FN_c``.
    ``include_background=False`` drops class ``background_index`` (and its weight) first.
    ``class_weights`` is ignored unless ``average="weighted"``, as in tensorflow-mri.
    """
    xp = inputs.xp
    kept = kept_classes(inputs.num_classes, include_background, background_index)
    *kept_terms, kept_support = pr.select_classes(inputs, kept, *terms, support, axis=-1)
    if average == "micro":
        return class_loss(*(xp.sum(t, axis=-1) for t in kept_terms))
    losses = class_loss(*kept_terms)
    if average == "none":  # per-class values, [..., kept classes]
        return losses
    if average == "macro":
        return xp.mean(losses, axis=-1)
    if class_weights is None:
        weights = nx.safe_divide(xp, kept_support, xp.sum(kept_support, axis=-1, keepdims=True))
    else:
        weights = xp.asarray([class_weights[c] for c in kept], dtype=losses.dtype, device=inputs.device)
    return xp.sum(weights * losses, axis=-1)


def focal_tversky_kernel(inputs: Prepared, *, alpha: float, beta: float, gamma: float, epsilon: Epsilon,
                         average: str = "macro", class_weights: Sequence[float] | None = None,
                         include_background: bool = True, background_index: int = 0,
                         squared_pred: bool = False, sums: ConfusionSums | None = None) -> Array:
    """Focal Tversky loss of prepared inputs; Tversky, F1/Dice and IoU are its special cases.

    ``squared_pred``: the denominator's ``P`` and ``A`` are ``Σ m·p²`` and ``Σ m·y²``
    (Milletari et al. 2016, MONAI's ``squared_pred``); TP is unchanged. ``sums`` are the
    confusion sums when the caller has them already (a compound loss).
    """
    xp = inputs.xp
    sums = confusion_sums(inputs, squared=squared_pred) if sums is None else sums
    predicted, actual = sums.denominator_sums(squared_pred)

    def class_loss(tp: Array, predicted: Array, actual: Array) -> Array:
        index = tversky_index(xp, tp, predicted, actual, alpha=alpha, beta=beta, epsilon=epsilon)
        return nx.guarded_power(xp, 1.0 - index, gamma)

    return combine_classes(inputs, (sums.tp, predicted, actual), class_loss, support=sums.actual,
                           average=average, class_weights=class_weights,
                           include_background=include_background, background_index=background_index)


def _prepare(y_true: Array, y_pred: Array, *, class_weights: Sequence[float] | None, background_index: int,
             class_axis: int, from_logits: bool | Literal["softmax", "sigmoid"], mask: Array | None,
             ignore_index: int | None, batch: bool, validate: bool,
             all_reduce: Callable[[Array], Array] | None, soft_label: bool) -> Prepared:
    return prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                   ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                   soft_label=soft_label,
                   per_class={"class_weights": class_weights, "background_index": background_index})


@v.validated(average=AVERAGE_OR_NONE)
def region_loss(y_true: Array, y_pred: Array, class_loss: Callable[[Array, Array, Array], Array], *,
                average: Literal["macro", "micro", "weighted", "none"] = "macro",
                class_weights: Sequence[float] | None = None, include_background: bool = True,
                background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""A region loss from your own per-class formula of the confusion terms.

    ``class_loss(tp, fp, fn)`` maps the soft counts, each ``[batch, classes]``, to a loss per
    sample and class; the inputs, the confusion sums and the class averaging are the same as
    for :func:`focal_tversky_loss`, whose other arguments this takes. Keras'
    ``ConfusionLoss`` subclasses are built on it.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> dice = lambda tp, fp, fn: 1 - 2 * tp / (2 * tp + fp + fn)
      >>> print(np.round(lossfns.region_loss(np.array([[0, 1, 1]]), probs, dice), 4))
      [0.303]
    """
    inputs = _prepare(y_true, y_pred, class_weights=class_weights, background_index=background_index,
                      class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
                      batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label)
    sums = confusion_sums(inputs)
    return combine_classes(inputs, (sums.tp, sums.fp, sums.fn), class_loss, support=sums.actual,
                           average=average, class_weights=class_weights,
                           include_background=include_background, background_index=background_index)


@v.validated(alpha=NONNEGATIVE, beta=NONNEGATIVE, gamma=NONNEGATIVE, epsilon=SMOOTHING, average=AVERAGE_OR_NONE)
def focal_tversky_loss(y_true: Array, y_pred: Array, *, alpha: float = 0.3, beta: float = 0.7,
                       gamma: float = 0.75, epsilon: float | tuple[float, float] = 1e-5,
                       average: Literal["macro", "micro", "weighted", "none"] = "macro",
                       class_weights: Sequence[float] | None = None, include_background: bool = True,
                       background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                       from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                       ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                       all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Focal Tversky loss (Abraham & Khan 2019, in tensorflow-mri's notation).

    .. math::
        L = \left(1 - \frac{TP + \epsilon}{TP + \alpha\,FP + \beta\,FN + \epsilon}\right)^{\gamma}

    per class, combined over classes by ``average``. α weights false positives and β false
    negatives (Salehi 2017; Keras 3's ``Tversky`` names them the other way round). Note that
    this γ is the exponent itself, whereas the Unified Focal family uses ``1 - γ``.
    ``1 - TI`` is used as computed; only a fractional γ clamps it at 0 (a Tversky index
    above 1 needs inputs outside [0, 1]).

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      alpha: weight of false positives, >= 0.
      beta: weight of false negatives, >= 0.
      gamma: focal exponent, >= 0 (values below 1 are safe: a guarded power is used).
      epsilon: smoothing added to numerator and denominator, >= 0, or a ``(numerator,
        denominator)`` pair (MONAI's ``smooth_nr``, ``smooth_dr``).
      average: ``"macro"``, ``"micro"``, ``"weighted"``, or ``"none"`` for the per-class
        losses ``[batch, kept classes]`` (``[kept classes]`` with ``batch=True``).
      class_weights: one weight per class, used only with ``average="weighted"``.
      include_background: keep class ``background_index`` in the average.
      background_index: the background class.
      soft_label: the ``|p - y|`` form of the confusion terms, for soft labels.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``); per class with
      ``average="none"``.

    References:
      Abraham & Khan, "A novel focal Tversky loss function ...", ISBI 2019.
      Salehi et al., "Tversky loss function for image segmentation ...", MLMI 2017.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])   # [batch, elements, classes]
      >>> labels = np.array([[0, 1, 1]])
      >>> print(np.round(lossfns.focal_tversky_loss(labels, probs), 4))
      [0.3976]
    """
    inputs = _prepare(y_true, y_pred, class_weights=class_weights, background_index=background_index,
                      class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
                      batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label)
    return focal_tversky_kernel(inputs, alpha=alpha, beta=beta, gamma=gamma, epsilon=epsilon,
                                average=average, class_weights=class_weights,
                                include_background=include_background, background_index=background_index)


@v.validated(alpha=NONNEGATIVE, beta=NONNEGATIVE, epsilon=SMOOTHING, average=AVERAGE_OR_NONE)
def tversky_loss(y_true: Array, y_pred: Array, *, alpha: float = 0.3, beta: float = 0.7,
                 epsilon: float | tuple[float, float] = 1e-5,
                 average: Literal["macro", "micro", "weighted", "none"] = "macro",
                 class_weights: Sequence[float] | None = None, include_background: bool = True,
                 background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
                 from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                 ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                 all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Tversky loss (Salehi et al. 2017).

    .. math::
        L = 1 - \frac{TP + \epsilon}{TP + \alpha\,FP + \beta\,FN + \epsilon}

    per class, combined by ``average``. Arguments and shapes as in
    :func:`focal_tversky_loss` (this is its ``gamma=1`` case).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.tversky_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.2929]
    """
    inputs = _prepare(y_true, y_pred, class_weights=class_weights, background_index=background_index,
                      class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
                      batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label)
    return focal_tversky_kernel(inputs, alpha=alpha, beta=beta, gamma=1.0, epsilon=epsilon,
                                average=average, class_weights=class_weights,
                                include_background=include_background, background_index=background_index)


@v.validated(epsilon=SMOOTHING, squared_pred=Boolean(), average=AVERAGE_OR_NONE)
def f1_loss(y_true: Array, y_pred: Array, *, epsilon: float | tuple[float, float] = 1e-5,
            squared_pred: bool = False, average: Literal["macro", "micro", "weighted", "none"] = "macro",
            class_weights: Sequence[float] | None = None, include_background: bool = True,
            background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
            from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
            ignore_index: int | None = None, batch: bool = False, validate: bool = False,
            all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""F1 (Dice) loss.

    .. math::
        L = 1 - \frac{TP + \epsilon}{TP + \tfrac12 FP + \tfrac12 FN + \epsilon}
          = 1 - \frac{2\,TP + 2\epsilon}{2\,TP + FP + FN + 2\epsilon}

    per class, combined by ``average``. MONAI's ``DiceLoss(smooth_nr=a, smooth_dr=b)``
    equals this with ``epsilon = (a / 2, b / 2)``, and with ``squared_pred=True`` its
    ``squared_pred=True``: ``FP`` and ``FN`` become ``Σ m·p² - TP`` and ``Σ m·y² - TP``.
    Arguments and shapes as in :func:`focal_tversky_loss`; ``average="none"`` gives the
    per-class losses ``[batch, kept classes]``.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.dice_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.303]
    """
    inputs = _prepare(y_true, y_pred, class_weights=class_weights, background_index=background_index,
                      class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
                      batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label)
    return focal_tversky_kernel(inputs, alpha=0.5, beta=0.5, gamma=1.0, epsilon=epsilon,
                                average=average, class_weights=class_weights, squared_pred=squared_pred,
                                include_background=include_background, background_index=background_index)


@v.validated(epsilon=SMOOTHING, squared_pred=Boolean(), average=AVERAGE_OR_NONE)
def iou_loss(y_true: Array, y_pred: Array, *, epsilon: float | tuple[float, float] = 1e-5,
             squared_pred: bool = False, average: Literal["macro", "micro", "weighted", "none"] = "macro",
             class_weights: Sequence[float] | None = None, include_background: bool = True,
             background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
             from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
             ignore_index: int | None = None, batch: bool = False, validate: bool = False,
             all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""IoU (Jaccard) loss.

    .. math::
        L = 1 - \frac{TP + \epsilon}{TP + FP + FN + \epsilon}

    per class, combined by ``average``. MONAI's ``DiceLoss(jaccard=True, smooth_nr=a,
    smooth_dr=b)`` equals this with ``epsilon = (a / 2, b / 2)`` (it doubles TP and the
    union), with ``squared_pred`` as in :func:`f1_loss`. Arguments and shapes as in :func:`focal_tversky_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.iou_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.4643]
    """
    inputs = _prepare(y_true, y_pred, class_weights=class_weights, background_index=background_index,
                      class_axis=class_axis, from_logits=from_logits, mask=mask, ignore_index=ignore_index,
                      batch=batch, validate=validate, all_reduce=all_reduce, soft_label=soft_label)
    return focal_tversky_kernel(inputs, alpha=1.0, beta=1.0, gamma=1.0, epsilon=epsilon,
                                average=average, class_weights=class_weights, squared_pred=squared_pred,
                                include_background=include_background, background_index=background_index)


dice_loss = f1_loss
jaccard_loss = iou_loss

__all__ = [
    "dice_loss", "f1_loss", "focal_tversky_loss", "iou_loss", "jaccard_loss", "region_loss", "tversky_loss",
]
