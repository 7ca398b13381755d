"""The JAX adapter: one jit-compiled function per registry loss, equal to the core (SPEC §7).

The reference is the core on NumPy arrays; gradients are compared with PyTorch's gradient of
the core (float64 on both sides).
"""

from __future__ import annotations

import functools
import inspect
import subprocess
import sys

import numpy as np
import pytest

from keras_backend_check import CLASSES, changed_hyperparameters, make_inputs, make_weights, options_of
from lossfns import registry
from registry_fixtures import DOUBLE_DICE

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
adapter = pytest.importorskip("lossfns.adapters.jax")

SPECS = pytest.mark.parametrize("spec", registry.LOSSES, ids=lambda s: s.name)
REPRESENTATIVE = ("tversky_loss", "categorical_focal_loss", "asymmetric_unified_focal_loss")
RTOL, ATOL = 1e-10, 1e-12  # float64 (SPEC §9)


@SPECS
@pytest.mark.parametrize("case", ["dense", "sparse"])  # logits: in the gradient test
def test_value_is_the_core_value(spec, case):
    y_true, y_pred = make_inputs(case, spec=spec)
    options = options_of(case, spec)
    expected = spec.function(y_true, y_pred, **options)
    actual = getattr(adapter, spec.name)(jnp.asarray(y_pred), jnp.asarray(y_true), **options)
    assert actual.shape == (y_pred.shape[0],) and actual.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


@SPECS
def test_hyperparameters_options_and_mask_reach_the_core(spec):
    changed = changed_hyperparameters(spec)
    _, element_weight = make_weights()
    y_true, y_pred = make_inputs("sparse", spec=spec)
    expected = spec.function(y_true, y_pred, mask=element_weight, batch=True, **changed)
    actual = getattr(adapter, spec.name)(
        jnp.asarray(y_pred), jnp.asarray(y_true), mask=jnp.asarray(element_weight), batch=True, **changed
    )
    assert actual.shape == ()
    np.testing.assert_allclose(float(actual), float(expected), rtol=RTOL, atol=ATOL)


def test_sequences_become_static_tuples():
    y_true, y_pred = make_inputs("dense")
    options = dict(average="weighted", class_weights=[0.2, 0.3, 0.5], include_background=False)
    expected = registry.get("tversky_loss").function(y_true, y_pred, **options)
    actual = adapter.tversky_loss(jnp.asarray(y_pred), jnp.asarray(y_true), **options)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)
    alpha = np.array([0.2, 0.3, 0.5])  # an array is hashed as a tuple too
    expected = registry.get("categorical_focal_loss").function(y_true, y_pred, alpha=alpha)
    actual = adapter.categorical_focal_loss(jnp.asarray(y_pred), jnp.asarray(y_true), alpha=alpha)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


def test_generated_functions():
    for spec in registry.LOSSES:
        function = getattr(adapter, spec.name)
        assert function.__name__ == spec.name and spec.name in adapter.__all__
        assert f"lossfns.{spec.name}" in function.__doc__
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:2] == ["predictions", "targets"]
        assert {h.name: parameters[h.name].default for h in spec.hyperparameters} == {
            **spec.defaults, **dict.fromkeys(spec.required, inspect.Parameter.empty)}
        assert parameters["class_axis"].default == -1 and parameters["axis_name"].default is None
        for alias in spec.aliases:
            assert getattr(adapter, alias) is function and alias in adapter.__all__


