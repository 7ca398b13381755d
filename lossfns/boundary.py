"""Boundary loss (Kervadec et al. 2019, docs: Losses › Boundary loss) and the signed distance maps it needs.

The loss is linear in the prediction: ``Σ φ·p`` with ``φ`` the signed distance of each
element to the ground-truth boundary of its class. The maps depend on the labels only, so
a data pipeline computes them once per sample on the host (:func:`signed_distance_maps`,
SciPy's exact Euclidean distance transform) and passes them in place of the labels.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from . import prepared as pr
from . import validation as v
from ._namespace import array_namespace
from ._typing import Array, Namespace
from .inputs import Prepared, prepare
from .region import kept_classes

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike


def _check_distance_maps(xp: Namespace, distance_maps: Array, y_pred: Array) -> None:
    if not xp.isdtype(distance_maps.dtype, "real floating"):
        raise TypeError(
            f"distance_maps must be a floating-point array (signed distances), got dtype {distance_maps.dtype}"
        )
    if not v.shapes_match(tuple(distance_maps.shape), tuple(y_pred.shape)):
        raise ValueError(
            f"distance_maps shape {v.format_shape(tuple(distance_maps.shape))} does not match "
            f"y_pred shape {v.format_shape(tuple(y_pred.shape))} (one signed distance map per class)"
        )


@v.validated()
def boundary_loss(distance_maps: Array, y_pred: Array, *, include_background: bool = False,
                  background_index: int = 0, class_axis: int = -1,
                  from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                  batch: bool = False, validate: bool = False,
                  all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Boundary loss (Kervadec et al. 2019): the prediction weighted by signed distances.

    .. math::
        L = \frac{1}{|K|} \sum_{c \in K} \frac{\sum_i m_i\,\phi_{ic}\,p_{ic}}{\sum_i m_i}

    ``K`` the kept classes, ``φ`` the signed distance of each element to the boundary of
    class ``c`` in the ground truth (negative inside, from :func:`signed_distance_maps`).
    The loss is linear in ``p`` and can be negative; combine it with a region loss (the
    authors ramp its weight up while the region loss weight goes down). A single channel
    is the foreground itself and is kept with ``include_background=False``. A fully masked
    sample has loss 0.

    Args:
      distance_maps: float signed distance maps of ``y_pred``'s shape
        ``[batch, d1, ..., dk, classes]`` (no sparse form: one map per class).
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      include_background: keep class ``background_index`` (dropped by default, as in the paper).
      background_index: the background class.
      class_axis, from_logits, mask, batch, validate, all_reduce: the common options (see the
        concepts page of the documentation). The sums are additive, so ``all_reduce`` gives
        the exact global batch loss.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019 /
      Medical Image Analysis 2021.

    Example:
      >>> import numpy as np, lossfns
      >>> labels = np.array([[0, 1, 1, 0, 0]])                   # [batch, elements]
      >>> maps = lossfns.signed_distance_maps(labels, 2)           # [batch, elements, classes]
      >>> print(maps[0, :, 1])
      [1. 0. 0. 1. 2.]
      >>> probs = np.array([[[0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.6, 0.4], [0.9, 0.1]]])
      >>> print(np.round(lossfns.boundary_loss(maps, probs), 4))
      [0.16]
    """
    xp = array_namespace(distance_maps=distance_maps, y_pred=y_pred, mask=mask)
    _check_distance_maps(xp, distance_maps, y_pred)
    inputs = prepare(distance_maps, y_pred, class_axis=class_axis, from_logits=from_logits,
                     mask=mask, batch=batch, validate=False, all_reduce=all_reduce,
                     per_class={"background_index": background_index})
    if validate and from_logits is False:  # the maps are not labels: only y_pred has a range
        v.check_data_ranges(xp, y_pred=y_pred)
    return boundary_kernel(inputs, include_background=include_background, background_index=background_index)


def boundary_kernel(inputs: Prepared, *, include_background: bool = False, background_index: int = 0) -> Array:
    """The boundary loss of prepared inputs whose dense target holds the distance maps."""
    xp = inputs.xp
    kept = kept_classes(inputs.num_classes, include_background, background_index,
                        one_channel_is_foreground=True)
    weighted = inputs.target * pr.probabilities(inputs)
    if len(kept) == inputs.num_classes:
        per_element = xp.mean(weighted, axis=inputs.class_axis, keepdims=True)
    else:  # 1/|K| on the kept classes, 0 on the background: one product, no gather
        share = [1.0 / len(kept) if c in kept else 0.0 for c in range(inputs.num_classes)]
        per_element = xp.sum(weighted * pr.class_vector(inputs, share), axis=inputs.class_axis, keepdims=True)
    return pr.weighted_mean(inputs, per_element)


