"""Regression tests of issue 11's adapter and TensorFlow-shim defects (each failed on 318a802).

* 3.2: sparse labels of every integer dtype on every array library (TensorFlow's range and
  gather kernels take int32/int64 only, so uint8 PNG masks crashed);
* 3.6: finite torch second derivatives on every sigmoid path for confident logits (the
  double backward of ``logaddexp`` is NaN once ``exp(|z|)`` overflows);
* 3.7: ``torch.compile(fullgraph=True)`` of more than eight adapter classes in one process;
* 3.9: ``tf.Variable`` inputs, and ``tf.function`` signatures with unknown sizes: unknown
  batch and spatial sizes work, an unknown class size or rank is a ``ValueError`` naming it.

The Keras sides of 3.2-3.4 are in ``test_adapter_keras.py`` (they need one process per
Keras backend), the reductions pinned to Keras' there too.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import reference_distribution
from reference_region import REFERENCES as REGION_REFERENCES
from lossfns import registry

LABEL_SPECS = [spec for spec in registry.LOSSES if spec.takes_labels]
SPEC_IDS = [spec.name for spec in LABEL_SPECS]
#: Every integer dtype but int64, which the references use.
INTEGER_DTYPES = ("uint8", "int8", "int16", "uint16", "uint32", "uint64", "int32")
BATCH, HEIGHT, WIDTH, CLASSES = 2, 4, 3, 3


def loss_of(spec, classes: int = CLASSES):
    """The core function, given example values of its required hyperparameters (the
    Wasserstein Dice's ``distance_matrix``) for ``classes`` classes."""
    return functools.partial(spec.function, **spec.example_arguments(classes))


def reference(spec):
    """The independent float64 NumPy reference of a loss, where the tests have one."""
    return REGION_REFERENCES.get(spec.name) or getattr(reference_distribution, spec.name, None)


def sparse_case(seed: int = 0):
    """``(labels, probs)``: int64 ``[B, H, W]`` and float64 ``[B, H, W, C]`` (softmax of normals)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(BATCH, HEIGHT, WIDTH, CLASSES))
    probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return rng.integers(0, CLASSES, size=(BATCH, HEIGHT, WIDTH)), probs


# --- 3.2: every integer label dtype on every backend -------------------------------------


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_every_integer_label_dtype_on_every_backend(xp, dtype):
    labels, probs = sparse_case()
    for spec in LABEL_SPECS:
        actual = xp.to_numpy(loss_of(spec)(xp.asarray(labels, dtype), xp.asarray(probs)))
        as_int64 = np.asarray(loss_of(spec)(labels, probs))
        np.testing.assert_allclose(actual, as_int64, rtol=1e-10, atol=1e-12, err_msg=spec.name)
        if reference(spec) is not None:
            expected = reference(spec)(labels, probs)
            np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, err_msg=spec.name)


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_small_integer_labels_with_ignore_index_and_validation_on_tensorflow(dtype):
    tf = pytest.importorskip("tensorflow")
    labels, probs = sparse_case()
    # A loss per family (the losses of a family share their label handling); every loss runs
    # on every integer dtype in TensorFlow in test_every_integer_label_dtype_on_every_backend.
    specs = list({spec.family: spec for spec in LABEL_SPECS}.values())
    for spec in specs:
        for options in ({"ignore_index": 2}, {"validate": True, "batch": True}):
            if "ignore_index" in options and "ignore_index" not in spec.options:
                continue  # the Hausdorff and skeleton recall losses take no ignore_index
            expected = np.asarray(loss_of(spec)(labels, probs, **options))
            actual = loss_of(spec)(tf.constant(labels.astype(dtype)), tf.constant(probs), **options)
            np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{spec.name} {options}")
        traced = tf.function(lambda y, p, spec=spec: loss_of(spec)(y, p))  # noqa: B023
        np.testing.assert_allclose(traced(tf.constant(labels.astype(dtype)), tf.constant(probs)).numpy(),
                                   np.asarray(loss_of(spec)(labels, probs)), rtol=1e-10, atol=1e-12)


# --- 3.6: finite torch second derivatives on every sigmoid path --------------------------


def _sigmoid_paths():
    """``(spec, classes, from_logits)`` for every label loss computed through a sigmoid:
    one channel with ``from_logits=True``, and several with ``"sigmoid"`` where allowed.
    The logits-only losses (the Lovász hinge) apply no sigmoid: piecewise linear in the
    logits, their second derivative is zero wherever it exists."""
    paths = []
    for spec in LABEL_SPECS:
        if spec.logits_only:
            continue
        paths.append(pytest.param(spec, 1, True, id=f"{spec.name}-1ch"))
        try:
            spec.validate(from_logits="sigmoid")
        except ValueError:
            continue  # a loss that defines no per-channel sigmoid form
        paths.append(pytest.param(spec, CLASSES, "sigmoid", id=f"{spec.name}-sigmoid"))
    return paths


@pytest.mark.parametrize("magnitude", [100.0, 1e4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("spec", "classes", "from_logits"), _sigmoid_paths())
def test_torch_second_derivatives_are_finite_for_confident_logits(spec, classes, from_logits, dtype, magnitude):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=(BATCH, classes, HEIGHT, WIDTH))
    target = (rng.random((BATCH, classes, HEIGHT, WIDTH)) > 0.5).astype(dtype)
    logits = torch.tensor(signs * magnitude, dtype=getattr(torch, dtype), requires_grad=True)
    loss = loss_of(spec, classes)(torch.from_numpy(target), logits, class_axis=1, from_logits=from_logits).sum()
    (gradient,) = torch.autograd.grad(loss, logits, create_graph=True)
    direction = torch.from_numpy(rng.normal(size=signs.shape).astype(dtype))
    (hessian_vector,) = torch.autograd.grad((gradient * direction).sum(), logits)
    for name, value in (("loss", loss), ("gradient", gradient), ("hessian-vector product", hessian_vector)):
        assert torch.isfinite(value).all(), f"{spec.name}: non-finite {name}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy_second_derivative_is_sigmoid_times_its_complement(dtype):
    """``d²/dz² BCE = σ(z)·σ(-z) / n``, written out in float64 NumPy, including |z| = 100, 1e4."""
    torch = pytest.importorskip("torch")
    z = np.array([-1e4, -100.0, -30.0, -1.0, 0.0, 1e-3, 1.0, 30.0, 100.0, 1e4])
    target = (np.arange(z.size) % 2).astype(dtype)
    logits = torch.tensor(z[None, :, None], dtype=getattr(torch, dtype), requires_grad=True)
    loss = registry.get("binary_crossentropy").function(
        torch.from_numpy(target[None, :, None]), logits, from_logits=True).sum()
    (gradient,) = torch.autograd.grad(loss, logits, create_graph=True)
    (second,) = torch.autograd.grad(gradient.sum(), logits)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * z))
    expected = sigmoid * (1.0 - sigmoid) / z.size
    np.testing.assert_allclose(second.detach().numpy().ravel(), expected, rtol=1e-5, atol=1e-12)


def test_log_sigmoid_derivatives_at_zero_on_every_autodiff_backend():
    """``log σ`` has slope 1/2 and curvature -1/4 at 0 on torch, JAX and TensorFlow (a
    tie-split ``minimum`` with ``d|z|/dz = 0`` there would give other values)."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    import array_api_compat.torch as torch_xp

    from lossfns import _tensorflow_namespace as tf_xp
    from lossfns import numerics

    z = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(numerics.log_sigmoid(torch_xp, z), z, create_graph=True)
    (curvature,) = torch.autograd.grad(slope, z)
    assert (slope.item(), curvature.item()) == (0.5, -0.25)

    def jax_log_sigmoid(x):
        return numerics.log_sigmoid(jax.numpy, x)

    assert float(jax.grad(jax_log_sigmoid)(0.0)) == 0.5
    assert float(jax.grad(jax.grad(jax_log_sigmoid))(0.0)) == -0.25

    x = tf.constant(0.0, dtype=tf.float64)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            value = numerics.log_sigmoid(tf_xp, x)
        tf_slope = inner.gradient(value, x)
    assert (float(tf_slope), float(outer.gradient(tf_slope, x))) == (0.5, -0.25)


# --- 3.7: torch.compile of many adapter classes in one process ---------------------------

COMPILED_CLASSES = 12


def test_torch_compile_fullgraph_of_more_than_eight_classes_in_one_process():
    """Each class compiles like a hand-written module: a ``forward`` with its own code
    object and name (the recompile limit and the automatic-dynamic state are per code)."""
    torch = pytest.importorskip("torch")
    adapter = pytest.importorskip("lossfns.adapters.torch")
    names = [name for spec in LABEL_SPECS for name in registry.class_names(spec)]
    assert len(names) >= COMPILED_CLASSES
    codes = {getattr(adapter, name).forward.__code__ for name in names}
    assert len(codes) == len(names)
    labels, probs = sparse_case()
    target = torch.from_numpy(labels)
    inputs = torch.from_numpy(np.moveaxis(probs, -1, 1).copy())
    torch._dynamo.reset()
    for name in names[:COMPILED_CLASSES]:
        module = getattr(adapter, name)()
        # "eager": Dynamo traces and guards as with inductor; no C++ code generation.
        compiled = torch.compile(module, fullgraph=True, backend="eager")
        np.testing.assert_allclose(compiled(inputs, target).item(), module(inputs, target).item(),
                                   rtol=1e-12, err_msg=name)


# Two instances of one class with different float hyperparameters: the second compile makes
# Dynamo read the changed float as a symbolic value, which the checks and the per-class
# constants used to hash or pass to math.isfinite (the compile failed).
SECOND_VALUES = [
    ("AsymmetricFocalLoss", {"delta": 0.7}, {"delta": 0.4}, "sparse"),   # per-label constants
    ("FocalTverskyLoss", {"gamma": 0.75}, {"gamma": 0.5}, "sparse"),      # fractional power
    ("CategoricalFocalLoss", {"alpha": [0.2, 0.3, 0.5]}, {"alpha": [0.25, 0.3, 0.45]}, "dense"),
]


@pytest.mark.parametrize("name,first,second,labels", SECOND_VALUES, ids=[c[0] for c in SECOND_VALUES])
def test_torch_compile_second_instance_with_another_float(name, first, second, labels):
    torch = pytest.importorskip("torch")
    adapter = pytest.importorskip("lossfns.adapters.torch")
    sparse, probs = sparse_case()
    classes = probs.shape[-1]
    target = torch.from_numpy(sparse if labels == "sparse" else np.moveaxis(np.eye(classes)[sparse], -1, 1).copy())
    inputs = torch.from_numpy(np.moveaxis(probs, -1, 1).copy())
    torch._dynamo.reset()
    for arguments in (first, second):
        module = getattr(adapter, name)(**arguments)
        compiled = torch.compile(module, fullgraph=True, backend="eager")
        np.testing.assert_allclose(compiled(inputs, target).item(), module(inputs, target).item(),
                                   rtol=1e-12, err_msg=f"{name}({arguments})")


def test_generated_forward_keeps_its_signature_and_documentation():
    adapter = pytest.importorskip("lossfns.adapters.torch")
    import inspect

    forward = adapter.DiceLoss.forward
    assert forward is not adapter.F1Loss.forward and forward is not adapter.LossModule.forward
    assert forward.__qualname__ == "DiceLoss.forward"
    assert inspect.signature(forward) == inspect.signature(adapter.LossModule.forward)
    assert forward.__doc__ == adapter.LossModule.forward.__doc__


# --- 3.9: TensorFlow variables and tf.function signatures --------------------------------


@pytest.mark.parametrize("spec", LABEL_SPECS, ids=SPEC_IDS)
def test_tf_variable_as_y_pred(spec):
    tf = pytest.importorskip("tensorflow")
    labels, probs = sparse_case()
    variable = tf.Variable(probs)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(loss_of(spec)(tf.constant(labels), variable))
    gradient = tape.gradient(value, variable)
    constant = tf.constant(probs)
    with tf.GradientTape() as tape:
        tape.watch(constant)
        expected = tf.reduce_sum(loss_of(spec)(tf.constant(labels), constant))
    expected_gradient = tape.gradient(expected, constant)
    np.testing.assert_allclose(value.numpy(), float(np.sum(loss_of(spec)(labels, probs))), rtol=1e-12)
    assert gradient is not None
    np.testing.assert_allclose(gradient.numpy(), expected_gradient.numpy(), rtol=1e-12, atol=1e-15)


def _traced(tf, spec, true_shape, pred_shape):
    signature = [tf.TensorSpec(true_shape, tf.int64), tf.TensorSpec(pred_shape, tf.float64)]
    return tf.function(lambda y, p: loss_of(spec)(y, p), input_signature=signature)


@pytest.mark.parametrize("spec", LABEL_SPECS, ids=SPEC_IDS)
def test_tf_function_with_unknown_batch_and_spatial_sizes(spec):
    tf = pytest.importorskip("tensorflow")
    labels, probs = sparse_case()
    traced = _traced(tf, spec, [None, None, None], [None, None, None, CLASSES])
    np.testing.assert_allclose(traced(tf.constant(labels), tf.constant(probs)).numpy(),
                               np.asarray(loss_of(spec)(labels, probs)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", LABEL_SPECS, ids=SPEC_IDS)
def test_tf_function_with_an_unknown_class_size_or_rank_names_the_problem(spec):
    tf = pytest.importorskip("tensorflow")
    labels, probs = sparse_case()
    args = (tf.constant(labels), tf.constant(probs))
    cases = [
        (([None, HEIGHT, WIDTH], [None, HEIGHT, WIDTH, None]), "y_pred has an unknown number of classes"),
        (([None, HEIGHT, WIDTH], None), "y_pred has an unknown rank"),
        ((None, [None, HEIGHT, WIDTH, CLASSES]), f"{spec.target_argument} has an unknown rank"),
    ]
    for shapes, message in cases:
        with pytest.raises(ValueError, match=message):
            _traced(tf, spec, *shapes)(*args)


def test_tf_function_with_a_mask_of_unknown_rank_names_the_mask():
    tf = pytest.importorskip("tensorflow")
    import lossfns

    labels, probs = sparse_case()
    signature = [tf.TensorSpec([None, HEIGHT, WIDTH], tf.int64),
                 tf.TensorSpec([None, HEIGHT, WIDTH, CLASSES], tf.float64), tf.TensorSpec(None, tf.float64)]
    traced = tf.function(lambda y, p, m: lossfns.dice_loss(y, p, mask=m), input_signature=signature)
    with pytest.raises(ValueError, match="mask has an unknown rank"):
        traced(tf.constant(labels), tf.constant(probs), tf.ones([BATCH, HEIGHT, WIDTH], tf.float64))