@SPECS
def test_value_and_gradient_from_logits_match_torch(spec):
    torch = pytest.importorskip("torch")
    y_true, logits = make_inputs("logits", spec=spec)
    reference = torch.tensor(logits, requires_grad=True)
    target = y_true if y_true.dtype.kind == "f" else y_true.astype(np.int64)  # distance maps stay float
    required = spec.example_arguments(CLASSES)
    expected = spec.function(torch.from_numpy(target), reference, from_logits=True, **required)
    expected.sum().backward()
    function = getattr(adapter, spec.name)
    value, grad = jax.value_and_grad(
        lambda p: function(p, jnp.asarray(y_true), from_logits=True, **required).sum()
    )(jnp.asarray(logits))
    np.testing.assert_allclose(float(value), expected.sum().item(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(grad), reference.grad.numpy(), rtol=RTOL, atol=ATOL)


@SPECS
def test_vmap_over_a_leading_axis(spec):
    required = spec.example_arguments(CLASSES)
    function = functools.partial(getattr(adapter, spec.name), **required)
    inputs = [make_inputs("sparse", seed, spec=spec) for seed in (0, 1)]
    targets = jnp.stack([jnp.asarray(t) for t, _ in inputs])
    predictions = jnp.stack([jnp.asarray(p) for _, p in inputs])
    mapped = jax.vmap(function)(predictions, targets)
    assert mapped.shape == (2, predictions.shape[1])
    for index, (y_true, y_pred) in enumerate(inputs):
        expected = spec.function(y_true, y_pred, **required)
        np.testing.assert_allclose(np.asarray(mapped[index]), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_jit_of_a_train_step(name):
    """A linear model trained by a jitted step: the loss goes down, the gradient matches eager."""
    function = getattr(adapter, name)
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(4, 6, 6, 2)))
    labels = jnp.argmax(features @ jnp.asarray(rng.normal(size=(2, 3))), axis=-1)

    def objective(weights):
        return function(features @ weights, labels, from_logits=True).mean()

    @jax.jit
    def step(weights):
        value, grad = jax.value_and_grad(objective)(weights)
        return weights - 0.5 * grad, value, grad

    weights = jnp.zeros((2, 3)) + 0.01 * jnp.arange(6.0).reshape(2, 3)
    _, _, first_grad = step(weights)
    np.testing.assert_allclose(first_grad, jax.grad(objective)(weights), rtol=1e-9, atol=ATOL)
    values = []
    for _ in range(5):
        weights, value, _ = step(weights)
        values.append(float(value))
    assert np.all(np.isfinite(values)) and values[-1] < values[0]


@pytest.mark.parametrize("name", ["f1_loss", "asymmetric_unified_focal_loss"])
def test_axis_name_gives_the_global_batch_loss(name):
    """Shards mapped with a named axis get the whole-batch loss and its exact gradient."""
    function = getattr(adapter, name)
    y_true, y_pred = make_inputs("sparse")
    shards = y_pred.shape[0]  # one sample per shard

    def sharded(predictions):
        per_shard = jax.vmap(
            lambda p, t: function(p, t, batch=True, axis_name="shards"), axis_name="shards"
        )(predictions[:, None], jnp.asarray(y_true)[:, None])
        return per_shard

    whole = function(jnp.asarray(y_pred), jnp.asarray(y_true), batch=True)
    per_shard = sharded(jnp.asarray(y_pred))
    np.testing.assert_allclose(np.asarray(per_shard), np.full(shards, float(whole)), rtol=RTOL)
    grad_sharded = jax.grad(lambda p: sharded(p).mean())(jnp.asarray(y_pred))
    grad_whole = jax.grad(lambda p: function(p, jnp.asarray(y_true), batch=True))(jnp.asarray(y_pred))
    np.testing.assert_allclose(np.asarray(grad_sharded), np.asarray(grad_whole), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("name", "arguments", "error", "message"),
    [
        ("tversky_loss", {"alpha": -0.1}, ValueError, "alpha"),
        ("hybrid_focal_loss", {"focal_gamma": -1.0}, ValueError, "focal_gamma"),
        ("symmetric_unified_focal_loss", {"gamma": 1.5}, ValueError, "gamma"),
        ("tversky_loss", {"average": "median"}, ValueError, "average"),
        ("categorical_focal_loss", {"from_logits": "tanh"}, ValueError, "from_logits"),
        ("f1_loss", {"alpha": 0.5}, TypeError, "alpha"),
        ("f1_loss", {"axis_name": "shards"}, ValueError, "batch=True"),
    ],
)
def test_arguments_are_checked_before_tracing(name, arguments, error, message):
    y_true, y_pred = make_inputs("sparse")
    with pytest.raises(error, match=message):
        getattr(adapter, name)(jnp.asarray(y_pred), jnp.asarray(y_true), **arguments)


def test_a_new_registry_entry_becomes_a_function(monkeypatch):
    monkeypatch.setattr(registry, "LOSSES", (DOUBLE_DICE,))
    namespace = {}
    assert adapter._generate(namespace) == ["double_dice"]
    y_true, y_pred = make_inputs("sparse")
    actual = namespace["double_dice"](jnp.asarray(y_pred), jnp.asarray(y_true), scale=3.0)
    expected = 3.0 * registry.get("dice_loss").function(y_true, y_pred)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL)


def test_importing_the_adapter_imports_only_jax():
    code = (
        "import sys, lossfns.adapters.jax\n"
        "print(sorted({'torch', 'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_get_finds_functions_by_name_or_alias():
    from lossfns import adapters

    assert adapters.get("jax", "jaccard_loss") is adapter.iou_loss
    with pytest.raises(ValueError, match="unknown loss"):
        adapters.get("jax", "hinge_loss")
