"""What values a hyperparameter or option may take, declared once as data.

A loss declares each hyperparameter's domain next to its signature
(``@validated(alpha=NONNEGATIVE, ...)``); the registry carries it on
:class:`~lossfns.registry.Hyperparameter`. Everything else is derived from that one
declaration: the check the core and every adapter run (:meth:`Domain.check`, one message
per mistake), the invalid values of the error catalogue (:meth:`Domain.invalid_examples`),
the property tests' strategies (the fields are plain data) and the error table of the
docs (:meth:`Domain.describe`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard


def _is_real_number(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_real(name: str, value: object) -> float:
    """A finite real number (NaN and infinities are rejected by name)."""
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not value - value == 0:  # NaN and ±inf; math.isfinite cannot read a compiler's symbolic float
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def check_int(name: str, value: object) -> int:
    """An int, not a bool (a ``numbers.Integral`` such as ``numpy.int64`` becomes an int)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    return int(value)


def _bound(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}"


class Domain:
    """A set of valid values: ``check`` returns the normalised value or raises naming it."""

    def check(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def invalid_examples(self) -> tuple[Any, ...]:
        """Values outside the domain whose check raises a ``ValueError``."""
        return ()

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Domain):
    """A finite real number in ``[low, high]`` (either end may be open-ended: ``None``).

    ``why`` explains an upper bound in its message (the Unified Focal γ).
    """

    low: float | None = None
    high: float | None = None
    why: str = ""

    def check(self, name: str, value: Any) -> float:
        value = check_real(name, value)
        low, high = self.low, self.high
        if high is None or self.why:
            if low is not None and not value >= low:
                raise ValueError(f"{name} must be >= {_bound(low)}, got {value}")
            if high is not None and not value <= high:
                why = self.why.format(name=name)
                raise ValueError(f"{name} must lie in [{_bound(low)}, {_bound(high)}] {why}, got {value}")
            return value
        if not (low is None or value >= low) or not value <= high:
            raise ValueError(f"{name} must lie in [{_bound(low)}, {_bound(high)}], got {value}")
        return value

    def invalid_examples(self) -> tuple[float, ...]:
        step = 1e-9 if self.low == 0 and self.high is None else 0.1
        below: tuple[float, ...] = () if self.low is None else (self.low - step,)
        above = () if self.high is None else (self.high + 0.1,)
        return above + below if self.why else below + above  # the bound that is explained first

    def describe(self) -> str:
        if self.high is None:
            return f">= {_bound(self.low)}"
        return f"in [{_bound(self.low)}, {_bound(self.high)}]"


@dataclass(frozen=True)
class OrNone(Domain):
    """``None`` or a value of ``inner``."""

    inner: Domain

    def check(self, name: str, value: Any) -> Any:
        return None if value is None else self.inner.check(name, value)

    def invalid_examples(self) -> tuple[Any, ...]:
        return self.inner.invalid_examples()

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"


