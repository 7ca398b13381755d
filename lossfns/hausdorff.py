"""Hausdorff distance loss (Karimi & Salcudean 2019, docs: Losses › Hausdorff distance loss).

The squared error of each element is weighted by how far it lies from the boundaries of
the predicted and the true masks: ``(p - y)²·(d_p^α + d_y^α)``. The distance fields ``d``
come from thresholded masks, so they carry no gradient; they are computed on the host with
SciPy's exact Euclidean distance transform (the ``boundary`` extra, imported only here) and
reach every library through its host-callback mechanism: NumPy directly, a device round
trip in torch eager, ``jax.pure_callback`` under ``jax.jit`` and ``tf.numpy_function``
inside ``tf.function``. ``torch.compile`` can only break the graph around it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from array_api_compat import is_jax_namespace, is_numpy_namespace, is_torch_namespace

from . import numerics as nx
from . import prepared as pr
from . import validation as v
from ._namespace import is_tensorflow_namespace
from ._typing import Array, DType, Namespace
from .domains import NONNEGATIVE, Boolean
from .inputs import Prepared, prepare
from .region import kept_classes

if TYPE_CHECKING:
    import numpy as np

    #: :func:`distance_weights_host` with its options bound: two masks to NumPy weights.
    _Host = Callable[[Array, Array], np.ndarray]

#: The message under ``torch.compile(fullgraph=True)``, where no host call can happen.
COMPILE_MESSAGE = (
    "hausdorff_dt_loss computes its distance fields on the host (SciPy) and cannot be captured "
    "in one graph: compile without fullgraph=True (torch.compile breaks the graph around the "
    "host call) or call the loss outside the compiled function"
)


@v.validated(alpha=NONNEGATIVE, log=Boolean())
def hausdorff_dt_loss(y_true: Array, y_pred: Array, *, alpha: float = 2.0, log: bool = False,
                      include_background: bool = False, background_index: int = 0, class_axis: int = -1,
                      from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
                      batch: bool = False, validate: bool = False,
                      all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Hausdorff distance loss (Karimi & Salcudean 2019): squared errors weighted by distances.

    .. math::
        L = \frac{1}{|K|} \sum_{c \in K} \frac{1}{\sum_i m_i}
            \sum_i m_i\,(p_{ic} - y_{ic})^2\,\big((d^{p}_{ic})^{\alpha} + (d^{y}_{ic})^{\alpha}\big)

    ``K`` the kept classes; ``d^p_c`` and ``d^y_c`` the distance fields of the masks
    ``p_c > 1/2`` and ``y_c > 1/2``: each element's Euclidean distance (in elements) to the
    nearest element of the other value, per sample over the spatial axes, and 0 for a mask
    that is all 0 or all 1 (as MONAI). The fields are constants of the thresholded masks
    (no gradient), computed unmasked on the host with SciPy's exact transform; the mask
    weights the sums. ``log=True`` gives ``log(1 + L)`` per sample (``LogHausdorffDTLoss``).
    A single channel is the foreground itself and is kept with ``include_background=False``.
    A fully masked sample has loss 0. Works under ``jax.jit`` and ``tf.function`` (host
    callbacks; not XLA-compiled TensorFlow, ``jit_compile=True``) and under ``torch.compile``
    with a graph break; ``fullgraph=True`` raises.

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]`` (``k >= 1``).
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      alpha: exponent of the distances, >= 0 (2 in the paper and in MONAI).
      log: return ``log(1 + L)`` (MONAI's ``LogHausdorffDTLoss``).
      include_background: keep class ``background_index`` (dropped by default, as in MONAI).
      background_index: the background class.
      class_axis, from_logits, mask, batch, validate, all_reduce: the common options (see the
        concepts page of the documentation). The sums are additive, so ``all_reduce`` gives
        the exact global batch loss.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Karimi & Salcudean, "Reducing the Hausdorff distance in medical image segmentation
      with convolutional neural networks", IEEE Transactions on Medical Imaging 39(2), 2020
      (arXiv:1904.10030, 2019).

    Example:
      >>> import numpy as np
      >>> from lossfns.hausdorff import hausdorff_dt_loss
      >>> labels = np.array([[0, 1, 1, 0, 0]])                # [batch, elements]
      >>> probs = np.array([[0.1, 0.9, 0.4, 0.6, 0.2]])       # foreground probability
      >>> probs = np.stack([1 - probs, probs], axis=-1)        # [batch, elements, classes]
      >>> print(np.round(hausdorff_dt_loss(labels, probs), 4))
      [0.336]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     batch=batch, validate=validate, all_reduce=all_reduce,
                     per_class={"background_index": background_index})
    return hausdorff_dt_kernel(inputs, alpha=alpha, log=log, include_background=include_background,
                               background_index=background_index)


def hausdorff_dt_kernel(inputs: Prepared, *, alpha: float = 2.0, log: bool = False,
                        include_background: bool = False, background_index: int = 0) -> Array:
    """The Hausdorff distance loss of prepared inputs (dense or sparse labels)."""
    xp, axis = inputs.xp, inputs.class_axis
    if inputs.reference.ndim < 3:
        raise ValueError(
            f"hausdorff_dt_loss needs at least one spatial axis (distance fields); y_pred has "
            f"shape {v.format_shape(tuple(inputs.reference.shape))}"
        )
    kept = kept_classes(inputs.num_classes, include_background, background_index,
                        one_channel_is_foreground=True)
    (p,) = pr.select_classes(inputs, kept, pr.probabilities(inputs))
    if inputs.target is not None:
        (y,) = pr.select_classes(inputs, kept, inputs.target)
        true_mask, error = y > 0.5, (p - y) ** 2
    else:  # sparse: one boolean comparison per kept class, never a float one-hot
        true_mask = pr.sparse_labels(inputs) == _kept_labels(inputs, kept)
        error = xp.where(true_mask, 1.0 - p, p) ** 2
    weights = distance_weights(xp, p > 0.5, true_mask, alpha=alpha, class_axis=axis, dtype=inputs.dtype)
    loss = pr.weighted_mean(inputs, xp.mean(error * weights, axis=axis, keepdims=True))
    return xp.log1p(loss) if log else loss


def _kept_labels(inputs: Prepared, kept: list[int]) -> Array:
    """The kept class indices in the labels' dtype, shaped along the class axis."""
    xp, labels = inputs.xp, pr.sparse_labels(inputs)
    shape = [1] * labels.ndim
    shape[inputs.class_axis] = len(kept)
    return xp.reshape(xp.asarray(kept, dtype=labels.dtype, device=inputs.device), tuple(shape))


