"""Input preparation shared by every loss (docs: Concepts › Inputs).

:func:`prepare` turns ``(y_true, y_pred)`` and the common options into a :class:`Prepared`:
probabilities (or log-probabilities, from logits) in the compute dtype with the class axis
where the caller put it (no transpose), labels either dense or sparse, and one element
weight array combining ``mask`` and ``ignore_index``. It checks what depends on the arrays
(shapes, dtypes, the number of classes); the options themselves were checked once, by the
public function or when an adapter was built. The plain functions of
:mod:`lossfns.prepared` derive everything else (log terms, gathers, means) on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import numerics as nx
from . import validation as v
from ._namespace import array_namespace, read_variables
from ._typing import Array, Device, DType, Namespace


@dataclass
class Prepared:
    """The inputs of one loss call, ready for the kernels.

    Attributes:
      xp: the array namespace.
      class_axis: positive index of the class axis (never 0, the batch axis).
      reduce_axes: the axes summed per sample: every axis but batch and class, plus the
        batch axis when ``batch=True``.
      num_classes: size of the class axis.
      dtype, device: the compute dtype (float32 for half-precision inputs) and device.
      probs: unclipped probabilities as given, or ``None`` with logits.
      logits: the logits in the compute dtype, or ``None`` for probabilities.
      activation: ``"softmax"`` or ``"sigmoid"`` with logits, else ``None``. Probabilities
        and log-probabilities are derived from the logits on demand (a region loss never
        computes a log-softmax, a cross-entropy never a softmax).
      target: dense labels in the compute dtype, or ``None`` for sparse labels.
      labels: sparse integer labels with a size-1 class axis (``ignore_index`` replaced by 0),
        or ``None``.
      weights: element weights with a size-1 class axis, broadcast to the full element shape,
        or ``None`` (every element weighs 1).
      all_reduce: ``None``, or a callable that sums an array over data-parallel replicas;
        applied to every additive statistic before a formula uses it.
      soft_label: the confusion sums use the ``|p - y|`` form.
      cache: derived arrays, computed once per call by :mod:`lossfns.prepared`.
    """

    xp: Namespace
    class_axis: int
    reduce_axes: tuple[int, ...]
    num_classes: int
    dtype: DType
    device: Device
    probs: Array | None = None
    logits: Array | None = None
    activation: Literal["softmax", "sigmoid"] | None = None
    target: Array | None = None
    labels: Array | None = None
    weights: Array | None = None
    all_reduce: Callable[[Array], Array] | None = None
    soft_label: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def from_logits(self) -> bool:
        """The inputs were logits: log terms are exact and nothing is clipped."""
        return self.activation is not None

    @property
    def sigmoid_logits(self) -> Array | None:
        """The logits with a sigmoid activation (``log(1 - p) = log_sigmoid(-z)``), else ``None``."""
        return self.logits if self.activation == "sigmoid" else None

    @property
    def reference(self) -> Array:
        """The prediction as given (probabilities or logits): its shape is the input's."""
        return self.logits if self.probs is None else self.probs


def _is_integer(xp: Namespace, dtype: DType) -> bool:
    return xp.isdtype(dtype, "integral")


def _compute_dtype(xp: Namespace, y_pred: Array) -> DType:
    if not xp.isdtype(y_pred.dtype, "real floating"):
        raise TypeError(f"y_pred must be a floating-point array, got dtype {y_pred.dtype}")
    if xp.finfo(y_pred.dtype).bits < 32:
        return xp.float32  # half precision is accumulated in float32 (docs: Concepts › Inputs)
    return y_pred.dtype


def _activation(from_logits: bool | Literal["softmax", "sigmoid"], num_classes: int,
                binary_loss: bool) -> Literal["softmax", "sigmoid"] | None:
    if from_logits is False:
        return None
    if binary_loss:
        return "sigmoid"
    if from_logits is True:
        return "softmax" if num_classes > 1 else "sigmoid"
    if from_logits == "softmax" and num_classes == 1:
        raise ValueError("from_logits='softmax' needs more than one class; y_pred has 1 class")
    return from_logits


