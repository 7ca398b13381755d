"""Confusion terms: the additive sufficient statistics of every region loss (docs: Concepts › Confusion terms)."""

from __future__ import annotations

from typing import Literal, NamedTuple

from . import _fused
from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array, Namespace
from .inputs import Prepared, prepare


class Confusion(NamedTuple):
    """Soft confusion counts, each ``[batch, classes]`` (``[classes]`` with ``batch=True``)."""

    tp: Array
    fp: Array
    fn: Array
    tn: Array


class ConfusionSums(NamedTuple):
    """``Σ m·y·p``, ``Σ m·p`` and ``Σ m·y``: one pass over the data gives all of them.

    ``predicted_squared`` and ``actual_squared`` (``Σ m·p²``, ``Σ m·y²``) are there when a
    loss asked for them (``squared_pred``), else ``None``.
    """

    tp: Array
    predicted: Array
    actual: Array
    predicted_squared: Array | None = None
    actual_squared: Array | None = None

    def denominator_sums(self, squared: bool) -> tuple[Array, Array]:
        """``(P, A)`` of a ratio's denominator: the plain or the squared sums."""
        return (self.predicted_squared, self.actual_squared) if squared else (self.predicted, self.actual)

    @property
    def fp(self) -> Array:
        return self.predicted - self.tp

    @property
    def fn(self) -> Array:
        return self.actual - self.tp


def confusion_sums(inputs: Prepared, *, squared: bool = False) -> ConfusionSums:
    """Per-class sums over ``inputs.reduce_axes``; the class axis is kept, so ``[B, C]``.

    Sparse labels are never expanded to a float one-hot: the boolean ``labels == c``
    selects the probabilities inside the sum (torch: a gather and per-class counts).
    ``squared`` adds ``Σ m·p²`` and ``Σ m·y²`` (MONAI's ``squared_pred``).
    """
    sums = _plain_sums(inputs)
    if not squared:
        return sums
    xp, axes, m = inputs.xp, inputs.reduce_axes, inputs.weights
    p = pr.probabilities(inputs)
    p_squared = nx.blocked_sum(xp, p * p if m is None else p * p * m, axes)
    if inputs.target is None:  # hard labels: y² = y
        y_squared = sums.actual
    else:
        y = inputs.target
        y_squared = nx.blocked_sum(xp, y * y if m is None else y * y * m, axes)
        if inputs.all_reduce is not None:
            y_squared = inputs.all_reduce(y_squared)
    if inputs.all_reduce is not None:
        p_squared = inputs.all_reduce(p_squared)
    return sums._replace(predicted_squared=p_squared, actual_squared=y_squared)


def _plain_sums(inputs: Prepared) -> ConfusionSums:
    xp = inputs.xp
    fused = _fused.confusion_sums(
        xp, inputs.reference, activation=inputs.activation, target=inputs.target,
        labels=inputs.labels if inputs.target is None else None, weights=inputs.weights,
        reduce_axes=inputs.reduce_axes, class_axis=inputs.class_axis, soft_label=inputs.soft_label)
    if fused is not None:  # torch eager: closed-form gradient, no temporaries kept for backward
        sums = fused
    else:
        sums = _array_api_sums(inputs)
    if inputs.all_reduce is not None:
        sums = tuple(inputs.all_reduce(t) for t in sums)
    return ConfusionSums(*sums)


def _array_api_sums(inputs: Prepared) -> tuple[Array, Array, Array]:
    xp, axes, m = inputs.xp, inputs.reduce_axes, inputs.weights
    p = pr.probabilities(inputs)
    mp = p if m is None else p * m
    predicted = nx.blocked_sum(xp, mp, axes)
    if inputs.target is not None:
        y = inputs.target
        actual = nx.blocked_sum(xp, y if m is None else y * m, axes)
        if inputs.soft_label:  # TP = (Σ m·p + Σ m·y − Σ m·|p − y|) / 2: minimal at p = y
            distance = nx.absolute(xp, p - y)
            distance = nx.blocked_sum(xp, distance if m is None else distance * m, axes)
            tp = (predicted + actual - distance) * 0.5
        else:
            tp = nx.blocked_sum(xp, mp * y, axes)
        return tp, predicted, actual
    hit = pr.class_mask(inputs)  # sparse labels are hard: soft_label changes nothing
    tp = nx.blocked_sum(xp, xp.where(hit, mp, 0.0), axes)
    if m is None:  # count the booleans: no float one-hot of the volume
        actual = nx.count_true(xp, hit, axes, inputs.dtype)
    else:
        actual = nx.blocked_sum(xp, xp.where(hit, m, 0.0), axes)
    return tp, predicted, actual


