"""Top-k cross-entropy (SPEC §22): the float64 reference on every backend, nnU-Net parity and
its NaN below one element, relations to the cross-entropies, gradients and the §9 edge grid,
tracing, and the §23 errors (``k`` outside (0, 100], ``all_reduce``)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_region import random_inputs
from reference_wasserstein import topk_reference

import lossfns
from lossfns.topk import topk_loss

S1, S2, S3 = (6,), (4, 3), (2, 3, 2)
CASES = {
    "1d-onehot": dict(spatial=S1),
    "1d-soft-mask-batch": dict(spatial=S1, labels="soft", mask=True, batch=True),
    "2d-sparse-mask": dict(spatial=S2, labels="sparse", mask=True),
    "2d-sparse-axis1-logits": dict(spatial=S2, labels="sparse", class_axis=1, from_logits=True),
    "2d-ignore-index-batch": dict(spatial=S2, labels="sparse", ignore_index=255, batch=True, from_logits=True),
    "2d-sigmoid-sparse-mask": dict(spatial=S2, labels="sparse", mask=True, from_logits="sigmoid"),
    "2d-one-channel-probabilities": dict(spatial=S2, num_classes=1, labels="sparse"),
    "2d-one-channel-logits-dense": dict(spatial=S2, num_classes=1, from_logits=True, mask=True),
    "3d-sparse_unit-axis2-sigmoid-dense": dict(spatial=S3, labels="onehot_int", class_axis=2, from_logits="sigmoid"),
}
_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index", "empty_class")
# 0.5 keeps one element (n·k < 100); 33.3 is not a whole share. (k = 100: the cross-entropy test.)
KS = (10.0, 33.3, 0.5)


def _inputs(case, seed=None):
    make = {k: v for k, v in CASES[case].items() if k in _INPUT_KEYS}
    make.setdefault("num_classes", 4)
    options = {k: v for k, v in CASES[case].items() if k not in _INPUT_KEYS}
    if "ignore_index" in make:
        options["ignore_index"] = make["ignore_index"]
    make.update(class_axis=options.get("class_axis", -1), logits=bool(options.get("from_logits", False)))
    return random_inputs(sum(map(ord, case)) if seed is None else seed, **make), options


def _call(xp, y_true, y_pred, mask=None, dtype=np.float64, jit=False, **options):
    def convert(a):
        return None if a is None else xp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)

    arrays = (convert(y_true), convert(y_pred), convert(mask))
    if jit and xp.name == "jax":  # one compilation per call: eager JAX compiles every operation anew
        import jax

        return jax.jit(lambda y, p, m: topk_loss(y, p, mask=m, **options))(*arrays)
    return topk_loss(arrays[0], arrays[1], mask=arrays[2], **options)


DTYPE_CASES = [pytest.param(c, np.float64, id=f"{c}-float64") for c in CASES] + [
    pytest.param(c, np.float32, id=f"{c}-float32") for c in list(CASES)[::4]]


@pytest.mark.parametrize("case,dtype", DTYPE_CASES)
def test_matches_reference(xp, case, dtype):
    (y_true, y_pred, mask), options = _inputs(case)
    if dtype == np.float32:
        y_pred = y_pred.astype(np.float32)
        mask = None if mask is None else mask.astype(np.float32)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for k in KS:
        expected = topk_reference(y_true, y_pred, mask=mask, k=k, **options)
        got = xp.to_numpy(_call(xp, y_true, y_pred, mask, dtype=dtype, jit=True, k=k, **options))
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **tolerance, err_msg=f"k={k}")


def test_fully_masked_sample_is_zero(xp):
    (y_true, y_pred, mask), _ = _inputs("2d-sparse-mask")
    mask[1] = 0.0
    for k in (10.0, 100.0):
        got = xp.to_numpy(_call(xp, y_true, y_pred, mask, k=k))
        assert got[1] == 0.0 and got[0] > 0.0, (k, got)
        whole = xp.to_numpy(_call(xp, y_true, y_pred, np.zeros_like(mask), k=k, batch=True))
        assert whole == 0.0


def test_count_is_nnunet_rounding():
    """``n_k = max(1, int(n·k/100))`` in float64, the same with and without a mask."""
    assert lossfns.topk.count_kept(1000, 0.7) == 7  # 1000·0.7/100 rounds up to exactly 7.0
    assert lossfns.topk.count_kept(7, 10.0) == 1 and lossfns.topk.count_kept(5, 10.0) == 1
    rng = np.random.default_rng(0)
    values = rng.permutation(1000) / 100.0  # distinct per-element losses, p above the 1e-7 clip
    probs = np.exp(-values)[None, :, None]
    labels = np.ones((1, 1000, 1))  # one channel: binary CE = -log p = values
    for k in (0.7, 12.5, 33.3):
        expected = np.sort(values)[::-1][:lossfns.topk.count_kept(1000, k)].mean()
        np.testing.assert_allclose(topk_loss(labels, probs, k=k), [expected], rtol=1e-6)
        np.testing.assert_allclose(topk_loss(labels, probs, k=k, mask=np.ones((1, 1000))), [expected], rtol=1e-6)


def test_hundred_percent_is_the_cross_entropy():
    (y_true, logits, mask), _ = _inputs("2d-sparse-mask")
    binary = (mask > 0).astype(float)  # with 0/1 weights the masked mean is the mean over kept elements
    for batch in (False, True):
        np.testing.assert_allclose(
            topk_loss(y_true, logits, k=100.0, mask=binary, batch=batch, from_logits=True),
            lossfns.categorical_crossentropy(y_true, logits, mask=binary, batch=batch, from_logits=True), rtol=1e-12)
        np.testing.assert_allclose(
            topk_loss(y_true, logits, k=100.0, batch=batch, from_logits="sigmoid"),
            lossfns.binary_crossentropy(y_true, logits, batch=batch, from_logits=True), rtol=1e-12)


def test_sparse_and_one_hot_labels_agree():
    (labels, y_pred, mask), _ = _inputs("2d-sparse-mask")
    onehot = np.eye(4)[labels]
    for from_logits in (False, "sigmoid"):
        z = y_pred if not from_logits else np.log(y_pred)
        for k in (10.0, 50.0):
            np.testing.assert_allclose(topk_loss(onehot, z, k=k, mask=mask, from_logits=from_logits),
                                       topk_loss(labels, z, k=k, mask=mask, from_logits=from_logits), rtol=1e-13)


# --- nnU-Net -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nnunet(dtype):
    torch = pytest.importorskip("torch")
    robust_ce = pytest.importorskip("nnunetv2.training.loss.robust_ce_loss")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=(2, 1, 6, 5, 4))
    logits = rng.normal(scale=3.0, size=(2, 3, 6, 5, 4)).astype(dtype)  # n = 240 elements in the batch
    for k in (10.0, 0.5, 7.3, 100.0):  # n·k >= 100 for each
        z = torch.tensor(logits, requires_grad=True)
        theirs = robust_ce.TopKLoss(k=k)(z, torch.from_numpy(labels))
        theirs.backward()
        ours_z = torch.tensor(logits, requires_grad=True)
        ours = topk_loss(torch.from_numpy(labels), ours_z, k=k, batch=True, from_logits=True, class_axis=1)
        ours.backward()
        rtol = 1e-12 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=rtol, err_msg=f"k={k}")
        np.testing.assert_allclose(ours_z.grad.numpy(), z.grad.numpy(), rtol=rtol, atol=1e-12, err_msg=f"k={k}")


def test_nnunet_averages_nothing_below_one_element():
    """n·k < 100: nnU-Net's top-k keeps ``int(n·k/100) = 0`` elements (NaN); ours keeps one."""
    torch = pytest.importorskip("torch")
    robust_ce = pytest.importorskip("nnunetv2.training.loss.robust_ce_loss")
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=(1, 1, 5, 4))
    logits = rng.normal(size=(1, 3, 5, 4))  # n = 20, k = 4: n·k = 80
    theirs = robust_ce.TopKLoss(k=4.0)(torch.from_numpy(logits), torch.from_numpy(labels))
    assert torch.isnan(theirs)
    ours = topk_loss(labels, logits, k=4.0, batch=True, from_logits=True, class_axis=1)
    largest = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels[:, 0]),
                                                reduction="none").max().item()
    np.testing.assert_allclose(ours, largest, rtol=1e-12)


