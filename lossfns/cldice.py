"""Soft clDice (Shit et al. 2021, docs: Losses › clDice): a topology-aware overlap of soft skeletons.

Soft erosion and dilation are built from 3-element windows along each spatial axis,
computed on overlapping slices (array-API slicing and concatenation, no framework pooling
op), so the same code runs on every backend and traces with unknown sizes. A window at the
border has two elements: out-of-bounds neighbours are ignored. Every sum is additive, so
the distributed batch loss is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array, Epsilon, Namespace
from .domains import SMOOTHING, UNIT_INTERVAL, Integer
from .inputs import Prepared, label_value_or_none, prepare
from .region import kept_classes

ITERATIONS = Integer(low=0, meaning="skeleton iterations")


def _part(x: Array, axis: int, start: int | None, stop: int | None) -> Array:
    return x[(slice(None),) * axis + (slice(start, stop), Ellipsis)]


def _window(xp: Namespace, op: Callable[[Array, Array], Array], x: Array, axis: int) -> Array:
    """``op`` over each element and its two neighbours along ``axis``; out-of-bounds ignored.

    ``op`` of each adjacent pair first, then of adjacent pairs: two operations on views
    instead of two shifted copies, which XLA compiles in about half the time (measured).
    """
    size = x.shape[axis]
    if size == 1:
        return x
    if size is None:  # unknown while tf.function traces: shifted copies work for any size
        after = xp.concat([_part(x, axis, 1, None), _part(x, axis, -1, None)], axis=axis)
        before = xp.concat([_part(x, axis, None, 1), _part(x, axis, None, -1)], axis=axis)
        return op(op(x, before), after)
    pairs = op(_part(x, axis, None, -1), _part(x, axis, 1, None))  # element i: {i, i + 1}
    inner = op(_part(pairs, axis, None, -1), _part(pairs, axis, 1, None))  # {i - 1, i, i + 1}
    return xp.concat([_part(pairs, axis, None, 1), inner, _part(pairs, axis, -1, None)], axis=axis)


def _smaller(xp: Namespace) -> Callable[[Array, Array], Array]:
    # A where, not xp.minimum: its backward is one select (torch's minimum splits ties in
    # several kernels) and every backend then takes the same subgradient at ties.
    return lambda a, b: xp.where(b < a, b, a)


def _larger(xp: Namespace) -> Callable[[Array, Array], Array]:
    return lambda a, b: xp.where(b > a, b, a)


def soft_erosion(xp: Namespace, x: Array, axes: Sequence[int]) -> Array:
    """The minimum over each element and its ``2k`` neighbours along ``axes`` (a cross).

    The cross is the union of the 3-element windows along each axis.
    """
    smaller = _smaller(xp)
    result = x
    for i, axis in enumerate(axes):
        window = _window(xp, smaller, x, axis)
        result = window if i == 0 else smaller(result, window)
    return result


def soft_dilation(xp: Namespace, x: Array, axes: Sequence[int]) -> Array:
    """The maximum over the full ``3^k`` window: one 3-element window per axis in turn."""
    larger = _larger(xp)
    for axis in axes:
        x = _window(xp, larger, x, axis)
    return x


def soft_skeleton(xp: Namespace, x: Array, axes: Sequence[int], iterations: int) -> Array:
    r"""Soft skeleton: ``S = relu(x - open(x))``, then ``iterations`` times on ``x = erode(x)``
    ``S = S + relu(d - S·d)`` with ``d = relu(x - open(x))``.

    ``open(x) = dilate(erode(x))``, and ``erode(x)`` is the next iteration's ``x``: each step
    costs one erosion and one dilation.
    """
    def relu(t: Array) -> Array:
        return nx.relu(xp, t)

    eroded = soft_erosion(xp, x, axes)
    skeleton = relu(x - soft_dilation(xp, eroded, axes))
    for _ in range(iterations):
        x, eroded = eroded, soft_erosion(xp, eroded, axes)
        delta = relu(x - soft_dilation(xp, eroded, axes))
        skeleton = skeleton + relu(delta - skeleton * delta)
    return skeleton


def _dense_target(inputs: Prepared, y_true: Array, ignore_index: int | None) -> Array:
    """Labels as a float map; sparse labels one-hot, all-zero where ``ignore_index``."""
    xp = inputs.xp
    if inputs.target is not None:
        return inputs.target
    hit, labels = pr.class_mask(inputs), pr.sparse_labels(inputs)
    ignore_index = label_value_or_none(xp, labels.dtype, ignore_index)
    if ignore_index is not None:  # inputs.labels already holds 0 there: look at the labels given
        given = y_true if y_true.ndim == labels.ndim else xp.expand_dims(y_true, axis=inputs.class_axis)
        hit = hit & (given != ignore_index)
    return xp.astype(hit, inputs.dtype)


class _Sums:
    """The additive sums of one call, over ``reduce_axes`` and the kept classes."""

    skeleton_p_y: Array
    skeleton_p: Array
    skeleton_y_p: Array
    skeleton_y: Array
    #: The Dice sums, with ``with_dice`` only.
    intersection: Array
    predicted: Array
    actual: Array

    def __init__(self, inputs: Prepared, y_true: Array, *, iterations: int, include_background: bool,
                 background_index: int, ignore_index: int | None, with_dice: bool) -> None:
        xp = self.xp = inputs.xp
        self.inputs = inputs
        p, y = pr.probabilities(inputs), _dense_target(inputs, y_true, ignore_index)
        kept = kept_classes(inputs.num_classes, include_background, background_index,
                            one_channel_is_foreground=True)
        p, y = pr.select_classes(inputs, kept, p, y)
        axes = tuple(a for a in range(1, p.ndim) if a != inputs.class_axis)
        skeleton_p = soft_skeleton(xp, p, axes, iterations)
        skeleton_y = soft_skeleton(xp, y, axes, iterations)
        m = inputs.weights
        if m is not None:  # the skeletons come from the unmasked maps; the mask weights the sums
            skeleton_p, skeleton_y, p_m, y_m = skeleton_p * m, skeleton_y * m, p * m, y * m
        else:
            p_m, y_m = p, y
        terms = {"skeleton_p_y": skeleton_p * y, "skeleton_p": skeleton_p,
                 "skeleton_y_p": skeleton_y * p, "skeleton_y": skeleton_y}
        if with_dice:
            terms.update(intersection=p_m * y, predicted=p_m, actual=y_m)
        summed = inputs.reduce_axes + (inputs.class_axis,)
        for name, term in terms.items():
            total = nx.blocked_sum(xp, term, summed)
            setattr(self, name, total if inputs.all_reduce is None else inputs.all_reduce(total))

    def ratio(self, numerator: Array, denominator: Array, epsilon: Epsilon) -> Array:
        """``(n + ε)/(d + ε)``, 1 (a perfect score) for 0/0."""
        return nx.smoothed_ratio(self.xp, numerator, denominator, epsilon)

    def cldice(self, epsilon: Epsilon) -> Array:
        precision = self.ratio(self.skeleton_p_y, self.skeleton_p, epsilon)
        sensitivity = self.ratio(self.skeleton_y_p, self.skeleton_y, epsilon)
        harmonic = nx.safe_divide(self.xp, 2.0 * precision * sensitivity, precision + sensitivity)
        return 1.0 - harmonic

    def dice(self, epsilon: Epsilon) -> Array:
        overlap = self.ratio(2.0 * self.intersection, self.actual + self.predicted, epsilon)
        return 1.0 - overlap


def _sums(y_true: Array, y_pred: Array, *, iterations: int, include_background: bool, background_index: int,
          class_axis: int, from_logits: bool | Literal["softmax", "sigmoid"], mask: Array | None,
          ignore_index: int | None, batch: bool, validate: bool, all_reduce: Callable[[Array], Array] | None,
          with_dice: bool) -> _Sums:
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     per_class={"background_index": background_index})
    return _Sums(inputs, y_true, iterations=iterations, include_background=include_background,
                 background_index=background_index, ignore_index=ignore_index, with_dice=with_dice)


@v.validated(iterations=ITERATIONS, epsilon=SMOOTHING)
def cldice_loss(y_true: Array, y_pred: Array, *, iterations: int = 3,
                epsilon: float | tuple[float, float] = 1.0, include_background: bool = False,
                background_index: int = 0, class_axis: int = -1,
                from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Soft clDice loss (Shit et al. 2021): the harmonic mean of topology precision and sensitivity.

    .. math::
        T_{prec} = \frac{\sum S(p)\,y + \epsilon}{\sum S(p) + \epsilon},\quad
        T_{sens} = \frac{\sum S(y)\,p + \epsilon}{\sum S(y) + \epsilon},\quad
        L = 1 - \frac{2\,T_{prec}\,T_{sens}}{T_{prec} + T_{sens}}

    ``S`` the soft skeleton (:func:`soft_skeleton`, ``iterations`` erosions), taken per class
    over the spatial axes (1-, 2- or 3-D); the sums run over the elements and the kept
    classes of a sample (of the batch with ``batch=True``), weighted by the mask. A ratio
    ``0/0`` (``ε = 0`` and no skeleton) counts as perfect. The authors' ``soft_cldice`` is
    ours with ``batch=True``; MONAI's ``SoftclDiceLoss`` adds ``smooth = 1e-4`` to the
    harmonic mean's denominator and keeps the background by default.

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]`` (expanded to a one-hot for ``S(y)``; ``ignore_index``
        elements get an all-zero label vector and weight 0).
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      iterations: skeleton iterations, an int >= 0 (about the largest radius of a structure).
      epsilon: smoothing of both ratios, >= 0.
      include_background: keep class ``background_index`` (dropped by default, as the authors
        do); a single channel is the foreground itself and is always kept.
      background_index: the background class.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
      Segmentation", CVPR 2021.

    Example:
      >>> import numpy as np, lossfns
      >>> labels = np.zeros((1, 5, 5), dtype=int); labels[0, 2, :] = 1      # a horizontal line
      >>> probs = np.where(labels[..., None] == np.arange(2), 0.8, 0.2)      # [1, 5, 5, 2]
      >>> print(np.round(lossfns.cldice_loss(labels, probs, iterations=1), 4))
      [0.0909]
    """
    sums = _sums(y_true, y_pred, iterations=iterations, include_background=include_background,
                 background_index=background_index, class_axis=class_axis, from_logits=from_logits,
                 mask=mask, ignore_index=ignore_index, batch=batch, validate=validate,
                 all_reduce=all_reduce, with_dice=False)
    return sums.cldice(epsilon)


