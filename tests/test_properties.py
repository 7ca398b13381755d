"""Property-based tests (Hypothesis) over every loss in ``lossfns.registry.LOSSES``.

Each example draws a loss, hyperparameters from their valid ranges (SPEC §4-§6, §8) and
inputs: batch 1-4, 0-3 spatial axes, 1-6 classes, dense or sparse labels, masks (fully
masked samples included), probabilities or logits (exact 0/1, perfect predictions and
logits of ±1e4 included), float32 or float64. The properties hold for any valid input:

* values and torch gradients are finite (SPEC §9);
* region losses lie in [0, 1] (``TI <= 1`` because FP, FN >= 0), the other losses are
  non-negative except ``combo_loss``, which is at least ``-(1 - alpha)``;
* a per-sample loss does not depend on the other samples of the batch;
* permuting the classes together with per-class weights and ``background_index`` and
  moving the class axis change nothing (SPEC §2);
* NumPy, PyTorch and JAX agree in float64 to 1e-10 relative (SPEC §9).

Array contents come from a NumPy generator seeded by Hypothesis, so examples stay cheap
and a failing example is reproducible from its printed description.

Profiles: ``CI=true`` uses the derandomized ``ci`` profile; otherwise ``dev`` (fewer
examples, random). They are applied per test, so other test modules keep their settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossfns import domains as d
from lossfns.registry import LOSSES as REGISTERED

#: The property strategies know the SPEC ranges of these families; boundary, clDice,
#: Hausdorff and skeleton recall are covered by their own suites' edge grids and references:
#: their inputs (distance maps, morphology on a grid, skeletons, thresholded distance fields)
#: need strategies of their own.
LOSSES = tuple(s for s in REGISTERED if s.family not in {"boundary", "cldice", "hausdorff", "skeleton"})

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

REGION = {"tversky_loss", "focal_tversky_loss", "f1_loss", "iou_loss"}
#: Losses with a Tversky part whose γ is the Unified Focal one, restricted to [0, 1] (SPEC §6).
TVERSKY_PART_GAMMA = {"symmetric_focal_tversky_loss", "asymmetric_focal_tversky_loss",
                      "symmetric_unified_focal_loss", "asymmetric_unified_focal_loss"}
#: Unified Focal Tversky losses: means of ``(1 - mTI)^e`` terms, so also within [0, 1].
UNIT_INTERVAL = REGION | {"symmetric_focal_tversky_loss", "asymmetric_focal_tversky_loss"}
BINARY = {"binary_crossentropy", "binary_focal_loss"}
#: Per-class hyperparameters that follow the classes when they are permuted.
PER_CLASS = ("alpha", "focal_alpha", "class_weights")


def domain_values(domain, num_channels: int):
    """Valid values of a domain (``lossfns.domains``), its ends and plain numbers included.

    Unbounded reals are drawn up to their lower end + 3. A positive real is at least 1e-12:
    an ε that is subnormal in float32 (below 1.2e-38) overflows 1/ε in the gradient, an
    edge the docs state.
    """
    if isinstance(domain, d.OrNone):
        return st.none() | domain_values(domain.inner, num_channels)
    if isinstance(domain, d.Interval):
        low = domain.low
        high = low + 3.0 if domain.high is None else domain.high
        middle = (low + high) / 2
        return st.sampled_from([low, middle, high]) | st.floats(low + (1e-12 if low == 0 else 0.0), high)
    if isinstance(domain, d.PerClass):
        per_class = st.lists(st.floats(0.0, 2.0), min_size=num_channels, max_size=num_channels)
        return st.none() | per_class | (st.floats(0.0, 2.0) if domain.allow_scalar else st.nothing())
    if isinstance(domain, d.Smoothing):
        number = domain_values(d.Interval(low=0.0, high=0.1), num_channels)
        return number | (st.tuples(number, number) if domain.pair else st.nothing())
    if isinstance(domain, d.Choice):
        return st.sampled_from(domain.choices)
    if isinstance(domain, d.Boolean):
        return st.booleans()
    if isinstance(domain, d.Integer):
        return st.integers(domain.low or 0, (domain.low or 0) + 4)
    if type(domain).__name__ == "Percentage":  # top-k's k in (0, 100]
        return st.sampled_from([1.0, 10.0, 50.0, 100.0]) | st.floats(1e-3, 100.0)
    if type(domain).__name__ == "DistanceMatrix":
        return st.integers(0, 2**32 - 1).map(lambda seed: _distance_matrix(seed, num_channels))
    raise AssertionError(f"no strategy for the domain {domain!r}: add one here")


def _distance_matrix(seed: int, size: int) -> list:
    """A random ``size × size`` matrix of distances in [0, 2], zero diagonal, one entry 1."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(0.0, 2.0, (size, size)) * (rng.random((size, size)) < 0.8)
    np.fill_diagonal(matrix, 0.0)
    matrix[0, 1] = 1.0
    return matrix.tolist()