# --- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("case,second", [("2d-sparse-mask", False), ("2d-sparse-axis1-logits", True),
                                         ("2d-sigmoid-sparse-mask", True), ("1d-soft-mask-batch", False)])
def test_torch_gradcheck(case, second):
    torch = pytest.importorskip("torch")
    (y_true, y_pred, mask), options = _inputs(case)
    # Two samples, two rows of d1: second derivatives are checked element by element.
    pred_d1 = 2 if options.get("class_axis") == 1 else 1
    y_true, mask = y_true[:2, :2], None if mask is None else mask[:2, :2]
    y_pred = y_pred[:2, :, :2] if pred_d1 == 2 else y_pred[:2, :2]
    if not options.get("from_logits"):
        y_pred = np.clip(y_pred, 0.05, 0.95)
    weights = None if mask is None else torch.from_numpy(mask)
    p = torch.tensor(y_pred, requires_grad=True)

    def loss(t):
        return topk_loss(torch.from_numpy(y_true), t, mask=weights, k=30.0, **options)

    assert torch.autograd.gradcheck(loss, (p,))
    assert not second or torch.autograd.gradgradcheck(loss, (p,))


def test_torch_jax_and_tf_gradients_agree():
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    jax.config.update("jax_enable_x64", True)
    (y_true, logits, mask), options = _inputs("2d-sigmoid-sparse-mask")
    options.pop("mask", None)
    for masked, extra in ((False, {"k": 30.0}), (True, {"k": 30.0}), (False, {"k": 50.0, "batch": True})):
        extra = dict(options, **extra)
        z = torch.tensor(logits, requires_grad=True)
        topk_loss(torch.from_numpy(y_true), z, mask=torch.from_numpy(mask) if masked else None, **extra).sum().backward()
        jax_mask = jax.numpy.asarray(mask) if masked else None
        jax_grad = jax.grad(lambda t: topk_loss(jax.numpy.asarray(y_true), t, mask=jax_mask, **extra).sum())(
            jax.numpy.asarray(logits))
        tz = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(tz)
            total = tf.reduce_sum(topk_loss(tf.constant(y_true), tz, mask=tf.constant(mask) if masked else None,
                                            **extra))
        for other in (np.asarray(jax_grad), tape.gradient(total, tz).numpy()):
            np.testing.assert_allclose(other, z.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=f"{masked} {extra}")
        assert np.abs(z.grad.numpy()).max() > 0