def distance_weights(xp: Namespace, pred_mask: Array, true_mask: Array, *, alpha: float, class_axis: int,
                     dtype: DType) -> Array:
    """``d_p^α + d_y^α`` of two boolean masks, as a constant array of ``xp`` in ``dtype``.

    The host computes it (:func:`distance_weights_host`); each library reaches the host its
    own way, so that the loss still traces. The result carries no gradient.
    """
    bits = xp.finfo(dtype).bits  # the compute dtype is float32 or float64
    host = functools.partial(distance_weights_host, alpha=alpha, class_axis=class_axis, bits=bits)
    if is_numpy_namespace(xp):
        return host(pred_mask, true_mask)
    if is_torch_namespace(xp):
        return _torch_weights(host, pred_mask, true_mask)
    if is_jax_namespace(xp):
        import jax

        shape = jax.ShapeDtypeStruct(pred_mask.shape, dtype)
        # sequential: the host loops over the batch axis, which a vmapped axis must not join
        weights = jax.pure_callback(host, shape, pred_mask, true_mask, vmap_method="sequential")
        return jax.lax.stop_gradient(weights)
    if is_tensorflow_namespace(xp):
        import tensorflow as tf

        weights = tf.numpy_function(host, [pred_mask, true_mask], Tout=dtype, stateful=False)
        weights.set_shape(pred_mask.shape)  # numpy_function forgets the static shape
        return tf.stop_gradient(weights)
    return _through_numpy(xp, host, pred_mask, true_mask)


