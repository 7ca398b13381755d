"""The bad-input catalogue of SPEC §8: every error, its type, and a message naming the argument.

Each error must be a ``ValueError`` or ``TypeError`` raised before any computation, whose
message names the argument (by its own name: ``focal_gamma``, not ``gamma``), what was
expected and what was received. Value checks that need the data (labels in range,
probabilities in [0, 1]) run only with ``validate=True``, in eager mode; inside
``jax.jit``, ``torch.compile(fullgraph=True)`` and ``tf.function`` they do nothing.

Each hyperparameter's domain is declared once, in the registry (``lossfns.domains``); its
invalid values come from there. The SPEC's ranges are written out here once more, by hand
(:data:`SPEC_RANGES`), and compared with the registry's domains, so a domain that is too
lax or too strict fails here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossfns
from lossfns.registry import LOSSES

BY_NAME = {name: spec for spec in LOSSES for name in (spec.name, *spec.aliases)}
REGION = [s for s in LOSSES if s.family == "region"]
# Losses whose first argument is y_true (the boundary loss takes distance_maps: test_boundary.py).
LABELLED = [s for s in LOSSES if s.takes_labels]
#: Labelled losses with ignore_index (the Hausdorff and skeleton recall losses have none).
IGNORING = [s for s in LABELLED if "ignore_index" in s.options]
WITH_BACKGROUND = [s for s in LOSSES if "background_index" in s.options]
BINARY = [BY_NAME["binary_crossentropy"], BY_NAME["binary_focal_loss"]]
TVERSKY_PART_GAMMA = {"symmetric_focal_tversky_loss", "asymmetric_focal_tversky_loss",
                      "symmetric_unified_focal_loss", "asymmetric_unified_focal_loss"}
#: A few losses, one per family, for the checks that run per backend.
SAMPLE = ["dice_loss", "categorical_crossentropy", "binary_focal_loss", "combo_loss",
          "asymmetric_unified_focal_loss"]


def _ids(specs):
    return [s.name for s in specs]


def good_inputs(shape=(2, 4, 4, 2)):
    """One-hot labels and probabilities that every loss accepts."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    y_true = (labels[..., None] == np.arange(shape[-1])).astype(np.float64)
    y_pred = rng.uniform(0.1, 0.9, size=shape)
    return y_true, y_pred


def call(spec, y_true, y_pred, **arguments):
    """``spec``'s core function, given the values of its required hyperparameters (the
    Wasserstein Dice's ``distance_matrix``) for ``y_pred``'s classes unless ``arguments`` has them."""
    classes = np.shape(y_pred)[-1] if np.ndim(y_pred) else 2
    return spec.function(y_true, y_pred, **{**spec.example_arguments(classes), **arguments})


def names(argument: str) -> str:
    """A pattern for a message that names ``argument`` as a whole word."""
    return rf"(?<![\w.]){re.escape(argument)}(?!\w)"


def raises(exc, *arguments):
    """``pytest.raises`` for a message naming every one of ``arguments``."""
    return pytest.raises(exc, match="".join(f"(?=.*{names(a)})" for a in arguments))


# --- Hyperparameters out of range (SPEC §6, §8) ----------------------------------------------


#: SPEC §4-§6, §8, §12-§18 and §20: what each hyperparameter accepts, written from the
#: contract (``(low, high)`` for a real interval, a tuple of names for a choice).
UNIT, NONNEGATIVE = (0.0, 1.0), (0.0, None)


