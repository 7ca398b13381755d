"""Train with lossfns' Keras batch losses under ``tf.distribute.MirroredStrategy`` on two CPUs.

    KERAS_BACKEND=tensorflow python tests/distributed_tf_check.py results.json

TensorFlow fixes its logical devices when it initialises, so ``tests/test_distributed.py``
runs this script in a subprocess and asserts on the JSON it writes. Everything is float64.

Recorded for each loss of :data:`STEP_LOSSES`, on one batch split unevenly over the two
replicas (element weights included), from a tiny model (a 1x1 convolution):

* ``single``: the loss, its gradient with respect to the kernel and bias, and with respect
  to the model output, computed by one device on the whole batch;
* ``replicas``: what each replica of ``strategy.run`` computes on its part of the batch:
  the loss it returns, and the same gradients of that loss.

For :data:`FIT_LOSS`, ``fit``: the loss history and final weights of ``model.fit`` (plain SGD,
one step per epoch on the whole batch) on one device and under the strategy.

``fit_labels``: the same for label layouts that Keras hands the loss as floats under the
strategy (issue 11, defect 3): one sigmoid channel with integer or float 0/1 labels without
a class axis, and integer class indices with a size-1 class axis.

``reductions``: what each replica's loss returns (per-sample losses, ``batch=False``) for each
reduction, with and without per-sample weights, next to what a stock Keras loss returns on
the same per-sample values there: Keras' own weighting and scaling by ``1 / num_replicas``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Before anything initialises TensorFlow's devices: one physical CPU becomes two replicas.
_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from lossfns.adapters import keras as adapter  # noqa: E402

BATCH, HEIGHT, WIDTH, FEATURES, CLASSES = 6, 3, 4, 2, 3
#: Replica 0 gets two samples, replica 1 four: exactness must not rely on equal shares.
SPLIT = 2
#: class name -> (constructor options, whether the model ends in a softmax).
STEP_LOSSES = {
    "DiceLoss": ({"batch": True}, True),
    "AsymmetricUnifiedFocalLoss": ({"batch": True, "from_logits": True}, False),
    "GeneralizedDiceLoss": ({"batch": True}, True),
    "DiceCELoss": ({"batch": True, "from_logits": True, "label_smoothing": 0.1}, False),
}
FIT_LOSS = "AsymmetricUnifiedFocalLoss"
FIT_EPOCHS = 4
LEARNING_RATE = 0.5


def make_data(seed: int = 0):
    """``(x, labels, element_weights)``: features, integer classes and a 0/1 mask, NumPy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, HEIGHT, WIDTH, FEATURES))
    labels = rng.integers(0, CLASSES, size=(BATCH, HEIGHT, WIDTH)).astype(np.int32)
    weights = (rng.random((BATCH, HEIGHT, WIDTH)) > 0.3).astype(np.float64)
    return x, labels, weights


def make_model(softmax: bool):
    """A 1x1 convolution with fixed weights (the same on every call)."""
    rng = np.random.default_rng(1)
    model = keras.Sequential([
        keras.Input((HEIGHT, WIDTH, FEATURES)),
        keras.layers.Conv2D(CLASSES, 1, activation="softmax" if softmax else None),
    ])
    model.set_weights([rng.normal(size=(1, 1, FEATURES, CLASSES)), rng.normal(size=CLASSES) * 0.1])
    return model


def _loss_and_gradients(model, loss_fn, x, labels, weights):
    with tf.GradientTape() as tape:
        output = model(x)
        tape.watch(output)
        loss = loss_fn(labels, output, sample_weight=weights)
    gradients = tape.gradient(loss, [output, *model.trainable_variables])
    return loss, gradients


def _as_lists(loss, gradients) -> dict:
    output, kernel, bias = (np.asarray(g).tolist() for g in gradients)
    return {"loss": float(loss), "output_grad": output, "kernel_grad": kernel, "bias_grad": bias}


def step(strategy, class_name: str) -> dict:
    options, softmax = STEP_LOSSES[class_name]
    loss_fn = getattr(adapter, class_name)(**options)
    x, labels, weights = make_data()
    single = _as_lists(*_loss_and_gradients(make_model(softmax), loss_fn, x, labels, weights))

    with strategy.scope():
        model = make_model(softmax)
    parts = [slice(0, SPLIT), slice(SPLIT, BATCH)]

    def per_replica(array):
        return strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(array[parts[context.replica_id_in_sync_group]])
        )

    @tf.function
    def distributed_step(x, labels, weights):
        return strategy.run(
            lambda *args: _loss_and_gradients(model, loss_fn, *args), args=(x, labels, weights)
        )

    loss, gradients = distributed_step(per_replica(x), per_replica(labels), per_replica(weights))
    local = strategy.experimental_local_results
    replicas = [
        _as_lists(loss_r, gradients_r)
        for loss_r, *gradients_r in zip(local(loss), *(local(g) for g in gradients))
    ]
    return {"single": single, "replicas": replicas, "num_replicas": strategy.num_replicas_in_sync}


