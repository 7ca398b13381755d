"""Lovász losses: convex surrogates of the Jaccard index (Berman et al. 2018, docs: Losses › Lovász losses).

Per sample and class the errors are sorted in decreasing order and weighted by the
increments of the Jaccard loss along that order. Everything happens on static shapes: a
masked or ignored element gets error 0 and label 0, so it sorts after every element that
contributes and changes nothing, and no boolean indexing is needed under ``jax.jit``,
``torch.compile`` or ``tf.function``. The sort makes these losses non-additive: a global
Lovász loss cannot be assembled from per-replica sums, so ``all_reduce`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._typing import Array, Namespace
from .domains import AllReduce, Choice, FromLogits
from .inputs import Prepared, prepare
from .region import kept_classes

CLASSES = ("present", "all")
#: The sort needs every element of the batch at once: no sums over replicas.
_NOT_DISTRIBUTED = AllReduce(additive=False)


def size_of(xp: Namespace, x: Array, axis: int) -> int | Array:
    """The size of an axis; a scalar tensor for an unknown size under ``tf.function``."""
    size = x.shape[axis]
    return xp.size_of(x, axis) if size is None else size


def as_sets(xp: Namespace, x: Array, class_axis: int, batch: bool) -> Array:
    """``[batch, ..., classes, ...]`` to ``[sets, classes, elements]``, one row per sorted set.

    A set is one sample (``sets = batch``) or, with ``batch=True``, the whole batch
    (``sets = 1``). With channels first the permutation is the identity and the reshape a view.
    """
    spatial = tuple(a for a in range(1, x.ndim) if a not in (class_axis,))
    num_classes = x.shape[class_axis]
    if batch:
        x = xp.permute_dims(x, (class_axis, 0) + spatial)
        return xp.reshape(x, (1, num_classes, -1))
    order = (0, class_axis) + spatial
    if order != tuple(range(x.ndim)):
        x = xp.permute_dims(x, order)
    return xp.reshape(x, (size_of(xp, x, 0), num_classes, -1))


def lovasz_extension(xp: Namespace, errors: Array, labels: Array) -> tuple[Array, Array]:
    r"""``Σ_k e_π(k)·Δ_k`` along the last axis, ``π`` sorting ``errors`` decreasingly.

    ``J_k = 1 - (G - I_k)/(G + k - I_k)`` with ``I = cumsum(g)``, which is ``k/(G + k - I_k)``:
    the denominator is at least ``k >= 1`` for labels in [0, 1], so no guard is needed.
    ``Δ`` depends on the labels only, so the gradient reaches ``errors`` through the gather.
    Rounding in ``J`` changes the sum by at most ``max|δJ|·e_max`` (Abel summation over
    the non-increasing ``e``), also for float32 sets of millions of elements.
    """
    order = xp.argsort(errors, axis=-1, descending=True, stable=True)
    sorted_errors = xp.take_along_axis(errors, order, axis=-1)
    sorted_labels = xp.take_along_axis(labels, order, axis=-1)
    total = xp.sum(sorted_labels, axis=-1, keepdims=True)
    count = size_of(xp, errors, errors.ndim - 1)
    position = xp.astype(xp.arange(1, count + 1, device=nx.device_of(xp, errors)), errors.dtype)
    jaccard = position / (total + position - xp.cumulative_sum(sorted_labels, axis=-1))
    increments = xp.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)
    return xp.sum(sorted_errors * increments, axis=-1), xp.squeeze(total, axis=-1)


def _errors_and_labels(inputs: Prepared, kept: list[int]) -> tuple[Array, Array]:
    """``e = |y - p|`` and ``g = y`` on the kept classes, 0 where an element is left out."""
    xp = inputs.xp
    p = pr.probabilities(inputs)
    if inputs.target is not None:
        y = inputs.target
        errors = nx.absolute(xp, y - p)
    else:  # sparse labels: the boolean hit selects 1 - p or p, no float one-hot of p's size
        hit = pr.class_mask(inputs)
        errors = xp.where(hit, 1.0 - p, p)
        y = xp.astype(hit, inputs.dtype)
    return _leave_out_masked(inputs, *pr.select_classes(inputs, kept, errors, y))


def _leave_out_masked(inputs: Prepared, errors: Array, y: Array) -> tuple[Array, Array]:
    """Error 0 and label 0 where the mask (or ``ignore_index``) leaves an element out: it
    then sorts after every element that counts and adds nothing."""
    if inputs.weights is None:
        return errors, y
    xp = inputs.xp
    keep = inputs.weights != 0.0
    return xp.where(keep, errors, 0.0), xp.where(keep, y, 0.0)


def _finish(per_set: Array, batch: bool) -> Array:
    return per_set[0] if batch else per_set


@v.validated(classes=Choice(CLASSES), all_reduce=_NOT_DISTRIBUTED)
def lovasz_softmax_loss(y_true: Array, y_pred: Array, *, classes: Literal["present", "all"] = "present",
                        class_weights: Sequence[float] | None = None, include_background: bool = True,
                        background_index: int = 0, class_axis: int = -1,
                        from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                        ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                        all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Lovász-Softmax loss (Berman et al. 2018): a convex surrogate of the Jaccard loss.

    .. math::
        e_i = |y_{ic} - p_{ic}|,\quad
        J_k = 1 - \frac{G - \sum_{j \le k} g_j}{G + \sum_{j \le k} (1 - g_j)},\quad
        L_c = \sum_k e_{\pi(k)} (J_k - J_{k-1})

    per sample and class, ``π`` sorting ``e`` decreasingly, ``g = y_c`` in that order,
    ``G = Σ g``, ``J_0 = 0``. ``classes="present"`` averages over the classes with ``G > 0``
    (0 when there is none), ``"all"`` over every kept class. segmentation-models-pytorch
    ``LovaszLoss(mode="multiclass", per_image=True)`` equals the batch mean of this with
    ``from_logits=True``. A single channel is one class, the foreground.

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      classes: ``"present"`` or ``"all"``.
      class_weights: one weight per input class (background included), or ``None``: the
        mean over the selected classes becomes ``Σ w·L / Σ w`` (kornia's ``weight`` divides
        by the number of classes instead: the two agree when the selected weights sum to it).
      include_background: keep class ``background_index`` in the average.
      background_index: the background class.
      class_axis, from_logits, mask, ignore_index, batch, validate: the common options (see
        the concepts page of the documentation). A masked or ignored element is left out.
      all_reduce: must be ``None``: the loss is not additive over replicas.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``: the batch is one set).

    References:
      Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss: a tractable surrogate for
      the optimization of the intersection-over-union measure in neural networks", CVPR 2018.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])   # [batch, elements, classes]
      >>> print(np.round(lossfns.lovasz_softmax_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.3833]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate,
                     per_class={"class_weights": class_weights, "background_index": background_index})
    xp = inputs.xp
    kept = kept_classes(inputs.num_classes, include_background, background_index,
                        one_channel_is_foreground=True)
    errors, labels = _errors_and_labels(inputs, kept)
    errors, labels = (as_sets(xp, t, inputs.class_axis, batch) for t in (errors, labels))
    per_class, totals = lovasz_extension(xp, errors, labels)
    return _finish(_class_mean(inputs, per_class, totals, classes=classes, class_weights=class_weights,
                               kept=kept), batch)


def _class_mean(inputs: Prepared, per_class: Array, totals: Array, *, classes: str,
                class_weights: Sequence[float] | None, kept: list[int]) -> Array:
    """The (weighted) mean over the classes ``classes`` selects: every kept class, or those
    present in the set; ``Σ w·L / Σ w`` with ``class_weights``, 0 where nothing is selected."""
    xp = inputs.xp
    if class_weights is None and classes == "all":
        return xp.mean(per_class, axis=-1)
    weights = xp.ones_like(per_class) if class_weights is None else xp.asarray(
        [class_weights[c] for c in kept], dtype=inputs.dtype, device=inputs.device) + xp.zeros_like(per_class)
    if classes == "present":
        weights = xp.where(totals > 0.0, weights, 0.0)
    summed = xp.sum(weights * per_class, axis=-1)
    return nx.safe_divide(xp, summed, xp.sum(weights, axis=-1))


@v.validated(from_logits=FromLogits(binary=True, logits_only="lovasz_hinge_loss"), all_reduce=_NOT_DISTRIBUTED)
def lovasz_hinge_loss(y_true: Array, y_pred: Array, *, class_axis: int = -1,
                      from_logits: Literal[True, "sigmoid"] = True, mask: Array | None = None,
                      ignore_index: int | None = None, batch: bool = False, validate: bool = False,
                      all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Lovász hinge loss (Berman et al. 2018): binary, on logits.

    .. math::
        e_i = 1 - z_i\,(2 y_i - 1),\quad
        L = \sum_k \max(e_{\pi(k)}, 0)\,(J_k - J_{k-1})

    with ``π``, ``g`` and ``J`` as in :func:`lovasz_softmax_loss`. Every channel is an
    independent binary task, sorted on its own, and the channels are averaged.
    segmentation-models-pytorch ``LovaszLoss(mode="binary", per_image=True)`` equals the
    batch mean of this on one channel (it sorts all channels of an image together).

    Args:
      y_true: 0/1 labels of ``y_pred``'s shape, or integer labels (for one channel the 0/1
        map itself; for C channels class indices, one-hot per element).
      y_pred: logits ``[batch, d1, ..., dk, channels]``.
      from_logits: ``True`` (the default here) or ``"sigmoid"``; anything else is an error.
      class_axis, mask, ignore_index, batch, validate: the common options (see the concepts
        page of the documentation). A masked or ignored element is left out.
      all_reduce: must be ``None``: the loss is not additive over replicas.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``: the batch is one set).

    References:
      Berman, Rannen Triki & Blaschko, CVPR 2018 (see :func:`lovasz_softmax_loss`).

    Example:
      >>> import numpy as np, lossfns
      >>> logits = np.array([[[2.0], [-1.0], [0.5]]])   # [batch, elements, 1 channel]
      >>> print(np.round(lossfns.lovasz_hinge_loss(np.array([[1, 0, 1]]), logits), 4))
      [0.25]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits="sigmoid", mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, binary_loss=True)
    xp = inputs.xp
    logits = inputs.reference  # from_logits="sigmoid": the logits
    if inputs.target is not None:
        y = inputs.target
        margins = logits * (y + y - 1.0)
    else:
        hit = pr.class_mask(inputs)
        y = xp.astype(hit, inputs.dtype)
        margins = xp.where(hit, logits, -logits)
    errors = nx.relu(xp, 1.0 - margins)  # before the sort: same order, same value
    errors, y = _leave_out_masked(inputs, errors, y)
    errors, y = (as_sets(xp, t, inputs.class_axis, batch) for t in (errors, y))
    per_channel, _ = lovasz_extension(xp, errors, y)
    return _finish(xp.mean(per_channel, axis=-1), batch)
