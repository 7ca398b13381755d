"""Boundary loss and signed distance maps (SPEC §17): hand-checked maps, reference values, tracing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import load_backend
from reference_structure import backend_cases, boundary_reference, signed_distance_reference

import lossfns

# --- signed distance maps ------------------------------------------------------------------------


def test_hand_checked_2d_map_with_anisotropic_spacing():
    """A 2×3 block in a 4×5 image, rows 2 units apart and columns 1 unit (Kervadec's one_hot2dist).

    Outside: the distance to the nearest block element. Inside: 1 − the distance to the
    nearest outside element, so the inner boundary is 0.
    """
    labels = np.zeros((1, 4, 5), dtype=np.int64)
    labels[0, 1:3, 1:4] = 1
    maps = lossfns.signed_distance_maps(labels, 2, spacing=(2.0, 1.0))
    r5 = np.sqrt(5.0)  # one row (2) and one column (1) away
    expected_foreground = np.array([
        [r5, 2.0, 2.0, 2.0, r5],
        [1.0, 0.0, -1.0, 0.0, 1.0],  # the middle is 2 from the outside (2 columns, or 1 row of 2)
        [1.0, 0.0, -1.0, 0.0, 1.0],
        [r5, 2.0, 2.0, 2.0, r5],
    ])
    np.testing.assert_allclose(maps[0, ..., 1], expected_foreground, rtol=1e-15)
    # The background is the complement: outside it (the block) the distance to the background.
    expected_background = np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0],  # rows 0 and 3 are set below
        [0.0, 1.0, 2.0, 1.0, 0.0],
        [0.0, 1.0, 2.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ])
    # Background elements: 1 − the distance to the block; the corners are √5 away.
    expected_background[[0, 0, 3, 3], [0, 4, 0, 4]] = 1.0 - r5
    expected_background[[0, 0, 0, 3, 3, 3], [1, 2, 3, 1, 2, 3]] = 1.0 - 2.0
    np.testing.assert_allclose(maps[0, ..., 0], expected_background, rtol=1e-15, atol=1e-15)
    assert maps.dtype == np.float64 and maps.shape == (1, 4, 5, 2)


def test_hand_checked_3d_map_with_anisotropic_spacing():
    """One voxel in a 3×3×3 volume with spacing (3, 2, 1): distances are the spacings' norms."""
    labels = np.zeros((1, 3, 3, 3), dtype=np.int32)
    labels[0, 1, 1, 1] = 1
    spacing = (3.0, 2.0, 1.0)
    maps = lossfns.signed_distance_maps(labels, 2, spacing=spacing, class_axis=1)
    assert maps.shape == (1, 2, 3, 3, 3)
    foreground = maps[0, 1]
    assert foreground[1, 1, 1] == 0.0  # the voxel is its own boundary
    assert foreground[1, 1, 0] == 1.0 and foreground[1, 0, 1] == 2.0 and foreground[0, 1, 1] == 3.0
    assert foreground[0, 0, 0] == pytest.approx(np.sqrt(9 + 4 + 1), rel=1e-15)
    assert foreground[2, 0, 1] == pytest.approx(np.sqrt(9 + 4), rel=1e-15)
    # Background: every element but the centre is inside; its distance to the centre, minus 1.
    background = maps[0, 0]
    assert background[1, 1, 1] == 1.0
    assert background[1, 1, 0] == 0.0 and background[0, 1, 1] == pytest.approx(1 - 3.0)
    assert background[2, 2, 2] == pytest.approx(1 - np.sqrt(14.0), rel=1e-15)


@pytest.mark.parametrize("shape,spacing", [((2, 9), None), ((2, 5, 6), (1.5, 0.5)), ((1, 3, 4, 5), 2.0)],
                         ids=["1d", "2d-anisotropic", "3d-scalar-spacing"])
def test_maps_match_brute_force(shape, spacing):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=shape)
    labels[0] = np.where(labels[0] == 2, 0, labels[0])  # class 2 absent from the first sample
    np.testing.assert_allclose(lossfns.signed_distance_maps(labels, 4, spacing=spacing),
                               signed_distance_reference(labels, 4, spacing), rtol=1e-12, atol=1e-12)


