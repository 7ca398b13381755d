"""Deep supervision (SPEC §19): level weights, centre-of-block target downsampling, the core
against a float64 reference, torch's ``nearest-exact``, MONAI's ``DeepSupervisionLoss``, the
torch and JAX adapters, the Keras multi-output recipe and the §20 errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference_overlap import (
    centre_downsample,
    deep_supervision_weights,
    generalized_dice_reference,
)
from reference_region import f1_reference

import lossfns
from lossfns.deep_supervision import level_weights

# Full resolution 8 x 6; levels shrink by (1, 1), (2, 2), (4, 3): odd factor 3 included.
LEVEL_SIZES = ((8, 6), (4, 3), (2, 2))


def _inputs(seed=0, *, sparse=True, class_axis=-1, levels=LEVEL_SIZES, batch_size=2, classes=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=(batch_size,) + levels[0])
    preds = []
    for size in levels:
        p = rng.uniform(size=(batch_size,) + size + (classes,))
        preds.append(np.moveaxis(p / p.sum(-1, keepdims=True), -1, class_axis))
    y_true = labels if sparse else np.moveaxis((labels[..., None] == np.arange(classes)).astype(float), -1,
                                               class_axis)
    mask = rng.uniform(size=labels.shape) * (rng.uniform(size=labels.shape) > 0.2)
    return labels, y_true, preds, mask


def _reference(reference, labels, preds, mask, weights, class_axis=-1, **options):
    total = 0.0
    for w, pred in zip(deep_supervision_weights(weights, len(preds)), preds):
        spatial = np.moveaxis(pred, class_axis, -1).shape[1:-1]
        factors = {1 + a: labels.shape[1 + a] // s for a, s in enumerate(spatial)}
        level_labels = centre_downsample(labels, factors)
        level_mask = centre_downsample(mask, factors)
        total = total + w * reference(level_labels, np.moveaxis(pred, class_axis, -1), mask=level_mask, **options)
    return total


def test_matches_reference(xp):
    labels, _, preds, mask = _inputs(1)
    for weights in (None, "exp", "same", (0.5, 2.0, 1.0)):
        for loss, reference, options in ((lossfns.dice_loss, f1_reference, {"epsilon": 0.1}),
                                         (lossfns.generalized_dice_loss, generalized_dice_reference,
                                          {"weighting": "simple", "batch": True})):
            got = lossfns.deep_supervision(loss, xp.asarray(labels), [xp.asarray(p) for p in preds],
                                           weights=weights, mask=xp.asarray(mask), **options)
            expected = _reference(reference, labels, preds, mask, weights, **options)
            np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{loss.__name__} {weights}")


@pytest.mark.parametrize("class_axis", [1, -1])
@pytest.mark.parametrize("sparse", [True, False])
def test_dense_sparse_and_class_axis_agree(sparse, class_axis):
    labels, y_true, preds, mask = _inputs(2, sparse=sparse, class_axis=class_axis)
    got = lossfns.deep_supervision(lossfns.mcc_loss, y_true, preds, mask=mask[:, None] if class_axis == 1 else mask,
                                   class_axis=class_axis, weights="exp")
    from reference_overlap import mcc_reference
    expected = _reference(mcc_reference, labels, preds, mask, "exp", class_axis=class_axis)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_level_weights():
    np.testing.assert_allclose(level_weights(None, 1), [1.0])
    np.testing.assert_allclose(level_weights(None, 2), [1.0, 0.0])
    np.testing.assert_allclose(level_weights(None, 4), np.array([1, 0.5, 0.25, 0]) / 1.75)  # nnU-Net
    np.testing.assert_allclose(level_weights("exp", 6), [1, 0.5, 0.25, 0.125, 0.0625, 0.0625])  # MONAI
    assert level_weights("same", 3) == (1.0, 1.0, 1.0)
    assert level_weights([3, 1], 2) == (3.0, 1.0)


def test_downsampling_is_torch_nearest_exact():
    torch = pytest.importorskip("torch")
    from lossfns.deep_supervision import supervised_levels

    labels = torch.arange(2 * 12 * 9).reshape(2, 1, 12, 9)
    preds = [torch.zeros(2, 3, 12, 9), torch.zeros(2, 3, 6, 3), torch.zeros(2, 3, 4, 9), torch.zeros(2, 3, 3, 1)]
    for (target, _), pred in zip(supervised_levels(labels, preds, class_axis=1), preds):
        exact = torch.nn.functional.interpolate(labels.double(), size=pred.shape[2:], mode="nearest-exact")
        assert torch.equal(target.double(), exact), pred.shape


def test_single_level_is_the_loss_itself():
    labels, _, preds, mask = _inputs(3)
    np.testing.assert_array_equal(lossfns.deep_supervision(lossfns.dice_loss, labels, preds[:1], mask=mask),
                                  lossfns.dice_loss(labels, preds[0], mask=mask))


# --- adapters and peers ------------------------------------------------------------------


def test_torch_adapter_matches_monai_deep_supervision():
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    from lossfns.adapters.torch import DeepSupervisionLoss, DiceLoss

    labels, y_true, preds, _ = _inputs(4, sparse=False, class_axis=1)
    inputs = [torch.tensor(p, requires_grad=True) for p in preds]
    ours = DeepSupervisionLoss(DiceLoss(epsilon=0.05), weights="exp")(inputs, torch.tensor(y_true))
    monai = monai_losses.DeepSupervisionLoss(monai_losses.DiceLoss(smooth_nr=0.1, smooth_dr=0.1), weight_mode="exp")
    expected = monai([p.detach() for p in inputs], torch.tensor(y_true))  # MONAI computes in float32
    np.testing.assert_allclose(ours.item(), expected.item(), rtol=1e-6)
    core = lossfns.deep_supervision(lossfns.dice_loss, labels, [np.moveaxis(p, 1, -1) for p in preds],
                                    weights="exp", epsilon=0.05)
    np.testing.assert_allclose(ours.item(), core.mean(), rtol=1e-12)
    ours.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in inputs)


def test_torch_adapter_nnunet_weights_and_mask():
    torch = pytest.importorskip("torch")
    from lossfns.adapters.torch import DeepSupervisionLoss, GeneralizedDiceLoss

    labels, _, preds, mask = _inputs(5, class_axis=1)
    module = DeepSupervisionLoss(GeneralizedDiceLoss(reduction="none"))
    got = module([torch.tensor(p) for p in preds], torch.tensor(labels), mask=torch.tensor(mask))
    expected = lossfns.deep_supervision(lossfns.generalized_dice_loss, labels, preds, mask=mask, class_axis=1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert "weights=None" in repr(module)


def test_jax_adapter_under_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from lossfns.adapters import jax as jax_losses

    labels, _, preds, mask = _inputs(6)

    @jax.jit
    def total(predictions, targets, weights_mask):
        return jax_losses.deep_supervision(jax_losses.dice_loss, predictions, targets, mask=weights_mask,
                                           weights=(1.0, 0.5, 0.25), epsilon=0.1)

    got = total([jax.numpy.asarray(p) for p in preds], jax.numpy.asarray(labels), jax.numpy.asarray(mask))
    expected = lossfns.deep_supervision(lossfns.dice_loss, labels, preds, mask=mask, weights=(1.0, 0.5, 0.25),
                                        epsilon=0.1)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)
    grads = jax.grad(lambda ps: total(ps, labels, mask).mean())([jax.numpy.asarray(p) for p in preds])
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_keras_multi_output_recipe():
    """The README's recipe: one loss per output, targets downsampled by the user, loss_weights."""
    keras = pytest.importorskip("keras")
    from lossfns.adapters.keras import DiceLoss

    rng = np.random.default_rng(7)
    images = rng.normal(size=(2, 8, 6, 2))
    labels = rng.integers(0, 3, size=(2, 8, 6))
    inputs = keras.Input((8, 6, 2))
    full = keras.layers.Conv2D(3, 1, activation="softmax", name="full")(inputs)
    half = keras.layers.Conv2D(3, 1, activation="softmax", name="half")(keras.layers.AveragePooling2D(2)(inputs))
    model = keras.Model(inputs, [full, half])
    weights = level_weights("exp", 2)
    model.compile(loss=[DiceLoss(), DiceLoss()], loss_weights=list(weights))
    targets = [labels, labels[:, 1::2, 1::2]]  # the element at 2j + 1: centre of each 2-block
    keras_loss = model.evaluate(images, targets, batch_size=2, verbose=0, return_dict=True)["loss"]
    outputs = [np.asarray(keras.ops.convert_to_numpy(o), dtype=np.float64) for o in model.predict(images, verbose=0)]
    core = lossfns.deep_supervision(lossfns.dice_loss, labels, outputs, weights="exp").mean()
    np.testing.assert_allclose(keras_loss, core, rtol=1e-5)  # Keras runs in float32


