"""JAX adapter: one jit-compiled function per loss of :data:`lossfns.registry.LOSSES`.

Functions follow optax: ``fn(predictions, targets, **options)`` returns per-sample values
(``[batch]``, or ``[]`` with ``batch=True``) and the caller reduces::

    loss = tversky_loss(probs, labels, alpha=0.3, beta=0.7).mean()
    grads = jax.grad(lambda p: dice_loss(p, labels).mean())(probs)

Hyperparameters and options are static arguments of the compiled function: they are
checked in Python before tracing (a bad value raises at once, naming the argument), and
sequences (``class_weights``, ``alpha``) are turned into tuples so they can be hashed.
Each distinct set of options compiles once.

Distributed batch losses: with ``batch=True`` and ``axis_name=`` a mapped axis
(``shard_map``, ``pmap``, ``vmap(axis_name=...)``), the additive statistics are summed over
that axis with :func:`jax.lax.psum` before any formula is applied, so every shard gets the
loss of the global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import jax

from lossfns import registry
from lossfns.deep_supervision import level_weights, supervised_levels
from lossfns.registry import LossSpec

from . import _common

if TYPE_CHECKING:
    from jax.typing import ArrayLike


def _compiled_core(spec: LossSpec):
    """``spec.function`` jitted with the options (a hashable tuple) and ``axis_name`` static."""

    def run(predictions, targets, mask, options, axis_name):
        all_reduce = None if axis_name is None else functools.partial(jax.lax.psum, axis_name=axis_name)
        return spec.unchecked(targets, predictions, mask=mask, all_reduce=all_reduce, **dict(options))

    return jax.jit(run, static_argnames=("options", "axis_name"))


def _make_function(spec: LossSpec, name: str):
    defaults = _common.parameter_defaults(spec)
    compiled = _compiled_core(spec)

    def loss(predictions: ArrayLike, targets: ArrayLike, *, mask: ArrayLike | None = None,
             axis_name: Hashable | None = None, **options: Any) -> jax.Array:
        values = _common.resolve(spec, defaults, options)
        _common.check_distributed(spec, "axis_name", axis_name, batch=values["batch"], unit="shard")
        if values["validate"]:
            # Inside the compiled function every array is a tracer and the data checks are
            # skipped: call the core itself, unjitted, so that it checks the concrete arrays
            # as it would for any caller (what it checks depends on the loss: distance maps
            # are not labels). Under an outer jit the checks are a no-op, as documented.
            all_reduce = None if axis_name is None else functools.partial(jax.lax.psum, axis_name=axis_name)
            return spec.unchecked(targets, predictions, mask=mask, all_reduce=all_reduce, **values)
        static = tuple((key, _common.hashable(value)) for key, value in values.items())
        return compiled(predictions, targets, mask, static, axis_name)

    loss.__name__ = loss.__qualname__ = name
    # What help() and IDEs show: every hyperparameter and option with its default.
    loss.__signature__ = _common.keyword_signature(
        defaults, extra={"mask": None, "axis_name": None}, leading=("predictions", "targets")
    )
    loss.__module__ = __name__
    loss.__doc__ = _common.docstring(
        spec, framework="JAX", defaults=defaults,
        calling=(
            f"Call as ``{name}(predictions, targets, *, mask=None, axis_name=None, **options)`` "
            "(optax's argument order); returns the per-sample losses ``[batch]`` (``[]`` with "
            "``batch=True``), jit-compiled with every option static."
        ),
        extra=(
            "``axis_name``: with ``batch=True``, the mapped axis to sum the statistics over "
            "with ``jax.lax.psum`` (data-parallel batch losses)."
        ),
    )
    return loss


def _generate(namespace: dict) -> list:
    names = []
    for spec in registry.LOSSES:
        function = namespace[spec.name] = _make_function(spec, spec.name)
        names.append(spec.name)
        for alias in spec.aliases:  # the same function object under the alias
            namespace[alias] = function
            names.append(alias)
    return names


def deep_supervision(loss: Callable[..., jax.Array], predictions: Sequence[ArrayLike], targets: ArrayLike, *,
                     weights: str | Sequence[float] | None = None, mask: ArrayLike | None = None,
                     **options: Any) -> jax.Array:
    """A loss of this module summed over the outputs of a deeply supervised network (docs: Concepts › Deep supervision).

    ``predictions`` is a list or tuple, highest resolution first; output ``i`` is scored by
    ``loss(predictions[i], targets_i, **options)`` with ``targets`` (and ``mask``) downsampled
    to its size by keeping the centre element of each block (nnU-Net, MONAI), and the
    per-sample losses are summed with ``weights``: ``None`` (nnU-Net's ``2^-i``, the lowest
    resolution 0, normalised), ``"exp"`` (MONAI's), ``"same"`` or one number per output.
    Shapes are static, so the whole sum traces under ``jax.jit``.
    """
    levels = supervised_levels(targets, predictions, class_axis=options.get("class_axis", -1),
                                                 mask=mask)
    total = None
    for w, prediction, (target, level_mask) in zip(
            level_weights(weights, len(levels)), predictions, levels):
        term = loss(prediction, target, mask=level_mask, **options) * w
        total = term if total is None else total + term
    return total


__all__ = ["deep_supervision", *_generate(globals())]