def edge_grid():
    """SPEC §9 inputs: ``(name, y_true, y_pred, mask, from_logits)``."""
    labels = np.array([[[0, 1], [1, 2]], [[0, 0], [0, 0]]])
    onehot = (labels[..., None] == np.arange(3)).astype(float)
    yield "perfect probabilities", labels, onehot, None, False
    yield "opposite probabilities", labels, 1 - onehot, None, False
    yield "huge logits", labels, (2 * onehot - 1) * 1e4, None, True
    yield "huge wrong logits", labels, (1 - 2 * onehot) * 1e4, None, True
    yield "huge sigmoid logits", labels, (1 - 2 * onehot) * 1e4, None, "sigmoid"
    yield "fully masked", labels, onehot * 0.5 + 0.1, np.zeros(labels.shape), False
    yield "one sample masked", labels, (2 * onehot - 1) * 1e4, np.array([[[1.0, 1.0], [1.0, 0.0]], [[0.0] * 2] * 2]), True


def test_edge_grid_is_finite():
    torch = pytest.importorskip("torch")
    for name, y_true, y_pred, mask, from_logits in edge_grid():
        for options in ({"k": 10.0}, {"k": 50.0, "batch": True}, {"k": 100.0}):
            p = torch.tensor(y_pred, requires_grad=True)
            loss = topk_loss(torch.from_numpy(y_true), p, mask=None if mask is None else torch.from_numpy(mask),
                             from_logits=from_logits, **options).sum()
            (grad,) = torch.autograd.grad(loss, p, create_graph=True)
            (second,) = torch.autograd.grad((grad * grad).sum(), p)
            for what, value in (("value", loss), ("gradient", grad), ("second", second)):
                assert torch.isfinite(value).all(), f"{name} {options}: {what}"
            if name in ("perfect probabilities", "huge logits", "fully masked", "one sample masked"):
                assert 0.0 <= loss.item() < 1e-6, f"{name} {options}"
            if name == "huge wrong logits":  # every element: logsumexp(1e4, 1e4, -1e4) + 1e4
                expected = (2e4 + np.log(2.0)) * (1 if "batch" in options else 2)
                assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_jax_and_tf_edges_are_finite():
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    jax.config.update("jax_enable_x64", True)
    for name, y_true, y_pred, mask, from_logits in edge_grid():
        if from_logits is not True:
            continue  # the logits cases: where an overflow could appear
        options = dict(k=50.0, from_logits=True)
        m = None if mask is None else jax.numpy.asarray(mask)
        value, grad = jax.value_and_grad(lambda t: topk_loss(jax.numpy.asarray(y_true), t, mask=m, **options).sum())(
            jax.numpy.asarray(y_pred))
        z = tf.constant(y_pred)
        with tf.GradientTape() as tape:
            tape.watch(z)
            total = tf.reduce_sum(topk_loss(tf.constant(y_true), z, mask=None if mask is None else tf.constant(mask),
                                            **options))
        for array in (value, grad, total, tape.gradient(total, z)):
            assert np.all(np.isfinite(np.asarray(array))), name


