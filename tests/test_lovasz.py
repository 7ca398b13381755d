"""Lovász-Softmax and Lovász hinge (SPEC §16): reference values, smp parity, gradients, tracing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_backend
from peers_import import smp_losses
from reference_region import random_inputs
from reference_structure import (
    EDGE_SCENARIOS,
    backend_cases,
    call_loss,
    edge_scenario,
    lovasz_hinge_reference,
    lovasz_set_reference,
    lovasz_softmax_reference,
)

import lossfns

S0, S1, S2, S3 = (), (7,), (4, 5), (3, 2, 3)

SOFTMAX_CASES = {
    "0d-onehot": dict(spatial=S0),
    "1d-onehot-all": dict(spatial=S1, classes="all"),
    "2d-sparse-mask": dict(spatial=S2, labels="sparse", mask=True),
    "2d-sparse-ignore-axis1-all": dict(spatial=S2, labels="sparse", ignore_index=255, class_axis=1,
                                       classes="all"),
    "2d-logits-no-background-batch": dict(spatial=S2, from_logits=True, include_background=False, batch=True),
    "2d-empty-class-present": dict(spatial=S2, labels="sparse", empty_class=True),
    "2d-empty-class-all-mask": dict(spatial=S2, empty_class=True, classes="all", mask=True),
    "2d-one-channel-logits": dict(spatial=S2, num_classes=1, labels="sparse", from_logits=True),
    "3d-soft-background2-mask": dict(spatial=S3, labels="soft", include_background=False,
                                     background_index=2, mask=True),
    "3d-sparse_unit-middle-axis-batch-mask": dict(spatial=S3, labels="sparse_unit", class_axis=2,
                                                  batch=True, mask=True, from_logits="softmax"),
}

HINGE_CASES = {
    "1d-one-channel": dict(spatial=S1, num_classes=1, labels="sparse"),
    "2d-multichannel-onehot-mask": dict(spatial=S2, mask=True),
    "2d-axis1-sigmoid-batch": dict(spatial=S2, class_axis=1, from_logits="sigmoid", batch=True, num_classes=2),
    "3d-sparse-ignore": dict(spatial=S3, labels="sparse", ignore_index=-1),
    "3d-one-channel-mask-batch": dict(spatial=S3, num_classes=1, mask=True, batch=True),
}

_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index", "empty_class")


def _inputs(case, seed, *, logits=None):
    make = {k: case[k] for k in _INPUT_KEYS if k in case}
    options = {k: v for k, v in case.items() if k not in _INPUT_KEYS}
    if "ignore_index" in case:
        options["ignore_index"] = case["ignore_index"]
    make["class_axis"] = options.get("class_axis", -1)
    make["logits"] = options.get("from_logits", False) is not False if logits is None else logits
    y_true, y_pred, mask = random_inputs(seed, **make)
    return y_true, y_pred, mask, options


_call = call_loss


def _tolerance(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend,case,dtype", backend_cases(SOFTMAX_CASES))
def test_softmax_matches_reference(backend, case, dtype):
    xp = load_backend(backend)
    y_true, y_pred, mask, options = _inputs(SOFTMAX_CASES[case], 1)
    expected = lovasz_softmax_reference(y_true, y_pred, mask=mask, **options)
    got = _call(xp, lossfns.lovasz_softmax_loss, y_true, y_pred, mask, dtype, **options)
    assert got.shape == expected.shape
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, **_tolerance(dtype))


@pytest.mark.parametrize("backend,case,dtype", backend_cases(HINGE_CASES))
def test_hinge_matches_reference(backend, case, dtype):
    xp = load_backend(backend)
    y_true, y_pred, mask, options = _inputs(HINGE_CASES[case], 2, logits=True)
    reference_options = {k: v for k, v in options.items() if k != "from_logits"}
    expected = lovasz_hinge_reference(y_true, y_pred, mask=mask, **reference_options)
    got = _call(xp, lossfns.lovasz_hinge_loss, y_true, y_pred, mask, dtype, **options)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **_tolerance(dtype))


def test_hand_computed_values():
    """The SPEC's formulas worked out by hand on three elements."""
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    # class 0: e = (0.6, 0.2, 0.1) sorted, g = (0, 0, 1), J = (1/2, 2/3, 1): 0.3 + 0.2/6 + 0.1/3
    # class 1: e = (0.6, 0.2, 0.1), g = (1, 1, 0), J = (1/2, 1, 1): 0.3 + 0.1
    expected = ((0.3 + 0.2 / 6 + 0.1 / 3) + 0.4) / 2
    np.testing.assert_allclose(lossfns.lovasz_softmax_loss(np.array([[0, 1, 1]]), probs), [expected], rtol=1e-14)
    # hinge: e = 1 - z(2y - 1) = (-1, 0, 0.5); only 0.5 counts, J_1 = 1/(2 + 1 - 1)
    logits = np.array([[[2.0], [-1.0], [0.5]]])
    np.testing.assert_allclose(lossfns.lovasz_hinge_loss(np.array([[1, 0, 1]]), logits), [0.25], rtol=1e-14)


