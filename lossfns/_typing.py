"""Type aliases of the core's annotations.

The core computes on whatever array library its inputs come from, so there is no one array
class to name. As in array-api-extra (``_lib/_utils/_typing.py``), the aliases of arrays,
namespaces, dtypes and devices are ``Any`` for type checkers: they say what a parameter
holds, and a call with a NumPy array, a torch tensor, a JAX array or a TensorFlow tensor
type-checks. A ``Protocol`` of the array API would be stricter; array-api-extra waits for
one (array-api-typing) too.
"""

from __future__ import annotations

from typing import Any, TypeAlias

#: Any array of the Python array API: a NumPy array, a torch tensor, a JAX array, a
#: TensorFlow tensor (through lossfns' shim), an array-api-strict array...
Array: TypeAlias = Any
#: The array namespace of the inputs (``array_api_compat.array_namespace`` or the
#: TensorFlow shim), conventionally named ``xp``.
Namespace: TypeAlias = Any
#: A dtype of the namespace (``xp.float32``, ``torch.int64``...).
DType: TypeAlias = Any
#: A device of the namespace (``None`` where the library has none).
Device: TypeAlias = Any

#: ε of a ratio: one number for both terms, or a ``(numerator, denominator)`` pair.
Epsilon: TypeAlias = float | tuple[float, float]

__all__ = ["Array", "DType", "Device", "Epsilon", "Namespace"]