def test_absent_and_full_classes_have_zero_maps():
    labels = np.zeros((2, 4, 4), dtype=np.int64)
    labels[1, :2] = 1
    maps = lossfns.signed_distance_maps(labels, 3)
    np.testing.assert_array_equal(maps[0], 0.0)  # class 0 fills sample 0; classes 1, 2 absent
    np.testing.assert_array_equal(maps[1, ..., 2], 0.0)
    assert np.abs(maps[1, ..., :2]).max() > 0


def test_labels_outside_the_classes_belong_to_none():
    labels = np.array([[0, 0, 255, 1, 1]])
    maps = lossfns.signed_distance_maps(labels, 2)
    # The array's edge is no boundary: the first element is 2 from the outside of class 0.
    np.testing.assert_array_equal(maps[0, :, 0], [-1.0, 0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(maps[0, :, 1], [3.0, 2.0, 1.0, 0.0, -1.0])


def test_missing_scipy_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)  # makes `from scipy.ndimage import` fail
    with pytest.raises(ImportError, match=r"SciPy.*lossfns\[boundary\]"):
        lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 2)


def test_importing_lossfns_does_not_import_scipy():
    import subprocess

    code = "import sys, lossfns; assert 'scipy' not in sys.modules, 'scipy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("call,error,message", [
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3)), 2), TypeError, "labels"),
    (lambda: lossfns.signed_distance_maps(np.zeros(3, dtype=int), 2), ValueError, "labels"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 0), ValueError, "num_classes"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 2.0), TypeError, "num_classes"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3, 3), dtype=int), 2, spacing=(1.0,)), ValueError,
     "spacing"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 2, spacing=-1.0), ValueError, "spacing"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 2, spacing="1"), TypeError, "spacing"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 2, class_axis=0), ValueError,
     "class_axis"),
    (lambda: lossfns.signed_distance_maps(np.zeros((1, 3), dtype=int), 2, class_axis=3), ValueError,
     "class_axis"),
], ids=["float-labels", "no-spatial-axis", "zero-classes", "float-classes", "spacing-length",
        "spacing-negative", "spacing-string", "class_axis-batch", "class_axis-range"])
def test_bad_map_arguments_raise(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- boundary_loss -------------------------------------------------------------------------------


def _inputs(seed, spatial=(4, 5), num_classes=3, class_axis=-1, mask=False, logits=False, labels=False):
    """``(maps, y_pred, mask)`` (and the labels with ``labels=True``); one channel is class 1 of two."""
    rng = np.random.default_rng(seed)
    label_map = rng.integers(0, max(num_classes, 2), size=(3,) + spatial)
    maps = lossfns.signed_distance_maps(label_map, max(num_classes, 2), class_axis=class_axis)
    if num_classes == 1:
        maps = maps[..., 1:]
    if logits:
        y_pred = rng.normal(scale=2.0, size=maps.shape)
    else:
        y_pred = rng.uniform(size=maps.shape)
        y_pred = y_pred / y_pred.sum(axis=class_axis, keepdims=True)
    weights = rng.uniform(size=(3,) + spatial) * (rng.uniform(size=(3,) + spatial) > 0.3) if mask else None
    return (maps, y_pred, weights) + ((label_map,) if labels else ())


CASES = {
    "1d-defaults": dict(spatial=(9,)),
    "2d-mask-include-background": dict(mask=True, options=dict(include_background=True)),
    "2d-axis1-logits-background2": dict(class_axis=1, logits=True,
                                        options=dict(class_axis=1, from_logits=True, background_index=2)),
    "3d-mask-batch": dict(spatial=(2, 3, 4), mask=True, options=dict(batch=True)),
    "2d-one-channel-sigmoid": dict(num_classes=1, logits=True, options=dict(from_logits=True)),
}


def _case(name, seed=1):
    case = dict(CASES[name])
    options = case.pop("options", {})
    maps, y_pred, mask = _inputs(seed, **case)
    return maps, y_pred, mask, options


def _call(xp, maps, y_pred, mask, dtype=np.float64, **options):
    def convert(a):
        return None if a is None else xp.asarray(a, dtype=dtype)

    return xp.to_numpy(lossfns.boundary_loss(convert(maps), convert(y_pred), mask=convert(mask), **options))


@pytest.mark.parametrize("backend,case,dtype", backend_cases(CASES))
def test_matches_reference(backend, case, dtype):
    xp = load_backend(backend)
    maps, y_pred, mask, options = _case(case)
    expected = boundary_reference(maps, y_pred, mask=mask, **options)
    got = _call(xp, maps, y_pred, mask, dtype, **options)
    assert got.shape == expected.shape and got.dtype == dtype
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, expected, **tolerance)