def test_reference_set_formula_is_the_jaccard_extension():
    """On 0/1 errors the Lovász extension is the Jaccard loss of the mispredicted set."""
    labels = np.array([1, 1, 0, 0, 1, 0], dtype=float)
    mistakes = np.array([1, 0, 1, 0, 0, 1], dtype=float)  # positives missed, negatives hit
    predicted = (labels * (1 - mistakes) + (1 - labels) * mistakes).astype(bool)
    truth = labels.astype(bool)
    jaccard_loss = 1 - (predicted & truth).sum() / (predicted | truth).sum()
    assert lovasz_set_reference(mistakes, labels)[0] == pytest.approx(jaccard_loss, rel=1e-14)
    # One channel is the foreground: the loss of the hard prediction is its Jaccard loss.
    got = lossfns.lovasz_softmax_loss(labels.astype(int)[None], predicted.astype(float)[None, :, None])
    np.testing.assert_allclose(got, [jaccard_loss], rtol=1e-14)


def test_ties_do_not_change_the_value():
    """Equal errors may be sorted either way: the value is the same (SPEC §16)."""
    y = np.array([[0, 1, 1, 0, 1, 0]])
    probs = np.array([[0.7, 0.7, 0.3, 0.3, 0.7, 0.3]])  # errors only 0.3 and 0.7, many ties
    p = np.stack([1 - probs, probs], -1)
    order = np.array([5, 3, 1, 0, 4, 2])
    np.testing.assert_allclose(lossfns.lovasz_softmax_loss(y, p),
                               lossfns.lovasz_softmax_loss(y[:, order], p[:, order]), rtol=1e-14)


def test_masked_elements_equal_cropped_elements():
    xp = load_backend("numpy")  # an invariant of the formula; the backends agree by the tests above
    y_true, y_pred, _, _ = _inputs({"spatial": (10,), "labels": "sparse"}, 3)
    mask = np.ones(y_true.shape)
    mask[:, 6:] = 0.0
    masked = _call(xp, lossfns.lovasz_softmax_loss, y_true, y_pred, mask)
    cropped = _call(xp, lossfns.lovasz_softmax_loss, y_true[:, :6], y_pred[:, :6], None)
    np.testing.assert_allclose(masked, cropped, rtol=1e-12)
    hinge_masked = _call(xp, lossfns.lovasz_hinge_loss, y_true % 2, y_pred[..., :1], mask, batch=True)
    hinge_cropped = _call(xp, lossfns.lovasz_hinge_loss, y_true[:, :6] % 2, y_pred[:, :6, :1], None, batch=True)
    np.testing.assert_allclose(hinge_masked, hinge_cropped, rtol=1e-12)


def test_class_axis_position_does_not_matter():
    xp = load_backend("torch")
    y_true, y_pred, mask, _ = _inputs({"spatial": S2, "mask": True}, 4)
    last = _call(xp, lossfns.lovasz_softmax_loss, y_true, y_pred, mask)
    first = _call(xp, lossfns.lovasz_softmax_loss, np.moveaxis(y_true, -1, 1), np.moveaxis(y_pred, -1, 1),
                  mask, class_axis=1)
    np.testing.assert_allclose(first, last, rtol=1e-13)


def test_batch_is_one_set_not_a_mean():
    y_true, y_pred, _, _ = _inputs({"spatial": S2, "labels": "sparse"}, 5)
    whole = lossfns.lovasz_softmax_loss(y_true, y_pred, batch=True)
    per_sample = lossfns.lovasz_softmax_loss(y_true, y_pred)
    assert whole.shape == () and per_sample.shape == (3,)
    assert abs(float(whole) - per_sample.mean()) > 1e-4
    merged = lossfns.lovasz_softmax_loss(y_true.reshape(1, -1), y_pred.reshape(1, -1, 3))
    np.testing.assert_allclose(whole, merged[0], rtol=1e-13)


