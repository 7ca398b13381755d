"""Input preparation shared by every loss (docs: Concepts › Inputs).

:func:`prepare` turns ``(y_true, y_pred)`` and the common options into a
:class:`PreparedInputs`: probabilities in the compute dtype with the class axis where the
caller put it (no transpose), labels either dense or sparse, and one element weight array
combining ``mask`` and ``ignore_index``. Log terms are derived lazily and from logits where
there are logits, so a region loss never pays for them.
"""

from __future__ import annotations

from . import numerics as nx
from . import validation as v
from ._namespace import array_namespace, read_variables


class PreparedInputs:
    """Inputs of one loss call, ready for the confusion sums and per-element terms.

    Attributes:
      xp: the array namespace.
      class_axis: positive index of the class axis (never 0, the batch axis).
      reduce_axes: the axes summed per sample: every axis but batch and class, plus the
        batch axis when ``batch=True``.
      num_classes: size of the class axis.
      probs: probabilities, unclipped, in the compute dtype.
      target: dense labels in the compute dtype, or ``None`` for sparse labels.
      labels: sparse integer labels with a size-1 class axis (``ignore_index`` replaced by 0),
        or ``None``.
      weights: element weights with a size-1 class axis, broadcast to the full element shape,
        or ``None`` (every element weighs 1).
      all_reduce: ``None``, or a callable that sums an array over data-parallel replicas;
        applied to every additive statistic before a formula uses it.
    """

    def __init__(self, xp, *, class_axis, reduce_axes, probs, target=None, labels=None,
                 weights=None, log_probs=None, sigmoid_logits=None, all_reduce=None,
                 soft_label=False):
        self.xp = xp
        self.all_reduce = all_reduce
        self.soft_label = soft_label
        self.class_axis = class_axis
        self.reduce_axes = reduce_axes
        self._probs = probs  # derived lazily from log_probs: distribution losses never need it
        self._reference = probs if probs is not None else log_probs  # dtype, device, shape
        self.target = target
        self.labels = labels
        self.weights = weights
        self._log_probs = log_probs  # given when the inputs were logits, else derived from probs
        self._from_logits = log_probs is not None
        self._sigmoid_logits = sigmoid_logits  # kept for log(1 - p) = log_sigmoid(-z)
        self._clipped = None
        self._labelled_index = None
        self.num_classes = self._reference.shape[class_axis]

    @property
    def probs(self):
        """Probabilities, unclipped, in the compute dtype."""
        if self._probs is None:
            self._probs = self.xp.exp(self._log_probs)
        return self._probs

    @property
    def sigmoid_logits(self):
        """The logits in the compute dtype with ``from_logits="sigmoid"``, else ``None``."""
        return self._sigmoid_logits

    @property
    def dtype(self):
        return self._reference.dtype

    @property
    def device(self):
        return nx.device_of(self.xp, self._reference)

    def constant(self, value):
        return nx.full_like_scalar(self.xp, value, self._reference)

    def class_vector(self, values):
        """A per-class constant shaped to broadcast along the class axis."""
        shape = [1] * self._reference.ndim
        shape[self.class_axis] = len(values)
        vec = self.xp.asarray(values, dtype=self.dtype, device=self.device)
        return self.xp.reshape(vec, tuple(shape))

    def _clipped_probs(self):
        if self._clipped is None:  # shared by log p and 1 - p: clip once
            self._clipped = nx.clip_probability(self.xp, self.probs)
        return self._clipped

    @property
    def log_probs(self):
        """``log p``: from log-softmax / log-sigmoid with logits, else ``log(clip(p))``."""
        if self._log_probs is None:
            self._log_probs = self.xp.log(self._clipped_probs())
        return self._log_probs

    @property
    def log_complement(self):
        """``log(1 - p)`` for the binary losses (sigmoid or probabilities only)."""
        if self._sigmoid_logits is not None:  # log σ(-z) = log σ(z) - z: no second logaddexp
            return self._log_probs - self._sigmoid_logits
        if self._from_logits:
            raise ValueError("from_logits='softmax' is not valid for a binary loss")
        return self.xp.log(self.constant(1.0) - self._clipped_probs())

    @property
    def complement(self):
        """``1 - p``, the base of the focal factor ``(1 - p)**gamma`` (clipped like the log)."""
        if self._sigmoid_logits is not None:
            return nx.sigmoid(self.xp, -self._sigmoid_logits)
        if self._from_logits:  # exact from logits, nothing to clip
            return self.constant(1.0) - self.probs
        return self.constant(1.0) - self._clipped_probs()

    def take_class(self, x, index: int):
        """The slice of ``x`` at class ``index``, keeping a size-1 class axis."""
        return self.xp.take(x, self.xp.asarray([index], device=self.device), axis=self.class_axis)

    def select_classes(self, kept, *arrays, axis=None):
        """``arrays`` restricted to the classes ``kept`` along ``axis`` (default: the class
        axis), as a tuple; returned as they are when every class is kept."""
        if len(kept) == self.num_classes:
            return arrays
        index = self.xp.asarray(kept, device=self.device)
        axis = self.class_axis if axis is None else axis
        return tuple(self.xp.take(t, index, axis=axis) for t in arrays)

    def complement_at(self, index: int):
        """:attr:`complement` of one class, computed on that slice only."""
        if self._probs is None:
            p = self.xp.exp(self.take_class(self._log_probs, index))
        else:
            p = self.take_class(self._probs, index)
        if not self._from_logits:
            p = nx.clip_probability(self.xp, p)
        return self.constant(1.0) - p

    def class_mask(self):
        """Boolean ``labels == c`` over the class axis (sparse labels only)."""
        classes = self.xp.arange(self.num_classes, dtype=self.labels.dtype, device=self.device)
        shape = [1] * self._reference.ndim
        shape[self.class_axis] = self.num_classes
        return self.labels == self.xp.reshape(classes, tuple(shape))

    def labelled_index(self):
        """``(index, in_range)``: the labels clipped into ``[0, C)`` in the library's index
        dtype (torch gathers with int64 only), and where they were in range.

        An unvalidated label outside ``[0, C)`` belongs to no class, as it does in
        ``labels == c``: gathers read class 0 there and :meth:`gather` zeroes the result.
        Never an out-of-bounds read (torch's CPU ``take_along_dim`` does not check bounds).
        """
        if self._labelled_index is None:
            xp, labels = self.xp, self.labels
            info = getattr(xp, "__array_namespace_info__", None)
            if info is not None:  # the TensorFlow shim gathers with any integer dtype
                index_dtype = info().default_dtypes(device=self.device)["indexing"]
                labels = labels if labels.dtype == index_dtype else xp.astype(labels, index_dtype)
            index = xp.clip(labels, min=0, max=self.num_classes - 1)
            self._labelled_index = (index, index == labels)
        return self._labelled_index

    def gather(self, x):
        """``x`` at each element's labelled class, 0 where the label is outside ``[0, C)``:
        the shape of ``x`` with a size-1 class axis."""
        index, in_range = self.labelled_index()
        taken = self.xp.take_along_axis(x, index, axis=self.class_axis)
        return self.xp.where(in_range, taken, self.constant(0.0))

    def labelled_log_and_complement(self):
        """``(log p, 1 - p)`` at each element's labelled class (sparse labels only).

        Computed on the gathered slice, which is ``1/C`` of the volume: the full-size
        ``log(clip(p))``, ``exp`` and ``1 - p`` (and their gradients) are never formed. Each
        element gets exactly what gathering :attr:`log_probs` and :attr:`complement` would give;
        ``log p`` is 0 where the label is outside ``[0, C)`` (no class: no term).
        """
        xp = self.xp
        if self._sigmoid_logits is not None:
            return self.gather(self._log_probs), nx.sigmoid(xp, -self.gather(self._sigmoid_logits))
        if self._from_logits:
            log_p = self.gather(self._log_probs)
            return log_p, self.constant(1.0) - xp.exp(log_p)
        if self._log_probs is not None:  # a full-size log another term already paid for
            p = nx.clip_probability(xp, self.gather(self.probs))
            return self.gather(self._log_probs), self.constant(1.0) - p
        index, in_range = self.labelled_index()
        p = nx.clip_probability(xp, xp.take_along_axis(self.probs, index, axis=self.class_axis))
        log_p = xp.where(in_range, xp.log(p), self.constant(0.0))
        return log_p, self.constant(1.0) - p

    def weighted_mean(self, per_element):
        """Mean of a per-element term (size-1 class axis) over ``reduce_axes``, mask-weighted.

        ``Σ m·ℓ / Σ m``, and 0 where a sample is fully masked.
        """
        xp = self.xp
        axes = self.reduce_axes + (self.class_axis,)
        if self.weights is None and self.all_reduce is None:
            if nx.static_size(per_element, axes) == 0:
                return nx.blocked_sum(xp, per_element, axes)  # no element: Σ m = 0 gives 0
            return nx.blocked_mean(xp, per_element, axes)
        weights = xp.ones_like(per_element) if self.weights is None else self.weights
        total = nx.blocked_sum(xp, per_element * weights, axes)
        count = nx.blocked_sum(xp, weights, axes)
        if self.all_reduce is not None:
            total, count = self.all_reduce(total), self.all_reduce(count)
        return nx.safe_divide(xp, total, count)

    def with_two_channels(self):
        """Single-channel binary input expanded to ``[1 - p, p]`` / ``[1 - y, y]`` (docs: Losses › Unified Focal family)."""
        if self.num_classes != 1:
            return self
        xp, axis = self.xp, self.class_axis
        one = self.constant(1.0)
        if self._sigmoid_logits is not None:
            probs = None  # exp of log_probs, when a region term asks for it
            log_probs = xp.concat([self.log_complement, self.log_probs], axis=axis)
        else:
            probs = xp.concat([one - self.probs, self.probs], axis=axis)
            log_probs = None
        target = None if self.target is None or self.labels is not None else xp.concat(
            [one - self.target, self.target], axis=axis
        )
        return PreparedInputs(
            xp, class_axis=axis, reduce_axes=self.reduce_axes, probs=probs, target=target,
            labels=self.labels, weights=self.weights, log_probs=log_probs, all_reduce=self.all_reduce,
            soft_label=self.soft_label,
        )