def _through_numpy(xp: Namespace, host: _Host, pred_mask: Array, true_mask: Array) -> Array:
    """Other array API libraries (array-api-strict, Dask): via NumPy on the default device."""
    import numpy as np

    device = nx.device_of(xp, pred_mask)
    info = getattr(xp, "__array_namespace_info__", None)
    home = device if info is None else info().default_device()
    if device != home:  # array-api-strict converts only arrays on its default device
        pred_mask, true_mask = pred_mask.to_device(home), true_mask.to_device(home)
    weights = xp.asarray(host(np.asarray(pred_mask), np.asarray(true_mask)), device=home)
    return weights if device == home else weights.to_device(device)


def _torch_weights(host: _Host, pred_mask: Array, true_mask: Array) -> Array:
    import torch

    # Dynamo can trace neither SciPy nor a host round trip; under fullgraph=True this raise
    # is the error users see, otherwise Dynamo breaks the graph here and runs this frame eagerly.
    if torch.compiler.is_compiling():
        raise RuntimeError(COMPILE_MESSAGE)
    if torch.jit.is_tracing():  # a trace would freeze these fields as constants of one input
        raise RuntimeError("hausdorff_dt_loss cannot be traced with torch.jit.trace (host distance fields)")
    # After the graph break Dynamo would still try to compile the host frames (NumPy, SciPy);
    # disabled, they run as plain Python. The wrapper is made here, in eager code only.
    weights = torch.compiler.disable(host)(pred_mask.cpu().numpy(), true_mask.cpu().numpy())
    return torch.from_numpy(weights).to(pred_mask.device)


def distance_weights_host(pred_mask: Array, true_mask: Array, *, alpha: float, class_axis: int,
                          bits: int = 64) -> np.ndarray:
    """NumPy ``d_p^α + d_y^α`` of boolean masks ``[batch, ..., classes, ...]`` (float32/64 by ``bits``).

    The fields are computed and raised to ``α`` in float64 and rounded once at the end.
    """
    import numpy as np

    edt = _distance_transform()
    pred_mask = np.moveaxis(np.asarray(pred_mask, dtype=bool), class_axis, 1)
    true_mask = np.moveaxis(np.asarray(true_mask, dtype=bool), class_axis, 1)
    weights = np.empty(pred_mask.shape, dtype=np.float64)
    for b in range(pred_mask.shape[0]):
        for c in range(pred_mask.shape[1]):
            weights[b, c] = (distance_field(edt, pred_mask[b, c]) ** alpha
                             + distance_field(edt, true_mask[b, c]) ** alpha)
    return np.moveaxis(weights, 1, class_axis).astype(np.float64 if bits == 64 else np.float32)


def distance_field(edt: Callable[[np.ndarray], np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Each element's distance to the nearest element of the other value; 0 without one."""
    import numpy as np

    if not mask.any() or mask.all():
        return np.zeros(mask.shape, dtype=np.float64)
    # edt(A) is 0 outside A, so the two transforms never overlap: their sum is the field.
    return edt(mask) + edt(~mask)


def _distance_transform() -> Callable[[np.ndarray], np.ndarray]:
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError as exc:
        raise ImportError(
            "lossfns.hausdorff_dt_loss needs SciPy (scipy.ndimage.distance_transform_edt), "
            "which is not installed: pip install 'lossfns[boundary]' (or pip install scipy)"
        ) from exc
    return distance_transform_edt


__all__ = ["distance_weights", "distance_weights_host", "hausdorff_dt_kernel", "hausdorff_dt_loss"]