# --- Errors (SPEC §20) ------------------------------------------------------------------


def test_errors_are_named():
    labels, _, preds, _ = _inputs(8)
    with pytest.raises(ValueError, match=r"y_preds\[1\] has spatial shape \(9, 3\), which is larger than the target's \(8, 6\)"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, [preds[0], np.zeros((2, 9, 3, 3))])
    with pytest.raises(ValueError, match="weights has 2 entries but the input has 3 deep-supervision levels"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, preds, weights=(1.0, 0.5))
    with pytest.raises(ValueError, match="weights must be one of 'exp', 'same'; got 'two'"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, preds, weights="two")
    with pytest.raises(ValueError, match=r"weights\[1\] must be >= 0"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, preds, weights=(1.0, -1.0, 0.0))
    with pytest.raises(TypeError, match="y_preds must be a list or tuple"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, preds[0])
    with pytest.raises(ValueError, match="y_preds must hold at least one prediction"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, [])
    with pytest.raises(ValueError, match=r"y_preds\[2\] has shape"):
        lossfns.deep_supervision(lossfns.dice_loss, labels, preds[:2] + [np.zeros((1, 2, 2, 3))])
    torch_adapter = pytest.importorskip("lossfns.adapters.torch")
    with pytest.raises(ValueError, match="weights must be one of"):
        torch_adapter.DeepSupervisionLoss(torch_adapter.DiceLoss(), weights="linear")


