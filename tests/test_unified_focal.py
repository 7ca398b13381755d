"""The Unified Focal loss family (SPEC §6) against the float64 reference, on every backend.

Also: the special cases of SPEC §6 (Dice loss at λ = 0, half the cross-entropy at λ = 1),
the ties to the §4-§5 losses, finite values and gradients on edge inputs (SPEC §9), and
argument errors (SPEC §8). Helpers come from ``test_distribution.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossfns
import reference_distribution as ref
from test_distribution import (
    call,
    check_against_reference,
    check_edge_cases,
    check_layout_invariance,
    check_logits_match_probabilities,
)

HYPERPARAMETERS = {
    "symmetric_focal_loss": lambda classes: dict(delta=0.65, gamma=1.5),
    "asymmetric_focal_loss": lambda classes: dict(delta=0.65, gamma=1.5),
    "symmetric_focal_tversky_loss": lambda classes: dict(delta=0.65, gamma=0.4, epsilon=1e-4),
    "asymmetric_focal_tversky_loss": lambda classes: dict(delta=0.65, gamma=0.4, epsilon=1e-4),
    "symmetric_unified_focal_loss": lambda classes: dict(weight=0.3, delta=0.65, gamma=0.4, epsilon=1e-4),
    "asymmetric_unified_focal_loss": lambda classes: dict(weight=0.3, delta=0.65, gamma=0.4, epsilon=1e-4),
}
NAMES = sorted(HYPERPARAMETERS)
UNIFIED = ("symmetric_unified_focal_loss", "asymmetric_unified_focal_loss")


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(xp, name):
    check_against_reference(xp, name, HYPERPARAMETERS)


def test_defaults_match_reference():
    """The SPEC §6 defaults (δ, γ, λ and ε = 1e-7), written independently in the reference."""
    for case in ("dense-2d-c3-background2", "binary-2d-c1-sample-mask"):
        y_true, y_pred, options, _ = ref.case_inputs(case, 1)
        for name in NAMES:
            np.testing.assert_allclose(
                getattr(lossfns, name)(y_true, y_pred, **options), getattr(ref, name)(y_true, y_pred, **options),
                rtol=1e-10, err_msg=f"{name} {case}")


def test_logits_match_probabilities(xp):
    check_logits_match_probabilities(xp, NAMES, HYPERPARAMETERS)


def test_layout_invariance(xp):
    check_layout_invariance(xp, NAMES, HYPERPARAMETERS)


# --------------------------------------------------------------------------- special cases


def _inputs(case="dense-2d-c3-background2", seed=0):
    y_true, y_pred, options, _ = ref.case_inputs(case, seed)
    return y_true, y_pred, options


@pytest.mark.parametrize("name", UNIFIED)
def test_unified_limits_are_dice_and_half_crossentropy(xp, name):
    """SPEC §6: with γ = 0 and δ = 0.5, λ = 0 is the Dice loss and λ = 1 half the cross-entropy.

    ``dice_loss`` defaults to ε = 1e-5 and this family to 1e-7, so both get the same ε. A
    single channel is two classes here, so its Dice loss is taken of ``[1 - p, p]``.
    """
    cases = ("dense-2d-c3-background2", "sparse-1d-c5-axis1-logits", "sparse-3d-c2-mask-ignore",
             "binary-2d-c1-sample-mask")
    for case in cases:
        y_true, y_pred, options = _inputs(case)
        for epsilon in (1e-7, 1e-2):
            dice_true, dice_pred = y_true, y_pred
            if case == "binary-2d-c1-sample-mask":
                dice_true = np.concatenate([1 - y_true, y_true], axis=-1)
                dice_pred = np.concatenate([1 - y_pred, y_pred], axis=-1)
            np.testing.assert_allclose(
                call(xp, name, y_true, y_pred, options, weight=0.0, delta=0.5, gamma=0.0, epsilon=epsilon),
                call(xp, "dice_loss", dice_true, dice_pred, options, epsilon=epsilon),
                rtol=1e-12, err_msg=f"{case} ε={epsilon}")
        np.testing.assert_allclose(
            call(xp, name, y_true, y_pred, options, weight=1.0, delta=0.5, gamma=0.0),
            0.5 * call(xp, "categorical_crossentropy", y_true, y_pred, options), rtol=1e-12, err_msg=case)


@pytest.mark.parametrize("name", UNIFIED)
def test_unified_decomposes(xp, name):
    """``λ·focal + (1−λ)·focal Tversky`` of the same kind, with the same δ, γ and background."""
    kind = name.split("_")[0]
    y_true, y_pred, options = _inputs("dense-2d-c3-background2")
    common = dict(delta=0.8, gamma=0.3, background_index=2)
    focal = call(xp, f"{kind}_focal_loss", y_true, y_pred, options, **common)
    tversky = call(xp, f"{kind}_focal_tversky_loss", y_true, y_pred, options, epsilon=1e-3, **common)
    np.testing.assert_allclose(
        call(xp, name, y_true, y_pred, options, weight=0.2, epsilon=1e-3, **common), 0.2 * focal + 0.8 * tversky,
        rtol=1e-12)


def test_focal_parts_are_weighted_focal_losses(xp):
    """Symmetric focal is categorical focal with ``α = (1−δ, δ, ..., δ)``; without focusing
    (γ = 0) the asymmetric one is the same."""
    y_true, y_pred, options = _inputs("sparse-1d-c5-axis1-logits")
    alpha = [0.3, 0.3, 0.7, 0.3, 0.3]  # background 2, δ = 0.3
    for gamma in (0.0, 1.5):
        np.testing.assert_allclose(
            call(xp, "symmetric_focal_loss", y_true, y_pred, options, delta=0.3, gamma=gamma, background_index=2),
            call(xp, "categorical_focal_loss", y_true, y_pred, options, alpha=alpha, gamma=gamma), rtol=1e-12)
    np.testing.assert_allclose(
        call(xp, "asymmetric_focal_loss", y_true, y_pred, options, delta=0.3, gamma=0.0, background_index=2),
        call(xp, "categorical_focal_loss", y_true, y_pred, options, alpha=alpha, gamma=0.0), rtol=1e-12)


def test_focal_tversky_parts_are_tfmri_losses(xp):
    """``(1 − mTI)^(1−γ)`` is tfmri's ``focal_tversky_loss`` with α = 1−δ, β = δ and exponent 1−γ:
    the two γ mean opposite things. Without focusing the asymmetric form is the Tversky loss."""
    y_true, y_pred, options = _inputs("sparse-3d-c2-mask-ignore")
    np.testing.assert_allclose(
        call(xp, "symmetric_focal_tversky_loss", y_true, y_pred, options, delta=0.8, gamma=0.25, epsilon=1e-3),
        call(xp, "focal_tversky_loss", y_true, y_pred, options, alpha=0.2, beta=0.8, gamma=0.75, epsilon=1e-3),
        rtol=1e-12)
    np.testing.assert_allclose(
        call(xp, "asymmetric_focal_tversky_loss", y_true, y_pred, options, delta=0.8, gamma=0.0, epsilon=1e-3),
        call(xp, "tversky_loss", y_true, y_pred, options, alpha=0.2, beta=0.8, epsilon=1e-3), rtol=1e-12)


def test_background_index_follows_the_classes(xp):
    """Permuting the classes and ``background_index`` together leaves every loss unchanged."""
    y_true, y_pred, options = _inputs()
    order = [1, 2, 0]  # the background, class 0, moves to index 2
    for name in NAMES:
        hyper = HYPERPARAMETERS[name](3)
        np.testing.assert_allclose(
            call(xp, name, y_true[..., order], y_pred[..., order], options, background_index=2, **hyper),
            call(xp, name, y_true, y_pred, options, **hyper), rtol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- SPEC §9

FOCUS = {
    "symmetric_focal_loss": lambda g: dict(gamma=g),
    "asymmetric_focal_loss": lambda g: dict(gamma=g),
    **{name: (lambda g: dict(gamma=g) if g <= 1 else None) for name in NAMES if "tversky" in name or "unified" in name},
}


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("name", NAMES)
def test_edge_cases_are_finite(framework, name):
    check_edge_cases(framework, name, FOCUS)


# --------------------------------------------------------------------------- SPEC §8

TVERSKY_PARTS = [name for name in NAMES if "tversky" in name or "unified" in name]
ERRORS = (
    [(name, dict(delta=value), rf"delta.*{value}") for name in NAMES for value in (-0.1, 1.1)]
    + [(name, dict(gamma=-0.5), r"gamma.*-0\.5") for name in NAMES]
    + [(name, dict(gamma=1.5), r"gamma.*1\.5") for name in TVERSKY_PARTS]
    + [(name, dict(epsilon=-1e-7), r"epsilon") for name in TVERSKY_PARTS]
    + [(name, dict(weight=value), rf"weight.*{value}") for name in UNIFIED for value in (-0.5, 1.5)]
    + [(name, dict(background_index=3), r"background_index") for name in NAMES]
)


@pytest.mark.parametrize("name, arguments, message", ERRORS,
                         ids=[f"{e[0]}-{next(iter(e[1].items()))}" for e in ERRORS])
def test_invalid_arguments(name, arguments, message):
    y_true, y_pred, _ = _inputs()
    with pytest.raises(ValueError, match=message):
        getattr(lossfns, name)(y_true, y_pred, **arguments)


@pytest.mark.parametrize("name", ["symmetric_focal_loss", "asymmetric_focal_loss"])
def test_focal_losses_accept_gamma_above_one(name):
    y_true, y_pred, _ = _inputs()
    assert np.all(np.isfinite(getattr(lossfns, name)(y_true, y_pred, gamma=5.0)))