def _fit(strategy) -> dict:
    options, softmax = STEP_LOSSES[FIT_LOSS]
    x, labels, weights = make_data()
    with strategy.scope():
        model = make_model(softmax)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                      loss=getattr(adapter, FIT_LOSS)(**options))
    history = model.fit(x, labels, sample_weight=weights, batch_size=BATCH, epochs=FIT_EPOCHS,
                        shuffle=False, verbose=0)
    return {"loss": history.history["loss"], "weights": [w.tolist() for w in model.get_weights()]}


def fit(strategy) -> dict:
    return {"single": _fit(tf.distribute.get_strategy()), "mirrored": _fit(strategy)}


#: name -> (class name, output channels, labels from make_data's integer classes).
FIT_LABELS = {
    "sigmoid_int": ("DiceLoss", 1, lambda labels: (labels > 0).astype(np.int32)),
    "sigmoid_float": ("BinaryCrossentropy", 1, lambda labels: (labels > 0).astype(np.float64)),
    "unit_class_axis_int": ("CategoricalCrossentropy", CLASSES, lambda labels: labels[..., None]),
}
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None)


def _labels_model(channels: int):
    rng = np.random.default_rng(2)
    activation = "sigmoid" if channels == 1 else "softmax"
    model = keras.Sequential([
        keras.Input((HEIGHT, WIDTH, FEATURES)),
        keras.layers.Conv2D(channels, 1, activation=activation),
    ])
    model.set_weights([rng.normal(size=(1, 1, FEATURES, channels)), rng.normal(size=channels) * 0.1])
    return model


def _fit_labels(strategy, name: str) -> dict:
    class_name, channels, make_labels = FIT_LABELS[name]
    x, labels, _ = make_data()
    with strategy.scope():
        model = _labels_model(channels)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=getattr(adapter, class_name)())
    history = model.fit(x, make_labels(labels), batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    return {"loss": history.history["loss"], "weights": [w.tolist() for w in model.get_weights()]}


def fit_labels(strategy) -> dict:
    def recorded(function):
        try:
            return function()
        except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
            return {"error": f"{type(error).__name__}: {error}"}

    return {
        name: {"single": recorded(lambda: _fit_labels(tf.distribute.get_strategy(), name)),
               "mirrored": recorded(lambda: _fit_labels(strategy, name))}
        for name in FIT_LABELS
    }


def reductions(strategy) -> dict:
    x, labels, _ = make_data()
    sample_weights = np.linspace(0.5, 2.0, BATCH)
    with strategy.scope():
        model = make_model(True)

    def replica(x, labels, sample_weights):
        output = model(x)
        per_sample = adapter.DiceLoss(reduction=None)(labels, output)
        stand_in = tf.expand_dims(per_sample, -1)  # MAE of (0, loss >= 0) over one feature
        results = {}
        for reduction in REDUCTIONS:
            ours = adapter.DiceLoss(reduction=reduction)
            stock = keras.losses.MeanAbsoluteError(reduction=reduction)
            results[str(reduction)] = {
                "ours": ours(labels, output),
                "keras": stock(tf.zeros_like(stand_in), stand_in),
                "ours_weighted": ours(labels, output, sample_weight=sample_weights),
                "keras_weighted": stock(tf.zeros_like(stand_in), stand_in, sample_weight=sample_weights),
            }
        return results

    parts = [slice(0, SPLIT), slice(SPLIT, BATCH)]

    def per_replica(array):
        return strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(array[parts[context.replica_id_in_sync_group]])
        )

    results = tf.function(lambda *args: strategy.run(replica, args=args))(
        per_replica(x), per_replica(labels), per_replica(sample_weights))
    return {
        reduction: {key: [np.asarray(value).tolist() for value in strategy.experimental_local_results(values)]
                    for key, values in entry.items()}
        for reduction, entry in results.items()
    }


def main(output: str) -> None:
    keras.backend.set_floatx("float64")
    # One strategy for the whole process: a second MirroredStrategy reuses the first one's
    # collective keys, and the two then mix up their all-reduces.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"step": {name: step(strategy, name) for name in STEP_LOSSES}, "fit": fit(strategy),
              "fit_labels": fit_labels(strategy), "reductions": reductions(strategy)}
    with open(output, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