def spec_range(spec, name):
    if name in ("delta", "weight", "label_smoothing") or (spec.name == "combo_loss" and name in ("alpha", "beta")):
        return UNIT
    if spec.name in ("binary_focal_loss", "dice_cldice_loss") and name == "alpha":
        return "optional unit" if spec.name == "binary_focal_loss" else UNIT
    if name == "focal_alpha" or (spec.name in ("categorical_focal_loss", "dice_focal_loss",
                                                "generalized_dice_focal_loss") and name == "alpha"):
        return "per class or one number"
    if name == "ce_class_weights":  # SPEC §21
        return "per class"
    if name == "gamma" and spec.name in TVERSKY_PART_GAMMA:
        return UNIT
    if name == "epsilon":  # SPEC §21: a pair wherever ε is in both terms of a ratio
        return NONNEGATIVE if spec.name == "mcc_loss" else "number or pair"
    if name in ("gamma", "focal_gamma", "tversky_gamma", "alpha", "beta", "tversky_alpha",
                "tversky_beta", "ce_weight", "dice_weight", "focal_weight", "gdl_weight"):
        return NONNEGATIVE
    if name == "classes":
        return ("present", "all")
    if name == "weighting":
        if spec.name == "generalized_wasserstein_dice_loss":
            return ("default", "gdl")
        return ("square", "simple", "uniform")
    if name == "iterations":
        return "int >= 0"
    if name in ("squared_pred", "log"):  # SPEC §21, §22 (Hausdorff)
        return "bool"
    if name == "k":  # SPEC §22: top-k, a percentage
        return (0.0, 100.0)
    if name == "distance_matrix":  # SPEC §22, §23
        return "distance matrix"
    raise AssertionError(f"no SPEC range known for {spec.name}({name}=...): add it here")


def _domain_range(domain):
    """The registry domain in :func:`spec_range`'s terms."""
    from lossfns import domains as d

    if isinstance(domain, d.Interval):
        return (domain.low, domain.high)
    if isinstance(domain, d.Smoothing):
        return "number or pair" if domain.pair else (0.0, None)
    if isinstance(domain, d.OrNone) and domain.inner == d.UNIT_INTERVAL:
        return "optional unit"
    if isinstance(domain, d.PerClass):
        return "per class or one number" if domain.allow_scalar else "per class"
    if isinstance(domain, d.Choice):
        return tuple(domain.choices)
    if isinstance(domain, d.Integer) and domain.low == 0:
        return "int >= 0"
    if isinstance(domain, d.Boolean):
        return "bool"
    if type(domain).__name__ == "Percentage":
        return (0.0, 100.0)
    if type(domain).__name__ == "DistanceMatrix":
        return "distance matrix"
    return repr(domain)


@pytest.mark.parametrize("spec", LOSSES, ids=_ids(LOSSES))
def test_registry_domains_follow_the_spec(spec):
    for h in spec.hyperparameters:
        assert _domain_range(h.domain) == spec_range(spec, h.name), f"{spec.name}({h.name}=...)"


def bad_values(spec, name):
    """Values outside the registry domain of one hyperparameter (each a ValueError naming it);
    none for a flag, whose only mistake is its type."""
    return list(next(h for h in spec.hyperparameters if h.name == name).domain.invalid_examples())


HYPERPARAMETER_CASES = [
    pytest.param(spec, h.name, value, id=f"{spec.name}-{h.name}={value}")
    for spec in LOSSES for h in spec.hyperparameters for value in bad_values(spec, h.name)
]
HYPERPARAMETERS = [pytest.param(spec, h.name, id=f"{spec.name}-{h.name}")
                   for spec in LOSSES for h in spec.hyperparameters
                   if not isinstance(h.default, str)]  # a named choice (weighting): any str is a value


@pytest.mark.parametrize("spec, name, value", HYPERPARAMETER_CASES)
def test_hyperparameter_out_of_range(spec, name, value):
    y_true, y_pred = good_inputs()
    with raises(ValueError, name) as info:
        call(spec, y_true, y_pred, **{name: value})
    assert _shows_received(value, str(info.value)), "the message shows the value received"
    with raises(ValueError, name):  # the adapters validate through the registry
        spec.validate(**{name: value})


def _shows_received(value, message: str) -> bool:
    """The value received is in ``message``: a pair's bad last entry; for a distance
    matrix, the bad entry or what is wrong with its shape (``got ...``)."""
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return "got" in message and (any(str(x) in message.split("got")[-1] for row in value for x in row)
                                     or "rows" in message or "zeros" in message)
    return str(value[-1] if isinstance(value, list) else value) in message


