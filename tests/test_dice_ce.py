"""Dice + cross-entropy and Dice + focal (SPEC §12).

Values against the float64 reference of ``reference_dice_ce.py`` on every array library,
the decomposition into ``f1_loss`` and the cross-entropy / focal losses, one input
preparation per call, gradients against finite differences, the SPEC §9 edge batch, the
argument errors (SPEC §8, §20), and the peers: MONAI ``DiceCELoss`` (equal),
``DiceFocalLoss`` (measured relation) and nnU-Net's ``DC_and_CE_loss`` (its documented
formula written out here).
"""

from __future__ import annotations

import numpy as np
import pytest

import lossfns
import lossfns.inputs
import reference_dice_ce as ref
from test_distribution import edge_cases, value_and_gradient

NAMES = ("dice_ce_loss", "dice_focal_loss")
#: (labels, classes, from_logits, class_axis, masked, ignore, options): the layouts covered.
CASES = [
    ("onehot", 3, False, -1, False, False, {}),
    ("sparse", 4, True, 1, True, True, dict(average="micro", include_background=False, background_index=2)),
    ("soft", 3, "softmax", -1, True, False, dict(soft_label=True, average="weighted")),
    ("sparse", 3, False, -1, False, False,
     dict(average="weighted", class_weights=(0.2, 0.5, 0.3), batch=True)),
    ("onehot", 1, False, -1, True, False, {}),
    ("sparse", 1, True, -1, False, False, dict(batch=True)),
    ("onehot", 3, "sigmoid", 1, False, False, dict(include_background=False)),
]
HYPERPARAMETERS = {
    "dice_ce_loss": lambda sigmoid: dict(ce_weight=0.7, dice_weight=1.3, epsilon=1e-3, label_smoothing=0.1),
    "dice_focal_loss": lambda sigmoid: dict(
        focal_weight=0.6, dice_weight=1.2, alpha=0.3 if sigmoid else (0.2, 0.5, 0.3, 0.4)[:3], gamma=1.5,
        epsilon=1e-3, label_smoothing=0.1,
    ),
}
FLOAT32_CASES = (1, 4)
TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-6)}


def _case(index, dtype=np.float64, shape=(3, 4, 3)):
    labels, classes, logits, axis, masked, ignore, options = CASES[index]
    y_true, y_pred, common = ref.random_case(index, shape=shape, classes=classes, labels=labels,
                                             from_logits=bool(logits), class_axis=axis, masked=masked,
                                             ignore=ignore, dtype=dtype)
    return y_true, y_pred, dict(common, from_logits=logits, **options)


def _hyper(name, y_pred, options):
    classes = y_pred.shape[options.get("class_axis", -1)]
    sigmoid = classes == 1 or options["from_logits"] == "sigmoid"
    hyper = HYPERPARAMETERS[name](sigmoid)
    if name == "dice_focal_loss" and not sigmoid:
        hyper["alpha"] = tuple(np.linspace(0.2, 0.8, classes))
    return hyper


def _call(backend, name, y_true, y_pred, options, **hyper):
    options = dict(options)
    mask = options.pop("mask", None)
    function = getattr(lossfns, name)

    def loss(y_true, y_pred, mask):
        return function(y_true, y_pred, mask=mask, **options, **hyper)

    if backend.name == "jax":  # one compiled graph costs far less than op-by-op dispatch
        import jax

        loss = jax.jit(loss)
    arrays = [backend.asarray(np.ascontiguousarray(a)) for a in (y_true, y_pred)]
    return backend.to_numpy(loss(*arrays, None if mask is None else backend.asarray(mask)))


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(xp, name):
    """Float64 to 1e-10 of the float64 reference on every layout, float32 to 1e-5 on two."""
    for index in range(len(CASES)):
        for dtype, tolerance in TOLERANCES.items():
            if dtype is np.float32 and index not in FLOAT32_CASES:
                continue
            y_true, y_pred, options = _case(index, dtype)
            hyper = _hyper(name, y_pred, options)
            actual = _call(xp, name, y_true, y_pred, options, **hyper)
            expected = getattr(ref, name)(y_true, y_pred, **options, **hyper)
            assert actual.dtype == dtype
            assert actual.shape == (() if options.get("batch") else (y_pred.shape[0],))
            np.testing.assert_allclose(actual, expected, **tolerance, err_msg=f"{name} case {index} {dtype}")


def _split(options):
    region_keys = ("average", "class_weights", "include_background", "background_index", "soft_label")
    region = {k: v for k, v in options.items() if k in region_keys}
    return {k: v for k, v in options.items() if k not in region_keys}, region


