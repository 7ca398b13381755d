"""Top-k cross-entropy (Wu et al. 2016; nnU-Net's ``TopKLoss``): the mean of the k% largest
per-element cross-entropies (docs: Losses › Top-k cross-entropy).

The k% are taken per sample (of the whole batch with ``batch=True``) with static shapes: a
top-k of static size, and with a mask a data-dependent count ``n_k`` applied as a mask over
the sorted positions, so the loss traces under ``jax.jit``, ``torch.compile`` and
``tf.function``. Selecting the largest values needs every element at once: the loss is
not a formula of additive sums and refuses ``all_reduce``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from array_api_compat import is_jax_namespace, is_torch_namespace

from . import prepared as pr
from . import validation as v
from ._namespace import is_tensorflow_namespace
from ._typing import Array
from .domains import AllReduce, Domain, check_real
from .inputs import Prepared, prepare
from .lovasz import size_of


@dataclass(frozen=True)
class Percentage(Domain):
    """A percentage in ``(0, 100]``: the share of elements a loss keeps."""

    def check(self, name: str, value) -> float:
        value = check_real(name, value)
        if not 0.0 < value <= 100.0:
            raise ValueError(f"{name} must lie in (0, 100] (a percentage of the elements), got {value}")
        return value

    def invalid_examples(self) -> tuple:
        return (0.0, 100.5, -10.0)

    def describe(self) -> str:
        return "in (0, 100]"


@dataclass(frozen=True)
class NotAdditive(AllReduce):
    """``all_reduce`` refused with the reason of a loss that ranks the whole batch (the
    wording of :class:`~lossfns.domains.AllReduce` names the Lovász losses)."""

    additive: bool = False

    def check(self, name: str, value):
        if value is not None:
            raise ValueError(
                f"{name} is not supported by topk_loss: the k% largest per-element losses of the "
                "global batch cannot be computed from per-replica sums (they rank every element of "
                "the batch together); compute it per replica without all_reduce"
            )
        return value


PERCENTAGE = Percentage()
_NOT_DISTRIBUTED = NotAdditive()


def element_cross_entropy(inputs: Prepared, sigmoid: bool):
    """The cross-entropy of each element, with a size-1 class axis.

    Categorical ``-Σ_c y_c log p_c`` (gathered at the label for sparse labels), or with a
    sigmoid the mean over the channels of ``-[y log p + (1 - y) log(1 - p)]``; sparse labels
    then pick ``log p`` at the labelled channel and ``log(1 - p)`` elsewhere.
    """
    xp, axis = inputs.xp, inputs.class_axis
    if not sigmoid:
        if inputs.target is None:
            return pr.labelled_cross_entropy(inputs)
        return -xp.sum(inputs.target * pr.log_probabilities(inputs), axis=axis, keepdims=True)
    log_p, log_q = pr.log_probabilities(inputs), pr.log_complement(inputs)
    if inputs.target is None:
        terms = xp.where(pr.class_mask(inputs), log_p, log_q)
    else:  # two products, not log_q + y·(log_p - log_q): no cancellation at logits of 1e4
        y = inputs.target
        terms = y * log_p + (1.0 - y) * log_q
    return xp.sum(terms, axis=axis, keepdims=True) * (-1.0 / inputs.num_classes)


def _rows(xp, x, batch: bool):
    """``[batch, ..., 1, ...]`` to ``[sets, elements]``: one row per sample, or one for the batch.

    Static sizes where they are known (a ``-1`` cannot be inferred for an empty batch).
    """
    shape = tuple(x.shape)
    elements = None if None in shape[1:] else math.prod(shape[1:])
    if batch:
        return xp.reshape(x, (1, -1 if None in shape else shape[0] * elements))
    return xp.reshape(x, (size_of(xp, x, 0), -1 if elements is None else elements))


def largest(xp, rows, count, *, ordered: bool):
    """The ``count`` largest values of each row, in decreasing order if ``ordered``.

    The library's top-k where it has one (a partial selection); a descending sort otherwise.
    """
    if is_torch_namespace(xp):
        import torch

        return torch.topk(rows, count, dim=-1, largest=True, sorted=ordered).values
    if is_jax_namespace(xp):
        import jax

        return jax.lax.top_k(rows, count)[0]
    if is_tensorflow_namespace(xp):
        import tensorflow as tf

        return tf.math.top_k(rows, k=count, sorted=ordered).values
    return xp.sort(rows, axis=-1, descending=True)[..., :count]


def count_kept(n: int, k: float) -> int:
    """``n_k = max(1, ⌊n·k/100⌋)``, as nnU-Net's ``int(n * k / 100)`` computes it (float64)."""
    return max(1, int(n * k / 100))


def _wide_dtypes(inputs: Prepared):
    """``(float, int)`` dtypes for the element counts: 64-bit where the library has them
    (JAX only with x64 enabled), so ``⌊n·k/100⌋`` rounds as nnU-Net's float64 does."""
    xp = inputs.xp
    if is_jax_namespace(xp):
        import jax

        if not jax.config.read("jax_enable_x64"):
            return xp.float32, xp.int32
    return xp.float64, xp.int64