@pytest.mark.parametrize("spec, name", HYPERPARAMETERS)
def test_hyperparameter_of_the_wrong_type(spec, name):
    y_true, y_pred = good_inputs()
    with raises(TypeError, name):
        call(spec, y_true, y_pred, **{name: "0.5"})
    with raises(TypeError, name):
        spec.validate(**{name: "0.5"})


@pytest.mark.parametrize("spec", [BY_NAME["focal_tversky_loss"], BY_NAME["hybrid_focal_loss"],
                                  BY_NAME["symmetric_focal_loss"]], ids=lambda s: s.name)
def test_gamma_above_one_is_allowed_without_a_unified_tversky_part(spec):
    """γ > 1 is only forbidden where the exponent is ``1 - γ`` (SPEC §6)."""
    y_true, y_pred = good_inputs()
    name = "tversky_gamma" if spec.name == "hybrid_focal_loss" else "gamma"
    assert np.isfinite(call(spec, y_true, y_pred, **{name: 2.5})).all()


def test_registry_rejects_unknown_arguments():
    with raises(TypeError, "gama"):
        BY_NAME["focal_tversky_loss"].validate(gama=0.5)


# --- Inputs (SPEC §2, §8) --------------------------------------------------------------------


@pytest.mark.parametrize("spec", LABELLED, ids=_ids(LABELLED))
def test_shapes_that_do_not_match(spec):
    _, y_pred = good_inputs()
    target = spec.target_argument
    with raises(ValueError, target, "y_pred") as info:
        call(spec, np.zeros((2, 4, 4, 3), dtype=np.int64), y_pred)
    assert "(2, 4, 4, 3)" in str(info.value) and "(2, 4, 4, 2)" in str(info.value)
    with raises(ValueError, target, "y_pred"):  # sparse labels with a wrong spatial size
        call(spec, np.zeros((2, 4, 3), dtype=np.int64), y_pred)


@pytest.mark.parametrize("spec", LOSSES, ids=_ids(LOSSES))
def test_integer_predictions(spec):
    y_true, y_pred = good_inputs()
    with raises(TypeError, "y_pred") as info:
        call(spec, y_true, (y_pred * 10).astype(np.int32))
    assert "int32" in str(info.value)


@pytest.mark.parametrize("spec", LOSSES, ids=_ids(LOSSES))
def test_unknown_from_logits(spec):
    y_true, y_pred = good_inputs()
    for value in ("relu", 1, None):
        with raises(ValueError, "from_logits"):
            call(spec, y_true, y_pred, from_logits=value)


@pytest.mark.parametrize("spec", IGNORING, ids=_ids(IGNORING))
def test_ignore_index_with_dense_labels(spec):
    y_true, y_pred = good_inputs()
    with raises(ValueError, "ignore_index"):
        call(spec, y_true, y_pred, ignore_index=255)
    with raises(TypeError, "ignore_index"):
        call(spec, np.zeros((2, 4, 4), dtype=np.int64), y_pred, ignore_index=1.5)


@pytest.mark.parametrize("spec", LOSSES, ids=_ids(LOSSES))
def test_class_axis_out_of_range(spec):
    y_true, y_pred = good_inputs()
    for axis in (4, -5, 0, -4):  # 0 and -4 are the batch axis
        with raises(ValueError, "class_axis") as info:
            call(spec, y_true, y_pred, class_axis=axis)
        assert str(axis) in str(info.value)
    with raises(TypeError, "class_axis"):
        call(spec, y_true, y_pred, class_axis=1.0)


@pytest.mark.parametrize("spec", LABELLED, ids=_ids(LABELLED))
def test_mixed_array_libraries(spec):
    torch = pytest.importorskip("torch")
    y_true, y_pred = good_inputs()
    if spec.target_kind == "skeletons":
        y_true = np.argmax(y_true, axis=-1)
    target = spec.target_argument
    with raises(TypeError, target, "y_pred") as info:
        call(spec, y_true, torch.from_numpy(y_pred))
    assert "torch" in str(info.value) and "numpy" in str(info.value)
    with raises(TypeError, "mask", target):
        call(spec, torch.from_numpy(y_true), torch.from_numpy(y_pred), mask=np.ones((2, 4, 4)))


