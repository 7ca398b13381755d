"""Exercise ``lossfns.adapters.keras`` on one Keras backend; run once per ``KERAS_BACKEND``.

    KERAS_BACKEND=jax python tests/keras_backend_check.py results.json

Keras picks its backend once per process, so ``tests/test_adapter_keras.py`` runs this
script in a subprocess per backend and asserts on the JSON it writes. The script only
records what the adapter does; the expected values are computed by the test from the core.

Recorded for every class (aliases included): its name, bases and constructor defaults; on
one input case of :func:`make_inputs`, the per-sample, reduced and weighted values and the
gradient with respect to ``y_pred`` (float64); whether ``get_config``/``from_config`` and
Keras serialization round-trip. For a few representative losses: the loss history of a tiny
model trained with ``model.fit``, a ``.keras`` save/reload without ``custom_objects`` and the
``mixed_float16`` policy. One broken loss is recorded as an error, not a crash.

Importing this module (the test does, for :func:`make_inputs`) imports NumPy only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

#: Distinct sizes, so that a mixed-up axis cannot go unnoticed.
BATCH, HEIGHT, WIDTH, CLASSES = 2, 4, 5, 3
#: name -> constructor options of an input case.
CASES = {"dense": {}, "sparse": {}, "logits": {"from_logits": True}}
#: One region, one distribution and one Unified Focal loss train a model.
TRAINED = ("TverskyLoss", "CategoricalFocalLoss", "AsymmetricUnifiedFocalLoss")
REDUCTIONS = ("sum_over_batch_size", "sum")
#: Every Keras reduction, for the checks of the weighting (None: the per-sample values).
ALL_REDUCTIONS = (None, "sum_over_batch_size", "sum", "mean", "mean_with_sample_weight")
#: What the report shows for a constructor argument without a default.
REQUIRED = "<required>"
#: Integer label dtypes: PNG masks load as uint8. (Keras' torch backend has no uint64.)
LABEL_DTYPES = ("uint8", "int8", "int16", "uint16", "uint32", "int32", "int64")
#: The dtypes ``model.fit`` crashed on with the tensorflow backend (TensorFlow's range and
#: gather kernels lack them); other backends are covered by the direct calls, as a fit
#: there costs a compilation each.
FIT_LABEL_DTYPES = ("uint8", "int8", "int16", "uint16")
#: Shapes of one weight per sample (Keras' ``sample_weight``); ``()`` is one scalar weight.
PER_SAMPLE_WEIGHT_SHAPES = ((), (BATCH,), (BATCH, 1), (BATCH, 1, 1), (BATCH, 1, 1, 1))
#: Losses checked on label layouts, dtypes and weights: one region, two distribution losses
#: and one Unified Focal loss (whose focal part expands a single channel to two).
LABEL_CLASSES = ("DiceLoss", "CategoricalCrossentropy", "BinaryCrossentropy",
                 "AsymmetricUnifiedFocalLoss")


def make_inputs(case: str, seed: int = 0, spec=None):
    """``(y_true, y_pred)`` as float64/int32 NumPy arrays, channels-last.

    With a ``spec``, what that loss takes: signed distances for a loss whose first argument
    is ``distance_maps``, and logits for a logits-only loss, whatever the case.
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(BATCH, HEIGHT, WIDTH, CLASSES))
    labels = rng.integers(0, CLASSES, size=(BATCH, HEIGHT, WIDTH)).astype(np.int32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y_pred = logits if case == "logits" or (spec is not None and spec.logits_only) else probs
    if spec is not None and spec.target_kind == "distance_maps":
        return rng.normal(size=logits.shape), y_pred
    if spec is not None and spec.target_kind == "skeletons":  # label maps in every case
        return labels, y_pred
    return (np.eye(CLASSES)[labels] if case == "dense" else labels), y_pred


def options_of(case: str, spec) -> dict:
    """Constructor options of an input case, with the loss's required hyperparameters."""
    return {**CASES[case], **spec.example_arguments(CLASSES)}


def make_weights(seed: int = 1):
    """Per-sample weights ``[batch]`` and element weights ``[batch, height, width]``."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, size=BATCH), rng.uniform(0.0, 1.0, size=(BATCH, HEIGHT, WIDTH))


def changed_hyperparameters(spec) -> dict:
    """Every float hyperparameter at 0.8 times its default (which keeps it in range), every
    int one (a count) one above it.

    Choices such as ``weighting="square"`` and ``None`` defaults are left at their default;
    a required hyperparameter gets its example value.
    """
    changed = dict(spec.example_arguments(CLASSES))
    for h in spec.hyperparameters:
        if isinstance(h.default, float):
            changed[h.name] = h.default * 0.8
        elif isinstance(h.default, int) and not isinstance(h.default, bool):
            changed[h.name] = h.default + 1  # counts such as clDice's iterations
    return changed


def _gradient(keras, fn, y_pred):
    """``d fn / d y_pred`` with the backend's own autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(y_pred)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
        return tape.gradient(out, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(fn))(jax.numpy.asarray(y_pred)))
    import torch

    x = torch.tensor(y_pred, requires_grad=True)
    fn(x).backward()
    return x.grad.numpy()