@pytest.mark.parametrize("index", range(len(CASES)))
def test_decomposes_into_the_library_losses(index):
    """``w·CE + w'·f1_loss`` (categorical, or binary with a sigmoid) with the same options."""
    y_true, y_pred, options = _case(index)
    common, region = _split(options)
    classes = y_pred.shape[options.get("class_axis", -1)]
    sigmoid = classes == 1 or options["from_logits"] == "sigmoid"
    dice = lossfns.f1_loss(y_true, y_pred, epsilon=1e-3, **options)
    binary_common = dict(common, from_logits="sigmoid" if common["from_logits"] else False)
    if sigmoid:
        ce = lossfns.binary_crossentropy(y_true, y_pred, label_smoothing=0.2, **binary_common)
        focal = lossfns.binary_focal_loss(y_true, y_pred, alpha=None, gamma=1.5, **binary_common)
    else:
        ce = lossfns.categorical_crossentropy(y_true, y_pred, label_smoothing=0.2, **common)
        focal = lossfns.categorical_focal_loss(y_true, y_pred, alpha=None, gamma=1.5, **common)
    np.testing.assert_allclose(
        lossfns.dice_ce_loss(y_true, y_pred, ce_weight=0.5, dice_weight=2.0, epsilon=1e-3, label_smoothing=0.2,
                             **options),
        0.5 * ce + 2.0 * dice, rtol=1e-12)
    np.testing.assert_allclose(
        lossfns.dice_focal_loss(y_true, y_pred, focal_weight=3.0, dice_weight=0.5, gamma=1.5, epsilon=1e-3,
                                **options),
        3.0 * focal + 0.5 * dice, rtol=1e-12)


def test_dice_part_sees_the_original_labels():
    """Label smoothing changes the cross-entropy part only."""
    y_true, y_pred, options = _case(0)
    without_ce = dict(ce_weight=0.0, **options)
    np.testing.assert_array_equal(lossfns.dice_ce_loss(y_true, y_pred, label_smoothing=0.5, **without_ce),
                                  lossfns.dice_ce_loss(y_true, y_pred, **without_ce))


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_prepared_once(monkeypatch, name):
    """One ``prepare`` and one log-softmax per call, shared by both parts."""
    counts = {"prepare": 0, "log_softmax": 0}
    prepare, log_softmax = lossfns.dice_ce.prepare, lossfns.inputs.nx.log_softmax

    def counted(key, function):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(lossfns.dice_ce, "prepare", counted("prepare", prepare))
    monkeypatch.setattr(lossfns.inputs.nx, "log_softmax", counted("log_softmax", log_softmax))
    y_true, y_pred, options = _case(1)
    getattr(lossfns, name)(y_true, y_pred, **options)
    assert counts == {"prepare": 1, "log_softmax": 1}


@pytest.mark.parametrize("name", NAMES)
def test_torch_gradcheck(name):
    torch = pytest.importorskip("torch")
    for index in (1, 2, 5, 6):
        y_true, y_pred, options = _case(index, shape=(2, 2, 2))
        hyper = _hyper(name, y_pred, options)
        mask = options.pop("mask", None)
        mask = None if mask is None else torch.tensor(mask)
        y_true_t, function = torch.tensor(y_true), getattr(lossfns, name)

        def loss(p):
            return function(y_true_t, p, mask=mask, **options, **hyper)

        assert torch.autograd.gradcheck(loss, (torch.tensor(y_pred, requires_grad=True),), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_edge_cases_are_finite(name):
    """Perfect, inverted, uniform, empty and fully masked samples; p exactly 0/1; logits ±1e4;
    γ = 0, γ < 1; ε = 0 (empty classes: Dice 0/0 is 1); with and without ``batch``."""
    focus = {"dice_ce_loss": [{}], "dice_focal_loss": [dict(gamma=g) for g in (0.0, 0.25, 2.0)]}[name]
    for hyper in focus:
        for classes in (1, 3):
            for logits in (False, True):
                for extra in ({"epsilon": 0.0, "label_smoothing": 0.1}, {"batch": True, "soft_label": True}):
                    y_true, y_pred, mask = edge_cases(classes, logits)
                    options = dict(mask=mask, from_logits=logits, **hyper, **extra)
                    expected = getattr(ref, name)(y_true, y_pred, **options)
                    for dtype in (np.float64, np.float32):
                        loss, gradient = value_and_gradient("torch", name, y_true, y_pred, dtype, **options)
                        where = f"{name} {options} C={classes} {dtype.__name__}"
                        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(gradient)), where
                        if not extra.get("batch"):
                            assert np.all(gradient[-1] == 0), where
                        if dtype is np.float64:
                            np.testing.assert_allclose(loss, expected, rtol=1e-10, atol=1e-12, err_msg=where)