@v.validated(alpha=UNIT_INTERVAL, iterations=ITERATIONS, epsilon=SMOOTHING)
def dice_cldice_loss(y_true: Array, y_pred: Array, *, alpha: float = 0.5, iterations: int = 3,
                     epsilon: float | tuple[float, float] = 1.0, include_background: bool = False,
                     background_index: int = 0, class_axis: int = -1,
                     from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                     ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                     all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Dice + soft clDice (Shit et al. 2021), as in the authors' ``soft_dice_cldice``.

    .. math::
        L = (1 - \alpha)\left(1 - \frac{2\sum y\,p + \epsilon}{\sum y + \sum p + \epsilon}\right)
            + \alpha\,L_{clDice}

    with the Dice sums over the same elements and kept classes as :func:`cldice_loss`
    (one Dice over the kept classes together, not a mean of per-class Dice as MONAI's
    ``SoftDiceclDiceLoss`` uses).

    Args:
      y_true, y_pred: as in :func:`cldice_loss`.
      alpha: weight of the clDice term, in [0, 1].
      iterations, epsilon, include_background, background_index: as in :func:`cldice_loss`.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Shit et al., CVPR 2021 (see :func:`cldice_loss`).

    Example:
      >>> import numpy as np, lossfns
      >>> labels = np.zeros((1, 5, 5), dtype=int); labels[0, 2, :] = 1
      >>> probs = np.where(labels[..., None] == np.arange(2), 0.8, 0.2)
      >>> print(np.round(lossfns.dice_cldice_loss(labels, probs, iterations=1), 4))
      [0.224]
    """
    sums = _sums(y_true, y_pred, iterations=iterations, include_background=include_background,
                 background_index=background_index, class_axis=class_axis, from_logits=from_logits,
                 mask=mask, ignore_index=ignore_index, batch=batch, validate=validate,
                 all_reduce=all_reduce, with_dice=True)
    return (1.0 - alpha) * sums.dice(epsilon) + alpha * sums.cldice(epsilon)
