"""One registry describing every loss; the adapters and the CLI iterate over it.

Adding a loss to the core and a :class:`LossSpec` here makes it appear in every adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import compound, distribution, region, unified_focal
from . import validation as v

#: Options every loss takes (SPEC §2), besides the per-call ``mask`` and the
#: ``all_reduce`` hook that the adapters fill in for distributed batch losses.
INPUT_OPTIONS = {"class_axis": -1, "from_logits": False, "ignore_index": None, "batch": False, "validate": False}
#: Extra options of the region losses (SPEC §4).
REGION_OPTIONS = {"average": "macro", "class_weights": None, "include_background": True, "background_index": 0}
#: Extra option of the losses with a background class (SPEC §5-§6).
BACKGROUND_OPTIONS = {"background_index": 0}


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    default: object
    check: Callable[[str, object], object]

    def validate(self, value):
        return self.check(self.name, value)


def _optional_unit_interval(name, value):
    return None if value is None else v.check_unit_interval(name, value)


def _focal_alpha(name, value):
    return v.check_weights(name, value, allow_scalar=True)


def _gamma_at_most_one(name, value):
    value = v.check_nonnegative(name, value)
    if value > 1:
        raise ValueError(f"{name} must lie in [0, 1] for losses with a Tversky part, got {value}")
    return value


NONNEG, UNIT = v.check_nonnegative, v.check_unit_interval


def _h(name, default, check):
    return Hyperparameter(name, default, check)


@dataclass(frozen=True)
class LossSpec:
    """A loss: its core function, hyperparameters and the options family it accepts."""

    name: str
    function: Callable
    family: str
    hyperparameters: tuple = ()
    class_name: str = ""
    aliases: tuple = field(default=())
    extra_options: tuple = ()  # ((name, default), ...) beyond INPUT_OPTIONS
    sigmoid_only: bool = False  # the binary losses: from_logits="softmax" is an error

    @property
    def options(self) -> dict:
        """Constructor options of the adapters besides the hyperparameters, with defaults."""
        return {**INPUT_OPTIONS, **dict(self.extra_options)}

    @property
    def defaults(self) -> dict:
        return {h.name: h.default for h in self.hyperparameters}

    def validate(self, **values) -> dict:
        """Check hyperparameters (by name, as the core would) before any data is seen."""
        known = self.defaults
        unknown = set(values) - set(known) - set(self.options)
        if unknown:
            raise TypeError(f"{self.name} got unexpected argument(s): {', '.join(sorted(unknown))}")
        checked = dict(values)
        for h in self.hyperparameters:
            if h.name in values:
                checked[h.name] = h.validate(values[h.name])
        if "average" in values:
            v.check_choice("average", values["average"], v.AVERAGES)
        if "from_logits" in values:
            v.check_choice("from_logits", values["from_logits"], v.FROM_LOGITS)
            if self.sigmoid_only and values["from_logits"] == "softmax":
                raise ValueError(f"from_logits='softmax' is not valid for {self.name}; use True or 'sigmoid'")
        if "class_weights" in values:
            checked["class_weights"] = v.check_weights("class_weights", values["class_weights"])
        return checked


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_FAMILY_OPTIONS = {"region": REGION_OPTIONS, "distribution": {}, "compound": {}, "unified_focal": BACKGROUND_OPTIONS}


def _spec(function, family, *hyperparameters, class_name=None, aliases=(), options=None,
          sigmoid_only=False):
    name = function.__name__
    extra = _FAMILY_OPTIONS[family] if options is None else options
    return LossSpec(name, function, family, tuple(hyperparameters),
                    class_name or _camel(name).replace("Iou", "IoU"), aliases, tuple(extra.items()),
                    sigmoid_only)


LOSSES: tuple[LossSpec, ...] = (
    _spec(region.tversky_loss, "region",
          _h("alpha", 0.3, NONNEG), _h("beta", 0.7, NONNEG), _h("epsilon", 1e-5, NONNEG)),
    _spec(region.focal_tversky_loss, "region",
          _h("alpha", 0.3, NONNEG), _h("beta", 0.7, NONNEG), _h("gamma", 0.75, NONNEG),
          _h("epsilon", 1e-5, NONNEG)),
    _spec(region.f1_loss, "region", _h("epsilon", 1e-5, NONNEG), aliases=("dice_loss",)),
    _spec(region.iou_loss, "region", _h("epsilon", 1e-5, NONNEG), aliases=("jaccard_loss",)),
    _spec(distribution.binary_crossentropy, "distribution", class_name="BinaryCrossentropy",
          sigmoid_only=True),
    _spec(distribution.categorical_crossentropy, "distribution", class_name="CategoricalCrossentropy"),
    _spec(distribution.binary_focal_loss, "distribution",
          _h("alpha", 0.25, _optional_unit_interval), _h("gamma", 2.0, NONNEG), sigmoid_only=True),
    _spec(distribution.categorical_focal_loss, "distribution",
          _h("alpha", None, _focal_alpha), _h("gamma", 2.0, NONNEG)),
    _spec(compound.combo_loss, "compound",
          _h("alpha", 0.5, UNIT), _h("beta", 0.5, UNIT), _h("epsilon", 1e-5, NONNEG),
          options=BACKGROUND_OPTIONS),
    _spec(compound.hybrid_focal_loss, "compound",
          _h("weight", 0.5, UNIT), _h("focal_alpha", None, _focal_alpha), _h("focal_gamma", 2.0, NONNEG),
          _h("tversky_alpha", 0.3, NONNEG), _h("tversky_beta", 0.7, NONNEG),
          _h("tversky_gamma", 0.75, NONNEG), _h("epsilon", 1e-5, NONNEG)),
    _spec(unified_focal.symmetric_focal_loss, "unified_focal",
          _h("delta", 0.7, UNIT), _h("gamma", 2.0, NONNEG)),
    _spec(unified_focal.asymmetric_focal_loss, "unified_focal",
          _h("delta", 0.7, UNIT), _h("gamma", 2.0, NONNEG)),
    _spec(unified_focal.symmetric_focal_tversky_loss, "unified_focal",
          _h("delta", 0.7, UNIT), _h("gamma", 0.75, _gamma_at_most_one), _h("epsilon", 1e-7, NONNEG)),
    _spec(unified_focal.asymmetric_focal_tversky_loss, "unified_focal",
          _h("delta", 0.7, UNIT), _h("gamma", 0.75, _gamma_at_most_one), _h("epsilon", 1e-7, NONNEG)),
    _spec(unified_focal.symmetric_unified_focal_loss, "unified_focal",
          _h("weight", 0.5, UNIT), _h("delta", 0.6, UNIT), _h("gamma", 0.5, _gamma_at_most_one),
          _h("epsilon", 1e-7, NONNEG)),
    _spec(unified_focal.asymmetric_unified_focal_loss, "unified_focal",
          _h("weight", 0.5, UNIT), _h("delta", 0.6, UNIT), _h("gamma", 0.5, _gamma_at_most_one),
          _h("epsilon", 1e-7, NONNEG)),
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
