"""Generalized Wasserstein Dice loss (SPEC §22): the float64 reference on every backend,
MONAI parity, exactness under ``all_reduce``, gradients (the fused torch path against the
plain expressions), the §9 edge grid, tracing and the §23 errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference_region import random_inputs
from reference_wasserstein import wasserstein_dice_reference

import lossfns
from lossfns.wasserstein import generalized_wasserstein_dice_loss as gwdl

_RNG = np.random.default_rng(7)
M4 = _RNG.uniform(0.2, 3.0, size=(4, 4))
M4 = M4 + M4.T
np.fill_diagonal(M4, 0.0)
M4_LIST = M4.tolist()
M2 = [[0.0, 2.0], [2.0, 0.0]]

S1, S2, S3 = (6,), (4, 3), (2, 3, 2)
CASES = {
    "1d-soft-batch": dict(spatial=S1, labels="soft", batch=True),
    "2d-sparse-mask": dict(spatial=S2, labels="sparse", mask=True),
    "2d-sparse-axis1-logits": dict(spatial=S2, labels="sparse", class_axis=1, from_logits=True),
    "2d-ignore-index-pair": dict(spatial=S2, labels="sparse", ignore_index=255, mask=True, epsilon=(0.3, 0.1)),
    "2d-empty-class-batch": dict(spatial=S2, labels="sparse", empty_class=True, batch=True, epsilon=0.0),
    "2d-one-channel-sparse-sigmoid": dict(spatial=S2, num_classes=1, labels="sparse", mask=True, from_logits=True),
    "3d-sparse_unit-axis2-background-last": dict(spatial=S3, labels="sparse_unit", class_axis=2, background_index=-1),
    "3d-onehot-int-axis1-sigmoid": dict(spatial=S3, labels="onehot_int", class_axis=1, from_logits="sigmoid"),
}
_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index", "empty_class")


def _inputs(case):
    make = {k: v for k, v in CASES[case].items() if k in _INPUT_KEYS}
    make.setdefault("num_classes", 4)
    options = {k: v for k, v in CASES[case].items() if k not in _INPUT_KEYS}
    options["distance_matrix"] = M4_LIST if make["num_classes"] == 4 else M2
    if "ignore_index" in make:
        options["ignore_index"] = make["ignore_index"]
    make.update(class_axis=options.get("class_axis", -1), logits=bool(options.get("from_logits", False)))
    return random_inputs(sum(map(ord, case)), **make), options


def _call(xp, y_true, y_pred, mask=None, dtype=np.float64, jit=False, **options):
    def convert(a):
        return None if a is None else xp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)

    arrays = (convert(y_true), convert(y_pred), convert(mask))
    if jit and xp.name == "jax":  # one compilation per call: eager JAX compiles every operation anew
        import jax

        return jax.jit(lambda y, p, m: gwdl(y, p, mask=m, **options))(*arrays)
    return gwdl(arrays[0], arrays[1], mask=arrays[2], **options)


DTYPE_CASES = [pytest.param(c, np.float64, id=f"{c}-float64") for c in CASES] + [
    pytest.param(c, np.float32, id=f"{c}-float32") for c in list(CASES)[1::4]]


@pytest.mark.parametrize("case,dtype", DTYPE_CASES)
def test_matches_reference(xp, case, dtype):
    (y_true, y_pred, mask), options = _inputs(case)
    if dtype == np.float32:
        y_pred = y_pred.astype(np.float32)
        mask = None if mask is None else mask.astype(np.float32)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for weighting in ("default", "gdl"):
        expected = wasserstein_dice_reference(y_true, y_pred, mask=mask, weighting=weighting, **options)
        got = xp.to_numpy(_call(xp, y_true, y_pred, mask, dtype=dtype, jit=True, weighting=weighting, **options))
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **tolerance, err_msg=weighting)


def test_fully_masked_sample_is_zero(xp):
    (y_true, y_pred, mask), _ = _inputs("2d-sparse-mask")
    mask[1] = 0.0
    for weighting in ("default", "gdl"):
        for epsilon in (1e-5, 0.0):
            got = xp.to_numpy(_call(xp, y_true, y_pred, mask, weighting=weighting, epsilon=epsilon,
                                    distance_matrix=M4_LIST))
            assert got[1] == 0.0 and got[0] > 0.0, (weighting, epsilon, got)


def test_one_hot_integer_and_soft_labels_agree():
    (labels, y_pred, mask), options = _inputs("2d-sparse-mask")
    onehot = np.eye(4)[labels]
    for weighting in ("default", "gdl"):
        sparse = gwdl(labels, y_pred, mask=mask, weighting=weighting, **options)
        np.testing.assert_allclose(gwdl(onehot, y_pred, mask=mask, weighting=weighting, **options), sparse, rtol=1e-13)
        np.testing.assert_allclose(gwdl(onehot.astype(bool), y_pred, mask=mask, weighting=weighting, **options),
                                   sparse, rtol=1e-13)


def test_distance_matrix_forms_and_scale():
    """A 2-D array, nested tuples and a multiple of the matrix are one loss (divided by the max)."""
    (y_true, y_pred, _), options = _inputs("2d-sparse-axis1-logits")
    options.pop("distance_matrix")
    expected = gwdl(y_true, y_pred, distance_matrix=M4_LIST, **options)
    for matrix in (M4, tuple(map(tuple, M4)), 7.5 * M4, M4.astype(np.float32).astype(np.float64)):
        np.testing.assert_allclose(gwdl(y_true, y_pred, distance_matrix=matrix, **options), expected, rtol=1e-7)
    assert lossfns.wasserstein.DISTANCE_MATRIX.check("distance_matrix", M4) == tuple(map(tuple, M4_LIST))


def test_zero_one_distances_give_dice():
    """With ``M = 1 − I``, ``W = 1 − p_y``: on labels without the background the default loss
    is ``1 − 2·Σp_y / (2·Σp_y + Σ(1 − p_y))``, a Dice over every labelled element (the paper)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(1, 3, size=(2, 7))  # the background (class 0) never labelled
    probs = rng.uniform(size=(2, 7, 3))
    probs /= probs.sum(-1, keepdims=True)
    got = gwdl(labels, probs, distance_matrix=1 - np.eye(3), epsilon=0.0)
    onehot = np.eye(3)[labels]
    tp = (onehot * probs).sum((1, 2))
    errors = (onehot * (1 - probs)).sum((1, 2))
    np.testing.assert_allclose(got, 1 - 2 * tp / (2 * tp + errors), rtol=1e-13)