def test_hand_computed_value():
    labels = np.array([[0, 1, 1, 0, 0]])
    maps = lossfns.signed_distance_maps(labels, 2)
    probs = np.array([[[0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.6, 0.4], [0.9, 0.1]]])
    # class 1: φ = (1, 0, 0, 1, 2); Σ φ·p / 5 = (0.2 + 0.4 + 0.2) / 5
    np.testing.assert_allclose(lossfns.boundary_loss(maps, probs), [0.16], rtol=1e-14)
    # with the background: φ_0 = (0, 1, 1, 0, -1); Σ φ·p / 5 = (0.3 + 0.1 - 0.9) / 5
    np.testing.assert_allclose(lossfns.boundary_loss(maps, probs, include_background=True),
                               [(0.16 + (0.3 + 0.1 - 0.9) / 5) / 2], rtol=1e-14)


def test_the_labels_minimise_the_loss():
    """Linear in p, with φ <= 0 inside and >= 1 outside: the one-hot labels are a minimum."""
    maps, y_pred, _, labels = _inputs(2, labels=True)
    best = lossfns.boundary_loss(maps, np.eye(3)[labels])
    assert np.all(best <= lossfns.boundary_loss(maps, y_pred)) and np.all(best <= 0)


def test_gradient_is_the_scaled_map():
    torch = pytest.importorskip("torch")
    maps, y_pred, mask = _inputs(3, mask=True)
    p = torch.tensor(y_pred, requires_grad=True)
    lossfns.boundary_loss(torch.from_numpy(maps), p, mask=torch.from_numpy(mask)).sum().backward()
    share = np.array([0.0, 0.5, 0.5])  # background dropped, two kept classes
    expected = mask[..., None] * maps * share / mask.sum(axis=(1, 2))[:, None, None, None]
    np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_torch_gradcheck_from_logits():
    torch = pytest.importorskip("torch")
    maps, logits, mask = _inputs(4, spatial=(3, 4), mask=True, logits=True)
    z = torch.tensor(logits, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: lossfns.boundary_loss(torch.from_numpy(maps), t, mask=torch.from_numpy(mask), from_logits=True),
        (z,))


def test_two_replicas_give_the_global_batch_loss():
    maps, y_pred, mask = _inputs(5, mask=True)
    first, second = slice(0, 1), slice(1, 3)
    recorded = []  # the second replica's statistics, in the order the loss reduces them
    lossfns.boundary_loss(maps[second], y_pred[second], mask=mask[second], batch=True,
                          all_reduce=lambda t: recorded.append(t) or t)
    other = iter(recorded)
    got = lossfns.boundary_loss(maps[first], y_pred[first], mask=mask[first], batch=True,
                                all_reduce=lambda t: t + next(other))
    np.testing.assert_allclose(got, lossfns.boundary_loss(maps, y_pred, mask=mask, batch=True), rtol=1e-13)
    assert len(recorded) == 2


def test_fully_masked_sample_is_zero_with_finite_gradient():
    torch = pytest.importorskip("torch")
    maps, y_pred, mask = _inputs(6, mask=True)
    mask[1] = 0.0
    p = torch.tensor(y_pred, requires_grad=True)
    loss = lossfns.boundary_loss(torch.from_numpy(maps), p, mask=torch.from_numpy(mask))
    loss.sum().backward()
    assert loss[1].item() == 0.0
    assert np.all(np.isfinite(p.grad.numpy())) and np.all(p.grad.numpy()[1] == 0.0)