def _check_spacing(spacing: object, spatial_rank: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        spacing = (spacing,) * spatial_rank
    if isinstance(spacing, (str, bytes)) or not isinstance(spacing, Sequence):
        raise TypeError(f"spacing must be None, a number or a sequence of numbers, got {spacing!r}")
    spacing = tuple(v.check_real(f"spacing[{i}]", s) for i, s in enumerate(spacing))
    if len(spacing) != spatial_rank:
        raise ValueError(f"spacing has {len(spacing)} entries but labels have {spatial_rank} spatial axes")
    if any(s <= 0 for s in spacing):
        raise ValueError(f"spacing must be positive along every axis, got {spacing}")
    return spacing


def _check_output_class_axis(class_axis: object, ndim: int) -> int:
    class_axis = v.check_int("class_axis", class_axis)
    if not -ndim <= class_axis < ndim or class_axis % ndim == 0:
        raise ValueError(
            f"class_axis {class_axis} must be an axis of the result (ndim {ndim}) other than "
            "the batch axis 0"
        )
    return class_axis % ndim


def _distance_transform() -> Callable[..., np.ndarray]:
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError as exc:
        raise ImportError(
            "lossfns.signed_distance_maps needs SciPy (scipy.ndimage.distance_transform_edt), "
            "which is not installed: pip install 'lossfns[boundary]' (or pip install scipy)"
        ) from exc
    return distance_transform_edt


def _class_map(edt: Callable[..., np.ndarray], inside: np.ndarray,
               spacing: tuple[float, ...] | None) -> np.ndarray:
    """``edt(outside)·outside − (edt(inside) − 1)·inside``; 0 without a boundary (as MONAI)."""
    import numpy as np

    if not inside.any() or inside.all():
        return np.zeros(inside.shape, dtype=np.float64)
    outside = ~inside
    signed = edt(outside, sampling=spacing) * outside - (edt(inside, sampling=spacing) - 1.0) * inside
    return signed + 0.0  # -0.0 on the inner boundary becomes 0.0


def signed_distance_maps(labels: ArrayLike, num_classes: int, *, class_axis: int = -1,
                         spacing: float | Sequence[float] | None = None) -> np.ndarray:
    r"""Signed distance maps of integer labels, for :func:`boundary_loss` (host side, NumPy).

    .. math::
        \phi_c = \mathrm{edt}(\bar S_c)\,[\bar S_c] - (\mathrm{edt}(S_c) - 1)\,[S_c]

    per sample and class, over the spatial axes, exactly as the authors' code: ``S_c`` the
    elements labelled ``c``, ``edt(A)`` the Euclidean distance of each element of ``A`` to the
    nearest element outside ``A`` (in units of ``spacing``). Outside the class ``φ`` is the
    distance to it, inside ``1 −`` the distance to the outside (the elements on the inner
    boundary get 0). A class absent from the sample, or filling all of it, has no boundary:
    ``φ = 0``. A label outside ``[0, num_classes)`` belongs to no class. Needs SciPy
    (``pip install 'lossfns[boundary]'``), imported only here.

    Args:
      labels: integer class indices ``[batch, d1, ..., dk]`` (NumPy or anything
        ``numpy.asarray`` takes), ``k >= 1``.
      num_classes: number of classes ``C``.
      class_axis: where the class axis goes in the result.
      spacing: element size along each spatial axis (one number for all, or ``k`` numbers);
        ``None`` for 1.

    Returns:
      A float64 NumPy array ``[batch, d1, ..., dk, C]`` (class axis at ``class_axis``).
      Compute it once per sample in the data pipeline and cast it to the model's dtype.

    References:
      Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019
      (``one_hot2dist`` in the authors' code).

    Example:
      >>> import numpy as np, lossfns
      >>> maps = lossfns.signed_distance_maps(np.array([[0, 0, 1, 1, 1, 0]]), 2)
      >>> print(maps[0, :, 1])
      [ 2.  1.  0. -1.  0.  1.]
    """
    import numpy as np

    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must hold integer class indices, got dtype {labels.dtype}")
    if labels.ndim < 2:
        raise ValueError(f"labels must be [batch, d1, ..., dk] with k >= 1 spatial axes, got shape {labels.shape}")
    num_classes = v.check_int("num_classes", num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    axis = _check_output_class_axis(class_axis, labels.ndim + 1)
    spacing = _check_spacing(spacing, labels.ndim - 1)
    edt = _distance_transform()
    maps = np.zeros((num_classes,) + labels.shape, dtype=np.float64)
    for c in range(num_classes):
        for b in range(labels.shape[0]):
            maps[c, b] = _class_map(edt, labels[b] == c, spacing)
    return np.moveaxis(maps, 0, axis)