@pytest.mark.parametrize("spec", LOSSES, ids=_ids(LOSSES))
def test_mask_of_the_wrong_shape(spec):
    y_true, y_pred = good_inputs()
    for shape in ((2, 4, 3), (2, 4, 4, 2), (3, 4, 4)):
        with raises(ValueError, "mask"):
            call(spec, y_true, y_pred, mask=np.ones(shape))


@pytest.mark.parametrize("spec", LABELLED, ids=_ids(LABELLED))
def test_other_input_errors(spec):
    y_true, y_pred = good_inputs()
    with raises(TypeError, spec.target_argument):  # sparse labels must be integers
        call(spec, np.zeros((2, 4, 4)), y_pred)
    with raises(TypeError, "y_pred"):
        call(spec, y_true, y_pred.tolist())
    with raises(ValueError, "y_pred"):
        call(spec, np.zeros(3), np.full(3, 0.5))
    with raises(TypeError, "batch"):
        call(spec, y_true, y_pred, batch=1)
    with raises(TypeError, "validate"):
        call(spec, y_true, y_pred, validate="yes")


@pytest.mark.parametrize("spec", REGION, ids=_ids(REGION))
def test_region_options(spec):
    y_true, y_pred = good_inputs()
    with raises(ValueError, "average") as info:
        spec.function(y_true, y_pred, average="mean")
    assert "'mean'" in str(info.value)
    with raises(ValueError, "class_weights") as info:
        spec.function(y_true, y_pred, average="weighted", class_weights=[1.0, 2.0, 3.0])
    assert "3" in str(info.value) and "2" in str(info.value)
    with raises(ValueError, "class_weights"):
        spec.function(y_true, y_pred, average="weighted", class_weights=[1.0, -2.0])
    with raises(TypeError, "class_weights"):
        spec.function(y_true, y_pred, average="weighted", class_weights="ab")
    with raises(TypeError, "include_background"):
        spec.function(y_true, y_pred, include_background=1)
    with raises(ValueError, "include_background"):  # nothing would be left to average
        spec.function(y_true[..., :1], y_pred[..., :1], include_background=False)


@pytest.mark.parametrize("spec, name", [(BY_NAME["categorical_focal_loss"], "alpha"),
                                        (BY_NAME["hybrid_focal_loss"], "focal_alpha")],
                         ids=["categorical_focal_loss", "hybrid_focal_loss"])
def test_per_class_focal_alpha_of_the_wrong_length(spec, name):
    y_true, y_pred = good_inputs()
    with raises(ValueError, name):
        spec.function(y_true, y_pred, **{name: [0.25, 0.5, 0.25]})


@pytest.mark.parametrize("spec", WITH_BACKGROUND, ids=_ids(WITH_BACKGROUND))
def test_background_index_out_of_range(spec):
    y_true, y_pred = good_inputs()
    for index in (2, -3):
        with raises(ValueError, "background_index") as info:
            call(spec, y_true, y_pred, background_index=index)
        assert str(index) in str(info.value)


@pytest.mark.parametrize("spec", BINARY, ids=_ids(BINARY))
def test_softmax_on_a_binary_loss(spec):
    y_true, y_pred = good_inputs()
    with raises(ValueError, "from_logits") as info:
        spec.function(y_true, y_pred, from_logits="softmax")
    assert "softmax" in str(info.value)


def test_softmax_over_one_class():
    y_true, y_pred = good_inputs((2, 3, 1))
    with raises(ValueError, "from_logits"):
        lossfns.dice_loss(y_true, y_pred, from_logits="softmax")


def test_all_reduce_needs_batch():
    y_true, y_pred = good_inputs()
    with raises(ValueError, "all_reduce"):
        lossfns.dice_loss(y_true, y_pred, all_reduce=lambda x: x)


# --- validate=True: data checks, eager only --------------------------------------------------