def hyperparameter_values(spec, name: str, num_channels: int):
    """Valid values of one hyperparameter, from its registry domain."""
    if spec.name in ("dice_focal_loss", "generalized_dice_focal_loss") and name == "alpha":
        # With a sigmoid activation the focal part is binary: None or one number in [0, 1].
        return st.none() | st.floats(0.0, 1.0)
    domain = next(h.domain for h in spec.hyperparameters if h.name == name)
    return domain_values(domain, num_channels)


@dataclass
class Case:
    """One drawn loss call: NumPy inputs plus keyword arguments (``class_axis=-1``)."""

    spec: object
    y_true: np.ndarray
    y_pred: np.ndarray
    mask: np.ndarray | None
    kwargs: dict
    labels: str
    description: dict = field(default_factory=dict)

    def __repr__(self):
        arrays = (f"y_true {self.y_true.dtype}{self.y_true.shape}, "
                  f"y_pred {self.y_pred.dtype}{self.y_pred.shape}")
        mask = "no mask" if self.mask is None else f"mask {self.mask.dtype}{self.mask.shape}"
        return f"Case({self.spec.name}, {arrays}, {mask}, {self.kwargs}, {self.description})"

    @property
    def sparse(self) -> bool:
        return self.labels.startswith("sparse")

    def call(self, convert=np.asarray, **changes):
        """The loss on converted copies of the inputs, with ``changes`` applied."""
        values = {"y_true": self.y_true, "y_pred": self.y_pred, "mask": self.mask, **self.kwargs, **changes}
        y_true, y_pred, mask = (values.pop(k) for k in ("y_true", "y_pred", "mask"))
        mask = None if mask is None else convert(mask)
        return self.spec.function(convert(y_true), convert(y_pred), mask=mask, **values)


def _dense_labels(rng, kind, shape, num_classes, present):
    """Dense ``[..., C]`` labels; ``present`` restricts one-hot labels to those classes."""
    elements = shape[:-1]
    if kind == "soft":
        soft = rng.random(shape)
        return soft / soft.sum(-1, keepdims=True) if num_classes > 1 else soft
    if kind == "multihot":
        return (rng.random(shape) < 0.4).astype(np.float64)
    index = rng.choice(present, size=elements)
    if num_classes == 1:
        onehot = index[..., None].astype(np.float64)  # a 0/1 map: class 1 is the foreground
    else:
        onehot = (index[..., None] == np.arange(num_classes)).astype(np.float64)
    return onehot.astype(bool) if kind == "bool" else onehot


def _probabilities(rng, kind, shape, dense_target):
    if kind == "perfect":
        return dense_target.astype(np.float64)
    if kind == "saturated":  # exact 0/1 guesses, mostly wrong
        return (rng.random(shape) < 0.5).astype(np.float64)
    if kind == "edges":
        return rng.choice([0.0, 1.0, 1e-12, 1.0 - 1e-12, 0.5], size=shape)
    p = rng.random(shape)
    if kind == "normalised" and shape[-1] > 1:
        p = p / p.sum(-1, keepdims=True)
    return p