# --- MONAI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighting", ["default", "gdl"])
def test_monai(weighting, dtype):
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, size=(3, 5, 4, 3))
    labels[0] = 0  # sample 0: background only
    logits = rng.normal(scale=3.0, size=(3, 4, 5, 4, 3)).astype(dtype)  # channels first, like MONAI
    matrix = M4.astype(dtype)
    for epsilon in (1e-5, 0.5):
        monai = monai_losses.GeneralizedWassersteinDiceLoss(
            matrix, weighting_mode="GDL" if weighting == "gdl" else "default", reduction="none",
            smooth_nr=epsilon, smooth_dr=epsilon)
        expected = monai(torch.from_numpy(logits), torch.from_numpy(labels)).numpy()
        for layout in ("first", "last"):
            z = logits if layout == "first" else np.moveaxis(logits, 1, -1)
            ours = gwdl(torch.from_numpy(labels), torch.from_numpy(np.ascontiguousarray(z)), distance_matrix=matrix,
                        weighting=weighting, epsilon=epsilon, from_logits=True,
                        class_axis=1 if layout == "first" else -1).numpy()
            assert ours.dtype == dtype
            # MONAI's "GDL" weights are float32 (one_hot(...).float()); float32 sums in both.
            rtol = 1e-12 if dtype == np.float64 and weighting == "default" else 2e-6
            np.testing.assert_allclose(ours, expected, rtol=rtol, atol=1e-7, err_msg=f"ε={epsilon} {layout}")


# --- distributed batch -----------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["sparse", "soft"])
def test_two_replicas_give_the_global_batch_loss(labels):
    y_true, y_pred, mask = random_inputs(5, spatial=S2, num_classes=4, labels=labels, mask=True, batch_size=4)
    first, second = slice(0, 3), slice(3, 4)
    for weighting in ("default", "gdl"):
        options = dict(distance_matrix=M4_LIST, weighting=weighting, batch=True)
        recorded = []
        gwdl(y_true[second], y_pred[second], mask=mask[second], all_reduce=lambda t: recorded.append(t) or t, **options)
        other = iter(recorded)
        got = gwdl(y_true[first], y_pred[first], mask=mask[first], all_reduce=lambda t: t + next(other), **options)
        np.testing.assert_allclose(got, gwdl(y_true, y_pred, mask=mask, **options), rtol=1e-13, err_msg=weighting)


