"""A minimal array-API namespace over TensorFlow tensors.

array-api-compat does not cover TensorFlow, so the core reaches ``tf.Tensor`` through
this module: exactly the functions the core calls, with array-API names and signatures.
It is imported only after TensorFlow has been (a TensorFlow tensor was passed in).
"""

from __future__ import annotations

import tensorflow as tf

__name__ = "tensorflow"  # noqa: A001 - reported in error messages like the compat namespaces

bool = tf.bool  # noqa: A001
int8, int16, int32, int64 = tf.int8, tf.int16, tf.int32, tf.int64
uint8, uint16, uint32, uint64 = tf.uint8, tf.uint16, tf.uint32, tf.uint64
float16, bfloat16, float32, float64 = tf.float16, tf.bfloat16, tf.float32, tf.float64


def device_of(x):
    return getattr(x, "device", None)


def isdtype(dtype, kind):
    dtype = tf.as_dtype(dtype)
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if kind == "bool":
        return dtype.is_bool
    if kind == "real floating":
        return dtype.is_floating
    if kind == "integral":
        return dtype.is_integer
    if kind == "numeric":
        return dtype.is_floating or dtype.is_integer or dtype.is_complex
    return dtype == tf.as_dtype(kind)


class finfo:  # noqa: N801 - array-API name
    def __init__(self, dtype):
        # Only what the core reads; bfloat16 has no NumPy finfo, so nothing goes through it.
        limits = tf.as_dtype(dtype)
        self.bits = limits.size * 8
        self.max = float(limits.max)
        self.min = float(limits.min)
        self.dtype = limits
        # The smallest positive normal number: 2^(1 - bias) of the exponent field.
        self.smallest_normal = {"float16": 2.0**-14, "float64": 2.0**-1022}.get(limits.name, 2.0**-126)


class iinfo:  # noqa: N801 - array-API name
    def __init__(self, dtype):
        limits = tf.as_dtype(dtype)
        self.bits = limits.size * 8
        self.min, self.max = int(limits.min), int(limits.max)
        self.dtype = limits


def asarray(obj, dtype=None, device=None, copy=None):
    if isinstance(obj, (tf.Tensor, tf.Variable)):
        return obj if dtype is None else tf.cast(obj, dtype)
    return tf.constant(obj, dtype=dtype)


def astype(x, dtype, copy=True, device=None):
    return tf.cast(x, dtype)


#: The integer dtypes TensorFlow's Range, Shape and Gather kernels accept; labels of any other
#: integer dtype (uint8 is what PNG masks load as) are cast to int64 for those ops.
_INDEX_DTYPES = (tf.int32, tf.int64)


def _as_index(indices):
    indices = tf.convert_to_tensor(indices)
    return indices if indices.dtype in _INDEX_DTYPES else tf.cast(indices, tf.int64)


def arange(start, stop=None, step=1, dtype=None, device=None):
    dtype = tf.as_dtype(dtype or tf.int32)
    if dtype.is_integer and dtype not in _INDEX_DTYPES:
        return tf.cast(tf.range(start, stop, step, dtype=tf.int64), dtype)
    return tf.range(start, stop, step, dtype=dtype)


def ones_like(x, dtype=None, device=None):
    return tf.ones_like(x, dtype=dtype)


def zeros_like(x, dtype=None, device=None):
    return tf.zeros_like(x, dtype=dtype)


def where(condition, x1, x2):
    # A Python number takes the other operand's dtype, as the array API says (TensorFlow
    # would make 0.0 a float32 and reject it beside a float64 tensor).
    if isinstance(x1, (int, float)) and not isinstance(x2, (int, float)):
        x1 = tf.constant(x1, dtype=x2.dtype)
    elif isinstance(x2, (int, float)) and not isinstance(x1, (int, float)):
        x2 = tf.constant(x2, dtype=x1.dtype)
    return tf.where(condition, x1, x2)


def _axis(axis):
    return list(axis) if isinstance(axis, tuple) else axis


def sum(x, axis=None, dtype=None, keepdims=False):  # noqa: A001
    if dtype is not None:
        x = tf.cast(x, dtype)
    if x.dtype.is_bool:
        x = tf.cast(x, tf.int64)
    return tf.reduce_sum(x, axis=_axis(axis), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return tf.reduce_mean(x, axis=_axis(axis), keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_max(x, axis=_axis(axis), keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_min(x, axis=_axis(axis), keepdims=keepdims)


def count_nonzero(x, axis=None, keepdims=False):
    return tf.math.count_nonzero(x, axis=_axis(axis), keepdims=keepdims)


def all(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_all(x, axis=_axis(axis), keepdims=keepdims)


def any(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_any(x, axis=_axis(axis), keepdims=keepdims)


exp, log, log1p, abs, sqrt, sign = tf.exp, tf.math.log, tf.math.log1p, tf.abs, tf.sqrt, tf.sign  # noqa: A001
maximum, minimum = tf.maximum, tf.minimum


def logaddexp(x1, x2):
    # max + log1p(exp(-|x1 - x2|)): finite value and gradient for any finite inputs.
    larger = tf.maximum(x1, x2)
    return larger + tf.math.log1p(tf.exp(-tf.abs(x1 - x2)))


def clip(x, min=None, max=None):  # noqa: A002
    if min is not None:
        x = tf.maximum(x, min)
    if max is not None:
        x = tf.minimum(x, max)
    return x


def concat(arrays, axis=0):
    return tf.concat(list(arrays), axis=axis)


def reshape(x, shape, copy=None):
    return tf.reshape(x, shape)


def expand_dims(x, axis=0):
    return tf.expand_dims(x, axis)


def squeeze(x, axis):
    return tf.squeeze(x, axis)


def broadcast_to(x, shape):
    return tf.broadcast_to(x, shape)


def take(x, indices, axis=None):
    if axis is None:
        return tf.gather(tf.reshape(x, [-1]), _as_index(indices))
    return tf.gather(x, _as_index(indices), axis=axis)


def take_along_axis(x, indices, axis=-1):
    return tf.experimental.numpy.take_along_axis(x, _as_index(indices), axis=axis)


def permute_dims(x, axes):
    return tf.transpose(x, perm=list(axes))


def argsort(x, axis=-1, descending=False, stable=True):
    # tf.argsort is stable (top_k keeps the lower index first among equal values).
    return tf.argsort(x, axis=axis, direction="DESCENDING" if descending else "ASCENDING", stable=True)


def cumulative_sum(x, axis=None, dtype=None, include_initial=False):
    if include_initial:
        raise NotImplementedError("include_initial=True is not used by the core")
    if dtype is not None:
        x = tf.cast(x, dtype)
    return tf.math.cumsum(x, axis=0 if axis is None else axis)


def size_of(x, axis):
    """``x.shape[axis]``, or a scalar tensor where tf.function traces an unknown size.

    Not an array-API function: the core calls it only where a static size is ``None``,
    which no other namespace reports.
    """
    size = x.shape[axis]
    return tf.shape(x)[axis] if size is None else size
