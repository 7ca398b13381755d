"""Distribution and compound losses (SPEC §5) against the float64 reference, on every backend.

Also: special cases that tie the losses to each other, finite values and gradients on edge
inputs (SPEC §9), and argument errors (SPEC §8). The Unified Focal family is in
``test_unified_focal.py``; both files share the helpers defined here.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossfns
import reference_distribution as ref

#: Non-default hyperparameters per loss, as a function of the number of classes the loss
#: sees (single-channel inputs of categorical losses count as two).
HYPERPARAMETERS = {
    "binary_crossentropy": lambda classes: {},
    "binary_focal_loss": lambda classes: dict(alpha=0.3, gamma=1.5),
    "categorical_crossentropy": lambda classes: {},
    "categorical_focal_loss": lambda classes: dict(alpha=tuple(np.linspace(0.2, 0.9, classes)), gamma=1.5),
    "combo_loss": lambda classes: dict(alpha=0.6, beta=0.7, epsilon=1e-3),
    "hybrid_focal_loss": lambda classes: dict(
        weight=0.4, focal_alpha=0.8, focal_gamma=1.5, tversky_alpha=0.4, tversky_beta=0.6,
        tversky_gamma=1.5, epsilon=1e-3,
    ),
}
BINARY = {"binary_crossentropy", "binary_focal_loss"}
#: Losses that take ``background_index``.
WITH_BACKGROUND = {
    "combo_loss", "symmetric_focal_loss", "asymmetric_focal_loss", "symmetric_focal_tversky_loss",
    "asymmetric_focal_tversky_loss", "symmetric_unified_focal_loss", "asymmetric_unified_focal_loss",
}
TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-6)}


def call(backend, name, y_true, y_pred, options=None, **hyperparameters):
    """``lossfns.<name>`` on ``backend`` arrays, returned as NumPy."""
    options = dict(options or {})
    mask = options.pop("mask", None)
    mask = None if mask is None else backend.asarray(np.ascontiguousarray(mask))
    y_true = backend.asarray(np.ascontiguousarray(y_true))
    y_pred = backend.asarray(np.ascontiguousarray(y_pred))

    def loss(y_true, y_pred, mask):
        return getattr(lossfns, name)(y_true, y_pred, mask=mask, **hyperparameters, **options)

    if backend.name == "jax":  # one compiled graph costs far less than op-by-op dispatch
        import jax

        loss = jax.jit(loss)
    return backend.to_numpy(loss(y_true, y_pred, mask))


def case_hyperparameters(name, table, y_pred, options, background_index):
    classes = y_pred.shape[options["class_axis"]]
    hyper = table[name](classes if name in BINARY else max(classes, 2))
    if background_index is not None and name in WITH_BACKGROUND:
        hyper["background_index"] = background_index
    return hyper


def check_against_reference(backend, name, table):
    """Every :data:`ref.CASES` case in float64 and float32 against the float64 reference."""
    for seed, case in enumerate(ref.CASES):
        for dtype, tolerance in TOLERANCES.items():
            if dtype is np.float32 and case not in ref.FLOAT32_CASES:
                continue
            y_true, y_pred, options, background_index = ref.case_inputs(case, seed, dtype)
            hyper = case_hyperparameters(name, table, y_pred, options, background_index)
            actual = call(backend, name, y_true, y_pred, options, **hyper)
            expected = getattr(ref, name)(y_true, y_pred, **hyper, **options)
            assert actual.dtype == dtype, (case, actual.dtype)
            assert actual.shape == expected.shape == ((y_pred.shape[0],) if not options.get("batch") else ())
            np.testing.assert_allclose(actual, expected, **tolerance, err_msg=f"{name} {case} {dtype.__name__}")


@pytest.mark.parametrize("name", sorted(HYPERPARAMETERS))
def test_matches_reference(xp, name):
    check_against_reference(xp, name, HYPERPARAMETERS)


def test_defaults_match_reference():
    """The SPEC §5 defaults, written independently in the reference."""
    for case in ("dense-2d-c3-background2", "binary-2d-c1-sample-mask"):
        y_true, y_pred, options, _ = ref.case_inputs(case, 1)
        for name in HYPERPARAMETERS:
            np.testing.assert_allclose(
                getattr(lossfns, name)(y_true, y_pred, **options), getattr(ref, name)(y_true, y_pred, **options),
                rtol=1e-10, err_msg=f"{name} {case}")


# --------------------------------------------------------------------------- special cases


def _inputs(case="dense-2d-c3-background2", seed=0):
    y_true, y_pred, options, _ = ref.case_inputs(case, seed)
    return y_true, y_pred, options


def test_focal_losses_without_focusing_are_crossentropies(xp):
    for case in ("dense-2d-c3-background2", "binary-2d-c1-sample-mask", "sparse-3d-c2-mask-ignore"):
        y_true, y_pred, options = _inputs(case)
        bce = call(xp, "binary_crossentropy", y_true, y_pred, options)
        cce = call(xp, "categorical_crossentropy", y_true, y_pred, options)
        np.testing.assert_allclose(
            call(xp, "binary_focal_loss", y_true, y_pred, options, alpha=None, gamma=0.0), bce, rtol=1e-12)
        np.testing.assert_allclose(
            call(xp, "binary_focal_loss", y_true, y_pred, options, alpha=0.5, gamma=0.0), 0.5 * bce, rtol=1e-12)
        np.testing.assert_allclose(
            call(xp, "categorical_focal_loss", y_true, y_pred, options, gamma=0.0), cce, rtol=1e-12)
        np.testing.assert_allclose(
            call(xp, "categorical_focal_loss", y_true, y_pred, options, alpha=0.3, gamma=0.0), 0.3 * cce,
            rtol=1e-12)


def test_single_channel_categorical_crossentropy_is_binary(xp):
    """Expanding one channel to ``[1 - p, p]`` makes the categorical loss the binary one."""
    y_true, y_pred, options = _inputs("binary-2d-c1-sample-mask")
    np.testing.assert_allclose(
        call(xp, "categorical_crossentropy", y_true, y_pred, options),
        call(xp, "binary_crossentropy", y_true, y_pred, options), rtol=1e-12)


def test_combo_decomposes(xp):
    """``combo = α·wCE − (1−α)(1 − dice_loss)``, wCE a focal loss with γ = 0 and α_c = β or 1−β."""
    y_true, y_pred, options = _inputs("dense-2d-c3-background2")
    alpha, beta, epsilon = 0.3, 0.8, 1e-2
    weighted_ce = call(xp, "categorical_focal_loss", y_true, y_pred, options, alpha=[beta, beta, 1 - beta],
                       gamma=0.0)
    dice = call(xp, "dice_loss", y_true, y_pred, options, epsilon=epsilon)
    np.testing.assert_allclose(
        call(xp, "combo_loss", y_true, y_pred, options, alpha=alpha, beta=beta, epsilon=epsilon,
             background_index=2),
        alpha * weighted_ce - (1 - alpha) * (1 - dice), rtol=1e-12)
    dsc = 1 - call(xp, "dice_loss", y_true, y_pred, options)  # default ε of both is 1e-5
    np.testing.assert_allclose(call(xp, "combo_loss", y_true, y_pred, options, alpha=0.0), -dsc, rtol=1e-12)


def test_hybrid_decomposes(xp):
    """``hybrid = λ·categorical_focal + (1−λ)·focal_tversky`` with the named arguments routed."""
    y_true, y_pred, options = _inputs("sparse-1d-c5-axis1-logits")
    focal = call(xp, "categorical_focal_loss", y_true, y_pred, options, alpha=0.4, gamma=1.0)
    tversky = call(xp, "focal_tversky_loss", y_true, y_pred, options, alpha=0.2, beta=0.9, gamma=1.3,
                   epsilon=1e-3)
    hybrid = call(xp, "hybrid_focal_loss", y_true, y_pred, options, weight=0.3, focal_alpha=0.4, focal_gamma=1.0,
                  tversky_alpha=0.2, tversky_beta=0.9, tversky_gamma=1.3, epsilon=1e-3)
    np.testing.assert_allclose(hybrid, 0.3 * focal + 0.7 * tversky, rtol=1e-12)


def probabilities_of(logits, class_axis):
    """Softmax over the class axis, or a sigmoid for one channel."""
    moved = np.moveaxis(logits, class_axis, -1)
    p = ref.sigmoid(moved) if moved.shape[-1] == 1 else ref.softmax(moved)
    return np.moveaxis(p, -1, class_axis)


def check_logits_match_probabilities(backend, names, table):
    for case in ("sparse-1d-c5-axis1-logits", "binary-1d-c1-sparse1-logits-mask"):
        y_true, logits, options = _inputs(case)
        probs_options = {k: v for k, v in options.items() if k != "from_logits"}
        classes = logits.shape[options["class_axis"]]
        for name in names:
            hyper = table[name](classes if name in BINARY else max(classes, 2))
            probs = (ref.sigmoid(logits) if name in BINARY else probabilities_of(logits, options["class_axis"]))
            np.testing.assert_allclose(
                call(backend, name, y_true, logits, options, **hyper),
                call(backend, name, y_true, probs, probs_options, **hyper), rtol=1e-9, err_msg=f"{name} {case}")


def test_logits_match_probabilities(xp):
    check_logits_match_probabilities(xp, sorted(HYPERPARAMETERS), HYPERPARAMETERS)


def check_layout_invariance(backend, names, table):
    """Sparse equals one-hot; the class axis position, ``ignore_index`` as a mask, and ``batch=True``
    as one sample holding the whole batch give the same numbers."""
    y_true, y_pred, options = _inputs("sparse-3d-c2-mask-ignore", seed=3)
    mask = options["mask"] * (y_true != options["ignore_index"])
    labels = np.where(y_true == options["ignore_index"], 0, y_true)
    one_hot = ref.one_hot(labels, 2)

    def flat(x):  # [B, a, b, c, ...] -> [1, B·a·b·c, ...]
        return x.reshape((1, -1) + x.shape[4:])

    for name in names:
        hyper = table[name](2)
        expected = call(backend, name, y_true, y_pred, options, **hyper)
        np.testing.assert_allclose(
            call(backend, name, one_hot, y_pred, {"mask": mask}, **hyper), expected, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(
            call(backend, name, np.moveaxis(one_hot, -1, 2), np.moveaxis(y_pred, -1, 2),
                 {"mask": mask, "class_axis": 2}, **hyper), expected, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(
            call(backend, name, one_hot, y_pred, {"mask": mask, "batch": True}, **hyper),
            call(backend, name, flat(one_hot), flat(y_pred), {"mask": flat(mask)}, **hyper)[0],
            rtol=1e-12, err_msg=name)


def test_layout_invariance(xp):
    check_layout_invariance(xp, sorted(HYPERPARAMETERS), HYPERPARAMETERS)


# --------------------------------------------------------------------------- SPEC §9


def edge_cases(classes, logits):
    """One batch whose samples are the edge cases, with dense labels ``[S, 6, C]`` and a mask.

    Samples: perfect, inverted, uniform, empty foreground (predicted right and wrong),
    all foreground, fully masked. Probabilities are exactly 0 and 1; logits are ±1e4.
    """
    num_labels = max(classes, 2)
    mixed = np.arange(6) % num_labels
    zeros, ones = np.zeros(6, int), np.ones(6, int)
    labels = np.stack([mixed, mixed, mixed, zeros, zeros, ones, mixed])
    predicted = np.stack([mixed, (mixed + 1) % num_labels, mixed, zeros, ones, ones, mixed])
    hot = ref.one_hot(predicted, num_labels)
    y_true = ref.one_hot(labels, num_labels)
    if classes == 1:
        hot, y_true = hot[..., 1:], y_true[..., 1:]
    y_pred = 1e4 * (2 * hot - 1) if logits else hot
    y_pred[2] = 0.0 if logits else 1.0 / num_labels
    mask = np.ones(labels.shape)
    mask[-1] = 0.0
    return y_true, y_pred, mask


def value_and_gradient(framework, name, y_true, y_pred, dtype, **kwargs):
    """The loss per sample and ``d Σ loss / d y_pred``, from torch autograd or ``jax.grad``."""
    function = getattr(lossfns, name)
    if framework == "torch":
        torch = pytest.importorskip("torch")
        y_pred_t = torch.tensor(y_pred, dtype=getattr(torch, dtype.__name__), requires_grad=True)
        kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        loss = function(torch.tensor(y_true), y_pred_t, **kwargs)
        (gradient,) = torch.autograd.grad(loss.sum(), y_pred_t)
        return loss.detach().numpy(), gradient.numpy()
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    kwargs = {k: jax.numpy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    y_true_j = jax.numpy.asarray(y_true)

    def total(p):
        loss = function(y_true_j, p, **kwargs)
        return loss.sum(), loss

    gradient, loss = jax.grad(total, has_aux=True)(jax.numpy.asarray(y_pred.astype(dtype)))
    return np.asarray(loss), np.asarray(gradient)


#: Focusing exponents of the edge grid; a ``None`` entry means the loss has none.
GAMMAS = (0.0, 0.25, 1.0, 2.0)
FOCUS = {
    "binary_crossentropy": lambda g: {} if g == 0 else None,
    "categorical_crossentropy": lambda g: {} if g == 0 else None,
    "binary_focal_loss": lambda g: dict(gamma=g),
    "categorical_focal_loss": lambda g: dict(gamma=g, alpha=0.25),
    "combo_loss": lambda g: dict(alpha=0.5, beta=0.7) if g == 0 else None,
    "hybrid_focal_loss": lambda g: dict(focal_gamma=g, tversky_gamma=g),
}


def dtypes(framework, classes):
    """Both float types for torch; JAX, which compiles every new shape and dtype, splits them
    between the class counts (float64 with C = 3, float32 with one channel)."""
    if framework == "jax":
        return (np.float64,) if classes > 1 else (np.float32,)
    return (np.float64, np.float32)


def check_edge_cases(framework, name, focus):
    """Finite values and gradients on the edge batch; float64 values equal the reference."""
    for gamma in GAMMAS:
        hyper = focus[name](gamma)
        if hyper is None:
            continue
        for classes in (1, 3):
            for logits in (False, True):
                y_true, y_pred, mask = edge_cases(classes, logits)
                options = dict(mask=mask, from_logits=logits)
                expected = getattr(ref, name)(y_true, y_pred, **options, **hyper)
                for dtype in dtypes(framework, classes):
                    loss, gradient = value_and_gradient(framework, name, y_true, y_pred, dtype, **options, **hyper)
                    where = f"{name} γ={gamma} C={classes} logits={logits} {dtype.__name__}"
                    assert np.all(np.isfinite(loss)), (where, loss)
                    assert np.all(np.isfinite(gradient)), (where, gradient)
                    assert np.all(gradient[-1] == 0), (where, "a fully masked sample has a gradient")
                    if dtype is np.float64:
                        np.testing.assert_allclose(loss, expected, rtol=1e-10, atol=1e-12, err_msg=where)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("name", sorted(HYPERPARAMETERS))
def test_edge_cases_are_finite(framework, name):
    check_edge_cases(framework, name, FOCUS)


EXTREME_LOGITS = [-1e4, -200.0, -89.0, -30.0, -1.0, 0.0, 1.0, 30.0, 89.0, 200.0, 1e4]


def _binary_logit_inputs(np_dtype):
    z = np.repeat(np.asarray(EXTREME_LOGITS, dtype=np_dtype).reshape(1, -1, 1), 2, axis=2)
    y_true = np.broadcast_to(np.asarray([0.0, 1.0], dtype=np_dtype), z.shape).copy()
    return y_true, z


def _torch_derivatives(name, y_true, z):
    torch = pytest.importorskip("torch")
    z = torch.tensor(z, requires_grad=True)
    loss = getattr(lossfns, name)(torch.tensor(y_true), z, from_logits=True).sum()
    (gradient,) = torch.autograd.grad(loss, z, create_graph=True)
    (curvature,) = torch.autograd.grad(gradient.sum(), z)
    return [t.detach().numpy() for t in (loss, gradient, curvature)]


def _tensorflow_derivatives(name, y_true, z):
    tf = pytest.importorskip("tensorflow")
    z = tf.constant(z)
    with tf.GradientTape() as outer:
        outer.watch(z)
        with tf.GradientTape() as inner:
            inner.watch(z)
            loss = tf.reduce_sum(getattr(lossfns, name)(tf.constant(y_true), z, from_logits=True))
        gradient = inner.gradient(loss, z)
        total = tf.reduce_sum(gradient)
    return [t.numpy() for t in (loss, gradient, outer.gradient(total, z))]


def _jax_derivatives(name, y_true, z):
    jax = pytest.importorskip("jax")

    def loss(x):
        return getattr(lossfns, name)(jax.numpy.asarray(y_true), x, from_logits=True).sum()

    gradient = jax.grad(loss)
    curvature = jax.grad(lambda x: gradient(x).sum())
    return [np.asarray(f(jax.numpy.asarray(z))) for f in (loss, gradient, curvature)]


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "jax"])
@pytest.mark.parametrize("name", ["binary_crossentropy", "binary_focal_loss"])
def test_second_derivatives_are_finite_at_extreme_logits(framework, name):
    """SPEC §9 with each framework's fused ``log_sigmoid``: values, gradients and the
    derivative of the summed gradient stay finite from ``-1e4`` to ``1e4``."""
    derivatives = {"torch": _torch_derivatives, "tensorflow": _tensorflow_derivatives,
                   "jax": _jax_derivatives}[framework]
    for np_dtype in (np.float32, np.float64) if framework != "jax" else (np.float32,):
        for what, value in zip(("value", "gradient", "curvature"),
                               derivatives(name, *_binary_logit_inputs(np_dtype))):
            assert np.all(np.isfinite(value)), (name, np_dtype, what, value)


def test_gradient_matches_finite_differences():
    """Torch autograd of every loss against central differences of the float64 reference."""
    y_true, y_pred, options = _inputs("sparse-3d-c2-mask-ignore", seed=5)
    y_true, y_pred, options["mask"] = y_true[:2, :2], y_pred[:2, :2], options["mask"][:2, :2]
    step = 1e-6
    for name, table in HYPERPARAMETERS.items():
        hyper = table(2)
        _, gradient = value_and_gradient("torch", name, y_true, y_pred, np.float64, **options, **hyper)
        numeric = np.zeros_like(y_pred)
        for index in np.ndindex(y_pred.shape):
            shifted = [y_pred.copy(), y_pred.copy()]
            shifted[0][index] += step
            shifted[1][index] -= step
            up, down = (getattr(ref, name)(y_true, s, **options, **hyper).sum() for s in shifted)
            numeric[index] = (up - down) / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-7, err_msg=name)


# --------------------------------------------------------------------------- SPEC §8

ERRORS = [
    ("binary_focal_loss", dict(alpha=-0.1), r"alpha.*-0\.1"),
    ("binary_focal_loss", dict(alpha=1.5), r"alpha.*1\.5"),
    ("binary_focal_loss", dict(gamma=-1.0), r"gamma.*-1"),
    ("categorical_focal_loss", dict(gamma=-0.5), r"gamma.*-0\.5"),
    ("categorical_focal_loss", dict(alpha=[0.5, 0.5]), r"alpha.*2.*3"),
    ("categorical_focal_loss", dict(alpha=[0.5, -0.5, 0.5]), r"alpha"),
    ("combo_loss", dict(alpha=1.2), r"alpha.*1\.2"),
    ("combo_loss", dict(beta=-0.2), r"beta.*-0\.2"),
    ("combo_loss", dict(epsilon=-1e-5), r"epsilon"),
    ("combo_loss", dict(background_index=3), r"background_index"),
    ("hybrid_focal_loss", dict(weight=1.5), r"weight.*1\.5"),
    ("hybrid_focal_loss", dict(focal_gamma=-1.0), r"focal_gamma"),
    ("hybrid_focal_loss", dict(focal_alpha=[0.2, 0.8]), r"focal_alpha"),
    ("hybrid_focal_loss", dict(tversky_alpha=-0.3), r"tversky_alpha"),
    ("hybrid_focal_loss", dict(tversky_beta=-0.7), r"tversky_beta"),
    ("hybrid_focal_loss", dict(tversky_gamma=-0.75), r"tversky_gamma"),
    ("hybrid_focal_loss", dict(epsilon=-1.0), r"epsilon"),
    ("binary_crossentropy", dict(from_logits="softmax"), r"softmax"),
    ("binary_focal_loss", dict(from_logits="softmax"), r"softmax"),
]


@pytest.mark.parametrize("name, arguments, message", ERRORS, ids=[f"{e[0]}-{sorted(e[1])[0]}" for e in ERRORS])
def test_invalid_arguments(name, arguments, message):
    y_true, y_pred, _ = _inputs()
    with pytest.raises(ValueError, match=message):
        getattr(lossfns, name)(y_true, y_pred, **arguments)


@pytest.mark.parametrize("framework", ["numpy", "torch", "tensorflow"])
def test_binary_focal_out_of_range_label_hits_no_channel(framework):
    """Unvalidated labels outside [0, C) count as negative on every channel (as dense
    targets with an all-zero row): the labelled-channel gather must not fail on them."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 5, 3))
    labels = rng.integers(0, 3, size=(2, 5))
    labels[0, 1], labels[1, 4] = 7, -2
    dense = np.eye(3)[np.clip(labels, 0, 2)] * ((labels >= 0) & (labels < 3))[..., None]
    convert = {"numpy": np.asarray,
               "torch": lambda a: pytest.importorskip("torch").from_numpy(np.asarray(a)),
               "tensorflow": lambda a: pytest.importorskip("tensorflow").constant(a)}[framework]
    got = lossfns.binary_focal_loss(convert(labels), convert(logits), from_logits=True)
    expected = lossfns.binary_focal_loss(dense, logits, from_logits=True)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)
