"""Soft clDice and Dice + clDice (SPEC §18): morphology, reference values, peers, gradients, tracing."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import load_backend
from reference_region import random_inputs
from reference_structure import (
    EDGE_SCENARIOS,
    backend_cases,
    call_loss,
    cldice_parts_reference,
    cldice_reference,
    dice_cldice_reference,
    dilation_reference,
    edge_scenario,
    erosion_reference,
    harmonic_loss,
    skeleton_reference,
)

import lossfns
from lossfns import cldice as cl
from lossfns._namespace import array_namespace

# --- soft morphology -----------------------------------------------------------------------------

MORPHOLOGY_SHAPES = {"1d": (9,), "2d": (5, 6), "3d": (3, 4, 5), "2d-size-1-axis": (1, 5)}


@pytest.mark.parametrize("shape", list(MORPHOLOGY_SHAPES))
def test_morphology_matches_explicit_neighbourhoods(xp, shape):
    x = np.random.default_rng(0).uniform(size=MORPHOLOGY_SHAPES[shape])
    array = xp.asarray(x)
    ns, axes = array_namespace(x=array), tuple(range(x.ndim))

    def morphology(t):
        return cl.soft_erosion(ns, t, axes), cl.soft_dilation(ns, t, axes), cl.soft_skeleton(ns, t, axes, 2)

    if xp.name == "jax":  # one compilation, not one per primitive and shape
        import jax

        morphology = jax.jit(morphology)
    eroded, dilated, skeleton = (xp.to_numpy(t) for t in morphology(array))
    np.testing.assert_array_equal(eroded, erosion_reference(x))
    np.testing.assert_array_equal(dilated, dilation_reference(x))
    np.testing.assert_allclose(skeleton, skeleton_reference(x, 2), rtol=1e-14, atol=1e-15)


def test_skeleton_of_a_binary_bar_is_its_centre_line():
    bar = np.zeros((7, 9))
    bar[2:5, 1:8] = 1.0  # three rows thick
    skeleton = cl.soft_skeleton(np, bar, (0, 1), 3)
    assert skeleton[3, 2:7].min() == 1.0  # the middle row survives the erosions
    assert skeleton[[2, 4]].max() == 0.0 and skeleton[:, [0, 8]].max() == 0.0


# --- values against the reference ----------------------------------------------------------------

S1, S2, S3 = (9,), (6, 7), (4, 5, 4)
CASES = {
    "1d-onehot": dict(spatial=S1),
    "2d-sparse-mask": dict(spatial=S2, labels="sparse", mask=True),
    "2d-sparse-ignore-axis1-batch": dict(spatial=S2, labels="sparse", ignore_index=255, class_axis=1, batch=True),
    "2d-soft-logits-background": dict(spatial=S2, labels="soft", from_logits=True, include_background=True,
                                      iterations=1, epsilon=0.5),
    "2d-one-channel-sigmoid-eps0": dict(spatial=S2, num_classes=1, labels="sparse", from_logits=True,
                                        epsilon=0.0, iterations=2),
    "2d-iterations0-background2": dict(spatial=S2, iterations=0, background_index=2, mask=True),
    "3d-onehot-mask-batch": dict(spatial=S3, mask=True, batch=True, iterations=2),
    "3d-sparse_unit-middle-axis": dict(spatial=S3, labels="sparse_unit", class_axis=2),
}
_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index")


def _inputs(case, seed=1):
    make = {k: case[k] for k in _INPUT_KEYS if k in case}
    options = {k: v for k, v in case.items() if k not in _INPUT_KEYS or k == "ignore_index"}
    make["class_axis"] = options.get("class_axis", -1)
    make["logits"] = options.get("from_logits", False) is not False
    y_true, y_pred, mask = random_inputs(seed, **make)
    return y_true, y_pred, mask, options


@functools.cache
def _expected(case, alpha):
    """Reference values of a case, computed once for every backend and dtype."""
    y_true, y_pred, mask, options = _inputs(CASES[case])
    cldice = cldice_reference(y_true, y_pred, mask=mask, **options)
    return cldice, dice_cldice_reference(y_true, y_pred, mask=mask, alpha=alpha, **options)


_call = call_loss


@pytest.mark.parametrize("backend,case,dtype", backend_cases(CASES))
def test_matches_reference(backend, case, dtype):
    xp = load_backend(backend)
    y_true, y_pred, mask, options = _inputs(CASES[case])
    expected_cldice, expected_combined = _expected(case, 0.3)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    got = _call(xp, lossfns.cldice_loss, y_true, y_pred, mask, dtype, **options)
    assert got.shape == expected_cldice.shape and got.dtype == dtype
    np.testing.assert_allclose(got, expected_cldice, **tolerance)
    combined = _call(xp, lossfns.dice_cldice_loss, y_true, y_pred, mask, dtype, alpha=0.3, **options)
    np.testing.assert_allclose(combined, expected_combined, **tolerance)


def test_hand_checked_line():
    """A one-element-thick line: its skeleton is itself, the prediction's is the same line."""
    labels = np.zeros((1, 5, 5), dtype=int)
    labels[0, 2, :] = 1
    probs = np.where(labels[..., None] == np.arange(2), 0.8, 0.2)
    # S(p) for the foreground = 0.8 - 0.2 = 0.6 on the line, 0 elsewhere (the opening is 0.2
    # everywhere); S(y) = the line. tprec = (0.6·5 + 1)/(0.6·5 + 1) = 1,
    # tsens = (0.8·5 + 1)/(5 + 1) = 5/6, clDice = 1 - 2·(5/6)/(11/6) = 1/11.
    np.testing.assert_allclose(lossfns.cldice_loss(labels, probs, iterations=1), [1 / 11], rtol=1e-14)
    # Dice over the foreground: 2·Σyp = 8, Σy + Σp = 5 + (0.8·5 + 0.2·20) = 13; (1 - 9/14)/2 + (1/11)/2
    np.testing.assert_allclose(lossfns.dice_cldice_loss(labels, probs, iterations=1),
                               [0.5 * (1 - 9 / 14) + 0.5 / 11], rtol=1e-14)