def _bad_data(kind):
    """``(y_true, y_pred, argument, value)``: inputs with one bad value (3 classes)."""
    y_true, y_pred = good_inputs((2, 3, 3))
    labels = np.argmax(y_true, axis=-1)
    if kind == "label-too-large":
        labels[1, 2] = 7
        return labels, y_pred, "y_true", "7"
    if kind == "label-negative":
        labels[0, 0] = -2
        return labels, y_pred, "y_true", "-2"
    if kind == "soft-label-above-one":
        y_true[0, 1, 0] = 1.5
        return y_true, y_pred, "y_true", "1.5"
    bad = 1.25 if kind == "probability-above-one" else -0.25
    y_pred[1, 0, 2] = bad
    return y_true, y_pred, "y_pred", str(bad)


BAD_DATA = ["label-too-large", "label-negative", "soft-label-above-one",
            "probability-above-one", "probability-negative"]


def _convert(xp, a):
    return xp.asarray(a, dtype=np.int64 if a.dtype.kind in "iu" else None)


@pytest.mark.parametrize("kind", BAD_DATA)
def test_validate_catches_bad_data_eagerly(xp, kind):
    y_true, y_pred, argument, value = _bad_data(kind)
    for name in SAMPLE:
        loss = getattr(lossfns, name)
        args = (_convert(xp, y_true), _convert(xp, y_pred))
        if not kind.startswith("label"):  # out-of-range labels would break a gather
            loss(*args)  # unchecked by default: no data-dependent work
        with raises(ValueError, argument):
            loss(*args, validate=True)


@pytest.mark.parametrize("kind", BAD_DATA)
def test_validate_message_shows_the_value_received(kind):
    """SPEC §8: the message says what was received, here the offending value."""
    y_true, y_pred, argument, value = _bad_data(kind)
    with raises(ValueError, argument) as info:
        lossfns.dice_loss(y_true, y_pred, validate=True)
    assert value in str(info.value)


def test_validate_accepts_good_data(xp):
    y_true, y_pred = good_inputs((2, 3, 3))
    labels = np.argmax(y_true, axis=-1)
    labels[0, 0] = 255
    for name in SAMPLE:
        loss = getattr(lossfns, name)
        loss(_convert(xp, y_true), _convert(xp, y_pred), validate=True)
        loss(_convert(xp, labels), _convert(xp, y_pred), validate=True, ignore_index=255)
        # Logits may take any value; single-channel 0/1 label maps are valid labels.
        loss(_convert(xp, labels), _convert(xp, y_pred * 40 - 20), validate=True, ignore_index=255,
             from_logits=True)
        loss(_convert(xp, labels % 2), _convert(xp, y_pred[..., :1]), validate=True)


def traced_losses(kind, others):
    """Losses to trace with bad data. Out-of-range labels make a gather fail in eager torch
    and TensorFlow on CPU (no validation involved), so those go to gather-free losses."""
    return ("dice_loss", "binary_focal_loss") if kind.startswith("label") else others


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
@pytest.mark.parametrize("kind", BAD_DATA)
def test_validate_is_a_no_op_under_jax_jit(kind):
    jax = pytest.importorskip("jax")
    y_true, y_pred, _, _ = _bad_data(kind)
    for name in SAMPLE:
        loss = jax.jit(lambda t, p, f=getattr(lossfns, name): f(t, p, validate=True))
        assert loss(jax.numpy.asarray(y_true), jax.numpy.asarray(y_pred)).shape == (2,)


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
@pytest.mark.parametrize("kind", ["label-too-large", "probability-above-one"])
def test_validate_is_a_no_op_under_torch_compile(kind):
    torch = pytest.importorskip("torch")
    y_true, y_pred, _, _ = _bad_data(kind)
    for name in traced_losses(kind, ("categorical_crossentropy", "asymmetric_unified_focal_loss")):
        compiled = torch.compile(lambda t, p, f=getattr(lossfns, name): f(t, p, validate=True),
                                 fullgraph=True, backend="eager")
        assert compiled(torch.from_numpy(y_true), torch.from_numpy(y_pred)).shape == (2,)