def _compiled(keras, fn):
    """``fn`` under ``jax.jit`` on the jax backend: one compilation instead of one per op."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _numpy(keras, x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64).tolist()


def _recorded(function):
    """``function()``, or the error it raised: one broken loss must not hide the others."""
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
        return {"error": f"{type(error).__name__}: {error}"}


def case_of(index: int) -> str:
    """The input case of the ``index``-th class: the cases rotate, so each is covered."""
    return tuple(CASES)[index % len(CASES)]


def check_values(keras, adapter) -> dict:
    """Per-sample values, reductions, sample weights and the gradient, one case per class.

    On the jax backend every new computation compiles (as in ``model.fit``, under
    ``jax.jit``), so each class gets one input case, rotating over the classes, which keeps
    the subprocess well under a minute.
    """
    from lossfns import registry

    per_sample_weight, element_weight = make_weights()

    def entry(cls, case):
        y_true, y_pred = make_inputs(case, spec=cls.spec)
        options = options_of(case, cls.spec)
        loss = cls(dtype="float64", **options)

        def outputs(predictions):
            results = {
                str(reduction): cls(reduction=reduction, dtype="float64", **options)(y_true, predictions)
                for reduction in (None, *REDUCTIONS)
            }
            results["sample_weight"] = loss(y_true, predictions, sample_weight=per_sample_weight)
            results["element_weight"] = loss(y_true, predictions, sample_weight=element_weight)
            return results

        results = {k: _numpy(keras, v) for k, v in _compiled(keras, outputs)(y_pred).items()}
        results["case"] = case
        results["gradient"] = _gradient(keras, lambda p: loss(y_true, p), y_pred).tolist()
        return results

    names = [name for spec in registry.LOSSES for name in registry.class_names(spec)]
    return {
        name: _recorded(lambda: entry(getattr(adapter, name), case_of(index)))
        for index, name in enumerate(names)
    }


def check_configs(keras, adapter) -> dict:
    """Round trips of a loss built with non-default arguments, per class."""
    from lossfns import registry

    def entry(cls, changed):
        y_true, y_pred = make_inputs("sparse", spec=cls.spec)
        loss = cls(**changed)
        config = loss.get_config()
        revived = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
        return {
            "config": {k: config[k] for k in changed},
            "from_config": cls.from_config(config).get_config() == config,
            "deserialized_class": type(revived).__name__,
            "deserialized_config": revived.get_config() == config,
            "value": _numpy(keras, loss(y_true, y_pred)),
            "revived_value": _numpy(keras, revived(y_true, y_pred)),
        }

    results = {}
    for spec in registry.LOSSES:
        # Every hyperparameter changed (x0.8 keeps each in its valid range), plus options.
        changed = changed_hyperparameters(spec)
        changed.update(batch=True, reduction="sum", name="custom", dtype="float64")
        for class_name in registry.class_names(spec):
            results[class_name] = _recorded(lambda: entry(getattr(adapter, class_name), changed))
    return results


def check_classes(keras, adapter) -> dict:
    """Names, bases and constructor defaults; the abstract base and a custom subclass."""
    import inspect

    from lossfns import registry

    y_true, y_pred = make_inputs("sparse")
    results = {}
    for spec in registry.LOSSES:
        for class_name in registry.class_names(spec):
            cls = getattr(adapter, class_name)
            parameters = inspect.signature(cls).parameters.values()
            required = spec.example_arguments(CLASSES)
            results[class_name] = {
                "name": cls(**required).name,
                "reduction": cls(**required).reduction,
                "confusion_loss": issubclass(cls, adapter.ConfusionLoss),
                "keras_loss": issubclass(cls, keras.losses.Loss),
                "registered_name": keras.saving.get_registered_name(cls),
                "defaults": {p.name: REQUIRED if p.default is p.empty else p.default for p in parameters},
                "positional": [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD],
            }

    class HalfDice(adapter.ConfusionLoss):
        def class_loss(self, tp, fp, fn):
            return 1 - (tp + 1e-5) / (tp + 0.5 * fp + 0.5 * fn + 1e-5)

    abstract = _recorded(lambda: adapter.ConfusionLoss())
    custom = HalfDice(reduction=None, dtype="float64", average="micro")
    results["ConfusionLoss"] = {
        "abstract_error": abstract.get("error") if isinstance(abstract, dict) else None,
        "custom": _numpy(keras, custom(y_true, y_pred)),
        "f1": _numpy(keras, adapter.F1Loss(reduction=None, dtype="float64", average="micro")(y_true, y_pred)),
    }
    return results


def _segmentation_data(seed: int = 0):
    """Learnable data: the label is the argmax of a fixed linear map of the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 6, 6, 2)).astype(np.float32)
    labels = np.argmax(x @ rng.normal(size=(2, CLASSES)), axis=-1).astype(np.int32)
    return x, labels


