"""Hausdorff distance loss (SPEC §22, §23): distance fields, reference values on every backend,
tracing (jax.jit, tf.function, torch.compile), gradients, MONAI parity and errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import load_backend
from reference_hausdorff import distance_field_reference, hausdorff_reference
from reference_region import random_inputs
from reference_structure import backend_cases, call_loss

from lossfns.hausdorff import distance_weights_host, hausdorff_dt_loss

# --- distance fields ---------------------------------------------------------------------------


def test_hand_checked_fields():
    """Field = distance to the nearest element of the other value, on both sides of the edge."""
    pred = np.array([[0, 0, 1, 1, 1, 0]], dtype=bool)[..., None]  # [batch, elements, class]
    nothing = np.zeros_like(pred)  # all 0: a field of 0, so the weight is d_p^α alone
    np.testing.assert_array_equal(distance_weights_host(pred, nothing, alpha=1.0, class_axis=-1)[0, :, 0],
                                  [2.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    square = np.zeros((1, 4, 4, 1), dtype=bool)
    square[0, 1:3, 1:3] = True
    r2 = np.sqrt(2.0)  # the corners are one diagonal step from the block
    expected = np.array([[r2, 1, 1, r2], [1, 1, 1, 1], [1, 1, 1, 1], [r2, 1, 1, r2]])
    got = distance_weights_host(square, ~np.zeros_like(square), alpha=2.0, class_axis=-1)  # all 1: 0 too
    np.testing.assert_allclose(got[0, ..., 0], expected**2, rtol=1e-15)
    assert got.dtype == np.float64
    assert distance_weights_host(square, square, alpha=0.0, class_axis=-1, bits=32).dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 11), (2, 5, 6), (1, 3, 4, 5)], ids=["1d", "2d", "3d"])
def test_fields_match_brute_force(shape):
    rng = np.random.default_rng(0)
    pred = rng.uniform(size=shape + (2,)) > 0.6
    true = rng.uniform(size=shape + (2,)) > 0.3
    true[0, ..., 1] = False  # an empty map
    expected = np.zeros(pred.shape)
    for b in range(shape[0]):
        for c in range(2):
            expected[b, ..., c] = (distance_field_reference(pred[b, ..., c]) ** 1.5
                                   + distance_field_reference(true[b, ..., c]) ** 1.5)
    got = distance_weights_host(np.moveaxis(pred, -1, 1), np.moveaxis(true, -1, 1), alpha=1.5, class_axis=1)
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), expected, rtol=1e-13)


def test_missing_scipy_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)  # makes `from scipy.ndimage import` fail
    y_true, y_pred, _ = random_inputs(0, labels="sparse")
    with pytest.raises(ImportError, match=r"hausdorff_dt_loss.*SciPy.*lossfns\[boundary\]"):
        hausdorff_dt_loss(y_true, y_pred)


# --- values ------------------------------------------------------------------------------------

CASES = {
    "1d-sparse": dict(inputs=dict(spatial=(9,), labels="sparse")),
    "2d-onehot-mask-background": dict(inputs=dict(spatial=(4, 5), mask=True),
                                      options=dict(include_background=True)),
    "2d-axis1-logits-background2-log": dict(inputs=dict(spatial=(5, 4), labels="sparse_unit", logits=True,
                                                        class_axis=1),
                                            options=dict(class_axis=1, from_logits=True, background_index=2,
                                                         log=True)),
    "3d-sparse-mask-batch": dict(inputs=dict(spatial=(2, 3, 4), labels="sparse", mask=True),
                                 options=dict(batch=True, alpha=1.0)),
    "2d-one-channel-sigmoid": dict(inputs=dict(num_classes=1, labels="sparse", logits=True),
                                   options=dict(from_logits=True)),
    "2d-soft-labels-alpha": dict(inputs=dict(labels="soft", mask=True), options=dict(alpha=1.5, log=True)),
}


def _case(name, seed=1):
    case = CASES[name]
    y_true, y_pred, mask = random_inputs(seed, **case["inputs"])
    return y_true, y_pred, mask, case.get("options", {})


@pytest.mark.parametrize("backend,case,dtype", backend_cases(CASES))
def test_matches_reference(backend, case, dtype):
    xp = load_backend(backend)
    y_true, y_pred, mask, options = _case(case)
    expected = hausdorff_reference(y_true, y_pred, mask=mask, **options)
    got = call_loss(xp, hausdorff_dt_loss, y_true, y_pred, mask, dtype, **options)  # JAX: under jax.jit
    assert got.shape == expected.shape and got.dtype == dtype
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, expected, **tolerance)


def test_hand_computed_value():
    labels = np.array([[0, 1, 1, 0, 0]])
    foreground = np.array([[0.1, 0.9, 0.4, 0.6, 0.2]])
    probs = np.stack([1 - foreground, foreground], axis=-1)
    # masks p > 1/2: 01010, y: 01100; fields d_p = 11111, d_y = 11112; α = 2: weights 2, 2, 2, 2, 5
    # errors (p − y)²: .01 .01 .36 .36 .04 -> (.02 + .02 + .72 + .72 + .2) / 5
    np.testing.assert_allclose(hausdorff_dt_loss(labels, probs), [0.336], rtol=1e-14)
    np.testing.assert_allclose(hausdorff_dt_loss(labels, probs, log=True), [np.log(1.336)], rtol=1e-14)
    # α = 0 weighs every element 2 (0⁰ = 1, as MONAI): twice the mean squared error
    np.testing.assert_allclose(hausdorff_dt_loss(labels, probs, alpha=0.0), [2 * 0.156], rtol=1e-14)
    # the background has the same error and the complementary masks, so the same fields
    np.testing.assert_allclose(hausdorff_dt_loss(labels, probs, include_background=True), [0.336], rtol=1e-14)


def test_class_axis_and_label_forms_agree():
    y_true, y_pred, mask = random_inputs(2, spatial=(4, 5), labels="sparse", mask=True)
    expected = hausdorff_dt_loss(y_true, y_pred, mask=mask)
    onehot = np.eye(3)[y_true]
    np.testing.assert_allclose(hausdorff_dt_loss(onehot, y_pred, mask=mask), expected, rtol=1e-14)
    np.testing.assert_allclose(hausdorff_dt_loss(onehot.astype(bool), y_pred, mask=mask), expected, rtol=1e-14)
    np.testing.assert_allclose(hausdorff_dt_loss(np.moveaxis(onehot, -1, 1), np.moveaxis(y_pred, -1, 1),
                                                 mask=mask, class_axis=1), expected, rtol=1e-14)


def test_masked_sums_use_unmasked_fields_and_a_fully_masked_sample_is_zero():
    labels = np.array([[0, 1, 1, 0, 0], [0, 1, 1, 0, 0]])
    foreground = np.array([[0.1, 0.9, 0.4, 0.6, 0.2], [0.1, 0.1, 0.4, 0.6, 0.2]])
    probs = np.stack([1 - foreground, foreground], axis=-1)
    mask = np.array([[1.0, 0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 1.0, 1.0]])
    # The samples differ only at the masked element 1, which still shapes the predicted mask:
    # d_p = 11111 (weights 2 2 2 2 5) in the first, 32111 (weights 10 5 2 2 5) in the second.
    np.testing.assert_allclose(hausdorff_dt_loss(labels, probs, mask=mask),
                               [(0.02 + 0.72 + 0.72 + 0.2) / 4, (0.1 + 0.72 + 0.72 + 0.2) / 4], rtol=1e-14)
    y_true, y_pred, mask = random_inputs(3, spatial=(4, 5), labels="sparse", mask=True)
    mask[1] = 0.0
    got = hausdorff_dt_loss(y_true, y_pred, mask=mask)
    assert got[1] == 0.0 and got[0] > 0
    np.testing.assert_allclose(got, hausdorff_reference(y_true, y_pred, mask=mask), rtol=1e-12)


def test_half_precision_is_computed_in_float32():
    y_true, y_pred, _ = random_inputs(4, labels="sparse")
    got = hausdorff_dt_loss(y_true, y_pred.astype(np.float16))
    assert got.dtype == np.float32
    expected = hausdorff_reference(y_true, y_pred.astype(np.float16).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("log", [False, True])
def test_two_replicas_give_the_global_batch_loss(log):
    y_true, y_pred, mask = random_inputs(5, labels="sparse", mask=True)
    first, second = slice(0, 1), slice(1, 3)
    recorded = []  # the second replica's sums, in the order the loss reduces them
    hausdorff_dt_loss(y_true[second], y_pred[second], mask=mask[second], batch=True, log=log,
                      all_reduce=lambda t: recorded.append(t) or t)
    other = iter(recorded)
    got = hausdorff_dt_loss(y_true[first], y_pred[first], mask=mask[first], batch=True, log=log,
                            all_reduce=lambda t: t + next(other))
    np.testing.assert_allclose(got, hausdorff_dt_loss(y_true, y_pred, mask=mask, batch=True, log=log), rtol=1e-13)
    assert len(recorded) == 2


# --- gradients and edge cases --------------------------------------------------------------------


def _value_and_grad(backend, y_true, y_pred, mask=None, **options):
    """``(loss, d Σloss / d y_pred)`` as NumPy on ``backend`` (torch, jax under jit, tensorflow)."""
    if backend == "torch":
        import torch

        p = torch.tensor(y_pred, requires_grad=True)
        weights = None if mask is None else torch.from_numpy(mask)
        loss = hausdorff_dt_loss(torch.from_numpy(y_true), p, mask=weights, **options)
        loss.sum().backward()
        return loss.detach().numpy(), p.grad.numpy()
    if backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)

        def total(p, y, m):
            loss = hausdorff_dt_loss(y, p, mask=m, **options)
            return loss.sum(), loss

        (_, loss), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(
            *(None if a is None else jax.numpy.asarray(a) for a in (y_pred, y_true, mask)))
        return np.asarray(loss), np.asarray(grad)
    import tensorflow as tf

    p = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(p)
        weights = None if mask is None else tf.constant(mask)
        loss = hausdorff_dt_loss(tf.constant(y_true), p, mask=weights, **options)
    return loss.numpy(), tape.gradient(loss, p).numpy()


def test_gradients_agree_across_backends_and_with_the_formula():
    y_true, logits, mask = random_inputs(6, labels="sparse", mask=True, logits=True)
    results = {b: _value_and_grad(b, y_true, logits, mask, from_logits=True)
               for b in ("torch", "jax", "tensorflow")}
    expected = hausdorff_reference(y_true, logits, mask=mask, from_logits=True)
    for backend, (value, grad) in results.items():
        np.testing.assert_allclose(value, expected, rtol=1e-10, err_msg=backend)
        np.testing.assert_allclose(grad, results["torch"][1], rtol=1e-10, atol=1e-14, err_msg=backend)
    assert np.abs(results["torch"][1]).max() > 0
    # With probabilities the gradient is 2·(p − y)·(d_p^α + d_y^α)·m / (|K|·Σm) on the kept classes.
    y_true, y_pred, mask = random_inputs(7, spatial=(6,), labels="sparse", mask=True)
    _, grad = _value_and_grad("torch", y_true, y_pred, mask)
    onehot = np.eye(3)[y_true]
    weights = distance_weights_host(y_pred > 0.5, onehot > 0.5, alpha=2.0, class_axis=-1)
    share = np.array([0.0, 0.5, 0.5])
    formula = 2 * (y_pred - onehot) * weights * share * (mask / mask.sum(axis=1, keepdims=True))[..., None]
    np.testing.assert_allclose(grad, formula, rtol=1e-12, atol=1e-15)


def test_torch_gradcheck_from_logits():
    torch = pytest.importorskip("torch")
    y_true, logits, mask = random_inputs(8, spatial=(3, 4), labels="sparse", mask=True, logits=True)
    labels, weights = torch.from_numpy(y_true), torch.from_numpy(mask)
    z = torch.tensor(logits, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: hausdorff_dt_loss(labels, t, from_logits=True, mask=weights, log=True), (z,), fast_mode=True)


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_edge_cases_are_finite(backend):
    """Perfect predictions (exact 0/1 probabilities), all-0 and all-1 maps, ±1e4 logits, α = 0."""
    pytest.importorskip(backend)
    labels = np.zeros((3, 4, 5), dtype=np.int64)
    labels[0, 1:3, 1:4] = 1  # sample 1 all background (class 1 all 0), sample 2 all class 1 (all 1)
    labels[2] = 1
    perfect = np.eye(2)[labels]
    for y_pred, options in [(perfect, {}), (perfect, dict(log=True, include_background=True)),
                            (perfect, dict(alpha=0.0, batch=True)), (perfect, dict(alpha=0.5)),
                            (1e4 * (2 * perfect - 1), dict(from_logits=True)),
                            (-1e4 * (2 * perfect - 1), dict(from_logits=True, log=True))]:
        value, grad = _value_and_grad(backend, labels, y_pred, **options)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)), options
        if y_pred is perfect:
            np.testing.assert_array_equal(value, 0.0)
            np.testing.assert_array_equal(grad, 0.0)
    value, _ = _value_and_grad(backend, labels, 1.0 - perfect)  # everything wrong: all-1/all-0 fields are 0
    np.testing.assert_allclose(value, hausdorff_reference(labels, 1.0 - perfect), rtol=1e-12)


# --- tracing -----------------------------------------------------------------------------------


def test_jax_vmap_and_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    y_true, y_pred, _ = random_inputs(9, labels="sparse")
    per_sample = jax.jit(jax.vmap(lambda y, p: hausdorff_dt_loss(y[None], p[None])[0]))
    np.testing.assert_allclose(np.asarray(per_sample(jax.numpy.asarray(y_true), jax.numpy.asarray(y_pred))),
                               hausdorff_reference(y_true, y_pred), rtol=1e-12)


def test_tf_function_with_unknown_sizes():
    tf = pytest.importorskip("tensorflow")
    y_true, y_pred, mask = random_inputs(10, spatial=(4, 5), labels="sparse", mask=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int64),
                                  tf.TensorSpec([None, None, None, 3], tf.float64),
                                  tf.TensorSpec([None, None, None], tf.float64)])
    def step(y, p, m):
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = hausdorff_dt_loss(y, p, mask=m)
        return loss, tape.gradient(loss, p)

    for crop in (None, 3):
        arrays = [a[:, :crop] for a in (y_true, y_pred, mask)]
        loss, grad = step(*(tf.constant(a) for a in arrays))
        np.testing.assert_allclose(loss.numpy(), hausdorff_reference(*arrays[:2], mask=arrays[2]), rtol=1e-12)
        assert np.all(np.isfinite(grad.numpy())) and np.abs(grad.numpy()).max() > 0
    assert step.experimental_get_tracing_count() == 1


def _torch_step(y, p):
    p = p * 1.5  # traced work around the loss, which a graph break splits
    return hausdorff_dt_loss(y, p, class_axis=1, from_logits=True).sum() + p.sum()


def test_torch_compile_with_a_graph_break_matches_eager():
    torch = pytest.importorskip("torch")
    y_true, logits, _ = random_inputs(11, labels="sparse", logits=True, class_axis=1)
    labels = torch.from_numpy(y_true)
    eager, compiled = (torch.tensor(logits, requires_grad=True) for _ in range(2))
    _torch_step(labels, eager).backward()
    torch._dynamo.reset()
    step = torch.compile(_torch_step, backend="eager")
    loss = step(labels, compiled)
    loss.backward()
    np.testing.assert_allclose(loss.item(), hausdorff_reference(y_true, logits * 1.5, class_axis=1,
                                                                from_logits=True).sum() + 1.5 * logits.sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(compiled.grad.numpy(), eager.grad.numpy(), rtol=1e-12)


def test_torch_compile_fullgraph_raises_saying_to_drop_fullgraph():
    torch = pytest.importorskip("torch")
    y_true, logits, _ = random_inputs(12, labels="sparse", logits=True, class_axis=1)
    torch._dynamo.reset()
    step = torch.compile(_torch_step, backend="eager", fullgraph=True)
    with pytest.raises(RuntimeError, match="(?s)hausdorff_dt_loss.*without fullgraph"):
        step(torch.from_numpy(y_true), torch.from_numpy(logits))


@pytest.mark.filterwarnings("ignore")  # torch.jit.trace is deprecated and warns about Python ints
def test_torch_jit_trace_raises():
    torch = pytest.importorskip("torch")
    y_true, y_pred, _ = random_inputs(13, labels="sparse")
    labels = torch.from_numpy(y_true)
    with pytest.raises(RuntimeError, match="torch.jit.trace"):
        torch.jit.trace(lambda p: hausdorff_dt_loss(labels, p), (torch.from_numpy(y_pred),), check_trace=False)


def test_result_stays_on_the_array_api_strict_device(other_device):
    xs, device = other_device
    y_true, y_pred, mask = random_inputs(14, labels="sparse", mask=True)
    got = hausdorff_dt_loss(*(xs.asarray(a, device=device) for a in (y_true, y_pred)),
                            mask=xs.asarray(mask, device=device))
    assert got.device == device
    np.testing.assert_allclose(np.asarray(got.to_device(xs.Device("CPU_DEVICE"))),
                               hausdorff_reference(y_true, y_pred, mask=mask), rtol=1e-12)


# --- MONAI (SPEC §22: equal per sample up to float32; the log variant for one sample or batch=True) ---


def _monai_inputs(seed, spatial, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=(3, 1) + spatial)  # MONAI's [batch, 1, ...] class indices
    logits = rng.normal(scale=2.0, size=(3, 3) + spatial).astype(dtype)
    return torch.from_numpy(logits), torch.from_numpy(labels)


@pytest.mark.parametrize("spatial", [(6, 7), (3, 4, 5)], ids=["2d", "3d"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_monai_hausdorff_dt_loss_per_sample(spatial, dtype):
    losses = pytest.importorskip("monai.losses")
    logits, index = _monai_inputs(15, spatial, dtype)
    # MONAI rounds its fields to float32 even for float64 inputs: ~1e-9 relative there.
    rtol = 1e-8 if dtype == np.float64 else 1e-6
    for include_background in (False, True):
        monai = losses.HausdorffDTLoss(include_background=include_background, softmax=True, to_onehot_y=True,
                                       reduction="none")(logits, index)
        ours = hausdorff_dt_loss(index, logits, class_axis=1, from_logits=True,
                                 include_background=include_background)
        np.testing.assert_allclose(monai.mean(dim=(1, *range(2, monai.ndim))).numpy(), ours.numpy(), rtol=rtol)
        monai = losses.HausdorffDTLoss(include_background=include_background, softmax=True, to_onehot_y=True,
                                       batch=True)(logits, index)
        ours = hausdorff_dt_loss(index, logits, class_axis=1, from_logits=True,
                                 include_background=include_background, batch=True)
        np.testing.assert_allclose(monai.item(), ours.item(), rtol=rtol)
    # One sigmoid channel: MONAI keeps it with a warning under include_background=False; we keep it.
    binary = index.to(logits.dtype)
    monai = losses.HausdorffDTLoss(sigmoid=True, include_background=True, reduction="none")(logits[:, :1], binary)
    ours = hausdorff_dt_loss(binary, logits[:, :1], class_axis=1, from_logits=True)
    np.testing.assert_allclose(monai.flatten().numpy(), ours.numpy(), rtol=rtol)


def test_monai_log_hausdorff_dt_loss():
    losses = pytest.importorskip("monai.losses")
    torch = pytest.importorskip("torch")
    logits, index = _monai_inputs(16, (6, 7), np.float64)
    monai = losses.LogHausdorffDTLoss(softmax=True, to_onehot_y=True)
    options = dict(class_axis=1, from_logits=True, log=True)
    np.testing.assert_allclose(monai(logits[:1], index[:1]).item(),
                               hausdorff_dt_loss(index[:1], logits[:1], **options).item(), rtol=1e-8)
    batch_monai = losses.LogHausdorffDTLoss(softmax=True, to_onehot_y=True, batch=True)(logits, index)
    np.testing.assert_allclose(batch_monai.item(), hausdorff_dt_loss(index, logits, batch=True, **options).item(),
                               rtol=1e-8)
    # Several samples without batch=True: MONAI takes the log of the batch mean, we average the logs.
    plain = hausdorff_dt_loss(index, logits, class_axis=1, from_logits=True)
    np.testing.assert_allclose(monai(logits, index).item(), torch.log1p(plain.mean()).item(), rtol=1e-8)
    assert abs(monai(logits, index).item() - hausdorff_dt_loss(index, logits, **options).mean().item()) > 1e-5


# --- errors ------------------------------------------------------------------------------------

_Y, _P, _ = random_inputs(17, labels="sparse")


@pytest.mark.parametrize("call,error,message", [
    (lambda: hausdorff_dt_loss(_Y, _P, alpha=-0.5), ValueError, "alpha"),
    (lambda: hausdorff_dt_loss(_Y, _P, alpha=float("nan")), ValueError, "alpha"),
    (lambda: hausdorff_dt_loss(_Y, _P, alpha="2"), TypeError, "alpha"),
    (lambda: hausdorff_dt_loss(_Y, _P, log=1), TypeError, "log"),
    (lambda: hausdorff_dt_loss(_Y, _P, ignore_index=0), TypeError, "hausdorff_dt_loss"),
    (lambda: hausdorff_dt_loss(_Y[:, 0, 0], _P[:, 0, 0]), ValueError, "spatial axis"),
    (lambda: hausdorff_dt_loss(_Y, _P, background_index=3), ValueError, "background_index"),
    (lambda: hausdorff_dt_loss(_Y, _P, all_reduce=lambda t: t), ValueError, "all_reduce"),
    (lambda: hausdorff_dt_loss(_Y + 3, _P, validate=True), ValueError, "y_true"),
    (lambda: hausdorff_dt_loss(np.eye(3)[_Y], _P[..., :2]), ValueError, "y_true shape"),
], ids=["alpha-negative", "alpha-nan", "alpha-string", "log-int", "ignore_index", "no-spatial-axis",
        "background_index", "all_reduce-without-batch", "validate-labels", "shape"])
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