# --- segmentation-models-pytorch ---------------------------------------------------------------


@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("per_image", [True, False])
def test_smp_multiclass_matches(per_image, ignore_index):
    torch = pytest.importorskip("torch")
    losses = smp_losses()
    y_true, logits, _, _ = _inputs({"spatial": (6, 7), "labels": "sparse", "num_classes": 4,
                                    "ignore_index": ignore_index}, 6, logits=True)
    logits = logits.astype(np.float32)  # smp's _lovasz_grad computes in float32
    smp = losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=ignore_index)
    expected = smp(torch.from_numpy(np.moveaxis(logits, -1, 1).copy()), torch.from_numpy(y_true)).item()
    ours = lossfns.lovasz_softmax_loss(y_true, logits.astype(np.float64), from_logits=True,
                                       ignore_index=ignore_index, batch=not per_image)
    np.testing.assert_allclose(np.mean(ours), expected, rtol=2e-6)


def test_smp_binary_matches_on_one_channel():
    torch = pytest.importorskip("torch")
    losses = smp_losses()
    y_true, logits, _, _ = _inputs({"spatial": (6, 7), "labels": "sparse", "num_classes": 1}, 7, logits=True)
    logits = logits.astype(np.float32)
    smp = losses.LovaszLoss("binary", per_image=True)
    expected = smp(torch.from_numpy(np.moveaxis(logits, -1, 1).copy()), torch.from_numpy(y_true[:, None])).item()
    ours = lossfns.lovasz_hinge_loss(y_true, logits.astype(np.float64))
    np.testing.assert_allclose(ours.mean(), expected, rtol=2e-6)


def test_smp_binary_sorts_channels_together_we_do_not():
    """smp's binary mode on several channels mixes them in one sort (SPEC §16 keeps them apart)."""
    torch = pytest.importorskip("torch")
    losses = smp_losses()
    y_true, logits, _, _ = _inputs({"spatial": (6, 7), "num_classes": 2}, 8, logits=True)
    logits = logits.astype(np.float32)
    smp = losses.LovaszLoss("binary", per_image=True)
    theirs = smp(torch.from_numpy(np.moveaxis(logits, -1, 1).copy()),
                 torch.from_numpy(np.moveaxis(y_true, -1, 1).copy())).item()
    ours = lossfns.lovasz_hinge_loss(y_true, logits.astype(np.float64)).mean()
    per_channel = np.mean([lossfns.lovasz_hinge_loss(y_true[..., c:c + 1], logits[..., c:c + 1].astype(np.float64))
                           for c in range(2)], axis=0).mean()
    np.testing.assert_allclose(ours, per_channel, rtol=1e-12)
    assert abs(ours - theirs) > 1e-3


# --- gradients ---------------------------------------------------------------------------------


def test_torch_gradcheck():
    torch = pytest.importorskip("torch")
    y_true, logits, mask, _ = _inputs({"spatial": (3, 4), "labels": "sparse", "mask": True}, 9, logits=True)
    labels, weights = torch.from_numpy(y_true), torch.from_numpy(mask)
    z = torch.tensor(logits, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: lossfns.lovasz_softmax_loss(labels, t, from_logits=True, mask=weights), (z,), eps=1e-7, atol=1e-6)
    onehot = torch.from_numpy(np.eye(3)[y_true])
    assert torch.autograd.gradcheck(
        lambda t: lossfns.lovasz_hinge_loss(onehot, t, mask=weights, batch=True), (z,), eps=1e-7, atol=1e-6)


def test_torch_and_jax_gradients_agree():
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    y_true, logits, mask, _ = _inputs({"spatial": S2, "labels": "sparse", "mask": True}, 10, logits=True)
    for fn, options in ((lossfns.lovasz_softmax_loss, dict(from_logits=True, classes="all")),
                        (lossfns.lovasz_hinge_loss, dict(batch=True))):
        z = torch.tensor(logits, requires_grad=True)
        fn(torch.from_numpy(y_true), z, mask=torch.from_numpy(mask), **options).sum().backward()
        jax_grad = jax.jit(jax.grad(lambda t: fn(jax.numpy.asarray(y_true), t, mask=jax.numpy.asarray(mask),
                                                 **options).sum()))(jax.numpy.asarray(logits))
        np.testing.assert_allclose(z.grad.numpy(), np.asarray(jax_grad), rtol=1e-10, atol=1e-13)
        assert np.abs(z.grad.numpy()).max() > 0