def test_torch_all_reduce_keeps_the_gradient():
    """Through the fused torch path too: the loss of one replica, summed sums, global gradient."""
    torch = pytest.importorskip("torch")
    y_true, logits, _ = random_inputs(6, spatial=S2, num_classes=4, labels="sparse", logits=True, batch_size=4)
    options = dict(distance_matrix=M4_LIST, weighting="gdl", batch=True, from_logits=True)
    whole = torch.tensor(logits, requires_grad=True)
    gwdl(torch.from_numpy(y_true), whole, **options).backward()
    halves = [torch.tensor(logits[s], requires_grad=True) for s in (slice(0, 2), slice(2, 4))]
    with torch.no_grad():
        other = [list() for _ in halves]
        for part, record in zip((slice(2, 4), slice(0, 2)), other):
            gwdl(torch.from_numpy(y_true[part]), torch.tensor(logits[part]),
                 all_reduce=lambda t, record=record: record.append(t) or t, **options)
    for part, z, record in zip((slice(0, 2), slice(2, 4)), halves, other):
        sums = iter(record)
        loss = gwdl(torch.from_numpy(y_true[part]), z, all_reduce=lambda t: t + next(sums), **options)
        loss.backward()
        np.testing.assert_allclose(z.grad.numpy(), whole.grad.numpy()[part], rtol=1e-10, atol=1e-14)


# --- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    dict(labels="sparse", from_logits=True, class_axis=1, mask=True, second=True),
    dict(labels="sparse", from_logits="sigmoid", class_axis=-1, weighting="gdl", batch=True, second=True),
    dict(labels="sparse", class_axis=-1, weighting="gdl", mask=True),
    dict(labels="soft", from_logits=True, class_axis=1, weighting="gdl"),
])
def test_torch_gradcheck(options):
    """First (and second) derivatives; the sparse cases go through the fused function."""
    torch = pytest.importorskip("torch")
    options = dict(options)
    labels, with_mask, second = options.pop("labels"), options.pop("mask", False), options.pop("second", False)
    axis = options.get("class_axis", -1)
    y_true, y_pred, mask = random_inputs(8, spatial=(2, 2), num_classes=4, labels=labels, mask=with_mask,
                                         class_axis=axis, logits=bool(options.get("from_logits")), batch_size=2)
    if not options.get("from_logits"):
        y_pred = np.clip(y_pred, 0.05, 0.95)
    target = torch.from_numpy(y_true)
    weights = None if mask is None else torch.from_numpy(mask)
    p = torch.tensor(y_pred, requires_grad=True)

    def loss(t):
        return gwdl(target, t, mask=weights, distance_matrix=M4_LIST, epsilon=0.1, **options)

    assert torch.autograd.gradcheck(loss, (p,))
    assert not second or torch.autograd.gradgradcheck(loss, (p,))


def test_fused_torch_path_matches_the_plain_expressions():
    """Channels first/last use the fused function; a class axis in the middle and torch.compile
    the array-API expressions: same values and gradients, out-of-range labels included."""
    torch = pytest.importorskip("torch")
    y_true, logits, mask = random_inputs(9, spatial=(5, 4), num_classes=4, labels="sparse", logits=True, mask=True)
    y_true[0, 0, 0] = 7  # unvalidated: no class
    middle = np.moveaxis(logits, -1, 2)
    for weighting in ("default", "gdl"):
        options = dict(distance_matrix=M4_LIST, weighting=weighting, from_logits=True, mask=torch.from_numpy(mask))
        results = []
        for z_np, axis in ((logits, -1), (np.ascontiguousarray(np.moveaxis(logits, -1, 1)), 1), (middle, 2)):
            z = torch.tensor(z_np, requires_grad=True)
            value = gwdl(torch.from_numpy(y_true), z, class_axis=axis, **options)
            value.sum().backward()
            results.append((value.detach().numpy(), np.moveaxis(z.grad.numpy(), axis, -1)))
        for value, grad in results[1:]:
            np.testing.assert_allclose(value, results[0][0], rtol=1e-12)
            np.testing.assert_allclose(grad, results[0][1], rtol=1e-10, atol=1e-15)
        assert np.abs(results[0][1]).max() > 0


def edge_grid():
    """SPEC §9 inputs: ``(name, y_true, y_pred, mask, from_logits)``."""
    labels = np.array([[[0, 1], [1, 3]], [[0, 0], [0, 0]]])  # sample 1: all background; class 2 empty
    onehot = (labels[..., None] == np.arange(4)).astype(float)
    yield "perfect", labels, onehot, None, False
    yield "opposite", labels, 1 - onehot, None, False
    yield "zeros", labels, np.zeros_like(onehot), None, False
    yield "fully masked", labels, onehot * 0.5 + 0.1, np.zeros(labels.shape), False
    yield "huge logits", labels, (2 * onehot - 1) * 1e4, None, True
    yield "huge wrong logits", labels, (1 - 2 * onehot) * 1e4, None, True
    yield "soft labels exact", onehot * 0.5, onehot * 0.5, None, False