def _is_integer(xp, dtype) -> bool:
    return xp.isdtype(dtype, "integral")


def _compute_dtype(xp, y_pred):
    if not xp.isdtype(y_pred.dtype, "real floating"):
        raise TypeError(f"y_pred must be a floating-point array, got dtype {y_pred.dtype}")
    if xp.finfo(y_pred.dtype).bits < 32:
        return xp.float32  # half precision is accumulated in float32 (docs: Concepts › Inputs)
    return y_pred.dtype


def _activation(from_logits, num_classes: int, binary_loss: bool):
    v.check_choice("from_logits", from_logits, v.FROM_LOGITS)
    if from_logits is False:
        return None
    if binary_loss:
        if from_logits == "softmax":
            raise ValueError("from_logits='softmax' is not valid for a binary loss; use True or 'sigmoid'")
        return "sigmoid"
    if from_logits is True:
        return "softmax" if num_classes > 1 else "sigmoid"
    if from_logits == "softmax" and num_classes == 1:
        raise ValueError("from_logits='softmax' needs more than one class; y_pred has 1 class")
    return from_logits


def label_layout(true_shape, pred_shape, class_axis: int) -> str:
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


def _split_labels(xp, y_true, y_pred_shape, class_axis):
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


def label_value_or_none(xp, dtype, value):
    """``value`` if an integer label of ``dtype`` can hold it, else ``None``: no label equals it.

    ``labels == -1`` on uint8 labels casts -1 to 255 in torch, JAX and TensorFlow (and 256 to
    0) but compares exactly in NumPy; an ``ignore_index`` outside the dtype's range therefore
    ignores nothing, on every backend, as exact comparison says.
    """
    if value is None:
        return None
    limits = xp.iinfo(dtype)
    return value if int(limits.min) <= value <= int(limits.max) else None


