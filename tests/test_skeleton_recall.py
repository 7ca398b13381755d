"""Skeleton recall loss and tubed skeletons (SPEC §22, §23): scikit-image references, the float64
reference on every backend, the authors' formula, additivity, edges and errors."""

from __future__ import annotations

import doctest
import functools
import subprocess
import sys
import types

import numpy as np
import pytest
from reference_skeleton import authors_skeleton_recall, skeleton_recall_reference

import lossfns
from lossfns.skeleton import skeleton_recall_loss, tubed_skeletons

morphology = pytest.importorskip("skimage.morphology")

# --- tubed skeletons ------------------------------------------------------------------------------


def _blocky_labels(seed, batch, spatial, classes=4, block=3):
    """Piecewise-constant labels (blocks of ``block`` elements per axis): thick, touching
    objects of several classes, with sample 0's first block row left as background."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, size=(batch,) + tuple(-(-n // block) for n in spatial))
    labels = coarse
    for axis in range(1, coarse.ndim):
        labels = np.repeat(labels, block, axis=axis)
    return labels[(slice(None),) + tuple(slice(0, n) for n in spatial)]


def _scikit_image_reference(labels, tube):
    """The authors' SkeletonTransform per sample, by direct scikit-image calls: Zhang's
    thinning for images and Lee's for volumes (skeletonize's defaults), two dilations with
    the default cross footprint on an int16 map, classes by multiplication."""
    expected = np.zeros(labels.shape, dtype=np.int16)
    for b in range(labels.shape[0]):
        method = "zhang" if labels.ndim == 3 else "lee"
        skeleton = (morphology.skeletonize(labels[b] > 0, method=method) > 0).astype(np.int16)
        if tube:
            skeleton = morphology.dilation(morphology.dilation(skeleton))
        expected[b] = skeleton * labels[b].astype(np.int16)
    return expected


@pytest.mark.parametrize("tube", [True, False], ids=["tube", "thin"])
@pytest.mark.parametrize("spatial", [(24, 21), (12, 11, 13)], ids=["2d", "3d"])
def test_tubed_skeletons_match_scikit_image(spatial, tube):
    labels = _blocky_labels(0, 2, spatial)
    got = tubed_skeletons(labels, tube=tube)
    np.testing.assert_array_equal(got, _scikit_image_reference(labels, tube))
    assert set(np.unique(got)) >= {0, 1, 2, 3}  # several classes survive thinning
    on = got > 0
    np.testing.assert_array_equal(got[on], labels[on])  # each element keeps its class
    assert np.all(labels[on] > 0)  # the tube stays inside the foreground


def test_a_thin_line_is_its_own_skeleton():
    labels = np.zeros((1, 9, 9), dtype=np.int64)
    labels[0, 4, 1:8] = 3
    np.testing.assert_array_equal(tubed_skeletons(labels, tube=False), labels)
    np.testing.assert_array_equal(tubed_skeletons(labels), labels)  # the tube stays in the foreground


@pytest.mark.parametrize("spatial", [(16, 15), (9, 8, 10)], ids=["2d", "3d"])
def test_the_tube_is_the_foreground_within_city_block_distance_two(spatial):
    """Two dilations with the cross (connectivity-1) footprint reach every element within
    L1 distance 2 of the thin skeleton; the classes then clip the tube to the foreground."""
    labels = _blocky_labels(5, 1, spatial, block=4)
    thin = tubed_skeletons(labels, tube=False)[0] > 0
    grid = np.indices(spatial).reshape(len(spatial), -1).T
    on = grid[thin.ravel()]
    near = (np.abs(grid[:, None, :] - on[None, :, :]).sum(-1) <= 2).any(axis=1).reshape(spatial)
    np.testing.assert_array_equal(tubed_skeletons(labels)[0], np.where(near, labels[0], 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_shape_dtype_and_empty_samples(dtype):
    labels = _blocky_labels(1, 3, (10, 12)).astype(dtype)
    labels[1] = 0  # an all-background sample has an empty skeleton
    got = tubed_skeletons(labels)
    assert got.shape == labels.shape and got.dtype == labels.dtype and isinstance(got, np.ndarray)
    assert not got[1].any() and got[0].any()
    assert tubed_skeletons(labels.tolist()).dtype == np.asarray(labels.tolist()).dtype  # array-likes


def test_missing_scikit_image_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.morphology", None)  # `from skimage.morphology import` fails
    with pytest.raises(ImportError, match=r"scikit-image.*lossfns\[skeleton\]"):
        tubed_skeletons(np.zeros((1, 3, 3), dtype=int))


def test_importing_lossfns_does_not_import_scikit_image():
    code = "import sys, lossfns, lossfns.skeleton; assert 'skimage' not in sys.modules, 'skimage imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("call,error,message", [
    (lambda: tubed_skeletons(np.zeros(3, dtype=int)), ValueError, "spatial axes"),
    (lambda: tubed_skeletons(np.zeros((2, 5), dtype=int)), ValueError, "spatial axes"),
    (lambda: tubed_skeletons(np.zeros((1, 2, 2, 2, 2), dtype=int)), ValueError, "spatial axes"),
    (lambda: tubed_skeletons(np.zeros((1, 3, 3))), TypeError, "labels"),
    (lambda: tubed_skeletons(np.zeros((1, 3, 3), dtype=bool)), TypeError, "labels"),
    (lambda: tubed_skeletons(np.zeros((1, 3, 3), dtype=int), tube="yes"), TypeError, "tube"),
    (lambda: tubed_skeletons(np.zeros((1, 3, 3), dtype=int), 2), TypeError, "positional"),
], ids=["no-spatial-axis", "1d", "4d", "float", "bool", "tube", "tube-positional"])
def test_bad_labels_raise(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- skeleton_recall_loss -------------------------------------------------------------------------


def _inputs(seed, spatial=(4, 5), num_classes=3, class_axis=-1, mask=False, logits=False, unit_axis=False):
    """``(skeletons, y_pred, mask)``: skeleton classes in ``[0, C]`` (C belongs to no class)."""
    rng = np.random.default_rng(seed)
    skeletons = rng.integers(0, max(num_classes, 2) + (num_classes > 1), size=(3,) + spatial)
    shape = (3,) + spatial + (num_classes,)
    y_pred = rng.normal(scale=2.0, size=shape) if logits else rng.uniform(size=shape)
    if not logits and num_classes > 1:
        y_pred = y_pred / y_pred.sum(axis=-1, keepdims=True)
    weights = rng.uniform(size=(3,) + spatial) * (rng.uniform(size=(3,) + spatial) > 0.3) if mask else None
    if unit_axis:
        skeletons = skeletons[..., None]
    if class_axis != -1:
        y_pred = np.moveaxis(y_pred, -1, class_axis)
        skeletons = np.moveaxis(skeletons, -1, class_axis) if unit_axis else skeletons
    return skeletons, y_pred, weights


CASES = {
    "2d-defaults": dict(),
    "0d-classification": dict(spatial=()),
    "2d-mask-include-background-pair": dict(mask=True, options=dict(include_background=True,
                                                                    epsilon=(0.5, 2.0))),
    "2d-axis1-logits-background2-unit-axis": dict(class_axis=1, logits=True, unit_axis=True,
                                                  options=dict(class_axis=1, from_logits=True,
                                                               background_index=2)),
    "3d-mask-batch": dict(spatial=(2, 3, 4), mask=True, options=dict(batch=True, epsilon=1e-5)),
    "1d-one-channel-sigmoid": dict(spatial=(9,), num_classes=1, logits=True, options=dict(from_logits=True)),
    "2d-epsilon0-five-classes": dict(num_classes=5, options=dict(epsilon=0.0)),  # some classes absent
}


def _case(name, seed=1):
    case = dict(CASES[name])
    options = case.pop("options", {})
    return (*_inputs(seed, **case), options)


def _call(xp, skeletons, y_pred, mask, dtype=np.float64, **options):
    def convert(a, kind=dtype):
        return None if a is None else xp.asarray(a, dtype=kind)

    loss = functools.partial(skeleton_recall_loss, **options)
    if xp.name == "jax":  # eager JAX compiles every small op anew: one jit is faster
        import jax

        loss = jax.jit(loss)
    return xp.to_numpy(loss(convert(skeletons, None), convert(y_pred), mask=convert(mask)))


@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(xp, case):
    skeletons, y_pred, mask, options = _case(case)
    expected = skeleton_recall_reference(skeletons, y_pred, mask=mask, **options)
    for dtype in (np.float64, np.float32) if xp.name in ("numpy", "torch") else (np.float64,):
        got = _call(xp, skeletons, y_pred, mask, dtype, **options)
        assert got.shape == expected.shape and got.dtype == dtype
        tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, expected, **tolerance)


def test_hand_computed_values():
    skeletons = np.array([[0, 1, 1, 0, 2]])
    probs = np.array([[[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.2, 0.3, 0.5]]])
    # recall_1 = (0.6 + 0.8) / 2, recall_2 = 0.5 / 1
    np.testing.assert_allclose(skeleton_recall_loss(skeletons, probs, epsilon=0.0), [1 - (0.7 + 0.5) / 2])
    # ε = (1, 2): (1.4 + 1) / (2 + 2) and (0.5 + 1) / (1 + 2); the background adds (1.4 + 1) / (2 + 2)
    np.testing.assert_allclose(skeleton_recall_loss(skeletons, probs, epsilon=(1.0, 2.0)), [1 - (0.6 + 0.5) / 2])
    np.testing.assert_allclose(skeleton_recall_loss(skeletons, probs, epsilon=(1.0, 2.0), include_background=True),
                               [1 - (0.6 + 0.6 + 0.5) / 3])
    # A class without skeleton scores ε_n/ε_d; 1 at ε_d = 0, also with ε_n > 0.
    empty = np.array([[0, 1, 1, 0, 0]])
    np.testing.assert_allclose(skeleton_recall_loss(empty, probs, epsilon=(1.0, 0.0)), [1 - ((1.4 + 1) / 2 + 1) / 2])
    np.testing.assert_allclose(skeleton_recall_loss(empty, probs, epsilon=(1.0, 4.0)), [1 - ((1.4 + 1) / 6 + 0.25) / 2])


def test_dense_integer_one_hot_equals_sparse():
    skeletons, y_pred, _, _ = _case("2d-defaults")
    skeletons = np.minimum(skeletons, 2)
    one_hot = np.eye(3, dtype=np.int64)[skeletons]
    np.testing.assert_allclose(skeleton_recall_loss(one_hot, y_pred), skeleton_recall_loss(skeletons, y_pred),
                               rtol=1e-14)


@pytest.mark.parametrize("batch_dice", [False, True], ids=["per-sample", "batch-dice"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_equals_one_plus_the_authors_loss(batch_dice, masked):
    """The authors' −recall (softmax, background dropped, mean over the batch) + 1 is ours."""
    skeletons, logits, mask = _inputs(2, spatial=(5, 6), num_classes=3, class_axis=1, logits=True, mask=masked)
    skeletons = np.minimum(skeletons, 2)  # their one-hot scatter needs labels in [0, C)
    skeletons[0] = np.where(skeletons[0] == 2, 0, skeletons[0])  # class 2 absent in sample 0
    loss_mask = None if mask is None else mask[:, None]
    theirs = authors_skeleton_recall(logits, skeletons, smooth=1e-5, batch_dice=batch_dice, loss_mask=loss_mask)
    ours = skeleton_recall_loss(skeletons, logits, epsilon=1e-5, class_axis=1, from_logits=True, mask=mask,
                                batch=batch_dice)
    np.testing.assert_allclose(np.mean(ours), 1.0 + theirs, rtol=1e-12)

    torch = pytest.importorskip("torch")  # same gradients: autograd of ours against their differences
    z = torch.tensor(logits, requires_grad=True)
    skeleton_recall_loss(torch.from_numpy(skeletons), z, epsilon=1e-5, class_axis=1, from_logits=True,
                         mask=None if mask is None else torch.from_numpy(mask), batch=batch_dice).mean().backward()
    rng = np.random.default_rng(3)
    for index in zip(*(rng.integers(0, n, size=6) for n in logits.shape)):
        step = np.zeros_like(logits)
        step[index] = 1e-6
        difference = (authors_skeleton_recall(logits + step, skeletons, smooth=1e-5, batch_dice=batch_dice,
                                              loss_mask=loss_mask)
                      - authors_skeleton_recall(logits - step, skeletons, smooth=1e-5, batch_dice=batch_dice,
                                                loss_mask=loss_mask)) / 2e-6
        assert z.grad.numpy()[index] == pytest.approx(difference, rel=1e-6, abs=1e-9)


