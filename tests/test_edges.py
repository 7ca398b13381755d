"""Correct at the edges: values and gradients that must agree on every backend where the
inputs sit on an edge (a class filling a sample, a non-smooth point, huge logits, tiny soft
labels, label values out of range). Each test is a regression test of a defect the
backends disagreed on; references are the float64 NumPy ones written from the SPEC.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_backend
from reference_dice_ce import categorical_crossentropy as cce_reference
from reference_dice_ce import dice_ce_loss as dice_ce_reference
from reference_dice_ce import dice_focal_loss as dice_focal_reference
from reference_overlap import generalized_dice_reference, mcc_reference
from reference_region import f1_reference

import lossfns
from lossfns import numerics as nx

AUTODIFF = ("torch", "jax", "tensorflow")


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def gradient(backend, loss, y_true, y_pred, **options):
    """``∂ Σ loss / ∂ y_pred`` on an autodiff backend, as NumPy."""
    y_true = backend.asarray(y_true)
    if backend.name == "torch":
        p = backend.asarray(y_pred).requires_grad_(True)
        loss(y_true, p, **options).sum().backward()
        return p.grad.numpy()
    if backend.name == "jax":
        import jax

        return np.asarray(jax.grad(lambda p: loss(y_true, p, **options).sum())(backend.asarray(y_pred)))
    import tensorflow as tf

    p = tf.Variable(backend.asarray(y_pred))
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(loss(y_true, p, **options))
    return tape.gradient(value, p).numpy()


# --- 1. MCC when a class fills a sample --------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_mcc_of_a_class_filling_the_sample_stays_at_its_float64_value(xp, size, dtype):
    # All background: TN of class 0 is 0 exactly, but N − P − A + TP rounds to ±u·N, and
    # divided by ε that gave losses of 5488 (NumPy, JAX), −16666 (torch), 5524 (TF).
    rng = np.random.default_rng(size)
    probs = _softmax(rng.normal(size=(2, size, size, 3)))
    labels = np.zeros((2, size, size), dtype=np.int64)
    expected = mcc_reference(labels, probs)
    got = xp.to_numpy(lossfns.mcc_loss(xp.asarray(labels), xp.asarray(probs, dtype=dtype)))
    assert np.all((got >= 0) & (got <= 2))
    np.testing.assert_allclose(got, expected, rtol=1e-10 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mcc_of_an_all_foreground_sigmoid_channel(xp, dtype):
    probs = np.random.default_rng(3).uniform(size=(2, 64, 64, 1))
    labels = np.ones((2, 64, 64), dtype=np.int64)
    for options in ({}, {"average": "micro"}, {"batch": True}):
        expected = mcc_reference(labels, probs, **options)
        got = xp.to_numpy(lossfns.mcc_loss(xp.asarray(labels), xp.asarray(probs, dtype=dtype), **options))
        np.testing.assert_allclose(got, expected, rtol=1e-10 if dtype == np.float64 else 1e-5)


def test_mcc_stays_in_its_range_on_near_degenerate_inputs(xp):
    # One negative element among 4096, saturated predictions, an empty class: every count
    # near a margin. The value must stay in [0, 2] and near float64 in float32.
    rng = np.random.default_rng(5)
    labels = np.zeros((3, 64, 64), dtype=np.int64)
    labels[0, 0, 0] = 1
    labels[1, :, :32] = 1
    probs = _softmax(rng.normal(scale=30.0, size=(3, 64, 64, 3)))
    for options in ({}, {"epsilon": 0.0}, {"average": "micro"}, {"soft_label": True}):
        # For 0/1 labels the soft-label form equals the product form (SPEC §3), whose
        # reference sums every count directly (its own soft-label TN rounds to -2e-12).
        expected = mcc_reference(labels, probs, **{k: o for k, o in options.items() if k != "soft_label"})
        got = xp.to_numpy(lossfns.mcc_loss(xp.asarray(labels), xp.asarray(probs, dtype=np.float32), **options))
        assert np.all((got >= 0) & (got <= 2)), options
        np.testing.assert_allclose(got, expected, atol=2e-4, err_msg=str(options))


# --- 2. Non-smooth points: one derivative per kink, on every backend ----------------------------


@pytest.mark.parametrize("name", AUTODIFF)
def test_each_kink_has_its_stated_derivative(name):
    backend = load_backend(name)
    xp = lossfns._namespace.array_namespace(x=backend.asarray(np.zeros(1)))
    zero_eps = np.array([0.0, nx.PROBABILITY_EPSILON, 1 - nx.PROBABILITY_EPSILON, -1.0, 2.0])
    cases = {  # function, point(s), derivative there (SPEC §3 and docs: Numerics at the edges)
        "absolute": (lambda _, x: nx.absolute(xp, x), [0.0, -2.0, 3.0], [0.0, -1.0, 1.0]),
        "relu": (lambda _, x: nx.relu(xp, x), [0.0, -1.0, 1.0], [0.0, 0.0, 1.0]),
        "clamp_below": (lambda _, x: nx.clamp_below(xp, x, 0.0), [0.0, -1.0, 1.0], [1.0, 0.0, 1.0]),
        "clip_probability": (lambda _, x: nx.clip_probability(xp, x), zero_eps, [0, 1, 1, 0, 0]),
        "guarded_power": (lambda _, x: nx.guarded_power(xp, x, 0.5), [0.0], [nx.POWER_FLOOR ** -0.5]),
    }
    for kink, (function, points, derivative) in cases.items():
        got = gradient(backend, function, np.zeros(1), np.asarray(points, dtype=np.float64))
        np.testing.assert_allclose(got, derivative, rtol=1e-12, err_msg=kink)


def _soft_case(seed=0):
    y = np.random.default_rng(seed).dirichlet(np.ones(3), size=(2, 4, 4))
    return y, y.copy()


SOFT_AT_MINIMUM = ["dice_loss", "iou_loss", "generalized_dice_loss"]  # α = β: minimal at p = y


@pytest.mark.parametrize("loss", SOFT_AT_MINIMUM + ["tversky_loss", "mcc_loss", "dice_ce_loss", "dice_focal_loss"])
def test_soft_label_gradients_at_p_equal_y_agree(loss):
    # |p − y| has derivative 0 at p = y (SPEC §3); JAX's abs has 1 there, which moved the
    # gradient of a loss at its minimum by 0.04–0.06.
    y, p = _soft_case()
    grads = {n: gradient(load_backend(n), getattr(lossfns, loss), y, p, soft_label=True) for n in AUTODIFF}
    for name in AUTODIFF[1:]:
        np.testing.assert_allclose(grads[name], grads["torch"], atol=1e-12, err_msg=name)
    if loss in SOFT_AT_MINIMUM:  # the region loss alone is minimal at p = y
        np.testing.assert_allclose(grads["torch"], 0.0, atol=1e-12)


@pytest.mark.parametrize("name", AUTODIFF)
def test_lovasz_softmax_at_a_perfect_dense_prediction_has_no_gradient(name):
    y, p = _soft_case(1)
    np.testing.assert_allclose(gradient(load_backend(name), lossfns.lovasz_softmax_loss, y, p), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", AUTODIFF)
def test_lovasz_hinge_margin_of_one_has_no_gradient(name):
    # relu'(0) = 0, as in Berman et al.'s code and smp: was −0.333 (torch, TF) and −0.167 (JAX).
    labels = np.random.default_rng(2).integers(0, 2, size=(2, 4, 4, 1)).astype(np.float64)
    logits = 2 * labels - 1  # every margin z·(2y − 1) is exactly 1
    np.testing.assert_allclose(gradient(load_backend(name), lossfns.lovasz_hinge_loss, labels, logits), 0.0)


@pytest.mark.parametrize("loss", ["focal_tversky_loss", "asymmetric_focal_tversky_loss",
                                  "asymmetric_unified_focal_loss", "symmetric_focal_tversky_loss"])
def test_fractional_powers_at_a_perfect_prediction_agree(loss):
    # The clamp of 1 − TI at 0 passes the gradient (one-sided from above): JAX's clip split
    # the tie and gave half of torch's and TensorFlow's gradient.
    labels = np.random.default_rng(4).integers(0, 2, size=(2, 4, 4))
    onehot = np.eye(3)[labels]  # class 2 empty
    grads = {n: gradient(load_backend(n), getattr(lossfns, loss), onehot, onehot.copy()) for n in AUTODIFF}
    assert np.abs(grads["torch"]).max() > 1.0  # the slope of the linear piece, not 0
    for name in AUTODIFF[1:]:
        np.testing.assert_allclose(grads[name], grads["torch"], rtol=1e-12, err_msg=name)


# --- 3. Log-softmax precision at large logits ------------------------------------------------


@pytest.mark.parametrize("scale", [1e3, 1e4])
def test_log_softmax_keeps_float32_precision_at_large_logits(xp, scale):
    logits = np.array([[scale, scale, -scale]], dtype=np.float32)
    got = xp.to_numpy(lossfns.categorical_crossentropy(xp.asarray(np.array([1])), xp.asarray(logits),
                                                       from_logits=True))
    np.testing.assert_allclose(got, [np.log(2.0)], rtol=1e-6)


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
def test_lovasz_softmax_gradients_agree_at_saturated_logits():
    # ±1e4 logits give probabilities of exactly 0 and 1; ties in the sort must be broken the
    # same way, which needs the same probabilities (JAX's log-softmax rounded them apart).
    rng = np.random.default_rng(6)
    logits = 1e4 * rng.choice([-1.0, 1.0], size=(2, 6, 6, 3))
    labels = rng.integers(0, 3, size=(2, 6, 6))
    grads = {n: gradient(load_backend(n), lossfns.lovasz_softmax_loss, labels, logits, from_logits=True)
             for n in AUTODIFF}
    for name in AUTODIFF[1:]:
        np.testing.assert_allclose(grads[name], grads["torch"], atol=1e-12, err_msg=name)


# --- 4. Generalized Dice with a tiny soft label mass -------------------------------------------


@pytest.mark.parametrize("weighting", ["square", "simple"])
def test_generalized_dice_treats_a_subnormal_weight_base_as_absent(xp, weighting):
    # A confident teacher's soft label of 1e-22 per element: A² (or A) is subnormal in
    # float32; 1/A² overflowed (NaN on NumPy and torch) while JAX and TF flushed it to 0.
    rng = np.random.default_rng(7)
    probs = _softmax(rng.normal(size=(2, 8, 8, 3))).astype(np.float32)
    labels = np.zeros((2, 8, 8, 3), dtype=np.float32)
    labels[..., 0] = 1.0
    labels[..., 1] = 1e-22 if weighting == "square" else 1e-44
    absent = labels.copy()
    absent[..., 1] = 0.0
    expected = generalized_dice_reference(absent, probs, weighting=weighting)
    got = xp.to_numpy(lossfns.generalized_dice_loss(xp.asarray(labels), xp.asarray(probs), weighting=weighting))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_generalized_dice_with_a_tiny_label_mass_matches_monai():
    import torch
    from monai.losses import GeneralizedDiceLoss

    rng = np.random.default_rng(8)
    probs = _softmax(rng.normal(size=(2, 3, 8, 8)).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    labels = np.zeros((2, 3, 8, 8), dtype=np.float32)
    labels[:, 0] = 1.0
    labels[:, 1] = 1e-22
    inputs = torch.from_numpy(probs.astype(np.float32)), torch.from_numpy(labels)
    expected = GeneralizedDiceLoss(reduction="none")(*inputs).reshape(-1).numpy()
    got = lossfns.generalized_dice_loss(inputs[1], inputs[0], class_axis=1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- 5. ignore_index outside the label dtype's range -------------------------------------------

IGNORING_LOSSES = ["dice_loss", "generalized_dice_loss", "mcc_loss", "lovasz_softmax_loss",
                   "cldice_loss", "categorical_crossentropy", "dice_ce_loss"]


@pytest.mark.parametrize("ignore_index", [-1, 256, -100])
@pytest.mark.parametrize("loss", IGNORING_LOSSES)
def test_ignore_index_outside_the_label_dtype_ignores_nothing(xp, loss, ignore_index):
    # uint8 labels with 255: torch, JAX and TF cast -1 to 255 and 256 to 0 in `labels == i`,
    # so -1 ignored class 255 and 256 ignored class 0, while NumPy compared exactly.
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, size=(2, 6, 6)).astype(np.uint8)
    labels[0, 0, :4] = 255  # a label no index reaches: weighs 1 and belongs to no class
    probs = _softmax(rng.normal(size=(2, 6, 6, 3)))
    function = getattr(lossfns, loss)
    expected = np.asarray(function(labels, probs))  # NumPy, with nothing to ignore
    got = xp.to_numpy(function(xp.asarray(labels), xp.asarray(probs), ignore_index=ignore_index))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    if loss == "dice_loss":
        np.testing.assert_allclose(got, f1_reference(labels, probs, ignore_index=ignore_index), rtol=1e-10)


# --- 6. Labels outside [0, C) in the sparse categorical terms ----------------------------------

CE_LOSSES = {
    "categorical_crossentropy": (cce_reference, {}),
    "categorical_focal_loss": (None, {}),
    "dice_ce_loss": (dice_ce_reference, {}),
    "dice_focal_loss": (dice_focal_reference, {}),
    "dice_ce_loss-smoothing": (dice_ce_reference, {"label_smoothing": 0.2}),
    "asymmetric_unified_focal_loss": (None, {}),
    "combo_loss": (None, {}),
}


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("case", list(CE_LOSSES))
def test_labels_outside_the_classes_belong_to_no_class(xp, case, from_logits):
    # NumPy raised IndexError, TF InvalidArgumentError, JAX returned NaN and torch read
    # memory past the tensor. Such a label is an all-zero one-hot, as in the region sums.
    reference, options = CE_LOSSES[case]
    function = getattr(lossfns, case.split("-")[0])
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(2, 5, 5, 3))
    y_pred = logits if from_logits else _softmax(logits)
    labels = rng.integers(0, 3, size=(2, 5, 5))
    labels[0, 0, :3] = (7, -1, 3)
    onehot = (labels[..., None] == np.arange(3)).astype(np.float64)  # zero rows out of range
    expected = np.asarray(function(onehot, y_pred, from_logits=from_logits, **options))
    if reference is not None:
        np.testing.assert_allclose(expected, reference(labels, y_pred, from_logits=from_logits, **options),
                                   rtol=1e-10)
    got = xp.to_numpy(function(xp.asarray(labels), xp.asarray(y_pred), from_logits=from_logits, **options))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_out_of_range_labels_give_the_all_zero_gradient_on_torch():
    import torch

    rng = np.random.default_rng(11)
    logits = rng.normal(size=(2, 3, 5, 5))
    labels = rng.integers(0, 3, size=(2, 5, 5))
    labels[1, 2, 2] = 9
    onehot = np.moveaxis((labels[..., None] == np.arange(3)).astype(np.float64), -1, 1)
    grads = []
    for target in (torch.from_numpy(labels), torch.from_numpy(onehot)):
        z = torch.tensor(logits, requires_grad=True)
        lossfns.dice_focal_loss(target, z, class_axis=1, from_logits=True).sum().backward()
        grads.append(z.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-14)


# --- 7. The JAX adapter's validate=True ------------------------------------------------------


def test_jax_adapter_validates_distance_maps_as_maps():
    import jax.numpy as jnp
    from lossfns.adapters import jax as adapter

    labels = np.array([[0, 1, 1, 0, 0]])
    maps = jnp.asarray(lossfns.signed_distance_maps(labels, 2))
    probs = np.array([[[0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.6, 0.4], [0.9, 0.1]]])
    got = adapter.boundary_loss(jnp.asarray(probs), maps, validate=True)  # was KeyError: 'ignore_index'
    np.testing.assert_allclose(np.asarray(got), lossfns.boundary_loss(np.asarray(maps), probs), rtol=1e-6)
    with pytest.raises(ValueError, match="y_pred must hold probabilities"):
        adapter.boundary_loss(jnp.asarray(probs * 3), maps, validate=True)
    with pytest.raises(ValueError, match="class indices outside"):
        adapter.dice_loss(jnp.asarray(probs), jnp.asarray([[0, 1, 7, 0, 0]]), validate=True)


# --- 9. Per-class sequences that fit no input, refused when an adapter is built -----------------

NEVER_FITTING = [
    ("DiceLoss", {"class_weights": []}, "class_weights has 0 entries but every input has at least 1"),
    ("CategoricalFocalLoss", {"alpha": [1.0]}, "alpha has 1 entries but every input has at least 2"),
    ("TverskyLoss", {"class_weights": [1.0, 2.0], "background_index": 2},
     "background_index 2 is out of range for 2 classes"),
    ("DiceFocalLoss", {"class_weights": [1.0, 2.0, 3.0], "alpha": [1.0, 2.0]},
     "class_weights has 3 entries but alpha has 2"),
]


@pytest.mark.parametrize("framework", ["torch", "keras", "jax"])
@pytest.mark.parametrize("class_name,arguments,message", NEVER_FITTING)
def test_adapters_refuse_per_class_lengths_that_fit_no_input(framework, class_name, arguments, message):
    import importlib

    from lossfns import registry

    adapter = importlib.import_module(f"lossfns.adapters.{framework}")
    if framework == "jax":
        spec = next(s for s in registry.LOSSES if class_name in registry.class_names(s))
        build = lambda: getattr(adapter, spec.name)(np.zeros((1, 2, 2)), np.zeros((1, 2), int), **arguments)  # noqa: E731
    else:
        build = lambda: getattr(adapter, class_name)(**arguments)  # noqa: E731
    with pytest.raises(ValueError, match=message):
        build()
