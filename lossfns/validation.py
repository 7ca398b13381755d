"""Argument validation shared by the core and every adapter (SPEC §8).

Every message names the argument, what was expected and what was received. Checks here
look only at Python values and static shapes; checks that need data live in
:func:`check_data_ranges` and run only when the caller passes ``validate=True``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

AVERAGES = ("macro", "micro", "weighted")
FROM_LOGITS = (False, True, "softmax", "sigmoid")
REDUCTIONS = ("mean", "sum", "none")


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_real(name: str, value) -> float:
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def check_nonnegative(name: str, value) -> float:
    value = check_real(name, value)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_unit_interval(name: str, value) -> float:
    value = check_real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_choice(name: str, value, choices) -> object:
    # `True in ("macro", ...)` is False, but `1 in (False, True)` is True: compare by identity
    # for booleans so that from_logits=1 is rejected rather than silently taken as True.
    if isinstance(value, bool) or value is None:
        ok = any(value is c for c in choices)
    else:
        ok = any(value == c and not isinstance(c, bool) for c in choices)
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_int(name: str, value, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    return int(value)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_weights(name: str, value, *, allow_scalar: bool = False):
    """``None``, a sequence of non-negative reals, or (if allowed) one non-negative real."""
    if value is None:
        return None
    if allow_scalar and _is_real_number(value):
        return check_nonnegative(name, value)
    if hasattr(value, "tolist"):  # a NumPy array or tensor of weights given at construction
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        expected = "a number or a sequence of numbers" if allow_scalar else "a sequence of numbers"
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    weights = tuple(check_real(f"{name}[{i}]", v) for i, v in enumerate(value))
    for i, w in enumerate(weights):
        if w < 0:
            raise ValueError(f"{name}[{i}] must be >= 0, got {w}")
    return weights


def check_length(name: str, values, expected: int, what: str = "classes") -> None:
    if values is not None and len(values) != expected:
        raise ValueError(f"{name} has {len(values)} entries but the input has {expected} {what}")


def check_class_axis(class_axis, ndim: int) -> int:
    """Normalise ``class_axis`` to a positive axis that is not the batch axis."""
    class_axis = check_int("class_axis", class_axis)
    if ndim < 2:
        raise ValueError(
            f"y_pred must have a batch axis and a class axis (ndim >= 2), got ndim {ndim}"
        )
    if not -ndim <= class_axis < ndim:
        raise ValueError(f"class_axis {class_axis} is out of range for y_pred with ndim {ndim}")
    axis = class_axis % ndim
    if axis == 0:
        raise ValueError(f"class_axis {class_axis} is the batch axis (axis 0) of y_pred")
    return axis


def check_background_index(background_index, num_classes: int) -> int:
    background_index = check_int("background_index", background_index)
    if not -num_classes <= background_index < num_classes:
        raise ValueError(
            f"background_index {background_index} is out of range for {num_classes} classes"
        )
    return background_index % num_classes


def format_shape(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def shapes_match(a, b) -> bool:
    """Equal shapes, treating unknown (traced) sizes as wildcards."""
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def check_data_ranges(xp, *, y_pred=None, y_true=None, labels=None, num_classes=None, ignore_index=None):
    """Eager-only value checks behind ``validate=True``; a no-op on traced arrays."""
    from ._namespace import is_traced

    arrays = [a for a in (y_pred, y_true, labels) if a is not None]
    if any(is_traced(a) for a in arrays):
        return
    def value_range(x):
        return f"[{float(xp.min(x))}, {float(xp.max(x))}]"

    if y_pred is not None:
        if not bool(xp.all((y_pred >= 0) & (y_pred <= 1))):
            raise ValueError(
                f"y_pred must hold probabilities in [0, 1] (pass from_logits for logits); "
                f"got values in {value_range(y_pred)}"
            )
    if y_true is not None:
        if not bool(xp.all((y_true >= 0) & (y_true <= 1))):
            raise ValueError(f"y_true must hold labels in [0, 1]; got values in {value_range(y_true)}")
    if labels is not None:
        valid = (labels >= 0) & (labels < num_classes)
        if ignore_index is not None:
            valid = valid | (labels == ignore_index)
        if not bool(xp.all(valid)):
            raise ValueError(
                f"y_true holds class indices outside [0, {num_classes})"
                + ("" if ignore_index is None else f" other than ignore_index {ignore_index}")
                + f"; got labels in {value_range(labels)}"
            )
