"""The contenders: who computes each benchmark loss, on which framework.

Every contender turns a :class:`~benchmarks.cases.Loss` and a framework's converted inputs
into an *objective* ``f(prediction, target) -> scalar`` (the batch mean); the framework
runner in :mod:`benchmarks.worker` wraps it into one forward + backward step (gradient with
respect to the prediction). Peers are configured to compute the same quantity as the
lossfns function they are matched with (see ``PEER_NOTES``); where a peer cannot take
integer labels, the one-hot expansion happens inside its step, as a user would have to.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Callable

from .cases import COMPOUND_LOSSES, LOSS_NAMES, STRUCTURE_LOSSES, Loss

#: The losses every lossfns contender and most peers have (the structure losses run on
#: lossfns_torch and their own peer only; the compound ones on lossfns and MONAI).
ALL = tuple(name for name in LOSS_NAMES if name not in STRUCTURE_LOSSES + COMPOUND_LOSSES)
LOSSFNS = ALL + COMPOUND_LOSSES


@dataclass(frozen=True)
class Contender:
    """A benchmark column.

    Attributes:
      name: identifier on the command line and in the results.
      framework: ``"torch"``, ``"jax"`` or ``"tensorflow"``: which runner times it.
      losses: the benchmark losses it has an equivalent of.
      objective: ``objective(loss, inputs) -> f(prediction, target)``.
      requires: modules that must import for the contender to run.
      description: one line for the report.
    """

    name: str
    framework: str
    losses: tuple
    objective: Callable
    requires: tuple
    description: str


# -- lossfns core and adapters ------------------------------------------------------------

def _core_function(loss: Loss):
    import lossfns

    return getattr(lossfns, loss.function)


def _required(loss: Loss, classes: int) -> dict:
    """The registry's example values of the loss's required hyperparameters (the
    Wasserstein Dice's distance matrix) for ``classes`` classes."""
    from lossfns import registry

    return registry.get(loss.function).example_arguments(classes)


def _lossfns_core(loss, inputs):
    fn, mean = _core_function(loss), inputs.mean
    options = {**_required(loss, inputs.case.classes), **loss.options}
    return lambda x, t: mean(fn(t, x, class_axis=inputs.class_axis, **options))


class _Compiled:
    """``torch.compile(fullgraph=True)``; on a graph break, compiled again without fullgraph.

    SPEC §2 requires one graph; when the core breaks that promise the timing is still
    useful, and ``note`` says that it was taken with graph breaks.
    """

    def __init__(self, fn):
        import torch

        # Every loss and case compiles the same lambda's code again; dynamo's default limit
        # of recompilations per code object would be reached within one process.
        config = torch._dynamo.config
        for limit in ("recompile_limit", "cache_size_limit"):
            if hasattr(config, limit):
                setattr(config, limit, max(getattr(config, limit), 256))
        self.fn, self.note = fn, None
        self.compiled = torch.compile(fn, fullgraph=True, dynamic=False)

    def __call__(self, x, t):
        import torch

        try:
            return self.compiled(x, t)
        except torch._dynamo.exc.TorchDynamoException as exc:
            if self.note is not None:
                raise
            reason = str(exc).splitlines()[0]
            self.note = f"fullgraph=True failed ({type(exc).__name__}: {reason}); timed with graph breaks"
            self.compiled = torch.compile(self.fn, dynamic=False)
            return self.compiled(x, t)


def _lossfns_torch_compile(loss, inputs):
    return _Compiled(_lossfns_core(loss, inputs))


def _adapter_class(framework: str, loss: Loss):
    from lossfns import registry

    module = importlib.import_module(f"lossfns.adapters.{framework}")
    return getattr(module, registry.get(loss.function).class_name)


def _torch_adapter(loss, inputs):
    module = _adapter_class("torch", loss)(**loss.options).to(inputs.device)
    return lambda x, t: module(x, t)


def _keras_adapter(loss, inputs):
    instance = _adapter_class("keras", loss)(**loss.options)
    return lambda x, t: instance(t, x)


# -- MONAI ---------------------------------------------------------------------------------

def _monai(loss, inputs):
    from monai import losses

    sparse, classes = inputs.case.sparse, inputs.case.classes
    kw = dict(loss.kwargs)
    if loss.name == "dice":  # MONAI's smooth s on both sides equals our epsilon s/2
        fn = losses.DiceLoss(to_onehot_y=sparse, smooth_nr=2e-5, smooth_dr=2e-5)
    elif loss.name == "tversky":
        fn = losses.TverskyLoss(to_onehot_y=sparse, alpha=kw["alpha"], beta=kw["beta"])
    elif loss.name == "categorical_focal":
        fn = losses.FocalLoss(to_onehot_y=sparse, gamma=kw["gamma"], use_softmax=True)
    elif loss.name == "binary_focal":
        fn = losses.FocalLoss(to_onehot_y=sparse, gamma=kw["gamma"], alpha=kw["alpha"])
    elif loss.name == "cldice":  # our defaults: 3 iterations, smoothing 1, background dropped
        fn = losses.SoftclDiceLoss(iter_=3, include_background=False, to_onehot_y=sparse)
    elif loss.name == "dice_ce":  # both from logits, CE and Dice weighted 1:1
        fn = losses.DiceCELoss(softmax=True, to_onehot_y=sparse)
    elif loss.name == "generalized_dice":  # both weigh classes by 1 / (Σ labels)²
        fn = losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=sparse)
    elif loss.name == "wasserstein_dice":  # softmax inside, labels without a channel axis
        import numpy as np

        matrix = np.asarray(_required(loss, classes)["distance_matrix"], dtype=np.float32)
        wasserstein = losses.GeneralizedWassersteinDiceLoss(matrix, weighting_mode="default")
        if sparse:
            return lambda x, t: wasserstein(x, t)
        return lambda x, t: wasserstein(x, t.argmax(1))
    else:  # binary only in MONAI: it computes on every channel but uses channels 0 and 1
        fn = losses.AsymmetricUnifiedFocalLoss(to_onehot_y=sparse, num_classes=classes,
                                               weight=0.5, delta=0.6, gamma=0.5)
    # MONAI takes integer labels with a size-1 channel axis.
    return (lambda x, t: fn(x, t.unsqueeze(1))) if sparse else (lambda x, t: fn(x, t))