def _model(keras):
    inputs = keras.Input((6, 6, 2))
    hidden = keras.layers.Conv2D(8, 1, activation="relu")(inputs)
    outputs = keras.layers.Conv2D(CLASSES, 1, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


def _scalar(keras, x) -> float:
    return float(keras.ops.convert_to_numpy(x))


def check_training(keras, adapter, directory: str) -> dict:
    """``model.fit`` lowers each loss; the model reloads from ``.keras`` without custom objects."""
    x, labels = _segmentation_data()

    def entry(class_name):
        keras.utils.set_random_seed(0)
        model = _model(keras)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=getattr(adapter, class_name)())
        # The region loss learns from one-hot labels, the others from integer labels.
        y = np.eye(CLASSES, dtype=np.float32)[labels] if class_name == "TverskyLoss" else labels
        # 16 samples in batches of 6: the last batch of 4 makes tf.function trace a None batch size.
        history = model.fit(x, y, batch_size=6, epochs=5, verbose=0).history["loss"]
        path = os.path.join(directory, f"{class_name}.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)  # no custom_objects
        return {
            "history": [float(h) for h in history],
            "loss": _scalar(keras, model.loss(y, model(x))),
            "reloaded_loss": _scalar(keras, reloaded.loss(y, reloaded(x))),
            "reloaded_loss_class": type(reloaded.loss).__name__,
            "reloaded_loss_config": reloaded.loss.get_config() == model.loss.get_config(),
        }

    return {class_name: _recorded(lambda: entry(class_name)) for class_name in TRAINED}


def check_mixed_precision(keras, adapter) -> dict:
    """Half-precision predictions give finite losses, called directly and (once) in ``fit``."""
    x, labels = _segmentation_data()

    def entry(class_name, fit):
        keras.utils.set_random_seed(0)
        model = _model(keras)
        loss = getattr(adapter, class_name)(dtype="mixed_float16")
        results = {}
        if fit:
            model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
            results["history"] = model.fit(x, labels, batch_size=8, epochs=2, verbose=0).history["loss"]
        prediction = model(x[:4])
        # Saturated half-precision probabilities: exact zeros and ones.
        saturated = keras.ops.cast(keras.ops.one_hot(labels[:4], CLASSES), "float16")
        results.update(
            prediction_dtype=keras.backend.standardize_dtype(prediction.dtype),
            direct=_scalar(keras, loss(labels[:4], prediction)),
            saturated=_scalar(keras, loss(labels[:4], saturated)),
        )
        return results

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return {name: _recorded(lambda: entry(name, fit=name == TRAINED[-1])) for name in TRAINED}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def make_binary_inputs(seed: int = 2):
    """``(labels, probs)``: float 0/1 labels ``[B, H, W]`` and one sigmoid channel ``[B, H, W, 1]``."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((BATCH, HEIGHT, WIDTH)) > 0.5).astype(np.float64)
    return labels, rng.uniform(0.05, 0.95, size=(BATCH, HEIGHT, WIDTH, 1))


def per_sample_weights(shape) -> np.ndarray:
    """Distinct weights, one per sample, shaped ``shape`` (a scalar for ``()``)."""
    return np.linspace(0.5, 2.0, BATCH).reshape(shape) if shape else np.asarray(1.5)


def _fit_history(keras, loss, y, classes: int, activation: str, epochs: int = 2) -> list:
    x, _ = _segmentation_data()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(classes, 1, activation=activation)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    return [float(h) for h in model.fit(x, y, batch_size=6, epochs=epochs, verbose=0).history["loss"]]


def check_labels(keras, adapter) -> dict:
    """Label dtypes and layouts the adapter must accept (issue 11, defects 2 and 3).

    * ``dtypes``: per-sample values (float64) with sparse labels of each integer dtype;
      ``fit_dtypes``: the loss history of ``model.fit`` on such labels;
    * ``float_indices``: class indices given as floats (``model.fit`` under ``tf.distribute``
      hands the loss a float copy of the labels), without a class axis and with a size-1 one;
    * ``single_channel``: one sigmoid channel against float 0/1 labels without a class
      axis, called directly and in ``model.fit`` (integer labels in ``model.fit`` under
      ``tf.distribute``, which makes them floats, are in ``distributed_tf_check.py``).
    """
    y_true, y_pred = make_inputs("sparse")
    binary_labels, binary_probs = make_binary_inputs()
    _, segmentation_labels = _segmentation_data()

    def values(class_name, labels, predictions):
        loss = getattr(adapter, class_name)(reduction=None, dtype="float64")
        return _numpy(keras, loss(labels, predictions))

    multiclass = ("DiceLoss", "CategoricalCrossentropy")
    fit_dtypes = FIT_LABEL_DTYPES if keras.backend.backend() == "tensorflow" else ()
    return {
        "dtypes": {
            dtype: {name: _recorded(lambda: values(name, y_true.astype(dtype), y_pred)) for name in multiclass}
            for dtype in LABEL_DTYPES
        },
        "fit_dtypes": {
            dtype: _recorded(lambda: _fit_history(
                keras, adapter.CategoricalCrossentropy(), segmentation_labels.astype(dtype),
                CLASSES, "softmax", epochs=1))
            for dtype in fit_dtypes
        },
        "float_indices": {
            layout: {name: _recorded(lambda: values(name, labels.astype(np.float32), y_pred))
                     for name in multiclass}
            for layout, labels in (("no_class_axis", y_true), ("unit_class_axis", y_true[..., None]))
        },
        "single_channel": {
            **{name: _recorded(lambda: values(name, binary_labels, binary_probs)) for name in LABEL_CLASSES},
            "fit": _recorded(lambda: _fit_history(
                keras, adapter.DiceLoss(), (segmentation_labels > 0).astype(np.float32), 1, "sigmoid")),
        },
    }


def check_weights(keras, adapter) -> dict:
    """Keras' ``sample_weight`` (issue 11, defect 4) and Keras' own reductions.

    * ``per_sample``: one weight per sample in each shape of :data:`PER_SAMPLE_WEIGHT_SHAPES`,
      under every reduction: the test compares with ``Σ w·loss`` reduced by hand;
    * ``stock``: the same reductions from a stock Keras loss on the same per-sample values
      (``MeanAbsoluteError`` of ``0`` and ``loss >= 0`` over one feature is ``loss``), to
      pin the adapter to Keras' own weighting for the shapes Keras itself handles.
    """
    y_true, y_pred = make_inputs("sparse")
    results = {}
    for class_name in ("DiceLoss", "CategoricalCrossentropy"):
        cls = getattr(adapter, class_name)
        per_sample = cls(reduction=None, dtype="float64")(y_true, y_pred)
        stand_in = keras.ops.expand_dims(per_sample, -1)
        zeros = keras.ops.zeros_like(stand_in)

        def ours(reduction, weights):
            return _numpy(keras, cls(reduction=reduction, dtype="float64")(y_true, y_pred, sample_weight=weights))

        def stock(reduction, weights):
            mae = keras.losses.MeanAbsoluteError(reduction=reduction, dtype="float64")
            return _numpy(keras, mae(zeros, stand_in, sample_weight=weights))

        results[class_name] = {
            "per_sample": {
                str(reduction): {
                    str(shape): _recorded(lambda: ours(reduction, per_sample_weights(shape)))
                    for shape in PER_SAMPLE_WEIGHT_SHAPES
                }
                for reduction in ALL_REDUCTIONS
            },
            "stock": {
                str(reduction): {
                    str(shape): _recorded(lambda: {
                        "ours": ours(reduction, None if shape is None else per_sample_weights(shape)),
                        "keras": stock(reduction, None if shape is None else per_sample_weights(shape)),
                    })
                    for shape in (None, (), (BATCH,))
                }
                for reduction in ALL_REDUCTIONS
            },
        }
    return results


def main(output_path: str) -> None:
    import time

    import keras

    from lossfns.adapters import keras as adapter

    report = {"backend": keras.backend.backend(), "seconds": {}}
    with tempfile.TemporaryDirectory() as directory:
        checks = {
            "classes": lambda: check_classes(keras, adapter),
            "values": lambda: check_values(keras, adapter),
            "configs": lambda: check_configs(keras, adapter),
            "training": lambda: check_training(keras, adapter, directory),
            "mixed_float16": lambda: check_mixed_precision(keras, adapter),
            "labels": lambda: check_labels(keras, adapter),
            "weights": lambda: check_weights(keras, adapter),
        }
        for section, check in checks.items():
            start = time.perf_counter()
            report[section] = check()
            report["seconds"][section] = round(time.perf_counter() - start, 2)
    with open(output_path, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
