r"""Closed-form gradients of the confusion sums, registered as a torch ``autograd.Function``.

Every region loss is a formula of three additive sums per sample and class,

.. math::

    TP_c = \sum_i m_i\, y_{ic}\, p_{ic}, \qquad P_c = \sum_i m_i\, p_{ic}, \qquad
    A_c = \sum_i m_i\, y_{ic},

so whatever the formula, its gradient with respect to the prediction is

.. math::

    \frac{\partial L}{\partial p_{ic}} = m_i \left(\frac{\partial L}{\partial P_c}
      + \frac{\partial L}{\partial TP_c}\, y_{ic}\right),

with ``y_ic = [label_i = c]`` for integer labels. From logits, ``p = softmax(z)`` (or
``sigmoid(z)``) is computed inside the function too, and the gradient with respect to
``z`` is that gradient through the activation's own backward kernel: one softmax, three
sums and no temporaries kept forward; one broadcast write, a scatter of the labelled class
and one softmax backward, backward. Autograd on the plain expressions replays every
temporary instead (the products, the ``where`` over a boolean one-hot, the broadcast masks).

* :func:`confusion_sums` returns ``None`` (the caller then uses the array-API expressions)
  for other libraries, under ``torch.compile`` or tracing (inductor fuses the plain
  expressions itself), for soft labels, when the target or the weights require gradients,
  and on devices other than the CPU (measured on an H200 in an earlier version: host-bound
  there; not re-measured since).
* Double backward (``create_graph=True``) works: the backward pass is written with
  differentiable torch operations, the sums are linear in ``p``, and with logits the
  activation is recomputed from ``z`` inside the recorded graph.
* ``all_reduce`` is applied by the caller to the returned sums, so it still sees every
  additive statistic.
"""

from __future__ import annotations

_FUNCTION = None  # the autograd.Function, built on first use (lossfns imports no framework)


def confusion_sums(xp, values, *, activation, target, labels, weights, reduce_axes, class_axis, soft_label):
    """``(tp, predicted, actual)`` per kept axis through the fused torch path, or ``None``.

    ``values`` are probabilities (``activation=None``) or logits (``"softmax"``, ``"sigmoid"``).
    """
    from array_api_compat import is_torch_namespace

    if soft_label or not reduce_axes or not is_torch_namespace(xp):
        return None  # with no reduced axis torch's sum(dim=()) would sum everything
    if values.device.type != "cpu":
        return None
    import torch

    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    if any(t is not None and t.requires_grad for t in (target, weights)):
        return None
    if labels is not None and labels.dtype != torch.int64:
        labels = labels.long()  # gather and scatter index with int64
    return _function().apply(values, target, labels, weights, tuple(sorted(reduce_axes)), class_axis, activation)


def _function():
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _build_function()
    return _FUNCTION


def _activate(values, activation, class_axis):
    if activation == "softmax":
        return values.softmax(class_axis)
    return values if activation is None else values.sigmoid()


def _build_function():
    import torch

    class ConfusionSums(torch.autograd.Function):
        """``(TP, P, A)`` of ``p`` (or of the activated logits) against dense ``y`` or
        integer ``labels``, masked by ``m``."""

        @staticmethod
        def forward(ctx, values, y, labels, m, axes, class_axis, activation):
            with torch.no_grad():
                p = _activate(values, activation, class_axis)
                predicted = _weighted_sum(p, m, axes)
                in_range = None
                if labels is None:
                    tp = _weighted_sum(p, y if m is None else y * m, axes)
                    actual = _weighted_sum(y, m, axes)
                elif p.numel() <= SMALL:
                    y = labels == _class_index(p.shape[class_axis], p.ndim, class_axis, p.device)
                    weighted = y if m is None else y * m
                    tp = (p * weighted).sum(dim=axes)
                    actual = weighted.sum(dim=axes).to(p.dtype)
                    labels = None  # the boolean one-hot stands in for the labels from here on
                elif p.shape[class_axis] <= ONE_HOT_CLASSES and p.dtype in (torch.float32, torch.float64):
                    # Few classes: a one-hot of p's dtype costs one compare and makes the sums and
                    # the backward those of dense labels (dot products, one addcmul), faster than
                    # a gather and per-row counts; a label outside [0, C) matches no class.
                    y = (labels == _class_index(p.shape[class_axis], p.ndim, class_axis, p.device)).to(p.dtype)
                    tp = _weighted_sum(p, y if m is None else y * m, axes)
                    actual = _weighted_sum(y, m, axes)
                    labels = None
                else:
                    labels, in_range = _labels_in_range(labels, p.shape[class_axis])
                    tp, actual = _label_sums(p, labels, in_range, m, axes, class_axis)
            ctx.set_materialize_grads(False)  # no zeros for the gradient of A (never used)
            ctx.save_for_backward(y, labels, in_range, m, None if activation is None else p, values)
            ctx.axes, ctx.class_axis, ctx.shape, ctx.activation = axes, class_axis, p.shape, activation
            ctx.kept_shape = predicted.shape
            ctx.mark_non_differentiable(actual)
            return tp, predicted, actual

        @staticmethod
        def backward(ctx, grad_tp, grad_predicted, _grad_actual):
            y, labels, in_range, m, p, values = ctx.saved_tensors
            if grad_tp is None:  # a loss of P alone (not materialised as zeros)
                grad_tp = torch.zeros(ctx.kept_shape, dtype=values.dtype, device=values.device)
            if grad_predicted is None:
                grad_predicted = torch.zeros_like(grad_tp)
            grad = _broadcast_gradient(ctx, grad_tp, grad_predicted, y, labels, in_range, m)
            if ctx.activation is not None:
                if torch.is_grad_enabled():  # create_graph: p must depend on z in the graph
                    p = _activate(values, ctx.activation, ctx.class_axis)
                if ctx.activation == "softmax":
                    grad = torch.ops.aten._softmax_backward_data(grad, p, ctx.class_axis, p.dtype)
                else:
                    grad = torch.ops.aten.sigmoid_backward(grad, p)
            return grad, None, None, None, None, None, None

    return ConfusionSums