def test_gradient_of_probabilities_is_the_scaled_skeleton():
    """∂L/∂p_ic = −m_i·[s_i = c] / (|K|·(Σ m·[s = c] + ε_d)) for kept c: checked on a volume
    large enough for torch's fused sums, with indices outside the classes (no class)."""
    torch = pytest.importorskip("torch")
    skeletons, y_pred, mask = _inputs(6, spatial=(50, 50), num_classes=9, mask=True)
    assert y_pred.size > 1 << 16
    p = torch.tensor(y_pred, requires_grad=True)
    loss = skeleton_recall_loss(torch.from_numpy(skeletons), p, epsilon=(0.3, 0.7), mask=torch.from_numpy(mask))
    loss.sum().backward()
    on = (skeletons[..., None] == np.arange(9)) * mask[..., None]
    expected = -on / (8 * (on.sum(axis=(1, 2), keepdims=True) + 0.7))
    expected[..., 0] = 0.0  # the background is dropped
    np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(loss.detach().numpy(), skeleton_recall_reference(
        skeletons, y_pred, mask=mask, epsilon=(0.3, 0.7)), rtol=1e-12)


def test_two_replicas_give_the_global_batch_loss():
    skeletons, y_pred, mask, _ = _case("2d-defaults")
    mask = np.random.default_rng(4).uniform(size=skeletons.shape)
    first, second = slice(0, 1), slice(1, 3)
    recorded = []  # the second replica's statistics, in the order the loss reduces them
    skeleton_recall_loss(skeletons[second], y_pred[second], mask=mask[second], batch=True,
                         all_reduce=lambda t: recorded.append(t) or t)
    other = iter(recorded)
    got = skeleton_recall_loss(skeletons[first], y_pred[first], mask=mask[first], batch=True,
                               all_reduce=lambda t: t + next(other))
    np.testing.assert_allclose(got, skeleton_recall_loss(skeletons, y_pred, mask=mask, batch=True), rtol=1e-13)
    assert len(recorded) >= 2 and next(other, None) is None