# -- nnU-Net -----------------------------------------------------------------------------------

def _nnunet(loss, inputs):
    from nnunetv2.training.loss.robust_ce_loss import TopKLoss

    fn = TopKLoss(k=dict(loss.kwargs)["k"])  # the batch's k% largest cross-entropies, from logits
    if inputs.case.sparse:
        return lambda x, t: fn(x, t.unsqueeze(1))
    return lambda x, t: fn(x, t.argmax(1, keepdim=True))


# -- segmentation-models-pytorch -------------------------------------------------------------

def load_smp_losses():
    """``segmentation_models_pytorch.losses`` without running the package ``__init__``.

    The package ``__init__`` imports the model zoo (timm, huggingface_hub, ...); the losses
    need torch only. A bare parent package pointing at the installed folder lets the
    subpackage import on its own.
    """
    name = "segmentation_models_pytorch"
    if f"{name}.losses" in sys.modules:
        return sys.modules[f"{name}.losses"]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("segmentation-models-pytorch is not installed")
    if name not in sys.modules:
        parent = types.ModuleType(name)
        parent.__path__ = list(spec.submodule_search_locations)
        sys.modules[name] = parent
    return importlib.import_module(f"{name}.losses")


def _smp(loss, inputs):
    losses = load_smp_losses()
    # "multilabel" treats each dense channel on its own (our dense labels); "multiclass"
    # takes integer labels.
    mode = "multiclass" if inputs.case.sparse else "multilabel"
    kw = dict(loss.kwargs)
    if loss.name == "dice":
        fn = losses.DiceLoss(mode, from_logits=False, smooth=1e-5)
    elif loss.name == "tversky":
        fn = losses.TverskyLoss(mode, from_logits=False, smooth=1e-5, alpha=kw["alpha"], beta=kw["beta"])
    elif loss.name == "lovasz_softmax":  # per image on logits, integer labels (argmax in the step)
        fn = losses.LovaszLoss("multiclass", per_image=True)
        return (lambda x, t: fn(x, t)) if inputs.case.sparse else (lambda x, t: fn(x, t.argmax(1)))
    else:  # binary_focal: smp's FocalLoss is the sigmoid focal loss on logits
        fn = losses.FocalLoss(mode, alpha=kw["alpha"], gamma=kw["gamma"])
    return lambda x, t: fn(x, t)


# -- Keras 3 ---------------------------------------------------------------------------------

def _keras(loss, inputs):
    import keras
    import tensorflow as tf

    kw = dict(loss.kwargs)
    if loss.name == "dice":
        fn = keras.losses.Dice()
    elif loss.name == "tversky":  # Keras' alpha weighs false negatives: swapped on purpose
        fn = keras.losses.Tversky(alpha=kw["beta"], beta=kw["alpha"])
    else:
        fn = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=kw["gamma"], from_logits=True)
    if not inputs.case.sparse:
        return lambda x, t: fn(t, x)
    classes = inputs.case.classes
    return lambda x, t: fn(tf.one_hot(t, classes, dtype=x.dtype), x)


# -- naive baseline and floor ------------------------------------------------------------------

def _naive(loss, inputs):
    from .naive import NAIVE

    fn, kw = NAIVE[loss.name], dict(loss.kwargs)
    return lambda x, t: fn(t, x, **kw)


def _floor(loss, inputs):
    """``Σ p·t``: one read of each input and one gradient write, the least any loss does.

    With integer labels the same least work is ``Σ p[label]`` (a gather).
    """
    import torch

    if inputs.case.sparse:
        return lambda x, t: torch.take_along_dim(x, t.unsqueeze(1), dim=1).sum()
    return lambda x, t: (x * t).sum()