def _logits(rng, kind, shape):
    if kind == "extreme":
        return np.where(rng.random(shape) < 0.5, -1e4, 1e4) * rng.choice([1.0, 0.5], size=shape)
    return rng.normal(scale=4.0, size=shape)


def _mask(rng, kind, element_shape, dtype):
    if kind is None:
        return None
    if kind == "per_sample":  # broadcastable [B, 1, ..., 1]
        return rng.random((element_shape[0],) + (1,) * (len(element_shape) - 1)).astype(dtype)
    if kind == "binary":
        return rng.random(element_shape) < 0.6
    weights = np.where(rng.random(element_shape) < 0.3, 0.0, rng.random(element_shape))
    if kind == "zero_sample":
        weights[0] = 0.0
    return weights.astype(dtype)


@st.composite
def cases(draw, specs=LOSSES, min_classes=1, shapes=None):
    """A :class:`Case` for one of ``specs``, of any shape or of one of ``shapes``."""
    spec = draw(st.sampled_from(specs))
    if shapes is None:
        batch_size = draw(st.integers(1, 4))
        spatial = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
        num_classes = draw(st.integers(min_classes, 6))
    else:
        batch_size, *spatial, num_classes = draw(st.sampled_from(shapes))
        spatial = tuple(spatial)
    num_channels = max(num_classes, 2)  # what the §5-§6 losses see after expanding one channel
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    shape = (batch_size,) + spatial + (num_classes,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    labels = draw(st.sampled_from(["onehot", "soft", "multihot", "bool", "sparse", "sparse_unit"]))
    present = list(range(num_channels)) if draw(st.booleans()) else [draw(st.integers(0, num_channels - 1))]
    if num_classes == 1 and not labels.startswith("sparse"):
        present = [c for c in present if c < 2]
    kwargs = {"batch": draw(st.booleans())}
    if labels.startswith("sparse"):
        index = rng.choice(present, size=shape[:-1])
        dense = (index[..., None] == np.arange(num_classes)) if num_classes > 1 else index[..., None]
        y_true = index.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
        if draw(st.booleans()):
            kwargs["ignore_index"] = 255
            y_true = np.where(rng.random(y_true.shape) < 0.3, 255, y_true).astype(y_true.dtype)
        if labels == "sparse_unit":
            y_true = y_true[..., None]
    else:
        y_true = dense = _dense_labels(rng, labels, shape, num_classes, present)

    logits_choices = [False, True, "sigmoid"]
    if num_classes > 1 and spec.name not in BINARY:
        logits_choices.append("softmax")
    if spec.logits_only:  # the Lovász hinge reads margins of logits
        logits_choices = [True]
    kwargs["from_logits"] = draw(st.sampled_from(logits_choices))
    if kwargs["from_logits"] is False:
        kind = draw(st.sampled_from(["uniform", "normalised", "perfect", "saturated", "edges"]))
        y_pred = _probabilities(rng, kind, shape, dense)
    else:
        kind = draw(st.sampled_from(["normal", "extreme"]))
        y_pred = _logits(rng, kind, shape)
    y_pred = y_pred.astype(dtype)
    if y_true.dtype.kind == "f":
        y_true = y_true.astype(dtype)
    mask_kind = draw(st.sampled_from([None, "weights", "binary", "zero_sample", "per_sample"]))
    mask = _mask(rng, mask_kind, shape[:-1], dtype)

    options = spec.options
    if "average" in options:
        kwargs["average"] = draw(st.sampled_from(["macro", "micro", "weighted"]))
        if draw(st.booleans()):
            kwargs["class_weights"] = draw(st.lists(st.floats(0.0, 2.0), min_size=num_classes,
                                                    max_size=num_classes))
        kwargs["include_background"] = num_classes == 1 or draw(st.booleans())
    if "background_index" in options:
        # Region-type losses and the Dice part of §12 see one channel as one class.
        one_channel_one_class = ("region", "dice_ce", "generalized_dice", "mcc", "lovasz")
        classes_seen = num_classes if spec.family in one_channel_one_class else num_channels
        kwargs["background_index"] = draw(st.integers(-classes_seen, classes_seen - 1))
    for h in spec.hyperparameters:
        kwargs[h.name] = draw(hyperparameter_values(spec, h.name, num_channels))
    description = {"labels_present": present, "prediction": kind, "mask": mask_kind}
    return Case(spec, y_true, y_pred, mask, kwargs, labels, description)


def as_torch(a, requires_grad=False):
    if isinstance(a, torch.Tensor):
        return a
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_(True) if requires_grad else t


def as_jax(a):
    return jnp.asarray(a)


# --- Finite values and gradients -------------------------------------------------------------


@PROFILE
@given(case=cases())
def test_values_and_gradients_are_finite(case):
    y_pred = as_torch(case.y_pred, requires_grad=True)
    loss = case.call(as_torch, y_pred=y_pred)
    expected_shape = () if case.kwargs["batch"] else case.y_pred.shape[:1]
    assert tuple(loss.shape) == expected_shape
    assert loss.dtype == y_pred.dtype
    assert torch.isfinite(loss).all(), loss
    loss.sum().backward()
    assert torch.isfinite(y_pred.grad).all(), y_pred.grad


# --- Ranges ----------------------------------------------------------------------------------


def _upper_bound(case) -> float:
    """1 for Tversky-type losses; ``Σ w`` over kept classes for weighted averages with weights."""
    kw = case.kwargs
    if case.spec.logits_only:
        return np.inf  # the Lovász hinge grows with the margin errors
    scale = 2.0 if case.spec.name == "mcc_loss" else 1.0  # 1 − MCC with MCC in [−1, 1]
    if kw.get("average") != "weighted" or kw.get("class_weights") is None:
        return scale
    weights = list(kw["class_weights"])
    if not kw["include_background"]:
        del weights[kw["background_index"]]
    return scale * sum(weights)


@PROFILE
@given(case=cases())
def test_values_lie_in_their_range(case):
    loss = np.asarray(case.call(y_pred=case.y_pred.astype(np.float64)))
    slack = 1e-12
    name = case.spec.name
    epsilon = case.kwargs.get("epsilon")
    if isinstance(epsilon, tuple) and epsilon[0] > epsilon[1]:
        # ε_n > ε_d (MONAI's smooth_nr > smooth_dr) lets a ratio exceed 1, and the loss go
        # below 0, as MONAI's does: no lower bound.
        pass
    elif name == "combo_loss":  # α·wCE ≥ 0 and DSC ≤ 1
        assert np.all(loss >= -(1.0 - case.kwargs["alpha"]) - slack), loss
    else:
        assert np.all(loss >= -slack), loss
    if name in UNIT_INTERVAL:
        assert np.all(loss <= _upper_bound(case) + slack), loss


# --- Independence of samples -----------------------------------------------------------------


@PROFILE
@given(case=cases())
def test_samples_do_not_depend_on_each_other(case):
    kw = dict(case.kwargs, batch=False)
    whole = np.asarray(case.call(**kw))
    for i in range(case.y_pred.shape[0]):
        one = slice(i, i + 1)
        alone = case.call(y_true=case.y_true[one], y_pred=case.y_pred[one],
                          mask=None if case.mask is None else case.mask[one], **kw)
        np.testing.assert_allclose(np.asarray(alone), whole[one], rtol=_rtol(case), atol=_atol(case))


def _rtol(case):
    return 1e-10 if case.y_pred.dtype == np.float64 else 1e-5


def _atol(case):
    return 1e-12 if case.y_pred.dtype == np.float64 else 1e-6


# --- Symmetries ------------------------------------------------------------------------------


def _permute_classes(case, order):
    """The case with class ``order[j]`` moved to position ``j`` everywhere it is named."""
    position = np.argsort(order)  # new index of each old class
    changes = {"y_pred": case.y_pred[..., order]}
    if case.sparse:
        ignore_index = case.kwargs.get("ignore_index")
        ignored = np.zeros(case.y_true.shape, bool) if ignore_index is None else case.y_true == ignore_index
        relabelled = position[np.where(ignored, 0, case.y_true).astype(np.int64)]
        changes["y_true"] = np.where(ignored, case.y_true, relabelled).astype(case.y_true.dtype)
    else:
        changes["y_true"] = case.y_true[..., order]
    for name in PER_CLASS:
        value = case.kwargs.get(name)
        if isinstance(value, list):
            changes[name] = [value[c] for c in order]
    if "background_index" in case.kwargs:
        changes["background_index"] = int(position[case.kwargs["background_index"]])
    if "distance_matrix" in case.kwargs:
        matrix = np.asarray(case.kwargs["distance_matrix"])
        changes["distance_matrix"] = matrix[np.ix_(order, order)].tolist()
    return changes


@PROFILE
@given(case=cases(min_classes=2), data=st.data())
def test_permuting_classes_changes_nothing(case, data):
    num_classes = case.y_pred.shape[-1]
    order = np.asarray(data.draw(st.permutations(range(num_classes)), label="order"))
    original = np.asarray(case.call())
    permuted = np.asarray(case.call(**_permute_classes(case, order)))
    np.testing.assert_allclose(permuted, original, rtol=_rtol(case) * 10, atol=_atol(case))


@PROFILE
@given(case=cases(), data=st.data())
def test_moving_the_class_axis_changes_nothing(case, data):
    ndim = case.y_pred.ndim
    target = data.draw(st.integers(1, ndim - 1), label="target axis")
    class_axis = data.draw(st.sampled_from([target, target - ndim]), label="class_axis")
    changes = {"y_pred": np.moveaxis(case.y_pred, -1, target), "class_axis": class_axis}
    if case.y_true.ndim == ndim:  # dense labels, or sparse ones with a size-1 class axis
        changes["y_true"] = np.moveaxis(case.y_true, -1, target)
    original = np.asarray(case.call())
    moved = np.asarray(case.call(**changes))
    np.testing.assert_allclose(moved, original, rtol=_rtol(case) * 10, atol=_atol(case))


# --- Backends agree --------------------------------------------------------------------------


def _float64(case):
    """The case in float64 (inputs already float32 become exact float64 values)."""
    def up(a):
        return a.astype(np.float64) if a is not None and a.dtype.kind == "f" else a

    return {"y_true": up(case.y_true), "y_pred": up(case.y_pred), "mask": up(case.mask)}


#: JAX compiles every operation once per shape, so this test draws from a few shapes
#: (every spatial rank, one and several classes) to keep its cost in check.
BACKEND_SHAPES = ((3, 2), (2, 5, 1), (1, 4, 3), (2, 3, 2, 4), (3, 2, 3, 2, 6))


#: Fewer examples than the other properties: the per-library reference tests (the ``xp``
#: fixture) and ``lossfns parity`` compare the libraries too; this adds random inputs.
@settings(PROFILE, max_examples=min(PROFILE.max_examples, 12))
@given(case=cases(shapes=BACKEND_SHAPES))
def test_numpy_torch_and_jax_agree_in_float64(case):
    inputs = _float64(case)
    expected = np.asarray(case.call(**inputs))
    assert expected.dtype == np.float64
    atol = 1e-12
    if case.spec.name == "mcc_loss" and case.kwargs["epsilon"] > 0:
        # MCC of a class with no negatives (or no positives) is 0/ε: the rounding left in
        # FP = P − TP, a few ulps of the n sums, comes out multiplied by 1/ε, and the
        # backends add in different orders. Allowed: 10 ulps per element over ε.
        elements = case.y_pred.size // case.y_pred.shape[0]
        atol = max(atol, 10 * np.finfo(np.float64).eps * elements / case.kwargs["epsilon"])
    for name, convert in (("torch", as_torch), ("jax", as_jax)):
        got = case.call(convert, **inputs)
        got = got.detach().numpy() if name == "torch" else np.asarray(got)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=atol, err_msg=name)


def test_every_hyperparameter_has_a_strategy():
    """A new kind of domain in the registry needs a strategy in this module."""
    for spec in LOSSES:
        for h in spec.hyperparameters:
            hyperparameter_values(spec, h.name, 3)
