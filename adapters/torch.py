"""PyTorch adapter: one ``torch.nn.Module`` per loss of :data:`lossfns.registry.LOSSES`.

Every class is generated from the registry by the loop at the bottom of this module and
derives from :class:`LossModule`::

    loss_fn = TverskyLoss(alpha=0.3, beta=0.7)         # class_axis=1: [N, C, *spatial]
    loss = loss_fn(logits.softmax(1), target)          # target: [N, *spatial] int64 or one-hot
    per_sample = TverskyLoss(reduction="none")(probs, target)        # [N]

``forward(input, target, mask=None)`` follows torch's argument order (prediction first) and
calls the core with ``(target, input)``. Hyperparameters are attributes (``loss_fn.alpha``),
checked at construction and shown by ``repr``. The module holds no data-dependent Python
branch, so ``torch.compile(fullgraph=True)`` traces it whole.

Distributed batch losses: with ``batch=True`` and ``process_group=`` a
``torch.distributed`` group, the additive statistics (confusion sums, element counts) are
summed over the group with a differentiable all-reduce before any formula is applied, so
every rank gets the loss of the global batch. The backward pass sums the gradients across
ranks too: the gradient of a rank's local inputs is world_size times the single-process one,
which DDP's gradient averaging turns back into the exact parameter gradient.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from lossfns import registry
from lossfns.deep_supervision import (
    check_level_weights,
    level_weights,
    supervised_levels,
)
from lossfns.registry import LossSpec

from . import _common

#: torch's layout is ``[N, C, *spatial]``; every other default comes from the registry.
TORCH_OPTION_DEFAULTS = {"class_axis": 1}
_ADAPTER_ARGUMENTS = {"reduction": "mean", "process_group": None}


def _reduce(values, reduction: str):
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _functional_collective_sum(x, *, group):
    from torch.distributed import _functional_collectives

    return _functional_collectives.all_reduce(x, "sum", group)


def _legacy_autograd_sum(x, *, group):
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, group=group)


@functools.cache
def _functional_all_reduce_is_differentiable() -> bool:
    """Whether torch's functional ``all_reduce`` has a backward (one summing the gradients).

    Recent torch registers one and deprecates ``torch.distributed.nn.functional.all_reduce``
    in its favour (rejecting the latter under ``torch.compile``); older releases have the
    legacy autograd function only, and a functional all-reduce without a backward there
    would silently cut the gradient. The dispatcher says which case this is.
    """
    try:
        # The module registers the operator's autograd kernel when it is imported: asked
        # before that, the dispatcher says no in a fresh process (and the answer is cached).
        import torch.distributed._functional_collectives  # noqa: F401

        return bool(torch._C._dispatch_has_kernel_for_dispatch_key("_c10d_functional::all_reduce", "Autograd"))
    except (AttributeError, RuntimeError, ImportError):  # no such query or operator: an old torch
        return False


def _group_sum(group):
    """A sum over ``group`` whose backward pass all-reduces the gradient as well.

    Resolved when the module is built (the dispatcher query is not traceable), so that
    ``forward`` only calls it: under ``torch.compile`` the functional collective is traced.
    """
    if _functional_all_reduce_is_differentiable():
        return functools.partial(_functional_collective_sum, group=group)
    return functools.partial(_legacy_autograd_sum, group=group)


class LossModule(torch.nn.Module):
    """Base of the generated loss modules; ``spec`` names the core function.

    Args (of every subclass, besides the hyperparameters and options of its loss):
      reduction: ``"mean"`` (default) or ``"sum"`` over the per-sample losses, or ``"none"``
        for the core's values, ``[N]`` (``[]`` with ``batch=True``).
      process_group: a ``torch.distributed`` process group to sum the statistics over
        (needs ``batch=True``); ``torch.distributed.group.WORLD`` for the default group.
    """

    spec: LossSpec | None = None

    def __init__(self, *, reduction: Literal["mean", "sum", "none"] = "mean", process_group: Any = None,
                 **arguments: Any) -> None:
        super().__init__()
        spec = self.spec
        if spec is None:
            raise TypeError(f"{type(self).__name__} is abstract; use one of the generated loss classes")
        values = _common.resolve(spec, _common.parameter_defaults(spec, **TORCH_OPTION_DEFAULTS), arguments)
        self.reduction = _common.check_reduction(reduction)
        _common.check_distributed(spec, "process_group", process_group, batch=values["batch"], unit="rank")
        self.process_group = process_group
        self._group_sum = None if process_group is None else _group_sum(process_group)
        self._argument_names = tuple(values)
        for name, value in values.items():
            setattr(self, name, value)

    @property
    def arguments(self) -> dict[str, Any]:
        """The hyperparameters and options this module passes to the core."""
        return {name: getattr(self, name) for name in self._argument_names}

    def forward(self, input: torch.Tensor, target: torch.Tensor,  # noqa: A002 - torch's argument name
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of ``input`` (probabilities or logits) against ``target``.

        Args:
          input: ``[N, C, *spatial]`` floating point (with the default ``class_axis=1``).
          target: integer class indices ``[N, *spatial]`` (or ``[N, 1, *spatial]``), or dense
            labels of ``input``'s shape.
          mask: optional element weights ``[N, *spatial]``.

        Returns:
          A scalar, or ``[N]`` (``[]`` with ``batch=True``) with ``reduction="none"``.
        """
        values = self.spec.unchecked(target, input, mask=mask, all_reduce=self._group_sum, **self.arguments)
        return _reduce(values, self.reduction)

    def extra_repr(self) -> str:
        defaults = _common.parameter_defaults(self.spec, **TORCH_OPTION_DEFAULTS)
        hyper = {h.name for h in self.spec.hyperparameters}
        shown = [
            f"{name}={value!r}" for name, value in self.arguments.items()
            if name in hyper or value != defaults[name]
        ]
        shown.append(f"reduction={self.reduction!r}")
        if self.process_group is not None:
            shown.append(f"process_group={self.process_group!r}")
        return ", ".join(shown)