def _edge_inputs(scenario):
    y_true, logits, mask, _ = _inputs({"spatial": S2, "labels": "sparse", "mask": True}, 11, logits=True)
    return edge_scenario(scenario, y_true, logits, mask)


@pytest.mark.parametrize("scenario", EDGE_SCENARIOS)
def test_edge_cases_are_finite(scenario):
    torch = pytest.importorskip("torch")
    y_true, logits, mask, options = _edge_inputs(scenario)
    onehot = np.eye(3)[y_true]
    calls = [(lossfns.lovasz_softmax_loss, y_true, dict(options, classes=c, batch=b))
             for c in ("present", "all") for b in (False, True)]
    calls += [(lossfns.lovasz_hinge_loss, onehot, dict(batch=b)) for b in (False, True)]
    for fn, target, kwargs in calls:
        z = torch.tensor(logits, requires_grad=True)
        loss = fn(torch.from_numpy(target), z, mask=torch.from_numpy(mask), **kwargs)
        loss.sum().backward()
        where = f"{fn.__name__} {kwargs}"
        assert np.all(np.isfinite(loss.detach().numpy())), where
        assert np.all(np.isfinite(z.grad.numpy())), where
        if scenario.startswith("perfect") and fn is lossfns.lovasz_softmax_loss:
            np.testing.assert_allclose(loss.detach().numpy(), 0.0, atol=1e-12, err_msg=where)
        if scenario == "fully-masked-batch":
            np.testing.assert_array_equal(loss.detach().numpy(), 0.0, err_msg=where)
            np.testing.assert_array_equal(z.grad.numpy(), 0.0, err_msg=where)


def test_perfect_hinge_margins_give_zero():
    y = np.array([[1, 0, 1, 0]])
    logits = np.where(y == 1, 1e4, -1e4)[..., None].astype(float)
    assert lossfns.lovasz_hinge_loss(y, logits)[0] == 0.0


# --- tracing -----------------------------------------------------------------------------------


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    y_true, logits, mask, _ = _inputs({"spatial": S3, "labels": "sparse", "mask": True}, 12, logits=True)
    expected = lovasz_softmax_reference(y_true, logits, mask=mask, from_logits=True)

    @jax.jit
    def step(y, z, m):
        return jax.value_and_grad(lambda t: lossfns.lovasz_softmax_loss(y, t, from_logits=True, mask=m).sum())(z)

    value, grad = step(*(jax.numpy.asarray(a) for a in (y_true, logits, mask)))
    np.testing.assert_allclose(float(value), expected.sum(), rtol=1e-10)
    assert np.all(np.isfinite(np.asarray(grad)))
    hinge = jax.jit(lambda y, z: lossfns.lovasz_hinge_loss(y, z, batch=True))
    np.testing.assert_allclose(hinge(jax.numpy.asarray(np.eye(3)[y_true]), jax.numpy.asarray(logits)),
                               lovasz_hinge_reference(np.eye(3)[y_true], logits, batch=True), rtol=1e-10)


def test_torch_compile_fullgraph_with_dynamic_sizes():
    torch = pytest.importorskip("torch")
    y_true, logits, mask, _ = _inputs({"spatial": S2, "labels": "sparse", "mask": True}, 13, logits=True)

    def step(y, z, m):  # the hinge shares the sort; the adapter tests compile it on its own
        return lossfns.lovasz_softmax_loss(y, z, from_logits=True, mask=m).sum()

    def value_and_grad(fn, y, z, m):
        z = torch.tensor(z, requires_grad=True)
        value = fn(torch.from_numpy(y), z, torch.from_numpy(m))
        value.backward()
        return value.item(), z.grad.numpy()

    compiled = torch.compile(step, fullgraph=True, backend="eager", dynamic=True)
    for crop in (None, 3):  # symbolic sizes: the second size reuses the graph
        arrays = [np.ascontiguousarray(a[:, :crop]) for a in (y_true, logits, mask)]
        eager_value, eager_grad = value_and_grad(step, *arrays)
        value, grad = value_and_grad(compiled, *arrays)
        np.testing.assert_allclose(value, eager_value, rtol=1e-12)
        np.testing.assert_allclose(grad, eager_grad, rtol=1e-10, atol=1e-14)


