"""One registry describing every loss; the adapters and the CLI iterate over it.

A :class:`LossSpec` is read off a decorated core function (:func:`lossfns.validation.validated`):
its hyperparameters, options and defaults come from the signature and their domains
(:mod:`lossfns.domains`, each declared once) from the decorator, so the core, the registry
and every adapter validate with the same code and messages. Adding a core function and one
``_spec(...)`` line here makes it appear in every adapter, in ``lossfns list`` and in
``lossfns parity``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import (
    boundary,
    cldice,
    compound,
    dice_ce,
    distribution,
    generalized_dice,
    hausdorff,
    lovasz,
    mcc,
    region,
    skeleton,
    topk,
    unified_focal,
    wasserstein,
)
from . import validation as v
from .domains import Domain, FromLogits

#: Per-call arguments: arrays and the distributed hook the adapters fill in, never
#: constructor options of an adapter.
PER_CALL = ("mask", "all_reduce")
#: The default of a hyperparameter that has none (its signature says so).
REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Hyperparameter:
    """A hyperparameter of a loss: its name, default and domain (what values it may take)."""

    name: str
    default: object
    domain: Domain

    def validate(self, value):
        return self.domain.check(self.name, value)


@dataclass(frozen=True)
class LossSpec:
    """A loss: its core function, hyperparameters and options, and how adapters show it.

    Attributes:
      target_kind: what the first argument holds: ``"labels"``, ``"skeletons"`` (label maps
        of the labels' tubed skeleton, :func:`lossfns.tubed_skeletons`) or
        ``"distance_maps"`` (:func:`lossfns.signed_distance_maps`).
      logits_only: the loss takes logits only (``from_logits`` defaults to ``True``).
      additive: the loss is a formula of additive sums, so ``all_reduce`` gives the
        global batch loss (false for the Lovász and top-k losses).
      host_step: part of the loss runs on the host (distance transforms): it traces under
        ``jax.jit`` and ``tf.function`` through callbacks, but ``torch.compile`` needs a
        graph break there and TensorFlow's XLA cannot compile it.
      examples: ``examples(num_classes)`` gives valid values of the hyperparameters that
        have no default (the Wasserstein Dice's ``distance_matrix``), for the parity run,
        the docs and the generic tests.
    """

    name: str
    function: v.Validated[..., Any]
    family: str
    class_name: str
    aliases: tuple = field(default=())
    target_kind: str = "labels"
    logits_only: bool = False
    additive: bool = True
    host_step: bool = False
    examples: Callable[[int], dict] | None = None

    @property
    def takes_labels(self) -> bool:
        """The first argument is a label map (class indices or dense labels): labels, or
        the labels' skeletons, which are label maps too."""
        return self.target_kind in ("labels", "skeletons")

    @property
    def target_argument(self) -> str:
        """The name of the first argument: ``y_true``, ``skeletons`` or ``distance_maps``."""
        return next(iter(inspect.signature(self.function).parameters))

    @property
    def _parameters(self) -> dict:
        parameters = inspect.signature(self.function).parameters
        return {n: p.default for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}

    @property
    def hyperparameters(self) -> tuple[Hyperparameter, ...]:
        defaults, domains = self._parameters, self.function.domains
        return tuple(Hyperparameter(n, defaults[n], domains[n]) for n in self.function.hyperparameters)

    @property
    def defaults(self) -> dict:
        """Hyperparameters with their defaults (the required ones left out)."""
        return {h.name: h.default for h in self.hyperparameters if h.default is not REQUIRED}

    @property
    def required(self) -> tuple[str, ...]:
        """Hyperparameters without a default, which every call must pass."""
        return tuple(h.name for h in self.hyperparameters if h.default is REQUIRED)

    def example_arguments(self, num_classes: int) -> dict:
        """Valid values of :attr:`required` for an input of ``num_classes`` classes."""
        return {} if self.examples is None else self.examples(num_classes)

    @property
    def options(self) -> dict:
        """Constructor options of the adapters besides the hyperparameters, with defaults."""
        hyper = set(self.function.hyperparameters)
        return {n: d for n, d in self._parameters.items() if n not in hyper and n not in PER_CALL}

    @property
    def unchecked(self) -> Callable:
        """The core function without its option checks: the adapters call it with the
        options they checked once, when they were built (the arrays are still checked)."""
        return self.function.unchecked

    @property
    def sigmoid_only(self) -> bool:
        """A binary loss: ``from_logits="softmax"`` is an error."""
        domain = self.function.domains["from_logits"]
        return isinstance(domain, FromLogits) and domain.binary

    def validate(self, **values) -> dict:
        """Check hyperparameters and options with the core's own checks, before any data.

        A per-class sequence is checked against the number of classes at each call; here
        only the lengths that no input can match are refused
        (:func:`~lossfns.validation.check_per_class_lengths`).
        """
        domains = self.function.domains
        for name in values:
            if name not in domains or name in PER_CALL:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {name!r}")
        checked = {name: domains[name].check(name, value) for name, value in values.items()}
        v.check_per_class_lengths(checked, domains, two_channels=self.function.two_channels)
        return checked


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _spec(function, *, class_name=None, aliases=(), **fields) -> LossSpec:
    name = function.__name__
    family = function.__module__.rsplit(".", 1)[-1]
    return LossSpec(name, function, family, class_name or _camel(name).replace("Iou", "IoU"),
                    tuple(aliases), **fields)


LOSSES: tuple[LossSpec, ...] = (
    _spec(region.tversky_loss),
    _spec(region.focal_tversky_loss),
    _spec(region.f1_loss, aliases=("dice_loss",)),
    _spec(region.iou_loss, aliases=("jaccard_loss",)),
    _spec(distribution.binary_crossentropy, class_name="BinaryCrossentropy"),
    _spec(distribution.categorical_crossentropy, class_name="CategoricalCrossentropy"),
    _spec(distribution.binary_focal_loss),
    _spec(distribution.categorical_focal_loss),
    _spec(compound.combo_loss),
    _spec(compound.hybrid_focal_loss),
    _spec(unified_focal.symmetric_focal_loss),
    _spec(unified_focal.asymmetric_focal_loss),
    _spec(unified_focal.symmetric_focal_tversky_loss),
    _spec(unified_focal.asymmetric_focal_tversky_loss),
    _spec(unified_focal.symmetric_unified_focal_loss),
    _spec(unified_focal.asymmetric_unified_focal_loss),
    _spec(dice_ce.dice_ce_loss, class_name="DiceCELoss"),
    _spec(dice_ce.dice_focal_loss, class_name="DiceFocalLoss"),
    _spec(generalized_dice.generalized_dice_loss),
    _spec(dice_ce.generalized_dice_focal_loss),
    _spec(mcc.mcc_loss, class_name="MCCLoss"),
    _spec(lovasz.lovasz_softmax_loss, class_name="LovaszSoftmaxLoss", additive=False),
    _spec(lovasz.lovasz_hinge_loss, class_name="LovaszHingeLoss", logits_only=True, additive=False),
    _spec(boundary.boundary_loss, class_name="BoundaryLoss", target_kind="distance_maps"),
    _spec(cldice.cldice_loss, class_name="ClDiceLoss"),
    _spec(cldice.dice_cldice_loss, class_name="DiceClDiceLoss"),
    _spec(hausdorff.hausdorff_dt_loss, class_name="HausdorffDTLoss", host_step=True),
    _spec(skeleton.skeleton_recall_loss, target_kind="skeletons"),
    _spec(wasserstein.generalized_wasserstein_dice_loss,
          examples=lambda classes: {"distance_matrix": wasserstein.example_distance_matrix(classes)}),
    _spec(topk.topk_loss, class_name="TopKLoss", additive=False),
)

_BY_NAME = {spec.name: spec for spec in LOSSES}
_BY_NAME.update({alias: spec for spec in LOSSES for alias in spec.aliases})

#: Adapter class names of the aliases (``DiceLoss`` for ``dice_loss``).
ALIAS_CLASS_NAMES = {"dice_loss": "DiceLoss", "jaccard_loss": "JaccardLoss"}


def get(name: str) -> LossSpec:
    """The spec of a loss by function name or alias."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def class_names(spec: LossSpec) -> tuple[str, ...]:
    """Adapter class names of a loss: its own and one per alias."""
    return (spec.class_name,) + tuple(ALIAS_CLASS_NAMES[a] for a in spec.aliases)


__all__ = ["LOSSES", "REQUIRED", "Hyperparameter", "LossSpec", "class_names", "get"]