def test_edges_are_finite_in_value_and_gradient():
    """Perfect and empty predictions, no skeleton, a fully masked sample, ε = 0, logits ±1e4."""
    torch = pytest.importorskip("torch")
    skeletons = np.zeros((4, 3, 4), dtype=np.int64)
    skeletons[0, 1, 1:3], skeletons[1, 0, :] = 1, 2  # samples 2 and 3 have no skeleton
    perfect = np.eye(3)[skeletons]
    mask = np.ones(skeletons.shape)
    mask[3] = 0.0
    for y_pred, options in [(perfect, {}), (1.0 - perfect, {}), (perfect * 2e4 - 1e4, dict(from_logits=True))]:
        for epsilon in (0.0, 1.0, (0.0, 1e-5)):
            p = torch.tensor(y_pred, requires_grad=True)
            loss = skeleton_recall_loss(torch.from_numpy(skeletons), p, epsilon=epsilon,
                                        mask=torch.from_numpy(mask), **options)
            loss.sum().backward()
            assert np.all(np.isfinite(loss.detach().numpy())) and np.all(np.isfinite(p.grad.numpy()))
    perfect_loss = skeleton_recall_loss(skeletons, perfect, epsilon=0.0, mask=mask)
    np.testing.assert_array_equal(perfect_loss, 0.0)  # recall 1 everywhere, 0/0 counted as 1