def _dynamic_mean(inputs: Prepared, rows, keep, k: float):
    """Mean of the ``n_k`` largest values per row with ``n`` data-dependent (a mask or a
    size unknown at trace time): left-out elements rank last (the dtype's lowest value),
    the top-k has a static bound of positions and ``position < n_k`` selects among them."""
    xp = inputs.xp
    wide, index_dtype = _wide_dtypes(inputs)
    size = rows.shape[-1]
    if keep is None:
        n = xp.astype(xp.ones_like(rows[:, 0]), wide) * xp.astype(xp.asarray(size_of(xp, rows, 1)), wide)
    else:
        rows = xp.where(keep, rows, float(xp.finfo(rows.dtype).min))
        n = xp.astype(xp.sum(xp.astype(keep, index_dtype), axis=-1), wide)
    count = xp.astype(xp.astype(n * k / 100.0, index_dtype), wide)  # ⌊n·k/100⌋ (n·k ≥ 0)
    count = xp.where(count < 1.0, 1.0, count)
    bound = size_of(xp, rows, 1) if size is None else count_kept(size, k)
    top = largest(xp, rows, bound, ordered=True)
    position = xp.astype(xp.arange(bound, dtype=index_dtype, device=inputs.device), wide)
    selected = position[None, :] < xp.where(n > 0.0, count, 0.0)[:, None]  # none where n = 0
    total = xp.sum(xp.where(selected, top, 0.0), axis=-1)
    return total / xp.astype(count, total.dtype)


def topk_kernel(inputs: Prepared, *, k: float, sigmoid: bool, batch: bool) -> Array:
    """Top-k cross-entropy of prepared inputs: ``[sets]`` (``[]`` with ``batch=True``)."""
    xp = inputs.xp
    values = element_cross_entropy(inputs, sigmoid)
    m = inputs.weights
    if m is not None:
        values = values * m
    rows = _rows(xp, values, batch)
    size = rows.shape[-1]
    if size == 0:
        result = xp.sum(rows, axis=-1)  # no element: 0
    elif m is None and size is not None:  # n is static: so is n_k, and any order of the top will do
        count = count_kept(size, k)
        if count == size:
            result = xp.mean(rows, axis=-1)
        else:
            result = xp.sum(largest(xp, rows, count, ordered=False), axis=-1) / float(count)
    else:
        keep = None if m is None else _rows(xp, m, batch) > 0.0
        result = _dynamic_mean(inputs, rows, keep, k)
    return result[0] if batch else result


@v.validated(k=PERCENTAGE, all_reduce=_NOT_DISTRIBUTED)
def topk_loss(y_true: Array, y_pred: Array, *, k: float = 10.0, class_axis: int = -1,
              from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
              ignore_index: int | None = None, batch: bool = False, validate: bool = False,
              all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Top-k cross-entropy (Wu et al. 2016): the mean of the k% largest per-element losses.

    .. math::
        \ell_i = -\sum_c y_{ic} \log p_{ic},\qquad
        L = \frac{1}{n_k} \sum_{j=1}^{n_k} (m\,\ell)_{(j)},\qquad
        n_k = \max\left(1, \left\lfloor \frac{n\,k}{100} \right\rfloor\right)

    over the ``n`` elements with ``m > 0`` of a sample (of the batch with ``batch=True``),
    ``(m ℓ)_(j)`` the ``j``-th largest; ``n = 0`` gives 0. With a sigmoid (one channel, or
    ``from_logits="sigmoid"``) ``ℓ`` is the binary cross-entropy, averaged over the channels.
    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` inside the logs; logits go through
    log-softmax / log-sigmoid. nnU-Net's ``TopKLoss(k=K)`` equals this with ``batch=True,
    from_logits=True`` whenever ``n·K ≥ 100`` (below that it averages no element: NaN).

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      k: the percentage of elements kept, in (0, 100]; 100 is the cross-entropy itself.
      class_axis, from_logits, mask, ignore_index, batch, validate: the common options (see
        the concepts page of the documentation). A masked or ignored element is left out of
        the ranking and of ``n``.
      all_reduce: must be ``None``: the loss is not additive over replicas.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Wu, Shen & van den Hengel, "Bridging category-level and instance-level semantic image
      segmentation", arXiv:1605.06885, 2016.
      Isensee et al., "nnU-Net ...", Nature Methods, 2021 (``TopKLoss``).

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]])
      >>> print(np.round(lossfns.topk_loss(np.array([[0, 1, 1, 0]]), probs, k=50), 4))
      [0.6365]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate)
    sigmoid = inputs.num_classes == 1 or inputs.activation == "sigmoid"
    return topk_kernel(inputs, k=k, sigmoid=sigmoid, batch=batch)


__all__ = ["PERCENTAGE", "NotAdditive", "Percentage", "topk_kernel", "topk_loss"]