def _own_forward(class_name: str):
    """A copy of :meth:`LossModule.forward` with a code object of its own.

    Dynamo keys its compiled graphs, and its recompile limit (8), on the code object being
    run: were ``forward`` shared, every generated class would count against one limit, and
    ``torch.compile(fullgraph=True)`` would fail from the ninth loss class of a process.
    With its own code object and name each class compiles like a hand-written module.
    """
    shared = LossModule.forward
    qualname = f"{class_name}.forward"
    # A new name as well as a new object: Dynamo's automatic-dynamic state is keyed on
    # (file, first line, name), and shared, it would turn one class's float hyperparameters
    # into symbolic values because another class had other values. Tracebacks read
    # "in DiceLoss.forward".
    code = shared.__code__.replace(co_name=qualname)
    if hasattr(code, "co_qualname"):  # Python 3.11+
        code = code.replace(co_qualname=qualname)
    forward = types.FunctionType(code, shared.__globals__, shared.__name__, shared.__defaults__,
                                 shared.__closure__)
    forward.__kwdefaults__ = shared.__kwdefaults__
    forward.__annotations__ = dict(shared.__annotations__)
    forward.__doc__ = shared.__doc__
    forward.__qualname__ = f"{class_name}.forward"
    forward.__module__ = shared.__module__
    return forward


def _make_class(spec: LossSpec, class_name: str, base: type) -> type:
    defaults = _common.parameter_defaults(spec, **TORCH_OPTION_DEFAULTS)
    signature = _common.keyword_signature(defaults, extra=_ADAPTER_ARGUMENTS)
    doc = _common.docstring(
        spec, framework="PyTorch", defaults=defaults,
        calling="Call as ``module(input, target, mask=None)``; ``input`` is ``[N, C, *spatial]``.",
        extra="Adapter arguments: ``reduction='mean'|'sum'|'none'``, ``process_group=None`` "
              "(see :class:`LossModule`).",
    )
    namespace = {
        "spec": spec, "__doc__": doc, "__module__": __name__, "__qualname__": class_name,
        "__init__": _common.generated_init(LossModule.__init__, signature),
        "forward": _own_forward(class_name),
    }
    return type(class_name, (base,), namespace)


def _generate(namespace: dict) -> list:
    names = []
    for spec in registry.LOSSES:
        main, *aliases = registry.class_names(spec)
        cls = namespace[main] = _make_class(spec, main, LossModule)
        names.append(main)
        for alias in aliases:  # DiceLoss is an F1Loss (isinstance holds) under its own name
            namespace[alias] = _make_class(spec, alias, cls)
            names.append(alias)
    return names


class DeepSupervisionLoss(torch.nn.Module):
    """One loss module over the outputs of a deeply supervised network (docs: Concepts › Deep supervision).

    ``forward(inputs, target, mask=None)`` takes a list or tuple of predictions, highest
    resolution first; output ``i`` is scored by ``loss_module`` against ``target`` (and
    ``mask``) downsampled to its size by keeping the centre element of each block, as
    nnU-Net and MONAI do, and the results are summed with the weights: ``None`` (nnU-Net's
    ``2^-i`` with the lowest resolution 0, normalised), ``"exp"`` (MONAI's
    ``max(0.5^i, 1/16)``), ``"same"``, or one number per output.
    """

    def __init__(self, loss_module: Callable[..., torch.Tensor], weights: str | Sequence[float] | None = None) -> None:
        super().__init__()
        if not callable(loss_module):
            raise TypeError(f"loss_module must be a loss module, got {loss_module!r}")
        weights = check_level_weights(weights)  # the length is checked against the outputs
        self.loss_module = loss_module
        self.weights = weights

    def forward(self, inputs: Sequence[torch.Tensor], target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        class_axis = getattr(self.loss_module, "class_axis", 1)
        levels = supervised_levels(target, inputs, class_axis=class_axis, mask=mask)
        weights = level_weights(self.weights, len(levels))
        total = None
        for w, prediction, (level_target, level_mask) in zip(weights, inputs, levels):
            extra = {} if level_mask is None else {"mask": level_mask}
            term = self.loss_module(prediction, level_target, **extra) * w
            total = term if total is None else total + term
        return total

    def extra_repr(self) -> str:
        return f"weights={self.weights!r}"


__all__ = ["DeepSupervisionLoss", "LossModule", *_generate(globals())]
