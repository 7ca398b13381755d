"""What a parity run checks: its settings, the losses, the backends and the tolerances."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .. import registry

#: Backends evaluated in the calling process: the core on NumPy and array-api-strict
#: (no autodiff, so the value only; host memory only).
LOCAL_BACKENDS = ("numpy", "array-api-strict")
#: Backends evaluated in the worker process of each framework.
WORKER_BACKENDS = {
    "torch": ("torch", "torch-adapter", "keras-torch"),
    "jax": ("jax", "jax-adapter", "keras-jax"),
    "tensorflow": ("tensorflow", "keras-tensorflow"),
}
#: Column order of the report.
BACKENDS = ("numpy", "array-api-strict", "torch", "jax", "tensorflow",
            "torch-adapter", "jax-adapter", "keras-tensorflow", "keras-jax", "keras-torch")
BACKEND_GROUPS = {
    "all": BACKENDS,
    "core": ("numpy", "array-api-strict", "torch", "jax", "tensorflow"),
    "adapters": ("torch-adapter", "jax-adapter", "keras-tensorflow", "keras-jax", "keras-torch"),
    "keras": ("keras-tensorflow", "keras-jax", "keras-torch"),
}

#: SPEC §9: values agree with a float64 NumPy reference to these relative tolerances.
VALUE_TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
#: Gradients against finite differences, relative to the gradient's size (see
#: :mod:`lossfns.testing.comparison` for the floor under that size). float64: the reference
#: is good to ~1e-10 at the default shape, so 1e-7 checks the backend while a wrong
#: derivative is off at O(1). float32: measured differences stay below 1e-6 (one rounding
#: per operation, amplified a little by the Tversky ratios); 1e-4 is ten times the value
#: tolerance, as the gradient goes through one more division and power than the value.
GRADIENT_TOLERANCE = {"float64": 1e-7, "float32": 1e-4}

PERTURB_ENV = "LOSSFNS_PARITY_PERTURB"
PERTURB_FACTOR = 1.0 + 1e-3

FROM_LOGITS = (False, True, "softmax", "sigmoid")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def parse_device(text: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``"cuda"`` means ``"cuda:0"``)."""
    if not isinstance(text, str) or not _DEVICE.fullmatch(text):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {text!r}")
    return "cuda:0" if text == "cuda" else text


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """What to generate: ``shape`` is ``(batch, *spatial)``; the class axis is last.

    ``device`` is where the framework backends run: ``"cpu"`` (default) or ``"cuda[:N]"``.
    """

    shape: tuple = (2, 16, 16)
    classes: int = 3
    sparse: bool = False
    from_logits: object = False  # False, True, "softmax" or "sigmoid"
    dtype: str = "float64"
    seed: int = 0
    fd_points: int = 32
    device: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.shape, tuple) or not self.shape:
            raise ValueError(f"shape must be a non-empty tuple of sizes, got {self.shape!r}")
        for size in self.shape:
            _check_count("each size in shape", size, 1)
        _check_count("classes", self.classes, 1)
        _check_count("seed", self.seed, 0)
        _check_count("fd_points", self.fd_points, 1)
        if self.dtype not in VALUE_TOLERANCE:
            raise ValueError(f"dtype must be one of {', '.join(VALUE_TOLERANCE)}, got {self.dtype!r}")
        if not any(self.from_logits is c or (isinstance(c, str) and self.from_logits == c) for c in FROM_LOGITS):
            raise ValueError(f"from_logits must be one of False, True, 'softmax', 'sigmoid'; got {self.from_logits!r}")
        object.__setattr__(self, "device", parse_device(self.device))

    @property
    def sample_size(self) -> int:
        """Elements of ``y_pred`` per sample (spatial elements times classes)."""
        return math.prod(self.shape[1:]) * self.classes

    @property
    def elements(self) -> int:
        """Elements of ``y_pred``."""
        return self.shape[0] * self.sample_size


class Loss(NamedTuple):
    """A loss as asked for, with what the harness needs to feed it.

    ``target_kind`` (``"labels"``, ``"skeletons"`` or ``"distance_maps"``), ``logits_only``
    and ``required`` come from the registry's :class:`~lossfns.registry.LossSpec`; a spec
    without them takes labels and the run's kind of predictions.
    """

    name: str
    function: Callable
    class_name: str
    target_kind: str = "labels"
    logits_only: bool = False
    #: ``required(num_classes)``: values of the hyperparameters without a default
    #: (:meth:`~lossfns.registry.LossSpec.example_arguments`).
    required: Callable[[int], dict] | None = None


def _loss(name, spec, class_name) -> Loss:
    return Loss(name, spec.function, class_name, getattr(spec, "target_kind", "labels"),
                bool(getattr(spec, "logits_only", False)), getattr(spec, "example_arguments", None))


def resolve_losses(names=None) -> list:
    """:class:`Loss` entries for names or aliases (every registered loss by default)."""
    if not names:
        return [_loss(s.name, s, s.class_name) for s in registry.LOSSES]
    entries = []
    for name in dict.fromkeys(names):
        spec = registry.get(name)
        entries.append(_loss(name, spec, registry.ALIAS_CLASS_NAMES.get(name, spec.class_name)))
    return entries


def resolve_backends(text: str | None) -> list:
    """Backends from a comma list of names and groups (``core``, ``adapters``, ``keras``, ``all``)."""
    if not text:
        return list(BACKENDS)
    chosen: set[str] = set()
    for item in (t.strip() for t in text.split(",")):
        if item in BACKEND_GROUPS:
            chosen.update(BACKEND_GROUPS[item])
        elif item in BACKENDS:
            chosen.add(item)
        else:
            raise ValueError(f"unknown backend {item!r}; known: {', '.join(BACKENDS + tuple(BACKEND_GROUPS))}")
    return [b for b in BACKENDS if b in chosen]


def perturbed_backends() -> set:
    """Backends named in :data:`PERTURB_ENV` (a test hook)."""
    names = {n.strip() for n in os.environ.get(PERTURB_ENV, "").split(",") if n.strip()}
    unknown = names - set(BACKENDS)
    if unknown:
        raise ValueError(f"{PERTURB_ENV} names unknown backend(s): {', '.join(sorted(unknown))}")
    return names
