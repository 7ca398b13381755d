"""Argument validation shared by the core and every adapter (docs: Guides › Errors).

Every message names the argument, what was expected and what was received. Checks here
look only at Python values and static shapes; checks that need data live in
:func:`check_data_ranges` and run only when the caller passes ``validate=True``.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Sequence

AVERAGES = ("macro", "micro", "weighted")
FROM_LOGITS = (False, True, "softmax", "sigmoid")
REDUCTIONS = ("mean", "sum", "none")


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_real(name: str, value) -> float:
    """A finite real number (NaN and infinities are rejected by name)."""
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not value - value == 0:  # NaN and ±inf; math.isfinite cannot read a compiler's symbolic float
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


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


def check_optional_int(name: str, value):
    return check_int(name, value, allow_none=True)


def check_optional_unit_interval(name: str, value):
    return None if value is None else check_unit_interval(name, value)


def check_class_weights(name: str, value):
    return check_weights(name, value)


def check_focal_alpha(name: str, value):
    """``None``, one weight for every class, or one weight per class (a tuple)."""
    return check_weights(name, value, allow_scalar=True)


def check_gamma_at_most_one(name: str, value) -> float:
    value = check_nonnegative(name, value)
    if value > 1:
        raise ValueError(
            f"{name} must lie in [0, 1] for losses with a Tversky part (the exponent is 1 - {name}), got {value}"
        )
    return value


def check_from_logits(name: str, value):
    return check_choice(name, value, FROM_LOGITS)


def check_sigmoid_from_logits(name: str, value):
    """``from_logits`` of a binary loss, which always uses a sigmoid."""
    check_choice(name, value, FROM_LOGITS)
    if value == "softmax":
        raise ValueError(f"{name}='softmax' is not valid for a binary loss; use True or 'sigmoid'")
    return value


def check_average(name: str, value):
    return check_choice(name, value, AVERAGES)


def check_all_reduce(name: str, value):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be None or a callable summing an array over replicas, got {value!r}")
    return value


def _unchecked(name: str, value):
    return value  # an array: array_namespace names a non-array


#: The one check of each common option, shared by every loss, the registry and the adapters.
OPTION_CHECKS = {
    "class_axis": check_int,
    "from_logits": check_from_logits,
    "mask": _unchecked,
    "ignore_index": check_optional_int,
    "batch": check_bool,
    "validate": check_bool,
    "all_reduce": check_all_reduce,
    "average": check_average,
    "class_weights": check_class_weights,
    "include_background": check_bool,
    "background_index": check_int,
    "soft_label": check_bool,
}


def check_per_class_lengths(values: dict, *, two_channels: bool) -> None:
    """Per-class sequences (tuples, once checked) that fit no input at all.

    Without an input the number of classes is unknown, so a length can be wrong for every
    input only by being too short (a single channel counts as two classes where
    ``two_channels``), by leaving ``background_index`` out of range, or by disagreeing with
    another per-class sequence of the same loss. The adapters run this when they are built;
    the length against the input's classes is checked at each call.
    """
    lengths = {name: len(value) for name, value in values.items() if isinstance(value, tuple)}
    smallest = 2 if two_channels else 1
    background = values.get("background_index")
    for name, length in lengths.items():
        if length < smallest:
            raise ValueError(f"{name} has {length} entries but every input has at least {smallest} "
                             f"classes (one entry per class)")
        if isinstance(background, int) and not -length <= background < length:
            raise ValueError(f"background_index {background} is out of range for {length} classes "
                             f"({name} has one entry per class)")
    if len(set(lengths.values())) > 1:
        (first, n), *others = lengths.items()
        other, m = next((name, k) for name, k in others if k != n)
        raise ValueError(f"{other} has {m} entries but {first} has {n}; both have one entry per class")


def _shape_checks(y_pred, values: dict, *, two_channels: bool) -> None:
    """Checks that need ``y_pred``'s static shape: class axis, per-class lengths, background."""
    shape = getattr(y_pred, "shape", None)
    if shape is None or "class_axis" not in values:
        return  # not an array: array_namespace reports it
    from ._namespace import static_shape

    shape = static_shape("y_pred", y_pred)
    axis = check_class_axis(values["class_axis"], len(shape))
    num_classes = shape[axis]
    if num_classes is None:  # a tf.function input signature without the class size
        raise ValueError(
            f"y_pred has an unknown number of classes (axis {axis} of shape {format_shape(shape)}); "
            "the class axis must have a known size when the loss is traced"
        )
    if two_channels and num_classes == 1:
        num_classes = 2  # a single channel is expanded to [1 - p, p]
    for key, value in values.items():
        if isinstance(value, tuple):  # a normalised one-per-class sequence
            check_length(key, value, num_classes)
    if "background_index" in values:
        check_background_index(values["background_index"], num_classes)


def validated(*, two_channels: bool = False, **checks):
    """Decorate a public core loss so every argument is checked before any array work.

    ``checks`` maps each hyperparameter (and any option whose check differs from
    :data:`OPTION_CHECKS`) to ``check(name, value) -> value``. Every keyword-only parameter
    must have a check, here or in :data:`OPTION_CHECKS`. The wrapper checks the keywords
    passed (defaults are valid by construction), then what needs ``y_pred``'s static shape:
    ``class_axis``, the length of per-class sequences (``two_channels``: a single channel
    counts as two classes), ``background_index``. Unknown keywords raise Python's own
    ``TypeError`` naming the public function. The registry reads ``checks`` and
    ``hyperparameters`` from the wrapper, so the adapters run the very same checks.
    """

    def decorate(function):
        parameters = inspect.signature(function).parameters
        keyword_only = [n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
        table = {n: checks.get(n, OPTION_CHECKS.get(n)) for n in keyword_only}
        missing = [n for n, check in table.items() if check is None]
        stray = set(checks) - set(keyword_only)
        if missing or stray:
            raise TypeError(f"{function.__name__}: no check for {missing}; checks for unknown {sorted(stray)}")
        y_pred_position = list(parameters).index("y_pred")
        defaults = {n: parameters[n].default for n in keyword_only}

        @functools.wraps(function)
        def checked(*args, **kwargs):
            values = {k: (table[k](k, value) if k in table else value) for k, value in kwargs.items()}
            y_pred = args[y_pred_position] if len(args) > y_pred_position else kwargs.get("y_pred")
            shape_values = {k: values.get(k, defaults[k]) for k in ("class_axis", "background_index")
                            if k in defaults}
            shape_values.update({k: value for k, value in values.items() if isinstance(value, tuple)})
            _shape_checks(y_pred, shape_values, two_channels=two_channels)
            return function(*args, **values)

        checked.checks = table
        checked.two_channels = two_channels
        checked.hyperparameters = tuple(n for n in keyword_only if n in checks and n not in OPTION_CHECKS)
        return checked

    return decorate
