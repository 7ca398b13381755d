"""Parity with Keras 3 and MONAI where the definitions agree (SPEC §11 lists where they do not).

Every test states the peer's settings and how its output is reduced to our per-sample
values. Inputs are float64 and probabilities stay in [0.02, 0.98] (logits in [-4, 4]), away
from the clipping at 1e-7 that each library places a little differently. A test skips when
its peer is not installed; CI installs both.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import lossfns
import reference_distribution as ref


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # no effect if keras is already imported
    return pytest.importorskip("keras", reason="Keras 3 is not installed")


def _monai():
    pytest.importorskip("torch", reason="MONAI needs torch")
    return pytest.importorskip("monai.losses", reason="MONAI is not installed")


def _channels_last(seed, classes, *, logits=False, shape=(3, 5, 4)):
    """Dense one-hot (0/1 for one channel) labels and predictions ``[B, H, W, C]``."""
    y_true, y_pred, _ = ref.random_case(seed, shape=shape, classes=classes, logits=logits)
    return y_true, y_pred


def _keras_loss(loss, y_true, y_pred):
    keras = _keras()
    return keras.ops.convert_to_numpy(loss(y_true, y_pred)).astype(np.float64)


def _spatial_mean(per_element):
    return per_element.reshape(per_element.shape[0], -1).mean(axis=1)


# --------------------------------------------------------------------------- Keras 3


@pytest.mark.parametrize("logits", [False, True])
def test_keras_crossentropies(logits):
    """``BinaryCrossentropy``/``CategoricalCrossentropy(reduction=None, from_logits=...)``.

    Keras returns one value per element ``[B, H, W]`` (its binary loss already averages the
    channels); the mean over ``H, W`` is our per-sample value.
    """
    keras = _keras()
    for classes in (1, 3):
        y_true, y_pred = _channels_last(10 + classes, classes, logits=logits)
        binary = keras.losses.BinaryCrossentropy(from_logits=logits, reduction=None, dtype="float64")
        np.testing.assert_allclose(
            _spatial_mean(_keras_loss(binary, y_true, y_pred)),
            lossfns.binary_crossentropy(y_true, y_pred, from_logits=logits), rtol=1e-9)
    y_true, y_pred = _channels_last(20, 4, logits=logits)
    categorical = keras.losses.CategoricalCrossentropy(from_logits=logits, reduction=None, dtype="float64")
    np.testing.assert_allclose(
        _spatial_mean(_keras_loss(categorical, y_true, y_pred)),
        lossfns.categorical_crossentropy(y_true, y_pred, from_logits=logits), rtol=1e-9)


@pytest.mark.parametrize("logits", [False, True])
def test_keras_binary_focal(logits):
    """``BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5, reduction=None)``.

    Equal to ``binary_focal_loss(alpha=0.3, gamma=1.5)`` for 0/1 labels (SPEC §11: Keras'
    focal factor ``(1 - p_t)^γ`` differs from ours for soft labels). ``apply_class_balancing
    =False`` is our ``alpha=None``.
    """
    keras = _keras()
    y_true, y_pred = _channels_last(30, 3, logits=logits)
    focal = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.3, gamma=1.5, from_logits=logits, reduction=None, dtype="float64")
    np.testing.assert_allclose(
        _spatial_mean(_keras_loss(focal, y_true, y_pred)),
        lossfns.binary_focal_loss(y_true, y_pred, alpha=0.3, gamma=1.5, from_logits=logits), rtol=1e-9)
    unbalanced = keras.losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=logits, reduction=None, dtype="float64")
    np.testing.assert_allclose(
        _spatial_mean(_keras_loss(unbalanced, y_true, y_pred)),
        lossfns.binary_focal_loss(y_true, y_pred, alpha=None, gamma=2.0, from_logits=logits), rtol=1e-9)


def test_keras_categorical_focal():
    """``CategoricalFocalCrossentropy(alpha, gamma, reduction=None)``.

    Keras multiplies every class by a scalar ``alpha`` (our convention; MONAI's differs) and
    takes a per-class list as well, which it turns into a float32 tensor (so the list here is
    exact in float32). Its default ``alpha=0.25`` differs from ours (``None``).
    """
    keras = _keras()
    y_true, y_pred = _channels_last(40, 3)
    for alpha in (0.25, [0.25, 0.5, 0.875]):  # exact in float32, as Keras keeps a list
        focal = keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=2.0, reduction=None, dtype="float64")
        np.testing.assert_allclose(
            _spatial_mean(_keras_loss(focal, y_true, y_pred)),
            lossfns.categorical_focal_loss(y_true, y_pred, alpha=alpha, gamma=2.0), rtol=1e-9)


def test_keras_dice_and_tversky():
    """``Dice(axis=(1, 2))`` and ``Tversky(alpha=a, beta=b, axis=(1, 2))``, ``reduction=None``.

    Keras returns ``[B, C]``; their mean over classes is our macro average. Keras adds its
    1e-7 to the denominator only, so we compare with ``epsilon=0`` at 1e-6. Keras' Tversky
    ``alpha`` weighs false negatives: ``Tversky(alpha=a, beta=b)`` is our
    ``tversky_loss(alpha=b, beta=a)`` (SPEC §11).
    """
    keras = _keras()
    y_true, y_pred = _channels_last(50, 3, shape=(2, 6, 5))
    dice = keras.losses.Dice(axis=(1, 2), reduction=None, dtype="float64")
    np.testing.assert_allclose(
        _keras_loss(dice, y_true, y_pred).mean(axis=-1), lossfns.dice_loss(y_true, y_pred, epsilon=0.0), rtol=1e-6)
    tversky = keras.losses.Tversky(alpha=0.8, beta=0.2, axis=(1, 2), reduction=None, dtype="float64")
    np.testing.assert_allclose(
        _keras_loss(tversky, y_true, y_pred).mean(axis=-1),
        lossfns.tversky_loss(y_true, y_pred, alpha=0.2, beta=0.8, epsilon=0.0), rtol=1e-6)


# --------------------------------------------------------------------------- MONAI 1.6.1


def _channels_first(seed, classes, *, logits=True, shape=(3, 5, 4), ignore_index=None):
    """Integer labels ``[B, 1, H, W]`` and predictions ``[B, C, H, W]`` as float64 torch tensors."""
    import torch

    labels, y_pred, _ = ref.random_case(seed, shape=shape, classes=classes, class_axis=1, labels="sparse1",
                                        logits=logits, ignore_index=ignore_index)
    return torch.from_numpy(labels), torch.from_numpy(np.ascontiguousarray(y_pred))


@pytest.mark.parametrize("include_background", [True, False])
def test_monai_dice(include_background):
    """``DiceLoss(smooth_nr=s, smooth_dr=s, to_onehot_y=True, softmax=True, reduction="none")``.

    ``1 - (2·TP + s) / (Σy + Σp + s)`` is our Tversky index at α = β = ½ with ε = s/2 (SPEC §11).
    MONAI returns ``[B, C, 1, 1]``, averaged over classes here; with ``include_background=False``
    both drop class 0. Also ``batch=True`` and ``ignore_index``.
    """
    monai = _monai()
    s = 0.3
    labels, logits = _channels_first(60, 3, ignore_index=3)
    for batch in (False, True):
        for ignore_index in (None, 3):
            target = labels if ignore_index is not None else labels.clamp(max=2)
            dice = monai.DiceLoss(include_background=include_background, to_onehot_y=True, softmax=True,
                                  smooth_nr=s, smooth_dr=s, batch=batch, reduction="none", ignore_index=ignore_index)
            peer = dice(logits, target).numpy()
            ours = lossfns.dice_loss(target, logits, epsilon=s / 2, class_axis=1, from_logits="softmax",
                                     include_background=include_background, batch=batch, ignore_index=ignore_index)
            classes = 3 if include_background else 2  # MONAI: [C, 1, 1] with batch, else [B, C, 1, 1]
            expected = peer.reshape(-1, classes).mean(axis=-1)
            np.testing.assert_allclose(ours.numpy(), expected[0] if batch else expected, rtol=1e-10,
                                       err_msg=f"batch={batch} ignore_index={ignore_index}")


def test_monai_dice_sigmoid():
    """``DiceLoss(sigmoid=True)`` on dense multi-label targets is ours with ``from_logits="sigmoid"``."""
    import torch

    monai = _monai()
    y_true, logits, _ = ref.random_case(61, shape=(2, 4, 6), classes=3, class_axis=1, logits=True)
    y_true, logits = torch.from_numpy(np.ascontiguousarray(y_true)), torch.from_numpy(np.ascontiguousarray(logits))
    peer = monai.DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5, reduction="none")(logits, y_true)
    ours = lossfns.dice_loss(y_true, logits, epsilon=5e-6, class_axis=1, from_logits="sigmoid")
    np.testing.assert_allclose(ours.numpy(), peer.numpy().reshape(2, 3).mean(axis=-1), rtol=1e-10)


def test_monai_tversky():
    """``TverskyLoss(alpha=a, beta=b, smooth_nr=ε, smooth_dr=ε, to_onehot_y=True, softmax=True)``.

    MONAI's α weighs false positives like ours and takes ε as is (SPEC §11).
    """
    monai = _monai()
    labels, logits = _channels_first(70, 4)
    tversky = monai.TverskyLoss(alpha=0.3, beta=0.7, smooth_nr=1e-3, smooth_dr=1e-3, to_onehot_y=True,
                                softmax=True, reduction="none")
    peer = tversky(logits, labels).numpy().reshape(3, 4).mean(axis=-1)
    ours = lossfns.tversky_loss(labels, logits, alpha=0.3, beta=0.7, epsilon=1e-3, class_axis=1,
                                from_logits="softmax")
    np.testing.assert_allclose(ours.numpy(), peer, rtol=1e-10)


def test_monai_softmax_focal():
    """``FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2)``; MONAI computes in float32.

    * ``reduction="none"`` gives ``[B, C, H, W]``: the sum over classes and mean over space is
      our ``categorical_focal_loss``; ``"mean"`` also averages the classes (factor C, SPEC §11).
    * A scalar ``alpha=a`` weighs the background ``1 - a`` and the other classes ``a``: our
      ``alpha=[1 - a, a, ..., a]``.
    """
    monai = _monai()
    labels, logits = _channels_first(80, 3)
    options = dict(class_axis=1, from_logits="softmax", gamma=2.0)
    for alpha, our_alpha in ((None, None), (0.25, [0.75, 0.25, 0.25])):
        focal = monai.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0, alpha=alpha, reduction="none")
        peer = focal(logits, labels).numpy().astype(np.float64)
        ours = lossfns.categorical_focal_loss(labels, logits, alpha=our_alpha, **options).numpy()
        np.testing.assert_allclose(ours, _spatial_mean(peer.sum(axis=1)), rtol=1e-5)
    mean = monai.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)(logits, labels).item()
    np.testing.assert_allclose(lossfns.categorical_focal_loss(labels, logits, **options).numpy().mean() / 3, mean,
                               rtol=1e-5)


def test_monai_sigmoid_focal():
    """``FocalLoss(use_softmax=False, alpha=a, gamma=g, reduction="none")`` on dense 0/1 targets,
    averaged over channels and space, is ``binary_focal_loss(alpha=a, gamma=g, from_logits=True)``."""
    import torch

    monai = _monai()
    y_true, logits, _ = ref.random_case(90, shape=(2, 4, 5), classes=3, class_axis=1, logits=True)
    y_true, logits = torch.from_numpy(np.ascontiguousarray(y_true)), torch.from_numpy(np.ascontiguousarray(logits))
    peer = monai.FocalLoss(alpha=0.3, gamma=1.5, reduction="none")(logits, y_true).numpy().astype(np.float64)
    ours = lossfns.binary_focal_loss(y_true, logits, alpha=0.3, gamma=1.5, class_axis=1, from_logits=True)
    np.testing.assert_allclose(ours.numpy(), _spatial_mean(peer), rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 2])
def test_monai_asymmetric_unified_focal(channels):
    """``AsymmetricUnifiedFocalLoss(weight=λ, delta=δ, gamma=γ)`` on probabilities, binary only.

    MONAI returns the batch mean. Its Tversky part equals ours (ε = 1e-7); its focal part is
    averaged over the two classes, half of ours (SPEC §11). So MONAI at λ equals the batch mean
    of ``λ·asymmetric_focal_loss / 2 + (1 − λ)·asymmetric_focal_tversky_loss``, and it agrees
    with ``asymmetric_unified_focal_loss`` exactly at λ = 0 only. A single channel is
    expanded to ``[1 - p, p]`` by both.
    """
    import torch

    monai = _monai()
    labels, probs, _ = ref.random_case(100 + channels, shape=(3, 6, 5), classes=channels, class_axis=1,
                                       labels="sparse1")
    probs = torch.from_numpy(np.ascontiguousarray(probs))
    labels = torch.from_numpy(labels)
    common = dict(delta=0.7, gamma=0.4, class_axis=1)
    to_onehot_y = channels > 1
    focal = lossfns.asymmetric_focal_loss(labels, probs, **common).numpy()
    tversky = lossfns.asymmetric_focal_tversky_loss(labels, probs, **common).numpy()
    for weight in (0.0, 0.3, 1.0):
        peer = monai.AsymmetricUnifiedFocalLoss(to_onehot_y=to_onehot_y, weight=weight, delta=0.7, gamma=0.4)
        expected = peer(probs, labels).item()
        np.testing.assert_allclose(np.mean(weight * focal / 2 + (1 - weight) * tversky), expected, rtol=1e-10,
                                   err_msg=f"λ={weight}")
    unified = lossfns.asymmetric_unified_focal_loss(labels, probs, weight=0.0, **common).numpy()
    peer = monai.AsymmetricUnifiedFocalLoss(to_onehot_y=to_onehot_y, weight=0.0, delta=0.7, gamma=0.4)
    np.testing.assert_allclose(unified.mean(), peer(probs, labels).item(), rtol=1e-10)


def test_monai_masked_dice_applies_the_activation_before_the_mask():
    """MONAI 1.6.1 ``MaskedDiceLoss(sigmoid=True)`` equals ours with the mask as ``mask``.

    1.6.1 applies the sigmoid first and then masks, so masked elements are left out as ours
    are; a version that masked the logits first would count them as predictions of 0.5
    (the expectation below with ``p = 0.5`` there differs, so the test tells them apart).
    """
    import torch

    monai = _monai()
    y_true, logits, _ = ref.random_case(62, shape=(2, 4, 6), classes=1, class_axis=1, logits=True)
    y_true, logits = torch.from_numpy(np.ascontiguousarray(y_true)), torch.from_numpy(np.ascontiguousarray(logits))
    mask = torch.zeros(2, 1, 4, 6, dtype=torch.float64)
    mask[..., :3] = 1.0
    peer = monai.MaskedDiceLoss(sigmoid=True, smooth_nr=0.0, smooth_dr=0.0, reduction="none")(logits, y_true, mask=mask)
    ours = lossfns.dice_loss(y_true, logits, epsilon=0.0, class_axis=1, from_logits="sigmoid", mask=mask[:, 0])
    np.testing.assert_allclose(ours.numpy(), peer.numpy().reshape(2), rtol=1e-10)
    half = torch.where(mask > 0, torch.sigmoid(logits), torch.full_like(logits, 0.5))
    tp, predicted, actual = ((half * y_true * mask).sum((1, 2, 3)), half.sum((1, 2, 3)), (y_true * mask).sum((1, 2, 3)))
    assert not np.allclose(ours.numpy(), (1 - 2 * tp / (predicted + actual)).numpy())


def test_keras_categorical_crossentropy_renormalises_the_probabilities():
    """Keras divides ``y_pred`` by its sum over the classes; ours takes the probabilities as given."""
    keras = _keras()
    y_true, y_pred = _channels_last(63, 3)
    scaled = y_pred * 0.5  # rows summing to 0.5
    peer = _keras_loss(keras.losses.CategoricalCrossentropy(reduction=None), y_true, scaled)
    ours = lossfns.categorical_crossentropy(y_true, scaled)
    np.testing.assert_allclose(_spatial_mean(peer), lossfns.categorical_crossentropy(y_true, y_pred), rtol=1e-6)
    np.testing.assert_allclose(ours, _spatial_mean(peer) + np.log(2.0), rtol=1e-6)