def test_any_size_ratio_keeps_torch_nearest_exact_indices():
    """SPEC §21: level size n_out from n_in keeps ⌊(2j + 1)·n_in / (2·n_out)⌋, computed in
    integers; torch's float32 ``nearest-exact`` agrees except for a few size pairs where it
    rounds to a neighbour (26 → 11 at j = 5, documented)."""
    torch = pytest.importorskip("torch")
    from lossfns.deep_supervision import source_indices

    disagree = []
    for n_in in range(1, 61):
        for n_out in range(1, n_in + 1):
            exact = [((2 * j + 1) * n_in) // (2 * n_out) for j in range(n_out)]
            assert source_indices(n_in, n_out) == exact
            source = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in)
            torch_kept = torch.nn.functional.interpolate(source, size=n_out, mode="nearest-exact")
            if torch_kept.view(-1).long().tolist() != exact:
                disagree.append((n_in, n_out))
    assert (26, 11) in disagree and len(disagree) < 25
    assert source_indices(26, 11)[5] == 13  # torch's float32 arithmetic keeps 12


@pytest.mark.parametrize("level_shape", [(5, 4), (3, 3), (8, 5)])
def test_non_integer_ratios_match_the_reference(xp, level_shape):
    labels, _, preds, _ = _inputs(9)
    probs = preds[0]
    rng = np.random.default_rng(10)
    small = rng.dirichlet(np.ones(3), size=(2, *level_shape))
    rows = [((2 * j + 1) * labels.shape[1]) // (2 * level_shape[0]) for j in range(level_shape[0])]
    cols = [((2 * j + 1) * labels.shape[2]) // (2 * level_shape[1]) for j in range(level_shape[1])]
    target = labels[:, rows][:, :, cols]
    expected = lossfns.dice_loss(labels, probs) * 0.5 + lossfns.dice_loss(target, small) * 0.5
    got = lossfns.deep_supervision(lossfns.dice_loss, xp.asarray(labels), [xp.asarray(probs), xp.asarray(small)],
                                   weights=[0.5, 0.5])
    np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10)


def test_non_integer_ratios_match_monai_deep_supervision():
    torch = pytest.importorskip("torch")
    monai = pytest.importorskip("monai.losses")
    labels, _, preds, _ = _inputs(11)
    probs = preds[0]
    rng = np.random.default_rng(12)
    levels = [probs, rng.dirichlet(np.ones(3), size=(2, 5, 4)), rng.dirichlet(np.ones(3), size=(2, 3, 5))]
    inputs = [torch.tensor(np.moveaxis(p, -1, 1)) for p in levels]
    target = torch.tensor(labels, dtype=torch.float64)[:, None]  # torch interpolates no integers
    theirs = monai.DeepSupervisionLoss(monai.DiceLoss(to_onehot_y=True), weight_mode="exp")(inputs, target)
    from lossfns.adapters import torch as adapter

    ours = adapter.DeepSupervisionLoss(adapter.DiceLoss(epsilon=0.5e-5), weights="exp")(inputs, torch.tensor(labels))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
