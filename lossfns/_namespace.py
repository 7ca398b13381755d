"""Resolve the array namespace of the inputs.

``array_api_compat.array_namespace`` covers NumPy, CuPy, PyTorch, JAX, Dask and
array-api-strict; TensorFlow tensors go through the small shim in
:mod:`lossfns._tensorflow_namespace`. No framework is imported here: a TensorFlow tensor
can only exist if TensorFlow is already imported.
"""

from __future__ import annotations

import sys
from typing import Any

from ._typing import Array, Namespace


def _is_tensorflow(x: object) -> bool:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    return isinstance(x, (tf.Tensor, tf.Variable))


def is_tensorflow_namespace(xp: Namespace) -> bool:
    """Whether ``xp`` is the TensorFlow shim (the counterpart of ``is_torch_namespace``)."""
    return xp is sys.modules.get("lossfns._tensorflow_namespace")


#: Namespaces of the array types seen so far: one dictionary lookup per call once a type is
#: known (resolving it costs several microseconds, a noticeable share of a small loss call).
_BY_TYPE: dict[type, Namespace] = {}


def array_namespace(**named_arrays: Array | None) -> Namespace:
    """The one namespace shared by the given arrays (``None`` values are skipped).

    Arrays are passed by keyword so that a mix of libraries is reported with the argument
    names: ``TypeError: y_true is a torch array but y_pred is a numpy array``.
    """
    named = {k: v for k, v in named_arrays.items() if v is not None}
    types = {type(v) for v in named.values()}
    if len(types) == 1:
        known = _BY_TYPE.get(next(iter(types)))
        if known is not None:
            if is_tensorflow_namespace(known):
                for name, value in named.items():
                    static_shape(name, value)  # an unknown rank is reported, naming the argument
            return known
    xp = _resolve(named)
    if len(types) == 1:
        _BY_TYPE[next(iter(types))] = xp
    return xp


def _resolve(named: dict[str, Any]) -> Namespace:
    from array_api_compat import array_namespace as compat_namespace

    kinds: dict[str, str] = {}
    for name, value in named.items():
        if _is_tensorflow(value):
            static_shape(name, value)  # an unknown rank is reported here, naming the argument
            kinds[name] = "tensorflow"
            continue
        try:
            kinds[name] = compat_namespace(value).__name__.replace("array_api_compat.", "")
        except TypeError:
            raise TypeError(
                f"{name} must be an array (NumPy, PyTorch, JAX, TensorFlow or another "
                f"array API library), got {type(value).__name__}"
            ) from None
    if len(set(kinds.values())) > 1:
        (first, first_kind), *rest = kinds.items()
        other, other_kind = next((n, k) for n, k in rest if k != first_kind)
        raise TypeError(
            f"{other} is a {other_kind} array but {first} is a {first_kind} array; "
            "pass arrays from one library"
        )
    if "tensorflow" in kinds.values():
        from . import _tensorflow_namespace

        return _tensorflow_namespace
    return compat_namespace(*named.values())


def static_shape(name: str, x: Array) -> tuple[int | None, ...]:
    """``x.shape`` as a tuple, with ``None`` for sizes unknown while tracing.

    Only TensorFlow has arrays of unknown rank (a ``tf.function`` traced with
    ``tf.TensorSpec(None)``): no axis of those can be located, so that is a ``ValueError``
    naming the argument rather than an error from deep inside the loss.
    """
    shape = x.shape
    if getattr(shape, "rank", 0) is None:  # TensorFlow's TensorShape(None)
        raise ValueError(
            f"{name} has an unknown rank (a tf.function input signature such as "
            f"tf.TensorSpec(None)); the loss needs every input's rank to locate its axes: give "
            f"{name} a known rank, e.g. tf.TensorSpec([None, None, None, 3])"
        )
    return tuple(shape)


def read_variables(*arrays: Array) -> tuple[Array, ...]:
    """The arrays with TensorFlow variables read as tensors, anything else unchanged.

    A ``tf.Variable`` is accepted wherever a tensor is (the read is differentiable, so a
    ``GradientTape`` still reaches the variable), but it lacks array attributes the core
    uses, such as ``ndim``.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return arrays
    return tuple(tf.convert_to_tensor(x) if isinstance(x, tf.Variable) else x for x in arrays)


def is_traced(x: object) -> bool:
    """Whether ``x`` is a symbolic value inside jit/compile/tf.function tracing."""
    module = type(x).__module__
    if module.startswith("jax"):
        import jax

        return isinstance(x, jax.core.Tracer)
    if module.startswith("torch"):
        import torch

        return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())
    if _is_tensorflow(x):
        import tensorflow as tf

        return not tf.executing_eagerly()
    return False