ERRORS = [
    ("dice_ce_loss", dict(ce_weight=-0.5), ValueError, r"ce_weight must be >= 0, got -0\.5"),
    ("dice_ce_loss", dict(dice_weight=-1.0), ValueError, r"dice_weight must be >= 0, got -1\.0"),
    ("dice_ce_loss", dict(epsilon=-1e-5), ValueError, r"epsilon must be >= 0"),
    ("dice_ce_loss", dict(ce_weight=float("inf")), ValueError, r"ce_weight must be a finite number"),
    ("dice_ce_loss", dict(class_weights=(1.0, 2.0)), ValueError, r"class_weights has 2 entries.*3 classes"),
    ("dice_ce_loss", dict(average="mean"), ValueError, r"average must be one of"),
    ("dice_ce_loss", dict(gamma=2.0), TypeError, r"dice_ce_loss\(\) got an unexpected keyword argument 'gamma'"),
    ("dice_focal_loss", dict(focal_weight=-0.1), ValueError, r"focal_weight must be >= 0, got -0\.1"),
    ("dice_focal_loss", dict(dice_weight=-2.0), ValueError, r"dice_weight must be >= 0, got -2\.0"),
    ("dice_focal_loss", dict(gamma=-1.0), ValueError, r"gamma must be >= 0"),
    ("dice_focal_loss", dict(alpha=(0.5, 0.5)), ValueError, r"alpha has 2 entries.*3 classes"),
    ("dice_focal_loss", dict(alpha=(0.2, 0.3, 0.5), from_logits="sigmoid"), ValueError,
     r"alpha must be None or one number in \[0, 1\] with a sigmoid activation"),
    ("dice_focal_loss", dict(alpha=1.5, from_logits="sigmoid"), ValueError, r"alpha must lie in \[0, 1\], got 1\.5"),
    ("dice_focal_loss", dict(ce_weight=1.0), TypeError,
     r"dice_focal_loss\(\) got an unexpected keyword argument 'ce_weight'"),
]


@pytest.mark.parametrize("name, arguments, error, message", ERRORS,
                         ids=[f"{e[0]}-{'-'.join(sorted(e[1]))}" for e in ERRORS])
def test_invalid_arguments(name, arguments, error, message):
    y_true, y_pred, _ = _case(0)
    with pytest.raises(error, match=message):
        getattr(lossfns, name)(y_true, y_pred, **arguments)


# --------------------------------------------------------------------------- peers