def _finite_torch(y_true, y_pred, mask, options):
    torch = pytest.importorskip("torch")
    p = torch.tensor(y_pred, requires_grad=True)
    loss = gwdl(torch.tensor(y_true), p, mask=None if mask is None else torch.tensor(mask), **options).sum()
    (grad,) = torch.autograd.grad(loss, p, create_graph=True)
    (second,) = torch.autograd.grad((grad * grad).sum(), p)
    return loss.item(), [t.detach().numpy() for t in (loss, grad, second)]


def _finite_jax(y_true, y_pred, mask, options):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    step = jax.jit(jax.value_and_grad(lambda t, y, m: gwdl(y, t, mask=m, **options).sum()))
    value, grad = step(*(None if a is None else jax.numpy.asarray(a) for a in (y_pred, y_true, mask)))
    return float(value), [np.asarray(value), np.asarray(grad)]


def _finite_tf(y_true, y_pred, mask, options):
    tf = pytest.importorskip("tensorflow")
    p = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(p)
        loss = tf.reduce_sum(gwdl(tf.constant(y_true), p, mask=None if mask is None else tf.constant(mask), **options))
    return float(loss), [loss.numpy(), tape.gradient(loss, p).numpy()]


@pytest.mark.parametrize("weighting", ["default", "gdl"])
@pytest.mark.parametrize("framework", [_finite_torch, _finite_jax, _finite_tf], ids=["torch", "jax", "tf"])
def test_edge_grid_is_finite(framework, weighting):
    for name, y_true, y_pred, mask, from_logits in edge_grid():
        extras = ({"epsilon": 0.0}, {"batch": True, "epsilon": (0.0, 1e-5)})
        if framework is not _finite_torch:  # eager JAX compiles every new input anew: fewer there
            if name in ("opposite", "zeros", "soft labels exact", "huge logits"):
                continue
            extras = extras[:1] if weighting == "default" else extras[1:]
        for extra in extras:
            options = dict(extra, distance_matrix=M4_LIST, weighting=weighting, from_logits=from_logits)
            value, arrays = framework(y_true, y_pred, mask, options)
            for array in arrays:
                assert np.all(np.isfinite(array)), f"{name} {extra}"
            if name in ("perfect", "huge logits", "fully masked") and extra.get("epsilon") == 0.0:
                assert value == pytest.approx(0.0, abs=1e-12), f"{name} {extra}"


# --- tracing -------------------------------------------------------------------------------------


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    (y_true, logits, mask), options = _inputs("2d-sparse-mask")
    options.update(from_logits=True, weighting="gdl")
    expected = wasserstein_dice_reference(y_true, logits, mask=mask, **options)

    @jax.jit
    def step(y, z, m):
        return jax.value_and_grad(lambda t: gwdl(y, t, mask=m, **options).sum())(z)

    value, grad = step(*(jax.numpy.asarray(a) for a in (y_true, logits, mask)))
    np.testing.assert_allclose(float(value), expected.sum(), rtol=1e-10)
    assert np.all(np.isfinite(np.asarray(grad))) and np.abs(np.asarray(grad)).max() > 0


def test_torch_compile_fullgraph():
    torch = pytest.importorskip("torch")
    (y_true, logits, mask), options = _inputs("2d-sparse-axis1-logits")

    def step(y, z, m):
        return gwdl(y, z, mask=m, **options).sum()

    def value_and_grad(fn, y, z, m):
        z = torch.tensor(z, requires_grad=True)
        value = fn(torch.from_numpy(y), z, torch.from_numpy(m))
        value.backward()
        return value.item(), z.grad.numpy()

    compiled = torch.compile(step, fullgraph=True, backend="eager", dynamic=True)
    mask = np.ones(y_true.shape)
    for crop in (None, 3):  # symbolic sizes: the second size reuses the graph
        arrays = [np.ascontiguousarray(a[..., :crop]) for a in (y_true, logits, mask)]
        eager_value, eager_grad = value_and_grad(step, *arrays)  # the fused function
        value, grad = value_and_grad(compiled, *arrays)  # the array-API expressions
        np.testing.assert_allclose(value, eager_value, rtol=1e-12)
        np.testing.assert_allclose(grad, eager_grad, rtol=1e-10, atol=1e-14)