CONTENDERS = {c.name: c for c in (
    Contender("lossfns_torch", "torch", LOSSFNS + STRUCTURE_LOSSES, _lossfns_core, ("torch",),
              "lossfns core, torch eager"),
    Contender("lossfns_compile", "torch", LOSSFNS, _lossfns_torch_compile, ("torch",),
              "lossfns core under torch.compile(fullgraph=True)"),
    Contender("lossfns_jax", "jax", LOSSFNS, _lossfns_core, ("jax",), "lossfns core under jax.jit"),
    Contender("lossfns_tf", "tensorflow", LOSSFNS, _lossfns_core, ("tensorflow",),
              "lossfns core under tf.function"),
    Contender("torch_adapter", "torch", LOSSFNS, _torch_adapter, ("torch", "lossfns.adapters.torch"),
              "lossfns.adapters.torch modules, eager"),
    Contender("keras_adapter", "tensorflow", LOSSFNS, _keras_adapter, ("keras", "lossfns.adapters.keras"),
              "lossfns.adapters.keras losses (TensorFlow backend) under tf.function"),
    Contender("monai", "torch", ALL + ("cldice", "wasserstein_dice") + COMPOUND_LOSSES, _monai, ("monai",),
              "MONAI DiceLoss/TverskyLoss/FocalLoss/AsymmetricUnifiedFocalLoss/SoftclDiceLoss/DiceCELoss/"
              "GeneralizedDiceLoss/GeneralizedWassersteinDiceLoss"),
    Contender("nnunet", "torch", ("topk",), _nnunet, ("nnunetv2.training.loss.robust_ce_loss",),
              "nnU-Net v2 TopKLoss(k=10)"),
    Contender("smp", "torch", ("dice", "tversky", "binary_focal", "lovasz_softmax"), _smp,
              ("segmentation_models_pytorch",), "segmentation-models-pytorch DiceLoss/TverskyLoss/FocalLoss/LovaszLoss"),
    Contender("keras", "tensorflow", ("dice", "tversky", "categorical_focal"), _keras, ("keras",),
              "Keras 3 Dice/Tversky/CategoricalFocalCrossentropy under tf.function"),
    Contender("naive", "torch", ALL, _naive, ("torch",), "plain torch from the papers' formulas"),
    Contender("floor", "torch", ("floor",), _floor, ("torch",), "forward + backward of (p * t).sum()"),
)}
CONTENDER_NAMES = tuple(CONTENDERS)

#: How each peer is matched to the lossfns loss of the same row.
PEER_NOTES = {
    "monai": "dice: DiceLoss(smooth 2e-5); tversky: TverskyLoss(α=0.3, β=0.7); categorical_focal: "
             "FocalLoss(use_softmax=True); binary_focal: FocalLoss (sigmoid); unified_focal: "
             "AsymmetricUnifiedFocalLoss (binary-only in MONAI: it runs on all C channels but uses "
             "channels 0-1); cldice: SoftclDiceLoss(iter_=3, include_background=False; its smooth=1e-4 in "
             "the harmonic mean is the only difference); dice_ce: DiceCELoss(softmax=True); generalized_dice: "
             "GeneralizedDiceLoss(softmax=True) (both from logits, like lossfns' rows); wasserstein_dice: "
             "GeneralizedWassersteinDiceLoss(M, weighting_mode='default') with lossfns' example matrix "
             "(integer labels; one-hot targets argmax-ed in the step); sparse labels via to_onehot_y=True.",
    "nnunet": "TopKLoss(k=10) from logits (the k% largest cross-entropies of the batch: lossfns' topk_loss "
              "with batch=True); labels with a size-1 channel axis, one-hot targets argmax-ed in the step.",
    "smp": "DiceLoss/TverskyLoss(from_logits=False), FocalLoss (sigmoid on logits); mode 'multilabel' "
           "for one-hot targets, 'multiclass' for integer labels; lovasz_softmax: "
           "LovaszLoss('multiclass', per_image=True) on logits, one-hot targets argmax-ed in the step.",
    "keras": "Dice, Tversky(alpha=β, beta=α: Keras swaps the names), CategoricalFocalCrossentropy"
             "(from_logits=True); integer labels are one-hot encoded inside the step.",
    "naive": "one temporary per term, float one-hot targets (one_hot inside the step for labels).",
    "floor": "(p * t).sum() with dense targets, take_along_dim(p, labels).sum() with labels.",
}


def missing_requirement(contender: Contender) -> str | None:
    """The first requirement that does not import, as a reason string, or ``None``."""
    for module in contender.requires:
        try:
            if module == "segmentation_models_pytorch":
                load_smp_losses()
            else:
                importlib.import_module(module)
        except Exception as exc:  # an adapter may be missing or broken: skip with the reason
            return f"{module} does not import ({type(exc).__name__}: {exc})"
    return None