def label_layout(true_shape: Sequence[int | None], pred_shape: Sequence[int | None],
                 class_axis: int) -> Literal["dense", "indices"]:
    """``"dense"`` or ``"indices"``: the one shape rule for what ``y_true`` holds.

    Dense labels have ``y_pred``'s shape; class indices drop the class axis or give it size 1.
    ``class_axis`` is a positive axis of ``y_pred``. Unknown (traced) sizes match anything.
    Anything else is a ``ValueError`` naming both shapes.
    """
    pred_shape, true_shape = tuple(pred_shape), tuple(true_shape)
    without_class = pred_shape[:class_axis] + pred_shape[class_axis + 1:]
    with_unit_class = pred_shape[:class_axis] + (1,) + pred_shape[class_axis + 1:]
    if v.shapes_match(true_shape, pred_shape):
        return "dense"
    if v.shapes_match(true_shape, without_class) or v.shapes_match(true_shape, with_unit_class):
        return "indices"
    raise ValueError(
        f"y_true shape {v.format_shape(true_shape)} does not match y_pred shape "
        f"{v.format_shape(pred_shape)} (dense labels have y_pred's shape; sparse labels "
        "drop the class axis or give it size 1)"
    )


def _split_labels(xp: Namespace, y_true: Array, y_pred_shape: tuple[int | None, ...],
                  class_axis: int) -> tuple[Array | None, Array | None]:
    """Return ``(target, labels)``: dense labels, or integer labels with a size-1 class axis.

    Against a single channel, labels without a class axis that are not integers (float or
    bool 0/1 maps) are the binary target itself, as a dense label of ``y_pred``'s shape.
    """
    dtype = y_true.dtype
    if not (xp.isdtype(dtype, "real floating") or _is_integer(xp, dtype) or xp.isdtype(dtype, "bool")):
        raise TypeError(f"y_true must have a real or bool dtype, got dtype {dtype}")
    layout = label_layout(y_true.shape, y_pred_shape, class_axis)
    single_channel = y_pred_shape[class_axis] == 1
    if layout == "dense" and not (single_channel and _is_integer(xp, dtype)):
        return y_true, None
    labels = y_true if y_true.ndim == len(y_pred_shape) else xp.expand_dims(y_true, axis=class_axis)
    if _is_integer(xp, dtype):
        return None, labels
    if single_channel:
        return labels, None
    raise TypeError(f"sparse y_true (class indices) must have an integer dtype, got {dtype}")


def label_value_or_none(xp: Namespace, dtype: DType, value: int | None) -> int | None:
    """``value`` if an integer label of ``dtype`` can hold it, else ``None``: no label equals it.

    ``labels == -1`` on uint8 labels casts -1 to 255 in torch, JAX and TensorFlow (and 256 to
    0) but compares exactly in NumPy; an ``ignore_index`` outside the dtype's range therefore
    ignores nothing, on every backend, as exact comparison says.
    """
    if value is None:
        return None
    limits = xp.iinfo(dtype)
    return value if int(limits.min) <= value <= int(limits.max) else None


def _element_weights(xp: Namespace, mask: Array | None, labels: Array | None, ignore_index: int | None, *,
                     probs: Array, class_axis: int, dtype: DType) -> Array | None:
    """One weight array from ``mask`` and ``ignore_index`` (``None`` when neither is given).

    The result has ``probs``' shape with a size-1 class axis, so that ``Σ m`` counts the
    elements a mask of per-sample weights (``[batch, 1, ..., 1]``) stands for.
    """
    weights = None
    if mask is not None:
        given_shape = tuple(mask.shape)
        ndim = probs.ndim
        if mask.ndim < ndim - 1:  # broadcast like NumPy: leading axes of size 1
            mask = xp.reshape(mask, (1,) * (ndim - 1 - mask.ndim) + given_shape)
        if mask.ndim == ndim - 1:
            mask = xp.expand_dims(mask, axis=class_axis)
        elif mask.ndim != ndim or mask.shape[class_axis] not in (1, None):
            raise ValueError(
                f"mask shape {v.format_shape(mask.shape)} must be y_pred's shape without the "
                f"class axis (or with a size-1 class axis); y_pred has shape {v.format_shape(probs.shape)}"
            )
        weights = xp.astype(mask, dtype)
        unit_shape = tuple(1 if a == class_axis else s for a, s in enumerate(probs.shape))
        if any(m not in (1, s, None) and s is not None for m, s in zip(weights.shape, unit_shape)):
            raise ValueError(
                f"mask shape {v.format_shape(given_shape)} does not broadcast to y_pred's shape "
                f"with a size-1 class axis, {v.format_shape(unit_shape)}"
            )
        if tuple(weights.shape) != unit_shape or None in unit_shape:
            one_class = xp.take(probs, xp.asarray([0], device=nx.device_of(xp, probs)), axis=class_axis)
            weights = weights * xp.ones_like(one_class)
    if ignore_index is not None:
        keep = xp.astype(labels != ignore_index, dtype)
        weights = keep if weights is None else weights * keep
    return weights