#: Up to this many prediction elements, integer labels are compared with every class (a
#: boolean one-hot) instead of gathered and counted: on small inputs every kernel launch
#: costs more than the data it touches (7 operations forward instead of 17). Larger
#: volumes gather: no temporary of the prediction's size.
SMALL = 1 << 16

#: Up to this many classes, integer labels on large inputs become a one-hot of the
#: prediction's dtype (one temporary of its size); above, they are gathered and counted.
ONE_HOT_CLASSES = 8

_CLASS_INDEX: dict = {}


def _class_index(classes: int, ndim: int, class_axis: int, device):
    """``arange(C)`` shaped to broadcast along the class axis, made once per layout."""
    import torch

    key = (classes, ndim, class_axis, device)
    if key not in _CLASS_INDEX:
        shape = [1] * ndim
        shape[class_axis] = classes
        _CLASS_INDEX[key] = torch.arange(classes, device=device).reshape(shape)
    return _CLASS_INDEX[key]


def _labels_in_range(labels, classes: int):
    """``(labels, in_range)``: ``in_range`` is ``None`` when every label is in ``[0, C)``
    (the usual case: no copy kept); else labels outside are moved to class 0 and
    ``in_range`` marks the others. A label outside hits no class, as ``labels == c``."""
    import torch

    low, high = torch.aminmax(labels)
    if low.item() >= 0 and high.item() < classes:  # on the CPU only: no device sync
        return labels, None
    in_range = (labels >= 0) & (labels < classes)
    return torch.where(in_range, labels, 0), in_range


def _keepdims_shape(shape, axes):
    return tuple(1 if a in axes else s for a, s in enumerate(shape))


def _weighted_sum(x, m, axes):
    """``Σ x·m`` over ``axes``; a batched dot product (no product array) where the layout
    allows one: ``axes`` trailing, both contiguous, ``m`` of ``x``'s shape or with a size-1
    axis just before the reduced ones (the class axis, channels-first)."""
    import torch

    if m is None:
        return x.sum(dim=axes)
    kept = x.ndim - len(axes)
    out_shape = x.shape[:kept]
    trailing = axes == tuple(range(kept, x.ndim)) and kept >= 1
    if trailing and x.is_contiguous() and m.is_contiguous() and m.shape[kept:] == x.shape[kept:]:
        size = x[(0,) * kept].numel()
        if m.shape == x.shape:
            return _row_dots(x.reshape(-1, size), m.reshape(-1, size)).reshape(out_shape)
        if m.shape[:kept - 1] == x.shape[:kept - 1] and m.shape[kept - 1] == 1:  # [K, C, N] @ [K, N, 1]
            return torch.bmm(x.reshape(-1, x.shape[kept - 1], size), m.reshape(-1, size, 1)).reshape(out_shape)
    return (x * m).sum(dim=axes)


#: Most rows (samples × classes) summed as one BLAS dot product each; more rows, or other
#: dtypes, multiply and sum.
_DOT_ROWS = 64


