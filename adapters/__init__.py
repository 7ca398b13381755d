"""Framework adapters of the lossfns core, generated from :data:`lossfns.registry.LOSSES`.

* :mod:`lossfns.adapters.keras`: one ``keras.losses.Loss`` subclass per loss (Keras 3 on the
  tensorflow, jax and torch backends), ``loss(y_true, y_pred, sample_weight=None)``.
* :mod:`lossfns.adapters.torch`: one ``torch.nn.Module`` per loss, ``module(input, target)``.
* :mod:`lossfns.adapters.jax`: one jit-compiled function per loss,
  ``fn(predictions, targets, **options)``, returning per-sample values like optax.

This package imports no framework; each submodule imports only its own.
"""

from __future__ import annotations

import importlib

FRAMEWORKS = ("keras", "torch", "jax")


def get(framework: str, name: str):
    """The adapter of loss ``name`` (function name or alias) for ``framework``.

    Keras and torch give the class (``get("torch", "dice_loss")`` is ``DiceLoss``), jax
    gives the function.
    """
    from lossfns import registry

    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}; got {framework!r}")
    spec = registry.get(name)
    module = importlib.import_module(f"{__name__}.{framework}")
    if framework == "jax":
        return getattr(module, name)
    if name in registry.ALIAS_CLASS_NAMES:
        return getattr(module, registry.ALIAS_CLASS_NAMES[name])
    return getattr(module, spec.class_name)