def test_jax_jit_and_grad():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    skeletons, y_pred, mask, _ = _case("2d-mask-include-background-pair")
    loss = functools.partial(skeleton_recall_loss, include_background=True, epsilon=(0.5, 2.0),
                             validate=True)  # validate is skipped while tracing
    fn = jax.jit(jax.value_and_grad(lambda p, s, m: loss(s, p, mask=m).sum()))
    value, grad = fn(*(jax.numpy.asarray(a) for a in (y_pred, skeletons, mask)))
    expected = skeleton_recall_reference(skeletons, y_pred, mask=mask, include_background=True, epsilon=(0.5, 2.0))
    np.testing.assert_allclose(float(value), expected.sum(), rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(grad)))


_S, _P, _ = _inputs(11)
_S = np.minimum(_S, 2)


@pytest.mark.parametrize("call,error,message", [
    (lambda: skeleton_recall_loss(_S, _P, epsilon=-1.0), ValueError, "epsilon"),
    (lambda: skeleton_recall_loss(_S, _P, epsilon=(1.0, -1.0)), ValueError, "epsilon"),
    (lambda: skeleton_recall_loss(_S, _P, epsilon=(1.0, 2.0, 3.0)), ValueError, "epsilon"),
    (lambda: skeleton_recall_loss(_S, _P, epsilon=float("nan")), ValueError, "epsilon"),
    (lambda: skeleton_recall_loss(_S.astype(np.float32), _P), TypeError, "skeletons must hold integer"),
    (lambda: skeleton_recall_loss(_S > 0, _P), TypeError, "skeletons must hold integer"),
    (lambda: skeleton_recall_loss(_S[:, :2], _P), ValueError, "skeletons shape"),
    (lambda: skeleton_recall_loss(_S, _P, ignore_index=0), TypeError, "skeleton_recall_loss"),
    (lambda: skeleton_recall_loss(_S, (_P * 10).astype(int)), TypeError, "y_pred"),
    (lambda: skeleton_recall_loss(_S, _P, background_index=3), ValueError, "background_index"),
    (lambda: skeleton_recall_loss(_S, _P, all_reduce=lambda t: t), ValueError, "all_reduce"),
    (lambda: skeleton_recall_loss(_S, _P, class_axis=0), ValueError, "class_axis"),
    (lambda: skeleton_recall_loss(_S + 1, _P, validate=True), ValueError, "skeletons must hold class indices"),
    (lambda: skeleton_recall_loss(_S, _P * 2, validate=True), ValueError, "y_pred"),
], ids=["epsilon-negative", "epsilon-pair-negative", "epsilon-triple", "epsilon-nan", "float-skeletons",
        "bool-skeletons", "shape", "ignore_index", "integer-y_pred", "background_index",
        "all_reduce-without-batch", "class_axis-batch", "validate-skeletons", "validate-y_pred"])
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_mixed_array_libraries_raise_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="(?=.*skeletons)(?=.*y_pred)"):
        skeleton_recall_loss(_S, torch.from_numpy(_P))