def _check_data(xp: Namespace, y_pred: Array, target: Array | None, labels: Array | None, *,
                activation: str | None, num_classes: int, ignore_index: int | None) -> None:
    v.check_data_ranges(
        xp, y_pred=None if activation else y_pred,
        y_true=target if target is not None and not xp.isdtype(target.dtype, "bool") else None,
        labels=labels, num_classes=max(num_classes, 2),  # a single channel takes 0/1 labels
        ignore_index=ignore_index,
    )


def prepare(y_true: Array, y_pred: Array, *, class_axis: int = -1,
            from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
            ignore_index: int | None = None, batch: bool = False, validate: bool = False,
            all_reduce: Callable[[Array], Array] | None = None, soft_label: bool = False,
            binary_loss: bool = False, two_channels: bool = False,
            per_class: Mapping[str, Any] | None = None) -> Prepared:
    """Check the arrays against the (already checked) options and prepare them.

    Args:
      y_true: dense labels (``y_pred``'s shape) or integer class indices (class axis absent
        or of size 1).
      y_pred: probabilities or logits, ``[batch, d1, ..., dk, classes]`` by default.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce, soft_label:
        the common options, checked by the caller (docs: Concepts › Inputs).
      binary_loss: the caller is a binary loss (sigmoid only, per-channel targets).
      two_channels: a single channel is expanded to ``[1 - p, p]`` (categorical losses).
      per_class: the per-class options of the loss (``class_weights``, ``alpha``,
        ``background_index``...), checked against the number of classes.
    """
    xp = array_namespace(y_true=y_true, y_pred=y_pred, mask=mask)
    y_true, y_pred, mask = read_variables(y_true, y_pred, mask)
    axis = v.check_class_axis(class_axis, y_pred.ndim)
    if all_reduce is not None and not batch:
        raise ValueError("all_reduce must be a callable and needs batch=True (per-sample losses are local)")
    dtype = _compute_dtype(xp, y_pred)
    num_classes = y_pred.shape[axis]
    if num_classes is None:  # a tf.function input signature without the class size
        raise ValueError(
            f"y_pred has an unknown number of classes (axis {axis} of shape {v.format_shape(y_pred.shape)}); "
            "the class axis must have a known size when the loss is traced"
        )
    if per_class:
        v.check_class_shapes(2 if two_channels and num_classes == 1 else num_classes, per_class)
    activation = _activation(from_logits, num_classes, binary_loss)

    target, labels = _split_labels(xp, y_true, y_pred.shape, axis)
    if ignore_index is not None and labels is None:
        raise ValueError("ignore_index needs integer class labels in y_true; got dense labels")
    if labels is not None:
        ignore_index = label_value_or_none(xp, labels.dtype, ignore_index)
    if validate:
        _check_data(xp, y_pred, target, labels, activation=activation, num_classes=num_classes,
                    ignore_index=ignore_index)

    y_pred = xp.astype(y_pred, dtype) if y_pred.dtype != dtype else y_pred
    weights = _element_weights(xp, mask, labels, ignore_index, probs=y_pred, class_axis=axis, dtype=dtype)
    if labels is not None:
        if ignore_index is not None:
            labels = xp.where(labels == ignore_index, xp.zeros_like(labels), labels)
        if num_classes == 1:
            target = xp.astype(labels, dtype)  # a single channel's 0/1 label map is the target
    if target is not None and target.dtype != dtype:
        target = xp.astype(target, dtype)

    spatial = tuple(a for a in range(1, y_pred.ndim) if a != axis)
    inputs = Prepared(
        xp, class_axis=axis, reduce_axes=((0,) if batch else ()) + spatial, num_classes=num_classes,
        dtype=dtype, device=nx.device_of(xp, y_pred),
        probs=None if activation else y_pred, logits=y_pred if activation else None,
        activation=activation, target=target,
        labels=labels if num_classes > 1 or not binary_loss else None, weights=weights,
        all_reduce=all_reduce, soft_label=soft_label,
    )
    if two_channels:
        from .prepared import with_two_channels

        inputs = with_two_channels(inputs)
    return inputs


__all__ = ["Prepared", "label_layout", "label_value_or_none", "prepare"]