def test_ignored_labels_are_empty_vectors_with_zero_weight():
    y_true, y_pred, _, _ = _inputs(dict(spatial=S2, labels="sparse", ignore_index=-1), seed=3)
    ignored = y_true == -1
    dense = np.where(ignored[..., None], 0.0, np.eye(3)[np.where(ignored, 0, y_true)])
    weights = np.where(ignored, 0.0, 1.0)
    for fn in (lossfns.cldice_loss, lossfns.dice_cldice_loss):
        np.testing.assert_allclose(fn(y_true, y_pred, ignore_index=-1), fn(dense, y_pred, mask=weights),
                                   rtol=1e-13)


def test_two_replicas_give_the_global_batch_loss():
    y_true, y_pred, mask, _ = _inputs(dict(spatial=S2, labels="sparse", mask=True), seed=4)
    first, second = slice(0, 2), slice(2, 3)
    for fn in (lossfns.cldice_loss, lossfns.dice_cldice_loss):
        recorded = []
        fn(y_true[second], y_pred[second], mask=mask[second], batch=True,
           all_reduce=lambda t: recorded.append(t) or t)
        other = iter(recorded)
        got = fn(y_true[first], y_pred[first], mask=mask[first], batch=True, all_reduce=lambda t: t + next(other))
        np.testing.assert_allclose(got, fn(y_true, y_pred, mask=mask, batch=True), rtol=1e-13)


def test_zero_epsilon_without_skeletons_is_a_perfect_score():
    y = np.zeros((2, 6, 6), dtype=int)
    p = np.zeros((2, 6, 6, 2))
    p[..., 0] = 1.0
    np.testing.assert_array_equal(lossfns.cldice_loss(y, p, epsilon=0.0), 0.0)
    np.testing.assert_array_equal(lossfns.dice_cldice_loss(y, p, epsilon=0.0), 0.0)


# --- peers: the authors' formula and MONAI ------------------------------------------------------