@pytest.mark.slow  # traced (jit, compile, tf.function) or JAX eager
@pytest.mark.parametrize("kind", BAD_DATA)
def test_validate_is_a_no_op_under_tf_function(kind):
    tf = pytest.importorskip("tensorflow")
    y_true, y_pred, _, _ = _bad_data(kind)
    for name in traced_losses(kind, ("dice_loss", "asymmetric_unified_focal_loss")):
        loss = tf.function(lambda t, p, f=getattr(lossfns, name): f(t, p, validate=True))
        assert tuple(loss(tf.constant(y_true), tf.constant(y_pred)).shape) == (2,)


# --- Adapters: the same catalogue at construction and call time ------------------------------

FRAMEWORKS = ("torch", "jax", "keras")


def adapter(framework):
    """The adapter module (skips where the framework is missing; CI installs all)."""
    pytest.importorskip(framework)
    return pytest.importorskip(f"lossfns.adapters.{framework}")


def _to(framework, a):
    if a is None:
        return None
    if framework == "torch":
        import torch

        return torch.from_numpy(np.asarray(a))
    if framework == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        return jax.numpy.asarray(a)
    return np.asarray(a)  # Keras converts NumPy inputs to backend tensors itself


def build(framework, spec, **arguments):
    """The torch/Keras loss object; for JAX, a call of the function on good inputs.

    The torch layout is channels-first by default; these inputs are channels-last, so the
    torch adapter gets ``class_axis=-1`` unless a test sets it.
    """
    module = adapter(framework)
    arguments = {**spec.example_arguments(2), **arguments}
    if framework == "jax":
        y_true, y_pred = good_inputs()
        return getattr(module, spec.name)(_to("jax", y_pred), _to("jax", y_true), **arguments)
    if framework == "torch":
        arguments.setdefault("class_axis", -1)
    return getattr(module, spec.class_name)(**arguments)


def evaluate(framework, spec, y_true, y_pred, mask=None, **arguments):
    """The adapter's loss on NumPy inputs, in the framework's own argument order."""
    module = adapter(framework)
    if framework == "jax":
        return getattr(module, spec.name)(_to("jax", y_pred), _to("jax", y_true), mask=_to("jax", mask),
                                          **arguments)
    loss = build(framework, spec, **arguments)
    if framework == "torch":
        return loss(_to("torch", y_pred), _to("torch", y_true), mask=_to("torch", mask))
    return loss(y_true, y_pred) if mask is None else loss(y_true, y_pred, sample_weight=mask)


ADAPTER_HYPERPARAMETER_CASES = [
    pytest.param(framework, *case.values, id=f"{framework}-{case.id}")
    for framework in FRAMEWORKS for case in HYPERPARAMETER_CASES
]


@pytest.mark.parametrize("framework, spec, name, value", ADAPTER_HYPERPARAMETER_CASES)
def test_adapter_hyperparameter_out_of_range(framework, spec, name, value):
    with raises(ValueError, name) as info:
        build(framework, spec, **{name: value})
    assert _shows_received(value, str(info.value))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adapter_arguments_of_the_wrong_type_or_name(framework):
    for spec in LOSSES:
        for h in spec.hyperparameters:
            if isinstance(h.default, str):  # a named choice (weighting, classes): a str is the right type
                continue
            with raises(TypeError, h.name):
                build(framework, spec, **{h.name: "0.5"})
        with raises(TypeError, "gama"):
            build(framework, spec, gama=0.5)
        for option, value in (("class_axis", "1"), ("batch", 1), ("validate", "yes"), ("ignore_index", 1.5)):
            with raises(TypeError, option):
                build(framework, spec, **{option: value})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adapter_option_values(framework):
    for spec in LOSSES:
        with raises(ValueError, "from_logits"):
            build(framework, spec, from_logits="relu")
    for spec in REGION:
        with raises(ValueError, "average"):
            build(framework, spec, average="mean")
        with raises(ValueError, "class_weights"):
            build(framework, spec, average="weighted", class_weights=[1.0, -1.0])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adapter_softmax_on_a_binary_loss_fails_early(framework):
    for spec in BINARY:
        with raises(ValueError, "from_logits"):
            build(framework, spec, from_logits="softmax")


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_adapter_unknown_reduction(framework):
    with raises(ValueError, "reduction"):
        build(framework, BY_NAME["f1_loss"], reduction="avg")