# --- tracing -------------------------------------------------------------------------------------


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    (y_true, logits, mask), options = _inputs("2d-sparse-axis1-logits")
    mask = np.random.default_rng(2).uniform(size=y_true.shape) * (np.arange(3) > 0)

    @jax.jit
    def step(y, z, m):
        static = topk_loss(y, z, k=25.0, **options).sum()
        masked = topk_loss(y, z, k=25.0, mask=m, batch=True, **options)
        return jax.value_and_grad(lambda t: topk_loss(y, t, k=25.0, mask=m, **options).sum())(z), static, masked

    (value, grad), static, masked = step(*(jax.numpy.asarray(a) for a in (y_true, logits, mask)))
    np.testing.assert_allclose(float(value), topk_reference(y_true, logits, mask=mask, k=25.0, **options).sum(),
                               rtol=1e-10)
    np.testing.assert_allclose(float(static), topk_reference(y_true, logits, k=25.0, **options).sum(), rtol=1e-10)
    np.testing.assert_allclose(float(masked), topk_reference(y_true, logits, mask=mask, k=25.0, batch=True,
                                                             **options), rtol=1e-10)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_torch_compile_fullgraph():
    torch = pytest.importorskip("torch")
    (y_true, logits, _), options = _inputs("2d-sparse-axis1-logits")
    mask = np.random.default_rng(5).uniform(size=y_true.shape) * (np.arange(3) > 0)

    def step(y, z, m):
        return topk_loss(y, z, k=20.0, **options).sum() + topk_loss(y, z, k=20.0, mask=m, **options).sum()

    def value_and_grad(fn):
        z = torch.tensor(logits, requires_grad=True)
        value = fn(torch.from_numpy(y_true), z, torch.from_numpy(mask))
        value.backward()
        return value.item(), z.grad.numpy()

    compiled = torch.compile(step, fullgraph=True, backend="eager")
    eager_value, eager_grad = value_and_grad(step)
    value, grad = value_and_grad(compiled)
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
            plain = topk_loss(y, z, k=30.0, **options)  # n unknown: a full sort
            masked = topk_loss(y, z, k=30.0, mask=m, batch=True, **options)
            total = tf.reduce_sum(plain) + masked
        return plain, masked, tape.gradient(total, z)

    for crop in (None, 2):  # one trace serves both sizes
        y, z, m = (a[:, :crop] for a in (y_true, logits, mask))
        plain, masked, grad = step(tf.constant(y), tf.constant(z), tf.constant(m))
        np.testing.assert_allclose(plain.numpy(), topk_reference(y, z, k=30.0, **options), rtol=1e-10)
        np.testing.assert_allclose(masked.numpy(), topk_reference(y, z, mask=m, k=30.0, batch=True, **options),
                                   rtol=1e-10)
        assert np.all(np.isfinite(grad.numpy()))
    assert step.experimental_get_tracing_count() == 1


# --- errors (SPEC §23) --------------------------------------------------------------------------

_Y = np.array([[0, 1, 1]])
_P = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])


@pytest.mark.parametrize("k", [0.0, -5.0, 100.5, 1e9])
def test_k_outside_the_percentages_is_named(k):
    with pytest.raises(ValueError, match=r"k must lie in \(0, 100\] \(a percentage of the elements\), got"):
        topk_loss(_Y, _P, k=k)


def test_other_argument_errors():
    with pytest.raises(ValueError, match="k must be a finite number, got nan"):
        topk_loss(_Y, _P, k=float("nan"))
    with pytest.raises(ValueError, match="k must be a finite number, got inf"):
        topk_loss(_Y, _P, k=float("inf"))
    with pytest.raises(TypeError, match="k must be a real number, got '10'"):
        topk_loss(_Y, _P, k="10")
    with pytest.raises(TypeError, match="unexpected keyword argument 'gamma'"):
        topk_loss(_Y, _P, gamma=2.0)
    with pytest.raises(ValueError, match="ignore_index needs integer class labels"):
        topk_loss(np.eye(2)[_Y], _P, ignore_index=0)
    with pytest.raises(ValueError, match="from_logits='softmax' needs more than one class"):
        topk_loss(_Y, _P[..., :1], from_logits="softmax")


@pytest.mark.parametrize("batch", [False, True])
def test_all_reduce_is_refused(batch):
    with pytest.raises(ValueError, match="all_reduce is not supported by topk_loss: the k% largest"):
        topk_loss(_Y, _P, batch=batch, all_reduce=lambda t: t)


def test_domains_declare_their_invalid_examples():
    domain = topk_loss.domains["k"]
    for example in domain.invalid_examples():
        with pytest.raises(ValueError, match="^k "):
            domain.check("k", example)
    assert domain.describe() == "in (0, 100]"
    assert topk_loss.domains["all_reduce"].additive is False
    assert topk_loss.hyperparameters == ("k",)
