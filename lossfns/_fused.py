r"""Closed-form gradients of the confusion sums, registered as a torch ``autograd.Function``.

Every region loss is a formula of three additive sums per sample and class,

.. math::

    TP_c = \sum_i m_i\, y_{ic}\, p_{ic}, \qquad P_c = \sum_i m_i\, p_{ic}, \qquad
    A_c = \sum_i m_i\, y_{ic},

so whatever the formula, its gradient with respect to the prediction is

.. math::

    \frac{\partial L}{\partial p_{ic}} = m_i \left(\frac{\partial L}{\partial P_c}
      + \frac{\partial L}{\partial TP_c}\, y_{ic}\right),

with ``y_ic = [label_i = c]`` for integer labels. Autograd on the plain expressions replays
every temporary of the forward pass (the products, the ``where`` over a boolean one-hot,
the broadcast masks); this module computes the sums without keeping any temporary and
writes the gradient in one pass (one broadcast write and a scatter of the labelled class
for integer labels). Only torch eager on the CPU takes this path:

* :func:`confusion_sums` returns ``None`` (the caller then uses the array-API expressions)
  for other libraries, on a GPU (there a full-size step is bound by the host's kernel
  launches, ~1.5 ms on an H200, and the fused path's extra Python made Dice 1.2× (3-D)
  to 1.6× (16-class sparse) slower relative to MONAI), under ``torch.compile`` or
  tracing (inductor fuses the plain expressions itself), for soft labels, and when the
  target or the weights require gradients.
* The backward pass is written with differentiable torch operations whose only input that
  depends on ``p`` is the incoming gradient, so ``create_graph=True`` (double backward)
  works: the sums are linear in ``p``.
* ``all_reduce`` is applied by the caller to the returned sums, so it still sees every
  additive statistic.
"""

from __future__ import annotations

_FUNCTION = None  # the autograd.Function, built on first use (lossfns imports no framework)


def confusion_sums(xp, probs, *, target, labels, weights, reduce_axes, class_axis, soft_label):
    """``(tp, predicted, actual)`` per kept axis through the fused torch path, or ``None``."""
    from array_api_compat import is_torch_namespace

    if soft_label or not reduce_axes or not is_torch_namespace(xp):
        return None  # with no reduced axis torch's sum(dim=()) would sum everything
    if probs.device.type != "cpu":
        return None  # measured on an H200: host-bound there, the extra Python costs more
    import torch

    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    if any(t is not None and t.requires_grad for t in (target, weights)):
        return None
    if labels is not None and labels.dtype != torch.int64:
        labels = labels.long()  # gather and scatter index with int64
    function = _function()
    axes = tuple(sorted(reduce_axes))
    if labels is None:
        return function.apply(probs, target, None, weights, axes, class_axis)
    return function.apply(probs, None, labels, weights, axes, class_axis)


def _function():
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _build_function()
    return _FUNCTION


def _build_function():
    import torch

    class ConfusionSums(torch.autograd.Function):
        """``(TP, P, A)`` of ``p`` against dense ``y`` or integer ``labels``, masked by ``m``."""

        @staticmethod
        def forward(ctx, p, y, labels, m, axes, class_axis):
            with torch.no_grad():
                predicted = _weighted_sum(p, m, axes)
                if labels is None:
                    tp = _weighted_sum(p, y if m is None else y * m, axes)
                    actual = _weighted_sum(y, m, axes)
                    in_range = None
                else:
                    # A label outside [0, C) hits no class (as ``labels == c`` would): it is
                    # gathered at class 0 and weighs 0 in TP, A and the scattered gradient.
                    in_range = (labels >= 0) & (labels < p.shape[class_axis])
                    if bool(in_range.all()):  # the usual case: no copy of the labels kept
                        in_range = None
                    else:
                        labels = torch.where(in_range, labels, 0)
                    tp, actual = _label_sums(p, labels, in_range, m, axes, class_axis)
            ctx.save_for_backward(y, labels, in_range, m)
            ctx.axes, ctx.class_axis, ctx.shape = axes, class_axis, p.shape
            ctx.mark_non_differentiable(actual)
            return tp, predicted, actual

        @staticmethod
        def backward(ctx, grad_tp, grad_predicted, _grad_actual):
            y, labels, in_range, m = ctx.saved_tensors
            grad = _broadcast_gradient(ctx, grad_tp, grad_predicted, y, labels, in_range, m)
            return grad, None, None, None, None, None

    return ConfusionSums


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
        if m.shape == x.shape:  # [K, 1, N] @ [K, N, 1]
            return torch.bmm(x.reshape(-1, 1, size), m.reshape(-1, size, 1)).reshape(out_shape)
        if m.shape[:kept - 1] == x.shape[:kept - 1] and m.shape[kept - 1] == 1:  # [K, C, N] @ [K, N, 1]
            return torch.bmm(x.reshape(-1, x.shape[kept - 1], size), m.reshape(-1, size, 1)).reshape(out_shape)
    return (x * m).sum(dim=axes)


def _label_sums(p, labels, in_range, m, axes, class_axis):
    """``TP`` and ``A`` for integer labels: a gather of the labelled class, then a
    scatter-add into ``[rows, C]`` (accumulated in float64: one addition per element).

    """
    import torch

    classes = p.shape[class_axis]
    rows = 1 if 0 in axes else labels.shape[0]  # the batch axis is the only other kept axis
    index = labels.reshape(rows, -1)
    hit = torch.gather(p, class_axis, labels).reshape(rows, -1).to(torch.float64)
    if in_range is None and m is None:
        weight = torch.ones((), dtype=torch.float64, device=p.device).expand(index.shape)
    else:
        weight = torch.ones(labels.shape, dtype=torch.float64, device=p.device)
        weight = weight if in_range is None else weight * in_range
        weight = (weight if m is None else weight * m.expand(labels.shape)).reshape(rows, -1)
        hit = hit * weight
    out_shape = [s for a, s in enumerate(p.shape) if a not in axes]

    def per_class(values):
        zero = torch.zeros((rows, classes), dtype=torch.float64, device=p.device)
        return zero.scatter_add_(1, index, values).to(p.dtype).reshape(out_shape)

    return per_class(hit), per_class(weight)


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
