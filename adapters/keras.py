"""Keras 3 adapter: one ``keras.losses.Loss`` subclass per loss of :data:`lossfns.registry.LOSSES`.

Every class is generated from the registry by the loop at the bottom of this module; the
region losses derive from the abstract :class:`ConfusionLoss` (as in tensorflow-mri), the
others from :class:`RegistryLoss`::

    model.compile(optimizer="adam", loss=TverskyLoss(alpha=0.3, beta=0.7))
    model.compile(optimizer="adam", loss=CategoricalFocalLoss(from_logits=True))

The layout is channels-last (``class_axis=-1``), Keras' argument order ``(y_true, y_pred)``,
and the reductions are Keras' (``"sum_over_batch_size"`` by default, ``None``/``"none"`` for
the per-sample values). Works on the tensorflow, jax and torch backends: inputs become
backend tensors and the core computes on them (TensorFlow tensors through lossfns' shim).

Differences from ``keras.losses.Loss.__call__``:

* Integer ``y_true`` (class indices) keeps its integer dtype, whichever it is (uint8 PNG
  masks included); Keras would cast it to the loss dtype. Floating-point labels are cast to
  the loss dtype as usual, except class indices against several classes (the core's shape
  rule, :func:`lossfns.inputs.label_layout`: no class axis, or a size-1 one), which become
  int32 as in Keras' sparse losses: ``model.fit`` under ``tf.distribute`` builds the loss
  from a float copy of the labels. Against a single channel, float labels without a class
  axis are the binary target itself.
* ``sample_weight`` of one weight per sample (``[batch]``, or ``[batch, 1, ..., 1]`` of any
  rank) weights the per-sample losses as in Keras: the result is ``Σ w·loss`` reduced as
  Keras reduces (``reduction=None`` gives ``w·loss`` of shape ``[batch]``). Element weights,
  which vary beyond the batch axis (``y_pred``'s shape without the class axis, e.g.
  ``[batch, height, width]``, or anything that broadcasts to it), are passed to the core as
  its ``mask``.
* Keras' implicit masks (``Masking`` layers) are not used; pass element weights instead.

The weighting and the reduction are Keras' own, reached through the public
``keras.losses.Loss.__call__`` of a loss whose ``call`` returns the per-sample values, so
they follow Keras (including its scaling by ``1 / num_replicas`` under ``tf.distribute``).

Every class is registered with ``keras.saving.register_keras_serializable(package="lossfns")``
so a model compiled with it saves to ``.keras`` and reloads without ``custom_objects``
(once this module is imported).

Distributed batch losses (tensorflow backend): with ``batch=True``, inside a replica of a
``tf.distribute`` strategy with more than one replica (``MirroredStrategy`` in ``model.fit``,
or ``strategy.run``), the additive statistics are summed over the replicas with the
differentiable ``ReplicaContext.all_reduce`` before any formula is applied, so every replica
computes the loss ``L`` of the global batch. With any reduction but ``None``/``"none"`` the
loss returned is ``L / num_replicas``, which is what Keras does to its own losses: the
optimizer sums the replicas' gradients and the loss metric multiplies by ``num_replicas``
again, so ``model.fit`` reports ``L`` and applies the exact gradient of ``L``. The
all-reduce's backward pass sums the replicas' gradients with respect to the statistics, so
the gradient of a replica's local ``y_pred`` is exactly the slice of the single-device one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from lossfns import registry
from lossfns.inputs import label_layout
from lossfns.region import region_loss
from lossfns.registry import LossSpec

from . import _common

_ADAPTER_ARGUMENTS = {"reduction": "sum_over_batch_size", "name": None, "dtype": None}
_PACKAGE = "lossfns"


def _is_integer(x) -> bool:
    return "int" in keras.backend.standardize_dtype(x.dtype)


def _replica_context():
    """The ``tf.distribute`` replica context when this call runs in one of several replicas.

    ``None`` on the other Keras backends, outside any strategy (the default context has one
    replica) and in a cross-replica context, where there is nothing to sum over.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def _split_sample_weight(sample_weight):
    """``(per_sample, element)`` weights from Keras' ``sample_weight``, one of them ``None``.

    Weights that vary along an axis beyond the batch axis (unknown sizes count as varying)
    are element weights, for the core's ``mask``. Anything else holds one weight per sample:
    ``[batch, 1, ..., 1]`` is flattened to ``[batch]``, so that Keras multiplies it with the
    per-sample losses ``[batch]`` element by element instead of broadcasting the two into a
    ``[batch, ..., batch]`` grid.
    """
    shape = tuple(sample_weight.shape)
    if len(shape) < 2:
        return sample_weight, None
    if any(size != 1 for size in shape[1:]):
        return None, sample_weight
    return ops.reshape(sample_weight, (-1,)), None