def test_tf_variable_as_y_pred():
    tf = pytest.importorskip("tensorflow")
    got = skeleton_recall_loss(tf.constant(_S), tf.Variable(_P))
    np.testing.assert_allclose(got.numpy(), skeleton_recall_reference(_S, _P), rtol=1e-12)


def test_one_channel_is_the_foreground():
    skeletons, y_pred, _, _ = _case("1d-one-channel-sigmoid")
    got = skeleton_recall_loss(skeletons, y_pred, from_logits=True)  # include_background=False keeps it
    np.testing.assert_allclose(got, skeleton_recall_loss(skeletons, y_pred, from_logits=True,
                                                         include_background=True), rtol=0)
    skeleton_recall_loss(skeletons, 1 / (1 + np.exp(-y_pred)), validate=True)  # 0/1 labels pass validation


def test_docstring_examples_run():
    """The ``>>>`` examples, with ``lossfns`` also exposing this module's public names."""
    namespace = types.SimpleNamespace(**vars(lossfns))
    namespace.skeleton_recall_loss, namespace.tubed_skeletons = skeleton_recall_loss, tubed_skeletons
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for function in (skeleton_recall_loss, tubed_skeletons):
        for test in finder.find(function, function.__name__, globs={"np": np, "lossfns": namespace}):
            test.globs["lossfns"] = namespace  # the example's own `import lossfns` is rebound below
            test.examples = [e for e in test.examples if not e.source.startswith("import numpy as np, lossfns")]
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted >= 4 and results.failed == 0


def test_dense_skeleton_maps_equal_class_indices(xp):
    """A dense map of y_pred's shape (the one-hot of the indices) is the same skeleton."""
    got = skeleton_recall_loss(xp.asarray(np.eye(3)[_S]), xp.asarray(_P))
    np.testing.assert_allclose(xp.to_numpy(got), skeleton_recall_loss(_S, _P), rtol=1e-12)
