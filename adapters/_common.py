"""Framework-free pieces shared by the adapters: argument lists, checks, signatures, docs.

Every adapter turns a :class:`~lossfns.registry.LossSpec` into a class or function whose
arguments are the spec's hyperparameters (with their registry defaults) followed by its
options. The helpers here compute those arguments, check them before any data is seen, and
write the generated ``__init__`` signature and docstring, so the three adapters stay small
and agree with each other.
"""

from __future__ import annotations

import inspect
import textwrap

from lossfns import validation as v
from lossfns.registry import REQUIRED, LossSpec


def parameter_defaults(spec: LossSpec, **option_defaults) -> dict:
    """Hyperparameters then options of ``spec`` with their defaults.

    ``option_defaults`` replaces an option's default for one framework (the torch adapter
    uses ``class_axis=1``). A required hyperparameter (``distance_matrix``) has the value
    :data:`~lossfns.registry.REQUIRED`, which the generated signatures show as no default.
    """
    options = spec.options
    unknown = set(option_defaults) - set(options)
    if unknown:
        raise ValueError(f"{spec.name} has no option(s) {', '.join(sorted(unknown))}")
    hyperparameters = {h.name: h.default for h in spec.hyperparameters}
    return {**hyperparameters, **options, **option_defaults}


def resolve(spec: LossSpec, defaults: dict, given: dict) -> dict:
    """``defaults`` updated with ``given``, checked as the core would check them.

    Raises ``TypeError`` for an unknown argument and ``ValueError``/``TypeError`` naming
    the argument for a bad value, at construction rather than at the first call: the
    adapters then call the core's :attr:`~lossfns.registry.LossSpec.unchecked` function,
    which checks only what depends on the arrays.
    """
    arguments = {**defaults, **given}
    missing = [name for name, value in arguments.items() if value is REQUIRED]
    if missing:
        raise TypeError(f"{spec.name} needs the argument(s) {', '.join(missing)} (no default)")
    return spec.validate(**arguments)


def check_distributed(spec: LossSpec, argument: str, value, *, batch: bool, unit: str) -> None:
    """Refuse a replica group (``process_group``/``axis_name``) the loss cannot use: the
    statistics are summed only for a batch loss, and only an additive loss has them."""
    if value is None:
        return
    if not spec.additive:
        raise ValueError(f"{argument} cannot be used with {spec.name}: the loss is not additive over "
                         f"{unit}s (it sorts the errors of the whole batch), got {argument}={value!r}")
    if not batch:
        raise ValueError(f"{argument} needs batch=True: per-sample losses are local to each {unit} "
                         f"(got {argument}={value!r}, batch=False)")


def hashable(value):
    """Lists (and arrays) become tuples, recursively, so a value can be a static jit argument."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(hashable(item) for item in value)
    return value


def check_reduction(reduction, choices=v.REDUCTIONS):
    return v.check_choice("reduction", reduction, choices)


def keyword_signature(defaults: dict, *, extra: dict, positional: tuple = (),
                      leading: tuple = ("self",)) -> inspect.Signature:
    """``(<leading...>, <positional...>, *, <other defaults...>, <extra...>)``.

    ``leading`` are required parameters (``self``; a function's arrays). ``positional`` names
    the parameters (a prefix of ``defaults``) that may also be passed by position, as
    tensorflow-mri allows for its hyperparameters. A default of
    :data:`~lossfns.registry.REQUIRED` makes the parameter required; one that follows a
    parameter with a default is keyword-only, as are all after it.
    """
    kind = inspect.Parameter
    parameters = [kind(name, kind.POSITIONAL_OR_KEYWORD) for name in leading]
    by_position, seen_default = True, False
    for name, default in {**defaults, **extra}.items():
        by_position = by_position and name in positional and not (default is REQUIRED and seen_default)
        seen_default = seen_default or default is not REQUIRED
        style = kind.POSITIONAL_OR_KEYWORD if by_position else kind.KEYWORD_ONLY
        parameters.append(kind(name, style, default=default))
    return inspect.Signature(parameters)


def generated_init(base_init, signature: inspect.Signature):
    """An ``__init__`` with ``signature`` that passes the arguments given to ``base_init``.

    Binding against the signature gives Python's own ``TypeError`` for unknown or repeated
    arguments; only the arguments actually given are passed on, so ``base_init`` fills in
    the defaults itself and subclasses can call it with keywords alone.
    """

    def __init__(self, *args, **kwargs):
        try:
            arguments = signature.bind(self, *args, **kwargs).arguments
        except TypeError as error:
            raise TypeError(f"{type(self).__name__}: {error}") from None
        arguments.pop("self")
        base_init(self, **arguments)

    __init__.__signature__ = signature
    return __init__


def summary(spec: LossSpec) -> str:
    """The core docstring before its ``Args:``/``Returns:`` sections: title, formula, remarks."""
    doc = inspect.cleandoc(spec.function.__doc__ or spec.name)
    for section in ("\nArgs:", "\nReturns:"):
        doc = doc.split(section)[0]
    return doc.rstrip()


def docstring(spec: LossSpec, *, framework: str, calling: str, defaults: dict, extra: str) -> str:
    """Docstring of a generated class or function.

    Args:
      spec: the loss.
      framework: e.g. ``"Keras"``.
      calling: how the object is called and what it returns.
      defaults: the hyperparameters and options with this adapter's defaults.
      extra: the adapter's own arguments (reduction, name, ...), one per line.
    """
    hyper = ", ".join(
        f"``{h.name}`` (required)" if defaults[h.name] is REQUIRED else f"``{h.name}={defaults[h.name]!r}``"
        for h in spec.hyperparameters
    ) or "none"
    options = ", ".join(f"``{n}={defaults[n]!r}``" for n in spec.options)
    paragraphs = [
        f"{framework} adapter of :func:`lossfns.{spec.name}`, which documents the formula, "
        "the shapes and every option.",
        calling,
        f"Hyperparameters (defaults): {hyper}.",
        f"Options (defaults): {options}.",
        extra,
    ]
    wrapped = "\n\n".join(textwrap.fill(p, 88, break_on_hyphens=False) for p in paragraphs)
    return f"{summary(spec)}\n\n{wrapped}\n"
