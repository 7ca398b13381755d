"""Deep supervision (docs: Concepts › Deep supervision): one loss over several output resolutions, weighted and summed.

Level ``i`` is scored against the target (and mask) downsampled by keeping, along each
spatial axis, the element at ``⌊(2j + 1)·n_in / (2·n_out)⌋``: torch's ``nearest-exact``
interpolation as used by MONAI and nnU-Net, in exact integer arithmetic (the centre
``f·j + ⌊f/2⌋`` of each block for an integer factor ``f``). Integer factors are basic
slices, other ratios a ``take`` of static indices: it works on every array library and
traces under every compiler.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from . import domains as d
from . import numerics as nx
from . import validation as v
from ._namespace import array_namespace
from ._typing import Array

LEVEL_WEIGHTINGS = ("exp", "same")


def check_level_weights(weights: object) -> str | tuple[float, ...] | None:
    """``weights`` checked before the number of outputs is known: ``None``, a name or a tuple."""
    if weights is None:
        return None
    if isinstance(weights, str):
        return v.check_choice("weights", weights, LEVEL_WEIGHTINGS)
    return v.check_weights("weights", weights)


def level_weights(weights: str | Sequence[float] | None, levels: int) -> tuple[float, ...]:
    """The weight of each of ``levels`` outputs, highest resolution first.

    * ``None``: nnU-Net's ``2^-i`` with the lowest resolution at 0, normalised to sum 1
      (a single level weighs 1);
    * ``"exp"``: MONAI's ``max(0.5^i, 1/16)``; ``"same"``: 1 each;
    * a sequence of ``levels`` non-negative numbers: as given.
    """
    if weights is None:
        raw = [0.5**i for i in range(levels)]
        if levels > 1:
            raw[-1] = 0.0  # nnU-Net does not supervise the lowest resolution
        return tuple(w / sum(raw) for w in raw)
    if isinstance(weights, str):
        v.check_choice("weights", weights, LEVEL_WEIGHTINGS)
        if weights == "exp":
            return tuple(max(0.5**i, 1.0 / 16.0) for i in range(levels))
        return (1.0,) * levels
    weights = d.PerClass().check_sequence("weights", weights)
    v.check_length("weights", weights, levels, what="deep-supervision levels")
    return weights


def _element_shape(shape: Sequence[int | None], class_axis: int) -> tuple[int | None, ...]:
    return tuple(shape[:class_axis]) + tuple(shape[class_axis + 1:])


def source_indices(size_in: int, size_out: int) -> list[int]:
    """The element each of ``size_out`` positions keeps from ``size_in``: ``⌊(2j + 1)·n_in /
    (2·n_out)⌋``, torch's ``nearest-exact``, in exact integer arithmetic (``f·j + ⌊f/2⌋``,
    the centre of each block, for an integer factor ``f``)."""
    return [((2 * j + 1) * size_in) // (2 * size_out) for j in range(size_out)]


def level_indices(full_shape: tuple[int | None, ...], level_shape: tuple[int | None, ...], class_axis: int, *,
                  level: int) -> tuple[list[int] | None, ...]:
    """Per element axis (batch first): ``None`` where the level keeps every element, else
    the source index of each of its elements."""
    full = _element_shape(full_shape, class_axis)
    small = _element_shape(level_shape, class_axis)
    if len(full) != len(small) or full[0] != small[0]:
        raise ValueError(
            f"y_preds[{level}] has shape {v.format_shape(level_shape)}, which does not match the "
            f"target's batch and rank (full-resolution prediction shape {v.format_shape(full_shape)})"
        )
    indices: list[list[int] | None] = [None]  # the batch axis is kept whole
    for big, size in zip(full[1:], small[1:]):
        if size is None or big is None or size == 0 or size > big:
            raise ValueError(
                f"y_preds[{level}] has spatial shape {v.format_shape(small[1:])}, which is larger than "
                f"the target's {v.format_shape(full[1:])} or unknown (a level may only shrink each axis)"
            )
        indices.append(None if size == big else source_indices(big, size))
    return tuple(indices)


def downsample(x: Array | None, indices: Sequence[list[int] | None], *, ndim: int, class_axis: int) -> Array | None:
    """``x`` (a target or mask) at one level: the elements ``indices`` names along each axis.

    ``x`` has ``ndim`` axes with the class axis (dense labels, a size-1 class axis) or is an
    element array without it, possibly with fewer leading axes (a broadcastable mask).
    Axes of size 1 are broadcast and kept. An integer factor is a strided slice (a view);
    any other ratio a ``take`` of the indices.
    """
    if x is None:
        return None
    if x.ndim == ndim:
        element_axes = [None if a == class_axis else (a if a < class_axis else a - 1) for a in range(ndim)]
    else:
        offset = len(indices) - x.ndim
        element_axes = [a + offset for a in range(x.ndim)]
    for axis, element_axis in enumerate(element_axes):
        kept = None if element_axis is None else indices[element_axis]
        if kept is None or x.shape[axis] == 1:
            continue
        step = kept[1] - kept[0] if len(kept) > 1 else 1
        stop = kept[-1] + 1
        if kept == list(range(kept[0], stop, step)):  # evenly spaced: a strided view
            x = x[(slice(None),) * axis + (slice(kept[0], stop, step), Ellipsis)]
        else:
            xp = array_namespace(x=x)
            x = xp.take(x, xp.asarray(kept, device=nx.device_of(xp, x)), axis=axis)
    return x


def full_shape_of(y_true: Array, y_pred: Array, class_axis: int) -> tuple[int | None, ...]:
    """``y_pred``'s shape at the target's resolution (sparse targets lack the class axis)."""
    shape = tuple(y_true.shape)
    if len(shape) == y_pred.ndim:
        return shape[:class_axis] + (y_pred.shape[class_axis],) + shape[class_axis + 1:]
    return shape[:class_axis] + (y_pred.shape[class_axis],) + shape[class_axis:]


def supervised_levels(y_true: Array, y_preds: Sequence[Array], *, class_axis: int,
                      mask: Array | None = None) -> list[tuple[Array, Array | None]]:
    """``(y_true_i, mask_i)`` for each prediction of ``y_preds``, highest resolution first."""
    if not isinstance(y_preds, (list, tuple)):
        raise TypeError(f"y_preds must be a list or tuple of predictions, got {type(y_preds).__name__}")
    if not y_preds:
        raise ValueError("y_preds must hold at least one prediction, got an empty sequence")
    ndim = y_preds[0].ndim
    axis = v.check_class_axis(class_axis, ndim)
    full = full_shape_of(y_true, y_preds[0], axis)
    levels = []
    for level, y_pred in enumerate(y_preds):
        indices = level_indices(full, tuple(y_pred.shape), axis, level=level)
        levels.append((downsample(y_true, indices, ndim=ndim, class_axis=axis),
                       downsample(mask, indices, ndim=ndim, class_axis=axis)))
    return levels


def deep_supervision(loss: Callable[..., Array], y_true: Array, y_preds: Sequence[Array], *,
                     weights: str | Sequence[float] | None = None, mask: Array | None = None,
                     **loss_options: Any) -> Array:
    r"""A loss summed over the outputs of a deeply supervised network.

    .. math::
        L = \sum_i w_i\,\mathrm{loss}(y^{(i)}, \hat y_i), \qquad
        y^{(i)}_{j} = y_{\lfloor (2j + 1)\,n / (2 n_i) \rfloor} \text{ per spatial axis}

    Args:
      loss: a core loss, ``loss(y_true, y_pred, **options)`` returning per-sample values.
      y_true: the full-resolution target, dense or sparse (as ``loss`` takes it).
      y_preds: a list or tuple of predictions, highest resolution first; each spatial size
        at most the target's (any ratio).
      weights: ``None`` (nnU-Net: ``2^-i``, the lowest resolution 0, normalised), ``"exp"``
        (MONAI: ``max(0.5^i, 1/16)``), ``"same"``, or one number per level.
      mask: element weights at full resolution, downsampled like the target.
      loss_options: passed to ``loss`` at every level (``class_axis`` locates the classes).

    Returns:
      The weighted sum of the per-level losses, per sample ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Isensee et al., "nnU-Net", Nature Methods 2021 (deep supervision weights).

    Example:
      >>> import numpy as np, lossfns
      >>> labels = np.array([[0, 1, 1, 1]])
      >>> full = np.array([[[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]]])
      >>> half = np.array([[[0.3, 0.7], [0.2, 0.8]]])          # scored against labels[:, 1::2]
      >>> print(np.round(lossfns.deep_supervision(lossfns.dice_loss, labels, [full, half],
      ...                                         weights="same"), 4))
      [0.8461]
    """
    if not callable(loss):
        raise TypeError(f"loss must be a callable loss function, got {loss!r}")
    weights = check_level_weights(weights)
    class_axis = loss_options.get("class_axis", _default_class_axis(loss))
    levels = supervised_levels(y_true, y_preds, class_axis=class_axis, mask=mask)
    total = None
    for w, y_pred, (target, level_mask) in zip(level_weights(weights, len(levels)), y_preds, levels):
        extra = {} if level_mask is None else {"mask": level_mask}
        term = loss(target, y_pred, **extra, **loss_options) * w
        total = term if total is None else total + term
    return total


def _default_class_axis(loss: Callable[..., Array]) -> int:
    try:
        parameter = inspect.signature(loss).parameters.get("class_axis")
    except (TypeError, ValueError):  # a callable without a signature
        parameter = None
    return -1 if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


__all__ = ["check_level_weights", "deep_supervision", "level_weights", "supervised_levels"]