@dataclass(frozen=True)
class Choice(Domain):
    """One of ``choices``; booleans compare by identity (``1`` is not ``True``).

    ``strings_only``: a value that is not a string is a ``TypeError`` (a named mode).
    """

    choices: tuple[Any, ...]
    strings_only: bool = False

    def check(self, name: str, value: Any) -> Any:
        listed = ", ".join(repr(c) for c in self.choices)
        if self.strings_only and not isinstance(value, str):
            raise TypeError(f"{name} must be one of {listed}, got {value!r} of type {type(value).__name__}")
        # `True in ("macro", ...)` is False, but `1 in (False, True)` is True: compare by
        # identity for booleans so that from_logits=1 is rejected rather than taken as True.
        if isinstance(value, bool) or value is None:
            ok = any(value is c for c in self.choices)
        else:
            ok = any(value == c and not isinstance(c, bool) for c in self.choices)
        if not ok:
            raise ValueError(f"{name} must be one of {listed}; got {value!r}")
        return value

    def invalid_examples(self) -> tuple[str, ...]:
        return ("no such choice",)

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{c!r}`" for c in self.choices)


@dataclass(frozen=True)
class Integer(Domain):
    """An int (not a bool) of at least ``low`` (any int when ``low`` is ``None``).

    ``meaning`` names what the count is in the message (``"skeleton iterations"``).
    """

    low: int | None = None
    meaning: str = ""
    optional: bool = False

    def check(self, name: str, value: Any) -> int | None:
        if value is None and self.optional:
            return None
        value = check_int(name, value)
        if self.low is not None and value < self.low:
            raise ValueError(f"{name} must be a non-negative int ({self.meaning}), got {value}")
        return value

    def invalid_examples(self) -> tuple[int, ...]:
        return () if self.low is None else (self.low - 1,)

    def describe(self) -> str:
        return "an int" if self.low is None else f"an int >= {self.low}"


@dataclass(frozen=True)
class Boolean(Domain):
    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        return value

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class PerClass(Domain):
    """``None``, a sequence of non-negative reals (one per class, returned as a tuple) or,
    with ``allow_scalar``, one non-negative real for every class."""

    allow_scalar: bool = False

    def check(self, name: str, value: Any) -> float | tuple[float, ...] | None:
        if value is None:
            return None
        if self.allow_scalar and _is_real_number(value):
            return NONNEGATIVE.check(name, value)
        return self.check_sequence(name, value)

    def check_sequence(self, name: str, value: Any) -> tuple[float, ...]:
        """A sequence of non-negative reals (not ``None``, not one number) as a tuple."""
        if hasattr(value, "tolist"):  # a NumPy array or tensor of weights given at construction
            value = value.tolist()
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            expected = "a number or a sequence of numbers" if self.allow_scalar else "a sequence of numbers"
            raise TypeError(f"{name} must be {expected}, got {value!r}")
        weights = tuple(check_real(f"{name}[{i}]", w) for i, w in enumerate(value))
        for i, w in enumerate(weights):
            if w < 0:
                raise ValueError(f"{name}[{i}] must be >= 0, got {w}")
        return weights

    def invalid_examples(self) -> tuple[Any, ...]:
        return ((-0.5,) if self.allow_scalar else ()) + ([1.0, -1.0],)

    def describe(self) -> str:
        one = "one number >= 0 or " if self.allow_scalar else ""
        return f"None, {one}one number >= 0 per class"


@dataclass(frozen=True)
class Smoothing(Domain):
    """ε of a ratio: one number ``>= 0`` for both of its terms, or a ``(numerator,
    denominator)`` pair of two (returned as a tuple of floats, e.g. MONAI's ``smooth_nr``
    and ``smooth_dr``). ``pair=False``: an ε that sits in one term only (MCC's
    denominator), where a pair is refused."""

    pair: bool = True

    def check(self, name: str, value: Any) -> float | tuple[float, ...]:
        if _is_real_number(value):
            return NONNEGATIVE.check(name, value)
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            expected = "a number or a (numerator, denominator) pair" if self.pair else "a number"
            raise TypeError(f"{name} must be {expected}, got {value!r} of type {type(value).__name__}")
        if not self.pair:
            raise ValueError(f"{name} must be one number here (it is added to the denominator only), "
                             f"not a (numerator, denominator) pair; got {tuple(value)!r}")
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (numerator, denominator) pair, got "
                             f"{list(value)!r} ({len(value)} entries)")
        return tuple(NONNEGATIVE.check(f"{name}[{i}]", v) for i, v in enumerate(value))

    def invalid_examples(self) -> tuple[Any, ...]:
        return (-1e-9,) + (([1e-5, -1.0], [1.0, 2.0, 3.0]) if self.pair else ([1e-5, 1e-5],))

    def describe(self) -> str:
        return ">= 0, or a (numerator, denominator) pair of two" if self.pair else ">= 0"


@dataclass(frozen=True)
class Anything(Domain):
    """Not checked here: an array, which ``array_namespace`` names if it is not one."""

    def check(self, name: str, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return "an array or None"


@dataclass(frozen=True)
class FromLogits(Domain):
    """``from_logits``: ``False``, ``True``, ``"softmax"`` or ``"sigmoid"``.

    ``binary``: a binary loss, which always uses a sigmoid (``"softmax"`` is an error).
    ``logits_only``: a loss on logits (the Lovász hinge): ``True`` or ``"sigmoid"`` only.
    """

    binary: bool = False
    logits_only: str = ""  # the loss's name when it takes logits only

    def check(self, name: str, value: Any) -> Any:
        Choice(FROM_LOGITS).check(name, value)
        if self.logits_only and value is not True and value != "sigmoid":
            raise ValueError(
                f"{name} must be True or 'sigmoid' for {self.logits_only}, which works on logits "
                f"(the hinge margin is z·(2y - 1)); got {value!r}"
            )
        if self.binary and value == "softmax":
            raise ValueError(f"{name}='softmax' is not valid for a binary loss; use True or 'sigmoid'")
        return value

    def invalid_examples(self) -> tuple[str, ...]:
        return ("relu",) + (("softmax",) if self.binary else ())

    def describe(self) -> str:
        if self.logits_only:
            return "`True` or `'sigmoid'`"
        return "`False`, `True`, `'sigmoid'`" + ("" if self.binary else ", `'softmax'`")


@dataclass(frozen=True)
class AllReduce(Domain):
    """``None`` or a callable summing an array over data-parallel replicas; ``additive=False``
    (a loss that sorts the whole batch) refuses any."""

    additive: bool = True

    def check(self, name: str, value: Any) -> Any:
        if value is not None and not self.additive:
            raise ValueError(
                f"{name} is not supported by the Lovász losses: a global Lovász loss cannot be "
                "computed from per-replica sums (it sorts every element of the batch together); "
                "compute it per replica without all_reduce"
            )
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be None or a callable summing an array over replicas, got {value!r}")
        return value

    def describe(self) -> str:
        return "None or a callable" if self.additive else "None"


FROM_LOGITS = (False, True, "softmax", "sigmoid")
AVERAGES = ("macro", "micro", "weighted")

#: The domains most hyperparameters share.
NONNEGATIVE = Interval(low=0.0)
UNIT_INTERVAL = Interval(low=0.0, high=1.0)
UNIFIED_FOCAL_GAMMA = Interval(low=0.0, high=1.0,
                               why="for losses with a Tversky part (the exponent is 1 - {name})")
#: ε of a ratio: a number or a (numerator, denominator) pair.
SMOOTHING = Smoothing()

__all__ = [
    "AllReduce", "Anything", "Boolean", "Choice", "Domain", "FromLogits", "Integer", "Interval",
    "NONNEGATIVE", "OrNone", "PerClass", "SMOOTHING", "Smoothing", "UNIFIED_FOCAL_GAMMA", "UNIT_INTERVAL", "check_real",
]