def _element_weights(xp, mask, labels, ignore_index, *, probs, class_axis, dtype):
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


def prepare(y_true, y_pred, *, class_axis=-1, from_logits=False, mask=None, ignore_index=None,
            batch=False, validate=False, all_reduce=None, soft_label=False,
            binary_loss=False) -> PreparedInputs:
    """Validate and normalise the inputs of any loss (docs: Concepts › Inputs).

    Args:
      y_true: dense labels (``y_pred``'s shape) or integer class indices (class axis absent
        or of size 1).
      y_pred: probabilities or logits, ``[batch, d1, ..., dk, classes]`` by default.
      class_axis: the class axis of ``y_pred``.
      from_logits: ``False``, ``True``, ``"softmax"`` or ``"sigmoid"``.
      mask: element weights, ``y_pred``'s shape without the class axis (broadcastable).
      ignore_index: label value excluded from every sum (integer labels only).
      batch: reduce over the batch axis too.
      validate: check label and probability ranges (eager only).
      all_reduce: with ``batch=True``, a callable summing an array across data-parallel
        replicas (``jax.lax.psum`` over a named axis, a differentiable ``all_reduce``), so the
        loss is that of the global batch. The adapters pass it; most users never do.
      soft_label: the confusion sums use the ``|p - y|`` form (soft labels).
      binary_loss: the caller is a binary loss (sigmoid only, per-channel targets).
    """
    xp = array_namespace(y_true=y_true, y_pred=y_pred, mask=mask)
    y_true, y_pred, mask = read_variables(y_true, y_pred, mask)
    axis = v.check_class_axis(class_axis, y_pred.ndim)
    v.check_bool("batch", batch)
    v.check_bool("validate", validate)
    ignore_index = v.check_int("ignore_index", ignore_index, allow_none=True)
    if all_reduce is not None and (not callable(all_reduce) or not batch):
        raise ValueError("all_reduce must be a callable and needs batch=True (per-sample losses are local)")
    dtype = _compute_dtype(xp, y_pred)
    num_classes = y_pred.shape[axis]
    activation = _activation(from_logits, num_classes, binary_loss)

    target, labels = _split_labels(xp, y_true, y_pred.shape, axis)
    if ignore_index is not None and labels is None:
        raise ValueError("ignore_index needs integer class labels in y_true; got dense labels")
    if labels is not None:
        ignore_index = label_value_or_none(xp, labels.dtype, ignore_index)
    if validate:
        v.check_data_ranges(
            xp, y_pred=None if activation else y_pred,
            y_true=target if target is not None and not xp.isdtype(target.dtype, "bool") else None,
            labels=labels, num_classes=max(num_classes, 2),  # a single channel takes 0/1 labels
            ignore_index=ignore_index,
        )

    y_pred = xp.astype(y_pred, dtype) if y_pred.dtype != dtype else y_pred
    log_probs = None
    if activation == "softmax":
        log_probs = nx.log_softmax(xp, y_pred, axis)
    elif activation == "sigmoid":
        log_probs = nx.log_sigmoid(xp, y_pred)
    weights = _element_weights(xp, mask, labels, ignore_index, probs=y_pred, class_axis=axis, dtype=dtype)
    if labels is not None:
        if ignore_index is not None:
            labels = xp.where(labels == ignore_index, xp.zeros_like(labels), labels)
        if num_classes == 1:
            # A single-channel binary input with a 0/1 label map: the label is the target.
            target = xp.astype(labels, dtype)
    if target is not None and target.dtype != dtype:
        target = xp.astype(target, dtype)

    spatial = tuple(a for a in range(1, y_pred.ndim) if a != axis)
    reduce_axes = ((0,) if batch else ()) + spatial
    return PreparedInputs(
        xp, class_axis=axis, reduce_axes=reduce_axes, probs=None if log_probs is not None else y_pred,
        target=target,
        labels=labels if num_classes > 1 or not binary_loss else None, weights=weights,
        log_probs=log_probs, sigmoid_logits=y_pred if activation == "sigmoid" else None,
        all_reduce=all_reduce, soft_label=soft_label,
    )