def _row_dots(x, m):
    """``Σ_n x[k, n]·m[k, n]`` for each row ``k`` of two contiguous ``[K, N]`` arrays.

    One ``torch.dot`` per row: for 8 rows of 96³ float32, 2.7 ms on one thread and 1.6-2.4 ms
    on two, where a batched ``bmm`` of ``[K, 1, N] @ [K, N, 1]`` took 8.7 ms and 11.7-13.2 ms
    (it does not split the long dot products over threads, and contends with two) and a
    product and a sum 6.1 and 2.9-3.9 ms (a full-size temporary).
    """
    import torch

    if x.dtype == m.dtype and x.dtype in (torch.float32, torch.float64) and x.shape[0] <= _DOT_ROWS:
        return torch.stack([torch.dot(a, b) for a, b in zip(x, m)])
    return (x * m).sum(dim=-1)


def _label_sums(p, labels, in_range, m, axes, class_axis):
    """``TP`` and ``A`` for integer labels: a gather of the labelled class, then per-row
    counts over ``[rows, C]`` (``bincount`` on ``row·C + label``, accumulated in float64:
    one addition per element, no float32 drift on large volumes)."""
    import torch

    classes = p.shape[class_axis]
    rows = 1 if 0 in axes else labels.shape[0]  # the batch axis is the only other kept axis
    index = labels.reshape(rows, -1)
    if rows > 1:
        index = index + torch.arange(0, rows * classes, classes, device=p.device).unsqueeze(1)
    index = index.reshape(-1)
    hit = torch.gather(p, class_axis, labels).reshape(-1).double()
    weight = None if in_range is None else in_range.reshape(-1).double()
    if m is not None:
        mask = m.expand(labels.shape).reshape(-1).double()
        weight = mask if weight is None else weight * mask
    if weight is not None:
        hit = hit * weight
    out_shape = [s for a, s in enumerate(p.shape) if a not in axes]
    bins = rows * classes
    tp = torch.bincount(index, weights=hit, minlength=bins)
    actual = torch.bincount(index, weights=weight, minlength=bins)
    return tp.to(p.dtype).reshape(out_shape), actual.to(p.dtype).reshape(out_shape)


#: Elements a broadcast coefficient is materialised over, along the trailing axes.
_TRAILING_BLOCK = 64


def _with_trailing_block(coefficient, full_shape):
    """``coefficient`` (size 1 on the reduced axes) expanded to full size over the fewest
    trailing axes that hold ``_TRAILING_BLOCK`` elements, and made contiguous.

    torch's CPU kernels vectorise a broadcast operand only when its inner stride is 1 or
    when it is the one stride-0 operand; ``addcmul`` with two per-class coefficients fell
    back to a scalar loop (2.9 ms against 1.2 ms for 8×4×256² on one thread). The copy is
    ``1/H`` of the volume or less.
    """
    shape, block = list(coefficient.shape), 1
    for axis in range(len(full_shape) - 1, -1, -1):
        shape[axis] = full_shape[axis]
        block *= full_shape[axis]
        if block >= _TRAILING_BLOCK:
            break
    return coefficient.expand(shape).contiguous()


def _broadcast_gradient(ctx, grad_tp, grad_predicted, y, labels, in_range, m):
    """``m · (∂L/∂P + ∂L/∂TP · y)`` in one broadcast write (plus a scatter for labels)."""
    import torch

    shape = _keepdims_shape(ctx.shape, ctx.axes)
    grad_tp, grad_predicted = grad_tp.reshape(shape), grad_predicted.reshape(shape)
    if labels is None and y.dtype == torch.bool:  # small inputs: one select, no blocks
        grad = torch.where(y, grad_predicted + grad_tp, grad_predicted)
        return grad if m is None else grad * m
    if labels is None:
        full = ctx.shape
        grad = torch.addcmul(_with_trailing_block(grad_predicted, full), y, _with_trailing_block(grad_tp, full))
        return grad if m is None else grad * m
    axis = ctx.class_axis
    if m is None:
        grad = grad_predicted.expand(ctx.shape).clone(memory_format=torch.contiguous_format)
    else:
        m = m.expand(labels.shape)
        grad = grad_predicted * m  # a fresh full-size array by broadcasting
    by_class = list(labels.shape)
    by_class[axis] = ctx.shape[axis]
    at_label = torch.gather(grad_tp.expand(by_class), axis, labels)
    if in_range is not None:
        at_label = at_label * in_range
    if m is not None:
        at_label = at_label * m
    return grad.scatter_add_(axis, labels, at_label)