def test_tf_function_with_unknown_sizes():
    tf = pytest.importorskip("tensorflow")
    y_true, logits, mask, _ = _inputs({"spatial": S2, "labels": "sparse", "mask": True}, 14, logits=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int64),
                                  tf.TensorSpec([None, None, None, 3], tf.float64),
                                  tf.TensorSpec([None, None, None], tf.float64)])
    def step(y, z, m):
        with tf.GradientTape() as tape:
            tape.watch(z)
            per_sample = lossfns.lovasz_softmax_loss(y, z, from_logits=True, mask=m)
            hinge = lossfns.lovasz_hinge_loss(tf.one_hot(y, 3, dtype=tf.float64), z, mask=m, batch=True)
            total = tf.reduce_sum(per_sample) + hinge
        return per_sample, hinge, tape.gradient(total, z)

    for crop in (None, 3):  # one trace serves both sizes
        y, z, m = (a[:, :crop] for a in (y_true, logits, mask))
        per_sample, hinge, grad = step(tf.constant(y), tf.constant(z), tf.constant(m))
        np.testing.assert_allclose(per_sample.numpy(), lovasz_softmax_reference(y, z, mask=m, from_logits=True),
                                   rtol=1e-10)
        np.testing.assert_allclose(hinge.numpy(), lovasz_hinge_reference(np.eye(3)[y], z, mask=m, batch=True),
                                   rtol=1e-10)
        assert np.all(np.isfinite(grad.numpy()))
    assert step.experimental_get_tracing_count() == 1


# --- errors (SPEC §20) -------------------------------------------------------------------------

_Y = np.array([[0, 1, 1]])
_P = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])


@pytest.mark.parametrize("call,error,message", [
    (lambda: lossfns.lovasz_softmax_loss(_Y, _P, classes="some"), ValueError, "classes"),
    (lambda: lossfns.lovasz_softmax_loss(_Y, _P, batch=True, all_reduce=lambda t: t), ValueError,
     "per-replica sums"),
    (lambda: lossfns.lovasz_hinge_loss(_Y, _P[..., 1:], batch=True, all_reduce=lambda t: t), ValueError,
     "per-replica sums"),
    (lambda: lossfns.lovasz_hinge_loss(_Y, _P[..., 1:], from_logits=False), ValueError, "from_logits"),
    (lambda: lossfns.lovasz_hinge_loss(_Y, _P, from_logits="softmax"), ValueError, "from_logits"),
    (lambda: lossfns.lovasz_hinge_loss(_Y, _P, from_logits="logits"), ValueError, "from_logits"),
    (lambda: lossfns.lovasz_softmax_loss(_Y, _P, gamma=2.0), TypeError, "lovasz_softmax_loss"),
    (lambda: lossfns.lovasz_hinge_loss(_Y, _P, classes="all"), TypeError, "lovasz_hinge_loss"),
    (lambda: lossfns.lovasz_softmax_loss(_Y, _P, include_background=False, background_index=2), ValueError,
     "background_index"),
    (lambda: lossfns.lovasz_softmax_loss(_Y[:, :2], _P), ValueError, "y_true shape"),
    (lambda: lossfns.lovasz_softmax_loss(_Y, (_P * 10).astype(int)), TypeError, "y_pred"),
    (lambda: lossfns.lovasz_softmax_loss(np.eye(2)[_Y], _P, ignore_index=0), ValueError, "ignore_index"),
    (lambda: lossfns.lovasz_softmax_loss(_Y, _P * 2, validate=True), ValueError, "y_pred"),
    (lambda: lossfns.lovasz_softmax_loss(_Y + 2, _P, validate=True), ValueError, "class indices"),
], ids=["classes", "softmax-all_reduce", "hinge-all_reduce", "hinge-probabilities", "hinge-softmax",
        "hinge-unknown-from_logits", "unknown-keyword", "hinge-no-classes", "background_index",
        "shape", "integer-y_pred", "ignore_index-dense", "validate-range", "validate-labels"])
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
