"""Matthews correlation coefficient loss, combined over classes like the region losses.

Docs: Losses › Matthews correlation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array, Namespace
from .confusion import bounded_counts, confusion_sums
from .domains import Smoothing
from .inputs import Prepared, prepare
from .region import AVERAGE_OR_NONE, combine_classes


def matthews_correlation(xp: Namespace, tp: Array, fp: Array, fn: Array, tn: Array, *, epsilon: float) -> Array:
    r"""``(TP·TN − FP·FN) / (sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) + ε)``, finite everywhere.

    The square root is guarded (its derivative at 0 is infinite). A zero denominator
    (ε = 0 and an empty factor) gives 1 when FP = FN = 0 and 0 otherwise. For non-negative
    counts the coefficient lies in [-1, 1]; the products round, so it is clamped there.
    """
    product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    denominator = nx.safe_sqrt(xp, product) + epsilon
    mcc = nx.clamp_between(xp, nx.safe_divide(xp, tp * tn - fp * fn, denominator), -1.0, 1.0)
    perfect = (denominator == 0.0) & (fp == 0.0) & (fn == 0.0)
    return xp.where(perfect, 1.0, mcc)


def mcc_kernel(inputs: Prepared, *, epsilon: float, average: str = "macro",
               class_weights: Sequence[float] | None = None, include_background: bool = True,
               background_index: int = 0) -> Array:
    """The MCC loss of prepared inputs, from the clamped counts (:func:`bounded_counts`)."""
    xp = inputs.xp
    sums = confusion_sums(inputs)
    counts = bounded_counts(xp, sums, pr.element_total(inputs))

    def class_loss(tp: Array, fp: Array, fn: Array, tn: Array) -> Array:
        return 1.0 - matthews_correlation(xp, tp, fp, fn, tn, epsilon=epsilon)

    return combine_classes(inputs, counts, class_loss, support=sums.actual, average=average,
                           class_weights=class_weights, include_background=include_background,
                           background_index=background_index)


@v.validated(epsilon=Smoothing(pair=False), average=AVERAGE_OR_NONE)
def mcc_loss(y_true: Array, y_pred: Array, *, epsilon: float = 1e-5,
             average: Literal["macro", "micro", "weighted", "none"] = "macro",
             class_weights: Sequence[float] | None = None, include_background: bool = True,
             background_index: int = 0, soft_label: bool = False, class_axis: int = -1,
             from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
             ignore_index: int | None = None, batch: bool = False, validate: bool = False,
             all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Matthews correlation coefficient loss.

    .. math::
        L = 1 - \frac{TP\,TN - FP\,FN}
                     {\sqrt{(TP+FP)(TP+FN)(TN+FP)(TN+FN)} + \epsilon}

    per class, combined by ``average`` as in :func:`focal_tversky_loss` (``"micro"`` sums
    TP, FP, FN and TN over classes first). The square root's derivative stays finite where
    its argument is 0. With ``epsilon = 0`` and a zero denominator the coefficient is 1 when
    FP = FN = 0, else 0. With ``epsilon > 0`` a class absent from a sample (or filling it)
    scores MCC 0 even when predicted perfectly (``0 / ε``): use ``batch=True``,
    ``include_background=False`` or ``epsilon=0`` where samples lack classes.
    segmentation-models-pytorch's ``MCCLoss`` equals ``mcc_loss(..., batch=True)`` on one
    channel at ``epsilon = 0`` (it adds its eps to each of TP, TN, FP and FN, so the two
    differ slightly for ε > 0).

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      epsilon: added to the denominator, >= 0.
      average: ``"macro"``, ``"micro"``, ``"weighted"``, or ``"none"`` for the per-class
        losses ``[batch, kept classes]``.
      class_weights: one weight per class, used only with ``average="weighted"``.
      include_background: keep class ``background_index`` in the average.
      background_index: the background class.
      soft_label: the ``|p - y|`` form of the confusion terms, for soft labels.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Abhishek & Hamarneh, "Matthews correlation coefficient loss for deep convolutional
      networks: application to skin lesion segmentation", ISBI 2021.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.mcc_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.5244]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label,
                     per_class={"class_weights": class_weights, "background_index": background_index})
    return mcc_kernel(inputs, epsilon=epsilon, average=average, class_weights=class_weights,
                      include_background=include_background, background_index=background_index)


__all__ = ["matthews_correlation", "mcc_kernel", "mcc_loss"]