def _authors_soft_cldice(torch, y_true, y_pred, iterations, smooth=1.0):
    """jocpae/clDice ``soft_cldice`` / ``soft_dice_cldice`` as formulas, in torch max pooling.

    Channels first; the background channel 0 is dropped from every sum over the whole batch.
    """
    import torch.nn.functional as F

    k = y_pred.ndim - 2
    pool = F.max_pool2d if k == 2 else F.max_pool3d

    def erode(x):
        crosses = []
        for axis in range(k):
            size = [1] * k
            size[axis] = 3
            crosses.append(-pool(-x, tuple(size), 1, tuple(s // 2 for s in size)))
        return functools.reduce(torch.minimum, crosses)

    def dilate(x):
        return pool(x, (3,) * k, 1, (1,) * k)

    def skeleton(x):
        skel = F.relu(x - dilate(erode(x)))
        for _ in range(iterations):
            x = erode(x)
            delta = F.relu(x - dilate(erode(x)))
            skel = skel + F.relu(delta - skel * delta)
        return skel

    skel_p, skel_y = skeleton(y_pred), skeleton(y_true)
    tprec = ((skel_p * y_true)[:, 1:].sum() + smooth) / (skel_p[:, 1:].sum() + smooth)
    tsens = ((skel_y * y_pred)[:, 1:].sum() + smooth) / (skel_y[:, 1:].sum() + smooth)
    cldice = 1.0 - 2.0 * tprec * tsens / (tprec + tsens)
    dice = 1.0 - (2.0 * (y_true * y_pred)[:, 1:].sum() + smooth) / (y_true[:, 1:].sum() + y_pred[:, 1:].sum() + smooth)
    return cldice.item(), (0.5 * dice + 0.5 * cldice).item()


@pytest.mark.parametrize("spatial", [(8, 9), (5, 6, 7)], ids=["2d", "3d"])
def test_authors_formula_equals_batch_loss(spatial):
    torch = pytest.importorskip("torch")
    y_true, y_pred, _ = random_inputs(5, spatial=spatial, class_axis=1)
    cldice, combined = _authors_soft_cldice(torch, torch.from_numpy(y_true), torch.from_numpy(y_pred), 3)
    np.testing.assert_allclose(lossfns.cldice_loss(y_true, y_pred, class_axis=1, batch=True), cldice, rtol=1e-12)
    np.testing.assert_allclose(lossfns.dice_cldice_loss(y_true, y_pred, class_axis=1, batch=True), combined,
                               rtol=1e-12)


def _monai_inputs(seed, spatial, num_classes):
    torch = pytest.importorskip("torch")
    y_true, y_pred, _ = random_inputs(seed, spatial=spatial, num_classes=num_classes, class_axis=1)
    return torch, y_true, y_pred


@pytest.mark.parametrize("spatial", [(8, 9), (5, 6, 7)], ids=["2d", "3d"])
def test_monai_soft_cldice_differs_by_its_smooth_term_only(spatial):
    torch, y_true, y_pred = _monai_inputs(6, spatial, 3)
    monai_losses = pytest.importorskip("monai.losses")
    ours = lossfns.cldice_loss(y_true, y_pred, class_axis=1)
    pt, yt = torch.from_numpy(y_pred), torch.from_numpy(y_true)

    def monai(smooth):
        fn = monai_losses.SoftclDiceLoss(iter_=3, smooth=smooth, include_background=False, reduction="none")
        return fn(pt, yt).numpy()

    np.testing.assert_allclose(monai(1e-300), ours, rtol=1e-12)  # MONAI needs smooth > 0
    # Its default smooth = 1e-4 enters the harmonic mean's denominator: 1 - 2ab/(a + b + 1e-4).
    parts = cldice_parts_reference(y_true, y_pred, class_axis=1)
    pinned = [1 - 2 * a * b / (a + b + 1e-4) for a, b, _ in parts]
    np.testing.assert_allclose(monai(1e-4), pinned, rtol=1e-12)
    difference = monai(1e-4) - ours
    assert np.all(difference > 0) and np.all(difference < 1e-4)
    np.testing.assert_allclose(ours, [harmonic_loss(a, b) for a, b, _ in parts], rtol=1e-12)


def test_monai_dice_cldice_is_ours_for_one_foreground_class_and_macro_dice_otherwise():
    torch, y_true, y_pred = _monai_inputs(7, (8, 9), 2)
    monai_losses = pytest.importorskip("monai.losses")

    def monai(y, p, smooth):
        fn = monai_losses.SoftDiceclDiceLoss(iter_=3, smooth=smooth, include_background=False)
        return fn(torch.from_numpy(p), torch.from_numpy(y)).item()

    ours = lossfns.dice_cldice_loss(y_true, y_pred, class_axis=1)
    np.testing.assert_allclose(monai(y_true, y_pred, 1e-300), ours.mean(), rtol=1e-12)
    # With two foreground classes MONAI's Dice is the mean of per-class Dice losses; ours is
    # one Dice over both classes. The measured difference is exactly that of the Dice parts.
    _, y3, p3 = _monai_inputs(8, (8, 9), 3)
    ours3 = lossfns.dice_cldice_loss(y3, p3, class_axis=1)
    cldice3 = lossfns.cldice_loss(y3, p3, class_axis=1)
    def sums(a):  # per sample and class
        return a.sum(axis=(2, 3))

    per_class = 1 - (2 * sums(y3 * p3) + 1) / (sums(y3) + sums(p3) + 1)
    macro = 0.5 * per_class[:, 1:].mean() + 0.5 * cldice3.mean()
    np.testing.assert_allclose(monai(y3, p3, 1e-300), macro, rtol=1e-12)
    assert abs(monai(y3, p3, 1e-300) - ours3.mean()) > 1e-4


# --- gradients, edge cases and tracing -------------------------------------------------------------


def test_torch_gradcheck():
    torch = pytest.importorskip("torch")
    y_true, logits, mask, _ = _inputs(dict(spatial=(4, 5), labels="sparse", mask=True), seed=9)
    z = torch.tensor(np.random.default_rng(9).normal(size=logits.shape), requires_grad=True)
    labels, weights = torch.from_numpy(y_true), torch.from_numpy(mask)
    assert torch.autograd.gradcheck(
        lambda t: lossfns.dice_cldice_loss(labels, t, from_logits=True, mask=weights, iterations=2), (z,),
        fast_mode=True)


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
def test_jax_jit_value_and_gradient_agree_with_torch():
    """One jit compilation (eager JAX compiles every primitive per shape): the value equals
    the reference and the gradient equals torch's."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    y_true, _, mask, _ = _inputs(dict(spatial=S2, labels="sparse", mask=True), seed=10)
    logits = np.random.default_rng(10).normal(size=y_true.shape + (3,))
    z = torch.tensor(logits, requires_grad=True)
    loss = lossfns.dice_cldice_loss(torch.from_numpy(y_true), z, mask=torch.from_numpy(mask), from_logits=True)
    loss.sum().backward()
    step = jax.jit(jax.value_and_grad(lambda t, y, m: lossfns.dice_cldice_loss(y, t, mask=m, from_logits=True).sum()))
    value, grad = step(*(jax.numpy.asarray(a) for a in (logits, y_true, mask)))
    expected = dice_cldice_reference(y_true, logits, mask=mask, from_logits=True)
    np.testing.assert_allclose(float(value), expected.sum(), rtol=1e-10)
    np.testing.assert_allclose(z.grad.numpy(), np.asarray(grad), rtol=1e-10, atol=1e-14)
    assert np.abs(z.grad.numpy()).max() > 0


@pytest.mark.parametrize("scenario", EDGE_SCENARIOS)
def test_edge_cases_are_finite(scenario):
    torch = pytest.importorskip("torch")
    y_true, _, mask, _ = _inputs(dict(spatial=S2, labels="sparse", mask=True), seed=11)
    logits = np.random.default_rng(11).normal(size=y_true.shape + (3,))
    y_true, logits, mask, options = edge_scenario(scenario, y_true, logits, mask)
    for fn in (lossfns.cldice_loss, lossfns.dice_cldice_loss):
        for epsilon in (1.0, 0.0):
            for batch in (False, True):
                z = torch.tensor(logits, requires_grad=True)
                loss = fn(torch.from_numpy(y_true), z, mask=torch.from_numpy(mask), epsilon=epsilon, batch=batch,
                          **options)
                loss.sum().backward()
                where = f"{fn.__name__} ε={epsilon} batch={batch}"
                assert np.all(np.isfinite(loss.detach().numpy())), where
                assert np.all(np.isfinite(z.grad.numpy())), where
                if scenario.startswith("perfect") or scenario == "fully-masked-batch":
                    np.testing.assert_allclose(loss.detach().numpy(), 0.0, atol=1e-12, err_msg=where)


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
def test_torch_compile_fullgraph_with_dynamic_sizes():
    torch = pytest.importorskip("torch")
    y_true, y_pred, mask, _ = _inputs(dict(spatial=S2, labels="sparse", mask=True), seed=12)
    compiled = torch.compile(lambda y, p, m: lossfns.dice_cldice_loss(y, p, mask=m, iterations=1), fullgraph=True,
                             backend="eager", dynamic=True)
    for crop in (None, 4):
        arrays = [np.ascontiguousarray(a[:, :crop]) for a in (y_true, y_pred, mask)]
        got = compiled(*(torch.from_numpy(a) for a in arrays))
        np.testing.assert_allclose(got.numpy(), dice_cldice_reference(*arrays[:2], mask=arrays[2], iterations=1),
                                   rtol=1e-10)


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
def test_tf_function_with_unknown_sizes():
    tf = pytest.importorskip("tensorflow")
    y_true, y_pred, mask, _ = _inputs(dict(spatial=S2, labels="sparse", mask=True), seed=13)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int64),
                                  tf.TensorSpec([None, None, None, 3], tf.float64),
                                  tf.TensorSpec([None, None, None], tf.float64)])
    def step(y, p, m):
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = lossfns.dice_cldice_loss(y, p, mask=m, iterations=1)
        return loss, tape.gradient(loss, p)

    for crop in (None, 4):
        arrays = [a[:, :crop] for a in (y_true, y_pred, mask)]
        loss, grad = step(*(tf.constant(a) for a in arrays))
        np.testing.assert_allclose(loss.numpy(), dice_cldice_reference(*arrays[:2], mask=arrays[2], iterations=1),
                                   rtol=1e-10)
        assert np.all(np.isfinite(grad.numpy()))
    assert step.experimental_get_tracing_count() == 1


# --- errors (SPEC §20) -------------------------------------------------------------------------

_Y = np.zeros((1, 4, 4), dtype=int)
_P = np.full((1, 4, 4, 2), 0.5)


@pytest.mark.parametrize("call,error,message", [
    (lambda: lossfns.cldice_loss(_Y, _P, iterations=-1), ValueError, "iterations"),
    (lambda: lossfns.cldice_loss(_Y, _P, iterations=1.5), TypeError, "iterations"),
    (lambda: lossfns.cldice_loss(_Y, _P, iterations=True), TypeError, "iterations"),
    (lambda: lossfns.dice_cldice_loss(_Y, _P, alpha=1.5), ValueError, "alpha"),
    (lambda: lossfns.dice_cldice_loss(_Y, _P, alpha=-0.1), ValueError, "alpha"),
    (lambda: lossfns.cldice_loss(_Y, _P, epsilon=-1.0), ValueError, "epsilon"),
    (lambda: lossfns.cldice_loss(_Y, _P, alpha=0.5), TypeError, "cldice_loss"),
    (lambda: lossfns.cldice_loss(_Y, _P, background_index=2), ValueError, "background_index"),
    (lambda: lossfns.cldice_loss(_Y[:, :3], _P), ValueError, "y_true shape"),
    (lambda: lossfns.cldice_loss(np.eye(2)[_Y], _P, ignore_index=0), ValueError, "ignore_index"),
    (lambda: lossfns.cldice_loss(_Y, _P, all_reduce=lambda t: t), ValueError, "all_reduce"),
    (lambda: lossfns.cldice_loss(_Y + 3, _P, validate=True), ValueError, "class indices"),
], ids=["iterations-negative", "iterations-float", "iterations-bool", "alpha-above", "alpha-below",
        "epsilon", "unknown-keyword", "background_index", "shape", "ignore_index-dense",
        "all_reduce-without-batch", "validate"])
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
