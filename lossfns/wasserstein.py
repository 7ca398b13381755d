"""Generalized Wasserstein Dice loss (Fidon et al. 2017): a Dice ratio in which a mistake
costs the distance between the true and the predicted class (docs: Losses › Generalized
Wasserstein Dice).

Every quantity is a per-class sum over the elements, so the loss is exact under
``all_reduce``: the label masses ``A_l = Σ m·y_l`` and the transport costs ``T_l = Σ m·y_l·W_l``
are summed over the replicas before any formula sees them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._namespace import is_tensorflow_namespace
from ._typing import Array, Epsilon
from .domains import SMOOTHING, Choice, Domain, check_real
from .inputs import Prepared, prepare

WEIGHTINGS = ("default", "gdl")
WEIGHTING = Choice(WEIGHTINGS, strings_only=True)


@dataclass(frozen=True)
class DistanceMatrix(Domain):
    """A ``C × C`` matrix of distances between classes: finite, ``>= 0``, zero diagonal and a
    positive maximum. Nested sequences or a 2-D array (anything with ``tolist``) are
    returned as a tuple of tuples of floats, as given (hashable: the JAX adapter passes
    options as static arguments); the loss divides by the maximum."""

    def check(self, name: str, value):
        if value is None:
            raise TypeError(f"{name} is required: a C × C matrix of distances between the classes")
        rows = _rows(name, value)
        size = len(rows)
        if any(len(row) != size for row in rows):
            lengths = ", ".join(str(len(row)) for row in rows)
            raise ValueError(f"{name} must be a square C × C matrix (one row and one column per class); "
                             f"got {size} rows of lengths {lengths}")
        matrix = tuple(tuple(check_real(f"{name}[{i}][{j}]", x) for j, x in enumerate(row))
                       for i, row in enumerate(rows))
        for i, row in enumerate(matrix):
            for j, x in enumerate(row):
                if x < 0:
                    raise ValueError(f"{name}[{i}][{j}] must be >= 0 (a distance), got {x}")
            if row[i] != 0:
                raise ValueError(f"{name}[{i}][{i}] must be 0 (the distance of a class to itself), got {row[i]}")
        if not any(x > 0 for row in matrix for x in row):
            raise ValueError(f"{name} must have a positive entry (it is divided by its maximum); "
                             f"got all zeros ({size} × {size})")
        return matrix

    def invalid_examples(self) -> tuple:
        return (((0.0, 1.0, 1.0), (1.0, 0.0, 1.0)), ((0.0, -1.0), (1.0, 0.0)),
                ((0.0, math.inf), (1.0, 0.0)), ((0.5, 1.0), (1.0, 0.0)), ((0.0, 0.0), (0.0, 0.0)))

    def describe(self) -> str:
        return "a C × C matrix of finite distances >= 0 with a zero diagonal and a positive entry"


def _rows(name: str, value) -> list:
    """The rows of a 2-D nested sequence; anything of another rank is a ``ValueError``."""
    if hasattr(value, "tolist"):  # a NumPy array or a tensor given at construction
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a C × C matrix (nested sequences or a 2-D array), "
                        f"got {value!r} of type {type(value).__name__}")
    rows = list(value)
    for i, row in enumerate(rows):
        is_row = isinstance(row, Sequence) and not isinstance(row, (str, bytes))
        if not is_row or any(isinstance(x, Sequence) and not isinstance(x, (str, bytes)) for x in row):
            rank = "1-D" if not is_row else "more than 2-D"
            raise ValueError(f"{name} must be a C × C matrix; got a {rank} value (row {i}: {row!r})")
    if not rows:
        raise ValueError(f"{name} must be a C × C matrix with C >= 2; got an empty matrix")
    return rows


DISTANCE_MATRIX = DistanceMatrix()


def example_distance_matrix(num_classes: int) -> tuple:
    """``|i - j|`` between classes (a single channel is two classes): a valid matrix for any
    input, the one the parity run and the generic tests pass."""
    classes = max(num_classes, 2)
    return tuple(tuple(float(abs(i - j)) for j in range(classes)) for i in range(classes))


def normalised(matrix) -> tuple:
    """``M / max(M)`` as a tuple of tuples (MONAI's normalisation: the largest distance is 1)."""
    largest = max(x for row in matrix for x in row)
    return tuple(tuple(x / largest for x in row) for row in matrix)


def _check_size(matrix, num_classes: int) -> None:
    if len(matrix) != num_classes:
        raise ValueError(f"distance_matrix is {len(matrix)} × {len(matrix)} but y_pred has {num_classes} "
                         "classes (one row and one column per class)")


def distance_map(inputs: Prepared, matrix):
    r"""``W_{il} = Σ_c M[l, c]·p_{ic}`` for every class ``l``, in ``p``'s layout.

    One matrix product over the class axis: ``p @ Mᵀ`` with the classes last, else
    ``M @ p`` on the ``[lead, C, trailing]`` view (a reshape, no transpose, channels first).
    TensorFlow, whose traced sizes may be unknown, contracts with ``tensordot``.
    """
    xp, axis, p = inputs.xp, inputs.class_axis, pr.probabilities(inputs)
    if is_tensorflow_namespace(xp):
        import tensorflow as tf

        transposed = tf.constant(tuple(zip(*matrix)), dtype=p.dtype)
        return tf.experimental.numpy.moveaxis(tf.tensordot(p, transposed, axes=[[axis], [0]]), -1, axis)
    if axis == p.ndim - 1:
        return xp.matmul(p, xp.asarray(tuple(zip(*matrix)), dtype=p.dtype, device=inputs.device))
    shape = tuple(p.shape)
    trailing = math.prod(shape[axis + 1:])
    flat = xp.reshape(p, (-1, inputs.num_classes, trailing))
    table = xp.asarray(matrix, dtype=p.dtype, device=inputs.device)
    return xp.reshape(xp.matmul(table, flat), shape)


def _reduce(inputs: Prepared, *sums):
    """``all_reduce`` each additive sum, else return them as they are."""
    return sums if inputs.all_reduce is None else tuple(inputs.all_reduce(s) for s in sums)


def class_sums(inputs: Prepared, matrix):
    """``(A, T)`` per class, ``[..., C]``: ``A_l = Σ m·y_l`` and ``T_l = Σ m·y_l·W_l``,
    after ``all_reduce``: every formula of the loss reads these two additive sums.

    Sparse labels gather ``W`` at the labelled class and select the class with the boolean
    ``labels == l`` (a label outside ``[0, C)`` belongs to no class); in torch eager on the
    CPU a fused function computes both sums (:func:`_fused_class_sums`).
    """
    xp, axes, m = inputs.xp, inputs.reduce_axes, inputs.weights
    if inputs.target is not None:
        y = inputs.target if m is None else inputs.target * m
        return _reduce(inputs, nx.blocked_sum(xp, y, axes), nx.blocked_sum(xp, y * distance_map(inputs, matrix), axes))
    fused = _fused_class_sums(inputs, matrix)
    if fused is not None:
        return _reduce(inputs, *fused)
    hit = pr.class_mask(inputs)
    costs = pr.gather(inputs, distance_map(inputs, matrix))
    if m is None:
        mass = nx.count_true(xp, hit, axes, inputs.dtype)
    else:
        mass = nx.blocked_sum(xp, xp.where(hit, m, 0.0), axes)
        costs = costs * m
    return _reduce(inputs, mass, nx.blocked_sum(xp, xp.where(hit, costs, 0.0), axes))


def generalized_wasserstein_dice_kernel(inputs: Prepared, *, distance_matrix: Sequence[Sequence[float]],
                                        weighting: str = "default", epsilon: Epsilon = 1e-5,
                                        background_index: int = 0) -> Array:
    """Generalized Wasserstein Dice of prepared inputs (the class sums after ``all_reduce``).

    ``TP = Σ_l a_l·(A_l - T_l)`` and ``E = Σ_l T_l``; the ``"gdl"`` denominator is
    ``Σ_l a_l·(2·A_l - T_l)``, with ``a_l = 1/(A_l + 1)`` from the reduced label masses.
    """
    xp = inputs.xp
    _check_size(distance_matrix, inputs.num_classes)
    mass, costs = class_sums(inputs, normalised(distance_matrix))
    if weighting == "default":
        background = v.check_background_index(background_index, inputs.num_classes)
        kept = [c for c in range(inputs.num_classes) if c != background]
        kept_mass, kept_costs = pr.select_classes(inputs, kept, mass, costs, axis=-1)
        tp = xp.sum(kept_mass - kept_costs, axis=-1)
        denominator = 2.0 * tp + xp.sum(costs, axis=-1)
    else:
        alpha = 1.0 / (mass + 1.0)  # a constant of the labels: no prediction in it
        tp = xp.sum(alpha * (mass - costs), axis=-1)
        denominator = tp + xp.sum(alpha * mass, axis=-1)
    return 1.0 - nx.smoothed_ratio(xp, 2.0 * tp, denominator, epsilon)


# --- torch eager: the class sums of sparse labels with a closed-form backward -------------

_FUNCTION = None  # the autograd.Function, built on first use (lossfns imports no framework)


def _fused_class_sums(inputs: Prepared, matrix):
    """``(A, T)`` of sparse labels through :func:`_build_function`, or ``None``.

    Used in torch eager on the CPU with channels first or last (``None`` elsewhere:
    other libraries, ``torch.compile`` and tracing, where inductor fuses the plain
    expressions, other devices, a class axis in the middle). The plain expressions form
    ``W = M·p`` over the volume, gather it at the labels and select with a boolean one-hot;
    autograd replays each of them backward. Here the forward is the activation and one
    scatter of ``p`` into each sample's ``C × C`` soft confusion matrix (``T`` follows from
    ``M`` on that small matrix), and the backward one row lookup per element and the
    activation's own backward kernel: 0.6× MONAI's forward and backward time on a quiet CPU
    (2×4×96³, two threads), 0.2-0.4× with the ``"gdl"`` weighting or under load.
    """
    from array_api_compat import is_torch_namespace

    values, axis = inputs.reference, inputs.class_axis
    if (not is_torch_namespace(inputs.xp) or values.device.type != "cpu" or axis not in (1, values.ndim - 1)
            or values.numel() == 0):
        return None
    import torch

    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    m = inputs.weights
    if m is not None and m.requires_grad:
        return None
    index, in_range = pr.labelled_index(inputs)
    if in_range is not None:  # a label outside [0, C) belongs to no class: weight 0
        m = in_range.to(values.dtype) if m is None else m * in_range
    table = torch.tensor(matrix, dtype=values.dtype, device=values.device)
    costs, mass = _function().apply(values, index, m, table, axis, inputs.activation)
    if 0 in inputs.reduce_axes:  # batch=True: the per-sample sums are summed too
        costs, mass = costs.sum(0), mass.sum(0)
    return mass, costs


def _function():
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _build_function()
    return _FUNCTION


def _rows_at_label(torch, tables, index, axis: int, shape):
    """``out[b, ..., c, ...] = tables[b, y, c]`` with ``y`` the element's label: row ``y``
    of its sample's ``C × C`` table laid along the class axis (first or last).

    One ``gather`` from the small table with the labels broadcast over the classes (no
    one-hot; 2.6 ms for 2×4×96³ against 5 ms for an ``index_select`` per sample, measured).
    """
    batch, classes = tables.shape[0], tables.shape[-1]
    flat = index.reshape(batch, -1)
    if axis == 1:  # [b, c, l]: out[b, c, i] = tables[b, y_i, c]
        rows = torch.gather(tables.transpose(1, 2), 2, flat[:, None, :].expand(batch, classes, flat.shape[1]))
    else:  # out[b, i, c] = tables[b, y_i, c]
        rows = torch.gather(tables, 1, flat[:, :, None].expand(batch, flat.shape[1], classes))
    return rows.reshape(shape)


#: Elements per accumulator of :func:`_scatter_sums`.
SCATTER_BLOCK = 4096


def _scatter_sums(torch, flat_index, values, classes: int):
    """``out[b, k, l] = Σ_i [index[b, i] = l]·values[b, k, i]``: ``values`` is ``[batch, K, n]``,
    ``flat_index`` ``[batch, n]``; accumulated in blocks.

    ``scatter_add`` adds in order, so one float32 accumulator per class over a whole
    sample stalls at 2^24 (SPEC §9); blocks of :data:`SCATTER_BLOCK` elements each get their
    own accumulators (8e-8 relative error measured on 96³, against 9e-6 unblocked, at the
    same speed: the blocks also run in parallel), summed afterwards by torch's cascaded sum.
    """
    batch, rows, n = values.shape
    index = flat_index[:, None, :].expand(batch, rows, n)
    main = n - n % SCATTER_BLOCK
    out = torch.zeros((batch, rows, classes), dtype=values.dtype, device=values.device)
    if main:
        shape = (batch, rows, main // SCATTER_BLOCK, SCATTER_BLOCK)
        blocks = torch.zeros(shape[:3] + (classes,), dtype=values.dtype, device=values.device)
        blocks.scatter_add_(3, index[..., :main].reshape(shape), values[..., :main].reshape(shape))
        out = blocks.sum(2)
    if main < n:
        out = out.scatter_add_(2, index[..., main:], values[..., main:])
    return out


def _by_class(p, axis: int):
    """``[batch, C, n]`` view of ``p`` (a transposed view with the classes last)."""
    if axis == 1:
        return p.reshape(p.shape[0], p.shape[1], -1)
    return p.reshape(p.shape[0], -1, p.shape[-1]).transpose(1, 2)


def _build_function():
    import torch

    def activate(values, activation, axis):
        if activation == "softmax":
            return values.softmax(axis)
        return values if activation is None else values.sigmoid()

    class ClassSums(torch.autograd.Function):
        """``T[b, l] = Σ_i m_i·[y_i = l]·W_i`` and ``A[b, l] = Σ_i m_i·[y_i = l]`` with
        ``W_i = Σ_c M[y_i, c]·p_ic``, so ``T[b, l] = Σ_c M[l, c]·S[b, c, l]`` with ``S`` the
        soft confusion matrix. ``T`` is linear in ``p``: ``∂T[b, l]/∂p_ic = m_i·[y_i = l]·M[l, c]``,
        so the gradient of ``p`` is row ``y_i`` of ``diag(∂L/∂T[b])·M``, times ``m_i``."""

        @staticmethod
        def forward(ctx, values, index, m, table, axis, activation):
            with torch.no_grad():
                p = activate(values, activation, axis)
                flat = index.reshape(index.shape[0], -1)
                weighted = p if m is None else p * m
                # S[b, c, l] = Σ_i m_i·[y_i = l]·p_ic, the soft confusion matrix; T_l = Σ_c M[l, c]·S[c, l].
                confusion = _scatter_sums(torch, flat, _by_class(weighted, axis), table.shape[0])
                cost_sums = (table * confusion.transpose(1, 2)).sum(-1)
                if m is None and activation == "softmax":  # Σ_c p_ic = 1: S's columns count the labels
                    mass = confusion.sum(1)
                else:
                    weights = torch.ones((), dtype=p.dtype, device=p.device).expand(flat.shape) if m is None \
                        else m.reshape(flat.shape)
                    mass = _scatter_sums(torch, flat, weights[:, None, :], table.shape[0])[:, 0]
            ctx.save_for_backward(values, index, m, table, None if activation is None else p)
            ctx.axis, ctx.activation = axis, activation
            ctx.mark_non_differentiable(mass)
            return cost_sums, mass

        @staticmethod
        def backward(ctx, grad_costs, _grad_mass):
            values, index, m, table, p = ctx.saved_tensors
            axis, activation = ctx.axis, ctx.activation
            grad = _rows_at_label(torch, grad_costs.unsqueeze(-1) * table, index, axis, values.shape)
            if m is not None:
                grad = grad * m
            if activation is not None:
                if torch.is_grad_enabled():  # create_graph: p must depend on the logits in the graph
                    p = activate(values, activation, axis)
                if activation == "softmax":
                    grad = torch.ops.aten._softmax_backward_data(grad, p, axis, p.dtype)
                else:
                    grad = torch.ops.aten.sigmoid_backward(grad, p)
            return grad, None, None, None, None, None

    return ClassSums


@v.validated(two_channels=True, distance_matrix=DISTANCE_MATRIX, weighting=WEIGHTING, epsilon=SMOOTHING)
def generalized_wasserstein_dice_loss(y_true: Array, y_pred: Array, *,
                                      distance_matrix: Sequence[Sequence[float]] | Array,
                                      weighting: Literal["default", "gdl"] = "default",
                                      epsilon: Epsilon = 1e-5, background_index: int = 0,
                                      class_axis: int = -1,
                                      from_logits: bool | Literal["softmax", "sigmoid"] = False,
                                      mask: Array | None = None, ignore_index: int | None = None,
                                      batch: bool = False, validate: bool = False,
                                      all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Generalized Wasserstein Dice loss (Fidon et al. 2017).

    .. math::
        W_{il} = \sum_c M_{lc}\,p_{ic},\quad
        TP = \sum_i m_i \sum_l y_{il}\,a_l\,(1 - W_{il}),\quad
        E = \sum_i m_i \sum_l y_{il}\,W_{il}

        L_{default} = 1 - \frac{2\,TP + \epsilon_n}{2\,TP + E + \epsilon_d}
        \qquad
        L_{gdl} = 1 - \frac{2\,TP + \epsilon_n}{\sum_i m_i \sum_l y_{il}\,a_l\,(2 - W_{il}) + \epsilon_d}

    ``M`` is ``distance_matrix`` divided by its maximum; ``W_il`` is the Wasserstein
    distance between the prediction and the point mass of class ``l``. ``"default"``:
    ``a_l`` is 0 for ``background_index`` and 1 otherwise (the paper); ``"gdl"``:
    ``a_l = 1/(A_l + 1)`` with ``A_l = Σ m·y_l`` per sample (of the batch with
    ``batch=True``, after ``all_reduce``: exact under data parallelism). The weights are
    constants of the labels. A single channel is expanded to ``[1 - p, p]`` (a 2 × 2
    matrix). MONAI's ``GeneralizedWassersteinDiceLoss(M, weighting_mode=W, smooth_nr=ε,
    smooth_dr=ε, reduction="none")``, which always applies a softmax, equals this with
    ``from_logits=True`` and ``epsilon=ε`` (its ``"GDL"`` is ``"gdl"``).

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` (one-hot or soft: weights over
        the classes) or integer class indices ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      distance_matrix: required; ``C × C`` distances between the classes (nested sequences
        or a 2-D array): finite, >= 0, zero diagonal, at least one positive entry.
      weighting: ``"default"`` or ``"gdl"``.
      epsilon: smoothing, >= 0, or a ``(numerator, denominator)`` pair.
      background_index: the background class of the ``"default"`` weighting.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the common
        options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced Multi-class
      Segmentation using Holistic Convolutional Networks", BrainLes 2017.
      Tilborghs et al., "Comparative study of deep learning methods for the automatic
      segmentation of lung, lesion and lesion type in CT scans of COVID-19 patients",
      arXiv:2007.15546 (the ``"gdl"`` weighting).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]]])
      >>> distances = [[0, 1, 1], [1, 0, 0.5], [1, 0.5, 0]]
      >>> loss = lossfns.generalized_wasserstein_dice_loss(
      ...     np.array([[0, 1, 2]]), probs, distance_matrix=distances)
      >>> print(np.round(loss, 4))
      [0.1667]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     two_channels=True, per_class={"background_index": background_index})
    return generalized_wasserstein_dice_kernel(inputs, distance_matrix=distance_matrix, weighting=weighting,
                                               epsilon=epsilon, background_index=background_index)


__all__ = ["DISTANCE_MATRIX", "DistanceMatrix", "generalized_wasserstein_dice_kernel",
           "generalized_wasserstein_dice_loss"]