@pytest.mark.parametrize("logit", [1e4, -1e4])
def test_extreme_logits_are_finite(logit):
    torch = pytest.importorskip("torch")
    maps, _, _ = _inputs(7)
    z = torch.full(maps.shape, logit, dtype=torch.float64, requires_grad=True)
    loss = lossfns.boundary_loss(torch.from_numpy(maps), z, from_logits=True)
    loss.sum().backward()
    assert np.all(np.isfinite(loss.detach().numpy())) and np.all(np.isfinite(z.grad.numpy()))


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    maps, y_pred, mask = _inputs(8, mask=True)
    fn = jax.jit(jax.value_and_grad(lambda p, d, m: lossfns.boundary_loss(d, p, mask=m).sum()))
    value, grad = fn(*(jax.numpy.asarray(a) for a in (y_pred, maps, mask)))
    np.testing.assert_allclose(float(value), boundary_reference(maps, y_pred, mask=mask).sum(), rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_torch_compile_fullgraph():
    torch = pytest.importorskip("torch")
    maps, y_pred, mask = _inputs(9, mask=True)
    compiled = torch.compile(lambda d, p, m: lossfns.boundary_loss(d, p, mask=m), fullgraph=True,
                             backend="eager", dynamic=True)
    got = compiled(*(torch.from_numpy(a) for a in (maps, y_pred, mask)))
    np.testing.assert_allclose(got.numpy(), boundary_reference(maps, y_pred, mask=mask), rtol=1e-12)


def test_tf_function_with_unknown_sizes():
    tf = pytest.importorskip("tensorflow")
    maps, y_pred, mask = _inputs(10, mask=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float64)] * 2
                 + [tf.TensorSpec([None, None, None], tf.float64)])
    def step(d, p, m):
        return lossfns.boundary_loss(d, p, mask=m)

    for crop in (None, 2):
        arrays = [a[:, :crop] for a in (maps, y_pred, mask)]
        np.testing.assert_allclose(step(*(tf.constant(a) for a in arrays)).numpy(),
                                   boundary_reference(*arrays[:2], mask=arrays[2]), rtol=1e-12)
    assert step.experimental_get_tracing_count() == 1


_MAPS, _P, _ = _inputs(11)


@pytest.mark.parametrize("call,error,message", [
    (lambda: lossfns.boundary_loss(_MAPS[..., :2], _P), ValueError, "distance_maps shape"),
    (lambda: lossfns.boundary_loss(np.argmax(_MAPS, -1), _P), TypeError, "distance_maps"),
    (lambda: lossfns.boundary_loss(_MAPS.astype(np.int64), _P), TypeError, "distance_maps"),
    (lambda: lossfns.boundary_loss(_MAPS, _P, ignore_index=0), TypeError, "boundary_loss"),
    (lambda: lossfns.boundary_loss(_MAPS, (_P * 10).astype(int)), TypeError, "y_pred"),
    (lambda: lossfns.boundary_loss(_MAPS, _P, background_index=3), ValueError, "background_index"),
    (lambda: lossfns.boundary_loss(_MAPS, _P, all_reduce=lambda t: t), ValueError, "all_reduce"),
    (lambda: lossfns.boundary_loss(_MAPS, _P * 2, validate=True), ValueError, "y_pred"),
], ids=["shape", "sparse-labels", "integer-maps", "ignore_index", "integer-y_pred", "background_index",
        "all_reduce-without-batch", "validate"])
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_mixed_array_libraries_raise_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="(?=.*distance_maps)(?=.*y_pred)"):
        lossfns.boundary_loss(_MAPS, torch.from_numpy(_P))
    with pytest.raises(TypeError, match="mask"):
        lossfns.boundary_loss(torch.from_numpy(_MAPS), torch.from_numpy(_P), mask=np.ones(_P.shape[:-1]))


def test_validate_accepts_maps_outside_the_unit_interval():
    assert np.abs(_MAPS).max() > 1
    lossfns.boundary_loss(_MAPS, _P, validate=True)