def test_torch_process_group_needs_batch():
    with raises(ValueError, "process_group"):
        build("torch", BY_NAME["f1_loss"], process_group=object())


def test_jax_axis_name_needs_batch():
    with raises(ValueError, "axis_name"):
        build("jax", BY_NAME["f1_loss"], axis_name="devices")


@pytest.mark.parametrize("name", ["lovasz_softmax_loss", "lovasz_hinge_loss", "topk_loss"])
def test_replica_group_refused_for_a_non_additive_loss(name):
    # Refused when the object or call is made, not at the first distributed step.
    with raises(ValueError, "process_group", "additive"):
        build("torch", BY_NAME[name], process_group=object(), batch=True)
    with raises(ValueError, "axis_name", "additive"):
        build("jax", BY_NAME[name], axis_name="devices", batch=True)


def test_keras_confusion_loss_is_abstract():
    keras_adapter = adapter("keras")
    with pytest.raises(TypeError, match="ConfusionLoss"):
        keras_adapter.ConfusionLoss()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adapter_call_errors(framework):
    y_true, y_pred = good_inputs()
    labels = np.argmax(y_true, axis=-1)
    for name in SAMPLE:
        spec = BY_NAME[name]
        with raises(ValueError, "y_true", "y_pred") as info:
            evaluate(framework, spec, labels[:, :3], y_pred)
        assert "(2, 3, 4)" in str(info.value) and "(2, 4, 4, 2)" in str(info.value)
        with raises(ValueError, "class_axis"):
            evaluate(framework, spec, y_true, y_pred, class_axis=4)
    with raises(ValueError, "class_weights"):
        evaluate(framework, BY_NAME["f1_loss"], y_true, y_pred, average="weighted", class_weights=[1.0] * 3)
    with raises(ValueError, "background_index"):
        evaluate(framework, BY_NAME["asymmetric_unified_focal_loss"], labels, y_pred, background_index=2)
    if framework != "keras":  # Keras casts y_pred to its dtype first, as every Keras loss does
        with raises(TypeError, "y_pred"):
            evaluate(framework, BY_NAME["f1_loss"], labels, (y_pred * 10).astype(np.int64))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adapter_mask_of_the_wrong_shape(framework):
    y_true, y_pred = good_inputs()
    for name in SAMPLE:
        with raises(ValueError, "mask"):
            evaluate(framework, BY_NAME[name], y_true, y_pred, mask=np.ones((2, 4, 3)))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ["label-too-large", "probability-above-one"])
def test_adapter_validate_catches_bad_data_eagerly(framework, kind):
    y_true, y_pred, argument, _ = _bad_data(kind)
    for name in ("dice_loss", "asymmetric_unified_focal_loss"):
        with raises(ValueError, argument):
            evaluate(framework, BY_NAME[name], y_true, y_pred, validate=True)


@pytest.mark.parametrize("kind", ["label-too-large", "probability-above-one"])
def test_adapter_validate_is_a_no_op_when_traced(kind):
    y_true, y_pred, _, _ = _bad_data(kind)
    spec = BY_NAME["dice_loss"]

    torch = pytest.importorskip("torch")
    module = build("torch", spec, validate=True, reduction="none")
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    assert compiled(torch.from_numpy(y_pred), torch.from_numpy(y_true)).shape == (2,)

    jax = pytest.importorskip("jax")
    function = getattr(adapter("jax"), spec.name)
    jitted = jax.jit(lambda p, t: function(p, t, validate=True))
    assert jitted(_to("jax", y_pred), _to("jax", y_true)).shape == (2,)

    tf = pytest.importorskip("tensorflow")
    keras_loss = build("keras", spec, validate=True, reduction=None)
    if adapter("keras").keras.backend.backend() == "tensorflow":
        traced = tf.function(lambda t, p: keras_loss(t, p))
        assert tuple(traced(tf.constant(y_true), tf.constant(y_pred)).shape) == (2,)