class _KerasReduction(keras.losses.Loss):
    """Keras' weighting and reduction of values computed elsewhere, through its public API.

    ``call`` hands back the values it is given as ``y_pred``, so ``Loss.__call__`` applies
    Keras' own ``sample_weight`` handling, reduction and distributed scaling to them.
    """

    def call(self, y_true, y_pred):
        return y_pred


class RegistryLoss(keras.losses.Loss):
    """Base of the generated Keras losses; ``spec`` names the core function.

    Args (of every subclass, besides the hyperparameters and options of its loss):
      reduction: a Keras reduction: ``"sum_over_batch_size"`` (default), ``"sum"``,
        ``"mean"``, ``"mean_with_sample_weight"``, or ``None``/``"none"`` for the per-sample
        losses ``[batch]`` (``[]`` with ``batch=True``).
      name: the loss name, by default the function name (``"tversky_loss"``).
      dtype: the dtype ``y_pred`` is converted to (``keras.backend.floatx()`` by default) or
        a dtype policy. Half-precision inputs are accumulated in float32 by the core.
    """

    spec: LossSpec | None = None
    #: Hyperparameters and options of a subclass that has no ``spec`` (see ConfusionLoss).
    options_spec: LossSpec | None = None
    default_name: str | None = None

    def __init__(self, *, reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
                 **arguments: Any) -> None:
        spec = self.spec or self.options_spec
        if spec is None:
            raise TypeError(f"{type(self).__name__} is abstract; use one of the generated loss classes")
        # A ConfusionLoss subclass without a spec gets Keras' name from its class name.
        name = name or self.default_name or (self.spec.name if self.spec else None)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        values = _common.resolve(spec, _common.parameter_defaults(spec), arguments)
        self._argument_names = tuple(values)
        for key, value in values.items():
            setattr(self, key, value)

    @property
    def arguments(self) -> dict[str, Any]:
        """The hyperparameters and options this loss passes to the core."""
        return {key: getattr(self, key) for key in self._argument_names}

    def _tensors(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true)
        if not _is_integer(y_true) and keras.backend.standardize_dtype(y_true.dtype) != "bool":
            y_true = ops.cast(y_true, "int32" if self._are_indices(y_true, y_pred) else self.dtype)
        return y_true, y_pred

    def _are_indices(self, y_true, y_pred) -> bool:
        """Whether float ``y_true`` holds class indices of ``y_pred``'s several classes.

        The core's one shape rule decides; against one channel, labels without a class axis
        are the binary target, not indices. Shapes the core rejects are left to it to report.
        """
        pred_shape = tuple(y_pred.shape)
        if not -len(pred_shape) <= self.class_axis < len(pred_shape):
            return False  # the core names the bad class_axis
        axis = self.class_axis % len(pred_shape)
        if pred_shape[axis] == 1:
            return False
        try:
            return label_layout(tuple(y_true.shape), pred_shape, axis) == "indices"
        except ValueError:
            return False  # the core reports the mismatch, naming both shapes

    def _replica_sum(self):
        """The cross-replica sum of the statistics, or ``None`` (see the module docstring)."""
        context = _replica_context() if self.batch else None
        if context is None:
            return None

        def all_reduce_sum(x):
            return context.all_reduce("sum", x)

        all_reduce_sum.replicas = context.num_replicas_in_sync
        return all_reduce_sum

    def per_sample(self, y_true: Any, y_pred: Any, mask: Any | None = None,
                   all_reduce: Callable[[Any], Any] | None = None) -> Any:
        """The core's per-sample losses of backend tensors; ``mask`` holds element weights."""
        return self.spec.unchecked(y_true, y_pred, mask=mask, all_reduce=all_reduce, **self.arguments)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-sample losses ``[batch]`` (``[]`` with ``batch=True``: of the global batch
        under ``tf.distribute``), before the reduction."""
        return self.per_sample(*self._tensors(y_true, y_pred), all_reduce=self._replica_sum())

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any | None = None) -> Any:
        with keras.name_scope(self.name):
            y_true, y_pred = self._tensors(y_true, y_pred)
            mask = None
            if sample_weight is not None:
                sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
                sample_weight, mask = _split_sample_weight(sample_weight)
            all_reduce = self._replica_sum()
            losses = self.per_sample(y_true, y_pred, mask, all_reduce)
            if sample_weight is not None and len(losses.shape) == 2 and len(sample_weight.shape) == 1:
                sample_weight = ops.reshape(sample_weight, (-1, 1))  # per-class values: one weight per row
            reduction = _KerasReduction(name="reduction", reduction=self.reduction, dtype=self.dtype)
            loss = reduction(losses, losses, sample_weight=sample_weight)
            # Keras scales by 1/num_replicas only the values it reduces; a scalar (the global
            # batch loss without per-sample weights) passes through unscaled: scale it here.
            passed_through = tuple(losses.shape) == () and (
                sample_weight is None or tuple(sample_weight.shape) == ()
            )
            if all_reduce is not None and passed_through and self.reduction not in (None, "none"):
                loss = ops.multiply(loss, ops.cast(1.0 / all_reduce.replicas, loss.dtype))
            return loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dtype": self._dtype_policy.name, **self.arguments}


class ConfusionLoss(RegistryLoss):
    """Abstract base of the losses computed from the confusion terms (tensorflow-mri's name).

    The generated :class:`TverskyLoss`, :class:`FocalTverskyLoss`, :class:`F1Loss` and
    :class:`IoULoss` derive from it. A new region loss subclasses it and implements
    :meth:`class_loss`; the confusion sums, the class averaging (``average``,
    ``class_weights``, ``include_background``) and every input option come from the core::

        class DiceCoefficientLoss(ConfusionLoss):
            def class_loss(self, tp, fp, fn):
                return 1 - (2 * tp + 1e-5) / (2 * tp + fp + fn + 1e-5)

    Subclasses with hyperparameters of their own add them to ``get_config``.
    """

    options_spec = LossSpec("region_loss", region_loss, "region", "ConfusionLoss")

    def __init__(self, **arguments: Any) -> None:
        if self.spec is None and type(self).class_loss is ConfusionLoss.class_loss:
            raise TypeError(f"{type(self).__name__} is abstract: implement class_loss(tp, fp, fn)")
        super().__init__(**arguments)

    def class_loss(self, tp: Any, fp: Any, fn: Any) -> Any:
        """Loss per sample and class from the soft counts, each ``[batch, classes]``."""
        raise NotImplementedError

    def per_sample(self, y_true: Any, y_pred: Any, mask: Any | None = None,
                   all_reduce: Callable[[Any], Any] | None = None) -> Any:
        if self.spec is not None:
            return super().per_sample(y_true, y_pred, mask, all_reduce)
        return region_loss.unchecked(y_true, y_pred, self.class_loss, mask=mask, all_reduce=all_reduce,
                                     **self.arguments)


def _make_class(spec: LossSpec, class_name: str, base: type, default_name: str) -> type:
    defaults = _common.parameter_defaults(spec)
    hyperparameters = tuple(h.name for h in spec.hyperparameters)
    # Hyperparameters may be passed by position, in registry order, as tensorflow-mri allows.
    signature = _common.keyword_signature(
        defaults, extra={**_ADAPTER_ARGUMENTS, "name": default_name}, positional=hyperparameters
    )
    doc = _common.docstring(
        spec, framework="Keras", defaults=defaults,
        calling="Call as ``loss(y_true, y_pred, sample_weight=None)``; ``y_pred`` is "
                "``[batch, *spatial, classes]``.",
        extra=f"Keras arguments: ``reduction='sum_over_batch_size'``, ``name={default_name!r}``, "
              "``dtype=None`` (see :class:`RegistryLoss`).",
    )
    namespace = {
        "spec": spec, "default_name": default_name, "__doc__": doc, "__module__": __name__,
        "__qualname__": class_name,
        "__init__": _common.generated_init(RegistryLoss.__init__, signature),
    }
    cls = type(class_name, (base,), namespace)
    return keras.saving.register_keras_serializable(package=_PACKAGE, name=class_name)(cls)


def _generate(namespace: dict) -> list:
    names = []
    for spec in registry.LOSSES:
        base = ConfusionLoss if spec.family == "region" else RegistryLoss
        main, *aliases = registry.class_names(spec)
        cls = namespace[main] = _make_class(spec, main, base, spec.name)
        names.append(main)
        for alias, alias_class in zip(spec.aliases, aliases):  # DiceLoss is an F1Loss
            namespace[alias_class] = _make_class(spec, alias_class, cls, alias)
            names.append(alias_class)
    return names


__all__ = ["ConfusionLoss", "RegistryLoss", *_generate(globals())]