def _peer_inputs(seed=3, shape=(3, 4, 5, 6)):
    """Logits ``[B, C, H, W]`` and integer labels ``[B, 1, H, W]`` (MONAI's layout)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape)
    labels = rng.integers(0, shape[1], size=(shape[0], 1) + shape[2:])
    return logits, labels


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_monai_dice_ce(include_background, batch):
    """MONAI ``DiceCELoss(smooth_nr=s, smooth_dr=s, lambda_ce=a, lambda_dice=b, softmax=True)`` on
    logits equals ``dice_ce_loss(ce_weight=a, dice_weight=b, epsilon=s/2, from_logits=True)``
    averaged over the batch (its cross-entropy covers every class either way)."""
    torch = pytest.importorskip("torch")
    monai = pytest.importorskip("monai.losses")
    logits, labels = _peer_inputs()
    s = 1e-3
    peer = monai.DiceCELoss(include_background=include_background, to_onehot_y=True, softmax=True, smooth_nr=s,
                            smooth_dr=s, lambda_ce=0.7, lambda_dice=1.3, batch=batch)
    theirs = float(peer(torch.tensor(logits), torch.tensor(labels)))
    ours = lossfns.dice_ce_loss(labels, logits, ce_weight=0.7, dice_weight=1.3, epsilon=s / 2, class_axis=1,
                                from_logits=True, include_background=include_background, batch=batch)
    np.testing.assert_allclose(theirs, np.mean(ours), rtol=1e-10)


@pytest.mark.parametrize("include_background", [True, False])
def test_monai_dice_focal_differs(include_background):
    """MONAI ``DiceFocalLoss(softmax=True, gamma=g, lambda_focal=a, lambda_dice=b)`` measured:
    its focal part is a sigmoid focal loss of the logits (no α) over the kept channels, i.e.
    ``a · mean_b binary_focal_loss(one_hot[kept], logits[kept], alpha=None, from_logits=True)
    + b · mean_b f1_loss(..., epsilon=s/2)``, and ``include_background=False`` drops the
    background from the focal part too. MONAI's focal term runs in float32 (agreement to ~5e-8).
    """
    torch = pytest.importorskip("torch")
    monai = pytest.importorskip("monai.losses")
    logits, labels = _peer_inputs(seed=4)
    one_hot = (labels == np.arange(logits.shape[1])[None, :, None, None]).astype(np.float64)
    kept = slice(0 if include_background else 1, None)
    s, gamma = 1e-3, 2.0
    peer = monai.DiceFocalLoss(include_background=include_background, to_onehot_y=True, softmax=True,
                               smooth_nr=s, smooth_dr=s, gamma=gamma, lambda_focal=0.6, lambda_dice=1.4)
    theirs = float(peer(torch.tensor(logits), torch.tensor(labels)))
    dice = lossfns.f1_loss(labels[:, 0], logits, epsilon=s / 2, class_axis=1, from_logits=True,
                           include_background=include_background)
    sigmoid_focal = lossfns.binary_focal_loss(one_hot[:, kept], logits[:, kept], alpha=None, gamma=gamma,
                                              class_axis=1, from_logits=True)
    np.testing.assert_allclose(theirs, 0.6 * sigmoid_focal.mean() + 1.4 * dice.mean(), rtol=1e-6)
    ours = lossfns.dice_focal_loss(labels[:, 0], logits, focal_weight=0.6, dice_weight=1.4, gamma=gamma,
                                   epsilon=s / 2, class_axis=1, from_logits=True,
                                   include_background=include_background)
    assert abs(np.mean(ours) - theirs) > 0.1  # a softmax focal loss over every class is another number


def _nnunet_dc_and_ce(torch, logits, labels, *, weight_ce, weight_dice, smooth, batch_dice):
    """nnU-Net's ``DC_and_CE_loss`` from its documented definition: softmax, then
    ``weight_ce · CE + weight_dice · (−mean DC)`` with the soft Dice ``DC = (2TP + s) / (2TP + FP + FN + s)``
    over the non-background channels (``do_bg=False``), summed over the spatial axes (and the
    batch with ``batch_dice``), and ``CE`` the cross-entropy averaged over every element."""
    probs = torch.softmax(logits, dim=1)
    one_hot = torch.nn.functional.one_hot(labels[:, 0], logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    axes = ([0] if batch_dice else []) + list(range(2, logits.ndim))
    tp = (probs * one_hot).sum(axes)
    fp = (probs * (1 - one_hot)).sum(axes)
    fn = ((1 - probs) * one_hot).sum(axes)
    dc = (2 * tp + smooth) / (2 * tp + fp + fn + smooth)
    dc = dc[1:] if batch_dice else dc[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits, labels[:, 0])
    return weight_ce * ce - weight_dice * dc.mean()


@pytest.mark.parametrize("batch", [False, True])
def test_nnunet_dc_and_ce(batch):
    """``DC_and_CE_loss(weight_ce=a, weight_dice=b)`` with ``SoftDiceLoss(smooth=s, do_bg=False,
    batch_dice=B)`` equals ``dice_ce_loss(ce_weight=a, dice_weight=b, epsilon=s/2,
    include_background=False, batch=B) − b`` (batch mean), values and gradients."""
    torch = pytest.importorskip("torch")
    logits, labels = _peer_inputs(seed=5)
    z_theirs = torch.tensor(logits, requires_grad=True)
    z_ours = torch.tensor(logits, requires_grad=True)
    a, b, s = 0.8, 1.5, 1e-4
    theirs = _nnunet_dc_and_ce(torch, z_theirs, torch.tensor(labels), weight_ce=a, weight_dice=b, smooth=s,
                               batch_dice=batch)
    ours = lossfns.dice_ce_loss(torch.tensor(labels), z_ours, ce_weight=a, dice_weight=b, epsilon=s / 2,
                                include_background=False, batch=batch, class_axis=1, from_logits=True).mean() - b
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-10)
    (grad_theirs,) = torch.autograd.grad(theirs, z_theirs)
    (grad_ours,) = torch.autograd.grad(ours, z_ours)
    np.testing.assert_allclose(grad_ours.numpy(), grad_theirs.numpy(), rtol=1e-9, atol=1e-14)