def test_tf_function_with_unknown_sizes():
    tf = pytest.importorskip("tensorflow")
    (y_true, logits, mask), options = _inputs("2d-sparse-mask")
    options.update(from_logits=True)

    # No tensor-dependent Python control flow: the loss traces as written, without autograph's
    # conversion (a few seconds here; Keras' model.fit converts it, as the adapter tests show).
    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None, None], tf.int64),
                                                   tf.TensorSpec([None, None, None, 4], tf.float64),
                                                   tf.TensorSpec([None, None, None], tf.float64)])
    def step(y, z, m):
        with tf.GradientTape() as tape:
            tape.watch(z)
            per_sample = gwdl(y, z, mask=m, weighting="gdl", **options)
            total = tf.reduce_sum(per_sample)
        return per_sample, tape.gradient(total, z)

    for crop in (None, 2):  # one trace serves both sizes
        y, z, m = (a[:, :crop] for a in (y_true, logits, mask))
        per_sample, grad = step(tf.constant(y), tf.constant(z), tf.constant(m))
        np.testing.assert_allclose(per_sample.numpy(), wasserstein_dice_reference(
            y, z, mask=m, weighting="gdl", **options), rtol=1e-10)
        assert np.all(np.isfinite(grad.numpy()))
    assert step.experimental_get_tracing_count() == 1


# --- errors (SPEC §23) --------------------------------------------------------------------------

_Y = np.array([[0, 1, 2]])
_P = np.full((1, 3, 3), 1 / 3)
_M3 = [[0, 1, 1], [1, 0, 0.5], [1, 0.5, 0]]


@pytest.mark.parametrize("matrix,message", [
    ([[0, 1, 1], [1, 0, 1]], r"distance_matrix must be a square C × C matrix .* 2 rows of lengths 3, 3"),
    ([0.0, 1.0], r"distance_matrix must be a C × C matrix; got a 1-D value"),
    ([[[0.0]]], r"distance_matrix must be a C × C matrix; got a more than 2-D value"),
    ([[0, -1, 1], [1, 0, 1], [1, 1, 0]], r"distance_matrix\[0\]\[1\] must be >= 0 \(a distance\), got -1.0"),
    ([[0, np.inf, 1], [1, 0, 1], [1, 1, 0]], r"distance_matrix\[0\]\[1\] must be a finite number, got inf"),
    ([[0, np.nan, 1], [1, 0, 1], [1, 1, 0]], r"distance_matrix\[0\]\[1\] must be a finite number, got nan"),
    ([[0, 1, 1], [1, 0.5, 1], [1, 1, 0]], r"distance_matrix\[1\]\[1\] must be 0 \(the distance of a class .*, got 0.5"),
    (np.zeros((3, 3)), r"distance_matrix must have a positive entry .* got all zeros \(3 × 3\)"),
    ([], r"distance_matrix must be a C × C matrix with C >= 2; got an empty matrix"),
    ([[0, 1], [1, 0]], r"distance_matrix is 2 × 2 but y_pred has 3 classes"),
])
def test_bad_distance_matrix_is_named(matrix, message):
    with pytest.raises(ValueError, match=message):
        gwdl(_Y, _P, distance_matrix=matrix)


def test_other_argument_errors():
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'distance_matrix'"):
        gwdl(_Y, _P)
    with pytest.raises(TypeError, match="generalized_wasserstein_dice_loss"):
        gwdl(_Y, _P)
    with pytest.raises(TypeError, match="distance_matrix is required"):
        gwdl(_Y, _P, distance_matrix=None)
    with pytest.raises(TypeError, match="distance_matrix must be a C × C matrix .* got 1.0 of type float"):
        gwdl(_Y, _P, distance_matrix=1.0)
    with pytest.raises(ValueError, match="weighting must be one of 'default', 'gdl'; got 'GDL'"):
        gwdl(_Y, _P, distance_matrix=_M3, weighting="GDL")
    with pytest.raises(ValueError, match=r"epsilon\[1\] must be >= 0"):
        gwdl(_Y, _P, distance_matrix=_M3, epsilon=(1e-5, -1.0))
    with pytest.raises(ValueError, match=r"epsilon must be a number or a \(numerator, denominator\) pair"):
        gwdl(_Y, _P, distance_matrix=_M3, epsilon=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="background_index 3 is out of range for 3 classes"):
        gwdl(_Y, _P, distance_matrix=_M3, background_index=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'smooth_nr'"):
        gwdl(_Y, _P, distance_matrix=_M3, smooth_nr=1.0)


def test_domain_declares_its_invalid_examples():
    domain = lossfns.wasserstein.DISTANCE_MATRIX
    for example in domain.invalid_examples():
        with pytest.raises(ValueError, match="distance_matrix"):
            domain.check("distance_matrix", example)
    assert "C × C" in domain.describe()
