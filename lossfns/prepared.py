"""Plain functions of a :class:`~lossfns.inputs.Prepared`: the terms the kernels read.

Each derives one quantity on demand (a region loss never pays for log terms) and keeps
it in ``inputs.cache`` for the rest of the call: a compound loss that needs ``log p`` twice
computes it once. With logits every log term comes from log-softmax / log-sigmoid and
nothing is clipped; with probabilities ``p`` is clipped to ``[1e-7, 1 - 1e-7]`` inside log
terms and focal factors, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from array_api_compat import is_torch_namespace

from . import numerics as nx
from ._typing import Array
from .inputs import Prepared


def _cached(inputs: Prepared, key: str, compute: Callable[[], Any]) -> Any:
    if key not in inputs.cache:
        inputs.cache[key] = compute()
    return inputs.cache[key]


def probabilities(inputs: Prepared) -> Array:
    """Probabilities, unclipped, in the compute dtype: softmax / sigmoid of the logits."""
    if inputs.probs is not None:
        return inputs.probs

    def compute() -> Array:
        if "log_probs" in inputs.cache:  # a log-softmax another term paid for: one exp
            return inputs.xp.exp(inputs.cache["log_probs"])
        if inputs.activation == "sigmoid":
            return nx.sigmoid(inputs.xp, inputs.logits)
        return nx.softmax(inputs.xp, inputs.logits, inputs.class_axis)

    return _cached(inputs, "probs", compute)


def _clipped(inputs: Prepared) -> Array:
    return _cached(inputs, "clipped", lambda: nx.clip_probability(inputs.xp, probabilities(inputs)))


def log_probabilities(inputs: Prepared) -> Array:
    """``log p``: log-softmax / log-sigmoid of the logits, else ``log(clip(p))``."""

    def compute() -> Array:
        xp = inputs.xp
        if inputs.activation == "sigmoid":
            return nx.log_sigmoid(xp, inputs.logits)
        if inputs.activation == "softmax":
            return nx.log_softmax(xp, inputs.logits, inputs.class_axis)
        return xp.log(_clipped(inputs))

    return _cached(inputs, "log_probs", compute)


def log_complement(inputs: Prepared) -> Array:
    """``log(1 - p)`` for the binary losses (sigmoid or probabilities only)."""
    if inputs.activation == "sigmoid":  # log σ(-z) = log σ(z) - z: no second log-sigmoid
        return log_probabilities(inputs) - inputs.logits
    if inputs.from_logits:
        raise ValueError("from_logits='softmax' is not valid for a binary loss")
    return inputs.xp.log(1.0 - _clipped(inputs))


def complement(inputs: Prepared) -> Array:
    """``1 - p``, the base of the focal factor ``(1 - p)**gamma`` (clipped like the log)."""
    logits = inputs.sigmoid_logits
    if logits is not None:
        return nx.sigmoid(inputs.xp, -logits)
    if inputs.from_logits:  # exact from logits, nothing to clip
        return 1.0 - probabilities(inputs)
    return 1.0 - _clipped(inputs)


def take_class(inputs: Prepared, x: Array, index: int) -> Array:
    """The slice of ``x`` at class ``index``, keeping a size-1 class axis."""
    axis = inputs.class_axis
    return x[(slice(None),) * axis + (slice(index, index + 1), Ellipsis)]


def select_classes(inputs: Prepared, kept: Sequence[int], *arrays: Array, axis: int | None = None) -> tuple[Array, ...]:
    """``arrays`` restricted to the classes ``kept`` along ``axis`` (default: the class
    axis), as a tuple; returned as they are when every class is kept."""
    if len(kept) == inputs.num_classes:
        return arrays
    xp = inputs.xp
    index = xp.asarray(kept, device=inputs.device)
    axis = inputs.class_axis if axis is None else axis
    return tuple(xp.take(t, index, axis=axis) for t in arrays)


def class_vector(inputs: Prepared, values: Sequence[float], ndim: int | None = None) -> Array:
    """A per-class constant shaped to broadcast along the class axis (of ``ndim`` axes)."""
    xp = inputs.xp
    shape = [1] * (ndim or _ndim(inputs))
    shape[inputs.class_axis] = len(values)
    return xp.reshape(xp.asarray(values, dtype=inputs.dtype, device=inputs.device), tuple(shape))


def _ndim(inputs: Prepared) -> int:
    return inputs.reference.ndim


def complement_at(inputs: Prepared, index: int) -> Array:
    """:func:`complement` of one class, computed on that slice only."""
    if inputs.from_logits:
        p = inputs.xp.exp(take_class(inputs, log_probabilities(inputs), index))
    else:
        p = nx.clip_probability(inputs.xp, take_class(inputs, inputs.probs, index))
    return 1.0 - p


def class_mask(inputs: Prepared) -> Array:
    """Boolean ``labels == c`` over the class axis (sparse labels only)."""
    xp, labels = inputs.xp, sparse_labels(inputs)
    classes = xp.arange(inputs.num_classes, dtype=labels.dtype, device=inputs.device)
    shape = [1] * labels.ndim
    shape[inputs.class_axis] = inputs.num_classes
    return labels == xp.reshape(classes, tuple(shape))


def sparse_labels(inputs: Prepared) -> Array:
    """``inputs.labels`` where the caller holds sparse labels (a function of those only)."""
    if inputs.labels is None:
        raise TypeError("this term needs sparse labels (class indices); the inputs hold dense labels")
    return inputs.labels


def labelled_index(inputs: Prepared) -> tuple[Array, Array | None]:
    """``(index, in_range)``: the labels clipped into ``[0, C)`` in the library's index
    dtype (torch gathers with int64 only), and where they were in range (``None`` when
    torch eager has seen that every label is: then nothing is masked).

    An unvalidated label outside ``[0, C)`` belongs to no class, as it does in
    ``labels == c``: gathers read class 0 there and :func:`gather` zeroes the result.
    Never an out-of-bounds read (torch's CPU ``take_along_dim`` does not check bounds).
    """

    def compute() -> tuple[Array, Array | None]:
        xp, labels, classes = inputs.xp, sparse_labels(inputs), inputs.num_classes
        if is_torch_namespace(xp):
            labels = labels if labels.dtype == xp.int64 else labels.long()
            if _eager_on_cpu(labels):  # one look at the data instead of a mask (no device sync)
                low, high = labels.aminmax()
                if low.item() >= 0 and high.item() < classes:
                    return labels, None
            index = labels.clamp(0, classes - 1)
            return index, index == labels
        info = getattr(xp, "__array_namespace_info__", None)
        if info is not None:  # the TensorFlow shim gathers with any integer dtype
            index_dtype = info().default_dtypes(device=inputs.device)["indexing"]
            labels = labels if labels.dtype == index_dtype else xp.astype(labels, index_dtype)
        index = xp.clip(labels, min=0, max=classes - 1)
        return index, index == labels

    return _cached(inputs, "labelled_index", compute)


def _eager_on_cpu(x: Array) -> bool:
    import torch

    return x.device.type == "cpu" and not (torch.compiler.is_compiling() or torch.jit.is_tracing())


def zero_out_of_range(inputs: Prepared, x: Array, in_range: Array | None) -> Array:
    """``x`` with 0 where ``in_range`` (from :func:`labelled_index`) is false."""
    return x if in_range is None else inputs.xp.where(in_range, x, 0.0)


def gather(inputs: Prepared, x: Array) -> Array:
    """``x`` at each element's labelled class, 0 where the label is outside ``[0, C)``:
    the shape of ``x`` with a size-1 class axis."""
    index, in_range = labelled_index(inputs)
    return zero_out_of_range(inputs, inputs.xp.take_along_axis(x, index, axis=inputs.class_axis), in_range)


def _labelled_probability(inputs: Prepared) -> Array:
    """``clip(p)`` at the labelled class (probabilities only; an out-of-range label reads class 0)."""

    def compute() -> Array:
        index, _ = labelled_index(inputs)
        return nx.clip_probability(inputs.xp, inputs.xp.take_along_axis(inputs.probs, index, axis=inputs.class_axis))

    return _cached(inputs, "labelled_probability", compute)


def labelled_cross_entropy(inputs: Prepared) -> Array:
    """``-log p`` at each element's labelled class (sparse labels only), 0 where the label is
    outside ``[0, C)`` (no class: no term).

    Computed on the gathered slice, ``1/C`` of the volume: the full-size ``log(clip(p))``
    is never formed unless another term paid for it. With softmax logits in torch it is
    ``cross_entropy(z, labels)``: one fused kernel each way (channels-first).
    """

    def compute() -> Array:
        xp = inputs.xp
        if inputs.from_logits:
            if is_torch_namespace(xp) and inputs.activation == "softmax" and inputs.class_axis == 1:
                return _torch_cross_entropy(inputs)
            return -gather(inputs, log_probabilities(inputs))
        if "log_probs" in inputs.cache:  # a full-size log another term already paid for
            return -gather(inputs, inputs.cache["log_probs"])
        return zero_out_of_range(inputs, -xp.log(_labelled_probability(inputs)), labelled_index(inputs)[1])

    return _cached(inputs, "labelled_cross_entropy", compute)


def _torch_cross_entropy(inputs: Prepared) -> Array:
    import torch

    index, in_range = labelled_index(inputs)
    target = index.squeeze(1)
    if in_range is not None:  # cross_entropy scores an ignored element 0: no class, no term
        target = torch.where(in_range.squeeze(1), target, -100)
    logits = inputs.reference  # the caller has softmax logits
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none", ignore_index=-100)
    return ce.unsqueeze(1)


def labelled_complement(inputs: Prepared) -> Array:
    """``1 - p`` at each element's labelled class (exact from logits, clipped like the log
    otherwise): the base of the sparse focal factor."""
    xp, logits = inputs.xp, inputs.sigmoid_logits
    if logits is not None:
        return nx.sigmoid(xp, -gather(inputs, logits))
    if inputs.from_logits:
        return 1.0 - xp.exp(-labelled_cross_entropy(inputs))
    return 1.0 - _labelled_probability(inputs)


def _reduced_axes(inputs: Prepared) -> tuple[int, ...]:
    return inputs.reduce_axes + (inputs.class_axis,)


def element_total(inputs: Prepared) -> Array:
    """``Σ m`` per sample (over the batch with ``batch=True``), ``all_reduce`` applied."""
    xp = inputs.xp
    if inputs.weights is None:
        total = nx.blocked_sum(xp, xp.ones_like(take_class(inputs, inputs.reference, 0)), _reduced_axes(inputs))
    else:
        total = nx.blocked_sum(xp, inputs.weights, _reduced_axes(inputs))
    return total if inputs.all_reduce is None else inputs.all_reduce(total)


def weighted_mean(inputs: Prepared, per_element: Array) -> Array:
    """Mean of a per-element term (size-1 class axis) over the reduced axes, mask-weighted.

    ``Σ m·ℓ / Σ m``, and 0 where a sample is fully masked.
    """
    xp, axes = inputs.xp, _reduced_axes(inputs)
    if inputs.weights is None and inputs.all_reduce is None:
        if nx.static_size(per_element, axes) == 0:
            return nx.blocked_sum(xp, per_element, axes)  # no element: Σ m = 0 gives 0
        return nx.blocked_mean(xp, per_element, axes)
    weights = xp.ones_like(per_element) if inputs.weights is None else inputs.weights
    total = nx.blocked_sum(xp, per_element * weights, axes)
    count = nx.blocked_sum(xp, weights, axes)
    if inputs.all_reduce is not None:
        total, count = inputs.all_reduce(total), inputs.all_reduce(count)
    return nx.safe_divide(xp, total, count)


def weighted_ratio(inputs: Prepared, numerator: Array, denominator: Array | float) -> Array:
    """``Σ m·n / Σ m·d`` over the reduced axes (``all_reduce`` applied to both), 0 where
    the denominator is 0; ``denominator`` may be a number."""
    xp, axes = inputs.xp, _reduced_axes(inputs)
    if isinstance(denominator, float):  # one weight everywhere: the mean, rescaled (0 stays 0)
        mean = weighted_mean(inputs, numerator)
        return mean / denominator if denominator else mean
    m = inputs.weights
    total = nx.blocked_sum(xp, numerator if m is None else numerator * m, axes)
    count = nx.blocked_sum(xp, denominator if m is None else denominator * m, axes)
    if inputs.all_reduce is not None:
        total, count = inputs.all_reduce(total), inputs.all_reduce(count)
    return nx.safe_divide(xp, total, count)


def with_two_channels(inputs: Prepared) -> Prepared:
    """A single channel expanded to ``[1 - p, p]`` / ``[1 - y, y]`` (docs: Losses › Unified Focal family).

    A sigmoid logit ``z`` becomes the softmax logits ``[0, z]``: ``softmax([0, z]) =
    [σ(-z), σ(z)]`` and ``log_softmax([0, z]) = [log σ(-z), log σ(z)]``, exactly.
    """
    if inputs.num_classes != 1:
        return inputs
    xp, axis = inputs.xp, inputs.class_axis
    probs = logits = None
    if inputs.probs is None:  # logits
        logits = xp.concat([xp.zeros_like(inputs.logits), inputs.logits], axis=axis)
    else:
        probs = xp.concat([1.0 - inputs.probs, inputs.probs], axis=axis)
    target = None if inputs.target is None or inputs.labels is not None else xp.concat(
        [1.0 - inputs.target, inputs.target], axis=axis
    )
    return Prepared(
        xp, class_axis=axis, reduce_axes=inputs.reduce_axes, num_classes=2, dtype=inputs.dtype,
        device=inputs.device, probs=probs, logits=logits, activation="softmax" if logits is not None else None,
        target=target, labels=inputs.labels, weights=inputs.weights, all_reduce=inputs.all_reduce,
        soft_label=inputs.soft_label,
    )


__all__ = [
    "class_mask", "class_vector", "complement", "complement_at", "element_total", "gather",
    "labelled_complement", "labelled_cross_entropy", "labelled_index", "log_complement",
    "zero_out_of_range",
    "log_probabilities",
    "probabilities", "select_classes", "sparse_labels", "take_class", "weighted_mean", "weighted_ratio",
    "with_two_channels",
]
