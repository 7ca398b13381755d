"""Skeleton recall loss (Kirchhoff et al. 2024, docs: Losses › Skeleton recall) and the tubed skeletons it needs.

Thin tubular structures (vessels, nerves, roads, cracks) lose connectivity when a network
misses a few elements along them. The loss asks for recall on the ground truth's skeleton,
thickened into a small tube: the skeleton depends on the labels only, so a data pipeline
computes it once per sample on the host (:func:`tubed_skeletons`, scikit-image) and passes
it in place of the labels. On the device the loss is two additive sums per class, much
cheaper than a differentiable skeleton of the prediction (soft clDice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._namespace import array_namespace, is_traced, read_variables
from ._typing import Array, Epsilon, Namespace
from .confusion import confusion_sums
from .domains import SMOOTHING
from .inputs import Prepared, label_layout, prepare
from .region import kept_classes

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike


def _check_skeletons(xp: Namespace, skeletons: Array, y_pred: Array, class_axis: int) -> None:
    """Class indices laid out like sparse labels (integers), or a dense map of ``y_pred``'s
    shape (a one-hot of the skeleton's classes, as labels may be)."""
    axis = v.check_class_axis(class_axis, y_pred.ndim)
    try:
        layout = label_layout(skeletons.shape, y_pred.shape, axis)
    except ValueError:
        raise ValueError(
            f"skeletons shape {v.format_shape(tuple(skeletons.shape))} does not match y_pred shape "
            f"{v.format_shape(tuple(y_pred.shape))} (class indices: y_pred's shape without the class "
            "axis, or with a size-1 class axis; or a dense map of y_pred's shape)"
        ) from None
    if layout == "indices" and y_pred.shape[axis] != 1 and not xp.isdtype(skeletons.dtype, "integral"):
        raise TypeError(
            f"skeletons must hold integer class indices (from lossfns.tubed_skeletons), got dtype {skeletons.dtype}"
        )


def _check_skeleton_values(xp: Namespace, skeletons: Array, num_classes: int) -> None:
    """``validate=True``: every index names a class (a single channel takes 0/1), eagerly only."""
    if is_traced(skeletons) or not xp.isdtype(skeletons.dtype, "integral"):
        return  # dense maps are checked as labels in [0, 1] by the caller
    high = max(num_classes, 2)
    if not bool(xp.all((skeletons >= 0) & (skeletons < high))):
        raise ValueError(
            f"skeletons must hold class indices in [0, {high}); got values in "
            f"[{int(xp.min(skeletons))}, {int(xp.max(skeletons))}]"
        )


@v.validated(epsilon=SMOOTHING)
def skeleton_recall_loss(skeletons: Array, y_pred: Array, *, epsilon: float | tuple[float, float] = 1.0,
                         include_background: bool = False, background_index: int = 0, class_axis: int = -1,
                         from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                         batch: bool = False, validate: bool = False,
                         all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Skeleton recall loss (Kirchhoff et al. 2024): the recall of the ground truth's tubed skeleton.

    .. math::
        L = 1 - \frac{1}{|K|} \sum_{c \in K}
            \frac{\sum_i m_i\,p_{ic}\,[s_i = c] + \epsilon_n}{\sum_i m_i\,[s_i = c] + \epsilon_d}

    ``K`` the kept classes, ``s`` the tubed skeleton of the ground truth with each element's
    class (from :func:`tubed_skeletons`), ``m`` the mask. A class without skeleton elements
    scores ``ε_n/ε_d`` (1 at ``ε_d = 0``). The sums are additive: with ``batch=True`` they run
    over the batch, and ``all_reduce`` gives the exact global batch loss. A single channel is
    the foreground itself and is kept with ``include_background=False``. The authors'
    ``SoftSkeletonRecallLoss(smooth=ε, batch_dice=B)`` (softmax, background dropped) returns
    ``−recall``, averaged over the batch: it equals this loss (``from_logits=True,
    epsilon=ε, batch=B``, averaged over the batch) minus 1, with the same gradients.

    Args:
      skeletons: integer class indices ``[batch, d1, ..., dk]`` (or with a size-1 class
        axis), 0 off the skeleton, as :func:`tubed_skeletons` gives them; or a dense map of
        ``y_pred``'s shape (the one-hot of those indices). An index outside ``[0, classes)``
        belongs to no class.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      epsilon: smoothing of numerator and denominator, >= 0, or a ``(numerator,
        denominator)`` pair.
      include_background: keep class ``background_index`` (dropped by default, as the authors do).
      background_index: the background class.
      class_axis, from_logits, mask, batch, validate, all_reduce: the common options (see the
        concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Kirchhoff et al., "Skeleton Recall Loss for Connectivity Conserving and Resource
      Efficient Segmentation of Thin Tubular Structures", ECCV 2024.

    Example:
      >>> import numpy as np, lossfns
      >>> skeletons = np.array([[0, 1, 1, 0, 2]])                 # [batch, elements]
      >>> probs = np.array([[[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1],
      ...                    [0.6, 0.2, 0.2], [0.2, 0.3, 0.5]]])
      >>> print(np.round(lossfns.skeleton_recall_loss(skeletons, probs, epsilon=0.0), 4))
      [0.4]
    """
    xp = array_namespace(skeletons=skeletons, y_pred=y_pred, mask=mask)
    skeletons, y_pred, mask = read_variables(skeletons, y_pred, mask)  # a tf.Variable has no ndim
    _check_skeletons(xp, skeletons, y_pred, class_axis)
    inputs = prepare(skeletons, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     batch=batch, validate=False, all_reduce=all_reduce,
                     per_class={"background_index": background_index})
    if validate:  # messages name skeletons, not y_true
        v.check_data_ranges(xp, y_pred=None if from_logits else y_pred)
        _check_skeleton_values(xp, skeletons, inputs.num_classes)
        if inputs.target is not None and not xp.isdtype(skeletons.dtype, "integral"):
            v.check_data_ranges(xp, y_true=inputs.target)
    return skeleton_recall_kernel(inputs, epsilon=epsilon, include_background=include_background,
                                  background_index=background_index)


def skeleton_recall_kernel(inputs: Prepared, *, epsilon: Epsilon = 1.0, include_background: bool = False,
                           background_index: int = 0) -> Array:
    """Skeleton recall loss of prepared inputs whose labels are the tubed skeletons.

    ``confusion_sums`` with the skeletons as labels gives ``TP = Σ m·p·[s = c]`` and
    ``A = Σ m·[s = c]`` without a float one-hot (after ``all_reduce``).
    """
    xp = inputs.xp
    sums = confusion_sums(inputs)
    kept = kept_classes(inputs.num_classes, include_background, background_index,
                        one_channel_is_foreground=True)
    hits, skeleton = pr.select_classes(inputs, kept, sums.tp, sums.actual, axis=-1)
    recall = nx.smoothed_ratio(xp, hits, skeleton, epsilon)
    return 1.0 - xp.mean(recall, axis=-1)


def _morphology() -> tuple[Callable[..., Any], Callable[..., Any]]:
    try:
        from skimage.morphology import dilation, skeletonize
    except ImportError as exc:
        raise ImportError(
            "lossfns.tubed_skeletons needs scikit-image (skimage.morphology.skeletonize), which is "
            "not installed: pip install 'lossfns[skeleton]' (or pip install scikit-image)"
        ) from exc
    return skeletonize, dilation


def tubed_skeletons(labels: ArrayLike, *, tube: bool = True) -> np.ndarray:
    r"""Tubed skeletons of integer labels, for :func:`skeleton_recall_loss` (host side, NumPy).

    .. math::
        s = [\,\delta^{t}(\mathrm{skel}(y > 0)) > 0\,] \cdot y, \qquad t = 2 \text{ with tube, else } 0

    per sample, exactly as the authors' ``SkeletonTransform``: ``skel`` is scikit-image's
    ``skeletonize`` of the binary foreground ``y > 0`` (Zhang's thinning for images, Lee's
    for volumes), ``δ`` its grey ``dilation`` with the default cross (connectivity 1)
    footprint, applied twice with ``tube=True`` (a tube of radius 2) and not at all with
    ``tube=False``. Each element of the result takes its class from ``labels``, so the tube
    stays inside the foreground (elsewhere it is 0, the background); touching objects of
    different classes share one skeleton. Needs scikit-image
    (``pip install 'lossfns[skeleton]'``), imported only here.

    Args:
      labels: integer class indices ``[batch, d1, d2]`` or ``[batch, d1, d2, d3]`` (NumPy or
        anything ``numpy.asarray`` takes; no class axis), 0 the background.
      tube: dilate the skeleton twice (the authors' default) or keep it one element thin.

    Returns:
      A NumPy array of ``labels``' shape and dtype: each element's class on the (tubed)
      skeleton, 0 elsewhere. Compute it once per sample in the data pipeline.

    References:
      Kirchhoff et al., "Skeleton Recall Loss for Connectivity Conserving and Resource
      Efficient Segmentation of Thin Tubular Structures", ECCV 2024 (``SkeletonTransform``
      in the authors' code, MIC-DKFZ/Skeleton-Recall).

    Example:
      >>> import numpy as np, lossfns
      >>> labels = np.zeros((1, 5, 9), dtype=np.int64)
      >>> labels[0, 1:4, 1:8] = 2                                  # a 3×7 bar of class 2
      >>> print(lossfns.tubed_skeletons(labels, tube=False)[0])
      [[0 0 0 0 0 0 0 0 0]
       [0 0 0 0 0 0 2 0 0]
       [0 2 2 2 2 2 0 0 0]
       [0 0 0 0 0 0 0 0 0]
       [0 0 0 0 0 0 0 0 0]]
      >>> print(lossfns.tubed_skeletons(labels)[0])              # the tube stays in the bar
      [[0 0 0 0 0 0 0 0 0]
       [0 2 2 2 2 2 2 2 0]
       [0 2 2 2 2 2 2 2 0]
       [0 2 2 2 2 2 2 0 0]
       [0 0 0 0 0 0 0 0 0]]
    """
    import numpy as np

    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must hold integer class indices, got dtype {labels.dtype}")
    if labels.ndim not in (3, 4):
        raise ValueError(
            "labels must be [batch, d1, d2] or [batch, d1, d2, d3] (2 or 3 spatial axes, no class "
            f"axis: skeletons are computed for images and volumes), got shape {labels.shape}"
        )
    tube = v.check_bool("tube", tube)
    skeletonize, dilation = _morphology()
    result = np.zeros_like(labels)
    for b in range(labels.shape[0]):
        foreground = labels[b] > 0
        if not foreground.any():  # nothing to thin; the authors skip such samples too
            continue
        skeleton = skeletonize(foreground).astype(np.uint8)  # 0/1 for the grey dilation
        if tube:
            skeleton = dilation(dilation(skeleton))
        result[b] = np.where(skeleton > 0, labels[b], 0)  # the authors' skel *= seg
    return result


__all__ = ["skeleton_recall_kernel", "skeleton_recall_loss", "tubed_skeletons"]