def true_negatives(inputs: Prepared, sums: ConfusionSums) -> Array:
    """``TN = Σ m − Σ m·p − Σ m·y + TP`` per class, like ``sums`` (``all_reduce`` applied)."""
    total = inputs.xp.expand_dims(pr.element_total(inputs), axis=-1)
    return total - sums.predicted - sums.actual + sums.tp


def bounded_counts(xp: Namespace, sums: ConfusionSums, total: Array) -> Confusion:
    """TP, FP, FN and TN, each clamped to ``[0, the smaller of its two margins]``.

    For ``p`` and ``y`` in [0, 1] each count is at most its row and column total (TP ≤ A,
    P; FP ≤ P, N − A; FN ≤ A, N − P; TN ≤ N − A, N − P), but FP, FN and TN come from
    differences of sums and round. The clamps make every count non-negative, so that
    ``|TP·TN − FP·FN| ≤ √((TP+FP)(TP+FN)(TN+FP)(TN+FN))`` holds as it does exactly, and
    make a count exactly 0 where a margin is: a class filling a sample (``N − A = 0``, an
    exact count for hard labels) has FP = TN = 0 instead of ``±`` the rounding of ``N``.
    Where a clamp binds, the count's true gradient equals its bound's.
    """
    total = xp.expand_dims(total, axis=-1)
    predicted, actual = nx.clamp_below(xp, sums.predicted, 0.0), nx.clamp_below(xp, sums.actual, 0.0)
    negatives = nx.clamp_below(xp, total - actual, 0.0)
    predicted_negative = nx.clamp_below(xp, total - predicted, 0.0)
    tp = nx.clamp_between(xp, sums.tp, 0.0, xp.minimum(actual, predicted))
    fp = nx.clamp_between(xp, predicted - sums.tp, 0.0, xp.minimum(predicted, negatives))
    fn = nx.clamp_between(xp, actual - sums.tp, 0.0, xp.minimum(actual, predicted_negative))
    tn = nx.clamp_between(xp, predicted_negative - sums.actual + sums.tp, 0.0,
                          xp.minimum(negatives, predicted_negative))
    return Confusion(tp, fp, fn, tn)


@v.validated()
def confusion_terms(y_true: Array, y_pred: Array, *, soft_label: bool = False, class_axis: int = -1,
                    from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                    ignore_index: int | None = None, batch: bool = False,
                    validate: bool = False) -> Confusion:
    r"""Soft true/false positives/negatives per sample and class.

    .. math::
        TP = \sum m\,y\,p \quad FP = \sum m\,(1-y)\,p \quad
        FN = \sum m\,y\,(1-p) \quad TN = \sum m\,(1-y)\,(1-p)

    summed over the spatial axes (and the batch axis with ``batch=True``); ``m`` is the
    mask (1 where none). With ``soft_label=True`` (soft labels) TP is
    ``(Σ m·p + Σ m·y − Σ m·|p − y|) / 2`` and FP, FN, TN follow from it. The terms are
    additive over shards of the data.

    Args:
      y_true: dense labels ``[batch, ..., classes]`` or integer labels without the class axis.
      y_pred: probabilities (or logits, see ``from_logits``) ``[batch, ..., classes]``.
      soft_label: use the ``|p - y|`` form, for soft labels.
      class_axis, from_logits, mask, ignore_index, batch, validate: the common options.

    Returns:
      ``Confusion(tp, fp, fn, tn)``, each ``[batch, classes]`` or ``[classes]``.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> terms = lossfns.confusion_terms(np.array([[0, 1, 1]]), probs)
      >>> print(np.round(terms.tp, 2), np.round(terms.fn, 2))
      [[0.9 1.2]] [[0.1 0.8]]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, soft_label=soft_label)
    sums = confusion_sums(inputs)
    return Confusion(sums.tp, sums.fp, sums.fn, true_negatives(inputs, sums))


__all__ = ["Confusion", "confusion_terms"]
