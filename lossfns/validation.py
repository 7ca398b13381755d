"""Argument validation shared by the core and every adapter (docs: Guides › Errors).

Every message names the argument, what was expected and what was received. Checks here
look only at Python values and static shapes; checks that need data live in
:func:`check_data_ranges` and run only when the caller passes ``validate=True``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from . import domains as d
from ._typing import Array, Namespace
from .domains import AVERAGES, FROM_LOGITS, check_real  # noqa: F401 - re-exported

REDUCTIONS = ("mean", "sum", "none")


def check_choice(name: str, value: object, choices: Sequence[object]) -> Any:
    return d.Choice(tuple(choices)).check(name, value)


def check_int(name: str, value: object) -> int:
    return d.check_int(name, value)


def check_bool(name: str, value: object) -> bool:
    return d.Boolean().check(name, value)


def check_weights(name: str, value: object) -> tuple[float, ...] | None:
    """``None`` or a sequence of non-negative reals, as a tuple."""
    return None if value is None else d.PerClass().check_sequence(name, value)


def check_length(name: str, values: Sequence[object] | None, expected: int, what: str = "classes") -> None:
    if values is not None and len(values) != expected:
        raise ValueError(f"{name} has {len(values)} entries but the input has {expected} {what}")


def check_class_axis(class_axis: object, ndim: int) -> int:
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


def check_background_index(background_index: object, num_classes: int) -> int:
    background_index = check_int("background_index", background_index)
    if not -num_classes <= background_index < num_classes:
        raise ValueError(
            f"background_index {background_index} is out of range for {num_classes} classes"
        )
    return background_index % num_classes


def format_shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def shapes_match(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    """Equal shapes, treating unknown (traced) sizes as wildcards."""
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def check_data_ranges(xp: Namespace, *, y_pred: Array | None = None, y_true: Array | None = None,
                      labels: Array | None = None, num_classes: int | None = None,
                      ignore_index: int | None = None) -> None:
    """Eager-only value checks behind ``validate=True``; a no-op on traced arrays."""
    from ._namespace import is_traced

    arrays = [a for a in (y_pred, y_true, labels) if a is not None]
    if any(is_traced(a) for a in arrays):
        return
    def value_range(x: Array) -> str:
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


#: The one domain of each common option, shared by every loss, the registry and the adapters.
OPTION_DOMAINS: dict[str, d.Domain] = {
    "class_axis": d.Integer(),
    "from_logits": d.FromLogits(),
    "mask": d.Anything(),
    "ignore_index": d.Integer(optional=True),
    "batch": d.Boolean(),
    "validate": d.Boolean(),
    "all_reduce": d.AllReduce(),
    "average": d.Choice(AVERAGES),
    "class_weights": d.PerClass(),
    "include_background": d.Boolean(),
    "background_index": d.Integer(),
    "soft_label": d.Boolean(),
}


def check_per_class_lengths(values: Mapping[str, Any], domains: Mapping[str, d.Domain], *,
                            two_channels: bool) -> None:
    """Per-class sequences (:class:`~lossfns.domains.PerClass` values) that fit no input at all.

    Without an input the number of classes is unknown, so a length can be wrong for every
    input only by being too short (a single channel counts as two classes where
    ``two_channels``), by leaving ``background_index`` out of range, or by disagreeing with
    another per-class sequence of the same loss. The adapters run this when they are built;
    the length against the input's classes is checked at each call.
    """
    lengths = {name: len(value) for name, value in values.items()
               if isinstance(value, tuple) and isinstance(domains.get(name), d.PerClass)}
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


def check_class_shapes(num_classes: int, values: Mapping[str, Any]) -> None:
    """What needs the number of classes: per-class sequences (tuples, once checked) have one
    entry per class and ``background_index`` lies in range. ``num_classes`` counts a single
    channel as two where the loss expands it."""
    for key, value in values.items():
        if isinstance(value, tuple):
            check_length(key, value, num_classes)
    if values.get("background_index") is not None:
        check_background_index(values["background_index"], num_classes)


P = ParamSpec("P")
R = TypeVar("R", covariant=True)


class Validated(Protocol[P, R]):
    """A public core loss as :func:`validated` returns it: the function itself for callers
    and type checkers (same parameters, same result), plus what the registry and the
    adapters read off it."""

    __name__: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @property
    def domains(self) -> dict[str, d.Domain]:
        """The domain of every keyword-only parameter."""
        ...

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """The keyword-only parameters that are hyperparameters, not common options."""
        ...

    @property
    def two_channels(self) -> bool:
        """A single channel counts as two classes."""
        ...

    @property
    def unchecked(self) -> Callable[P, R]:
        """The function without the option checks."""
        ...


def validated(*, two_channels: bool = False, **domains: d.Domain) -> Callable[[Callable[P, R]], Validated[P, R]]:
    """Decorate a public core loss so that its hyperparameters and options are checked once.

    ``domains`` maps each hyperparameter (and any option whose domain differs from
    :data:`OPTION_DOMAINS`) to a :class:`~lossfns.domains.Domain`. Every keyword-only
    parameter must have one, here or in :data:`OPTION_DOMAINS`. The wrapper checks the
    keywords passed (defaults are valid by construction) and calls the function, whose body
    prepares the inputs (:func:`lossfns.inputs.prepare` checks what depends on the arrays:
    shapes, dtypes, the number of classes) and calls the loss's kernels. Unknown keywords
    raise Python's own ``TypeError`` naming the public function.

    The wrapper carries ``domains``, ``hyperparameters``, ``two_channels`` (a single channel
    counts as two classes) and ``unchecked``: the function itself, which the adapters call
    with the options they checked once, when they were built. For type checkers it is a
    :class:`Validated` with the function's own parameters and result.
    """

    def decorate(function: Callable[P, R]) -> Validated[P, R]:
        parameters = inspect.signature(function).parameters
        keyword_only = [n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
        table = {n: domain for n in keyword_only if (domain := domains.get(n, OPTION_DOMAINS.get(n))) is not None}
        missing = [n for n in keyword_only if n not in table]
        stray = set(domains) - set(keyword_only)
        if missing or stray:
            raise TypeError(f"{function.__name__}: no domain for {missing}; domains for unknown {sorted(stray)}")

        @functools.wraps(function)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            for key, value in kwargs.items():  # replacing values only: the keys stay as they are
                domain = table.get(key)
                if domain is not None:
                    kwargs[key] = domain.check(key, value)
            return function(*args, **kwargs)

        vars(checked).update(
            domains=table, two_channels=two_channels, unchecked=function,
            hyperparameters=tuple(n for n in keyword_only if n in domains and n not in OPTION_DOMAINS),
        )
        return cast("Validated[P, R]", checked)

    return decorate
