"""The Keras adapter on the tensorflow, jax and torch backends (SPEC §7).

Keras fixes its backend at import, so each backend runs ``keras_backend_check.py`` once in a
subprocess (everything for that backend, well under a minute) and the tests here assert on
the JSON report it writes. Expected values come from the core on NumPy arrays, expected
gradients from PyTorch's gradient of the core, both float64.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_backend_check as check
from lossfns import registry

BACKENDS = ("tensorflow", "jax", "torch")
CLASSES = [(spec, name) for spec in registry.LOSSES for name in registry.class_names(spec)]
CLASS_IDS = [name for _, name in CLASSES]
TFMRI = {"TverskyLoss": "tversky_loss", "FocalTverskyLoss": "focal_tversky_loss",
         "F1Loss": "f1_loss", "IoULoss": "iou_loss"}
RTOL, ATOL = 1e-10, 1e-12  # float64 (SPEC §9)
SCRIPT = Path(__file__).with_name("keras_backend_check.py")


@functools.lru_cache(maxsize=None)
def _run(backend: str, directory: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_ENABLE_X64="1", TF_CPP_MIN_LOG_LEVEL="3")
    root = str(SCRIPT.parent.parent)  # the checkout, in case lossfns is not installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    output = os.path.join(directory, f"keras_{backend}.json")
    result = subprocess.run([sys.executable, str(SCRIPT), output], env=env, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:  # cached too: one failed run, not one per test
        return {"failed": f"keras_backend_check.py failed on {backend}:\n{result.stderr[-4000:]}"}
    with open(output) as handle:
        return json.load(handle)


@pytest.fixture(params=BACKENDS)
def report(request, tmp_path_factory):
    """The report of one backend, computed once per test session."""
    pytest.importorskip("keras")
    if importlib.util.find_spec(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    report = _run(request.param, str(tmp_path_factory.getbasetemp()))
    if "failed" in report:
        raise AssertionError(report["failed"])
    return report


def entry_of(section: dict, key: str) -> dict:
    entry = section[key]
    assert "error" not in entry, entry.get("error")
    return entry


def torch_gradient(spec, case, options):
    """Gradient of the mean per-sample core loss with respect to ``y_pred``, by PyTorch."""
    torch = pytest.importorskip("torch")
    y_true, y_pred = check.make_inputs(case, spec=spec)
    y_pred = torch.tensor(y_pred, requires_grad=True)
    y_true = torch.from_numpy(y_true.astype(np.int64) if y_true.dtype.kind == "i" else y_true)
    spec.function(y_true, y_pred, **options).mean().backward()
    return y_pred.grad.numpy()


def test_report_covers_the_backend(report):
    assert report["backend"] in BACKENDS
    assert set(report["values"]) == set(CLASS_IDS)
    print(report["backend"], report["seconds"])  # shown with -s: the budget is ~60 s a backend


@pytest.mark.parametrize(("spec", "class_name"), CLASSES, ids=CLASS_IDS)
def test_values_reductions_weights_and_gradient(report, spec, class_name):
    entry = entry_of(report["values"], class_name)
    case = entry["case"]
    options = check.options_of(case, spec)
    y_true, y_pred = check.make_inputs(case, spec=spec)
    per_sample = np.asarray(spec.function(y_true, y_pred, **options))
    weights, element_weight = check.make_weights()
    masked = np.asarray(spec.function(y_true, y_pred, mask=element_weight, **options))
    close = functools.partial(np.testing.assert_allclose, rtol=RTOL, atol=ATOL)
    close(entry["None"], per_sample)
    close(entry["sum"], per_sample.sum())
    if report["backend"] == "torch":
        # Keras' torch backend divides in float32 (ops.divide_no_nan drops float64), so its
        # averaging reductions, and the gradients through them, are float32-accurate only.
        close = functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-9)
    close(entry["sum_over_batch_size"], per_sample.mean())
    close(entry["sample_weight"], (weights * per_sample).sum() / len(per_sample))  # Keras' weighting
    close(entry["element_weight"], masked.mean())  # element weights become the core's mask
    close(entry["gradient"], torch_gradient(spec, case, options))


@pytest.mark.parametrize(("spec", "class_name"), CLASSES, ids=CLASS_IDS)
def test_config_round_trip(report, spec, class_name):
    entry = entry_of(report["configs"], class_name)
    changed = check.changed_hyperparameters(spec)
    options = {"batch": True, "reduction": "sum", "name": "custom", "dtype": "float64"}
    assert entry["config"] == json.loads(json.dumps({**changed, **options}))  # tuples as lists
    assert entry["from_config"] and entry["deserialized_config"]
    assert entry["deserialized_class"] == class_name
    y_true, y_pred = check.make_inputs("sparse", spec=spec)
    expected = float(spec.function(y_true, y_pred, batch=True, **changed))
    np.testing.assert_allclose(entry["value"], expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(entry["revived_value"], expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("spec", "class_name"), CLASSES, ids=CLASS_IDS)
def test_class_names_defaults_and_bases(report, spec, class_name):
    entry = report["classes"][class_name]
    default_name = dict(zip(registry.class_names(spec), (spec.name, *spec.aliases)))[class_name]
    assert entry["name"] == default_name and entry["defaults"]["name"] == default_name
    assert entry["reduction"] == "sum_over_batch_size" and entry["keras_loss"]
    assert entry["registered_name"] == f"lossfns>{class_name}"
    assert entry["confusion_loss"] == (spec.family == "region")
    for h in spec.hyperparameters:
        assert entry["defaults"][h.name] == (check.REQUIRED if h.default is registry.REQUIRED else h.default)
    assert entry["defaults"]["class_axis"] == -1
    # Hyperparameters may be positional, in order (tensorflow-mri style); nothing else may.
    assert entry["positional"] == [h.name for h in spec.hyperparameters]


def test_tensorflow_mri_names(report):
    for class_name, name in TFMRI.items():
        assert report["classes"][class_name]["name"] == name
        assert report["classes"][class_name]["confusion_loss"]
    focal = report["classes"]["FocalTverskyLoss"]["defaults"]
    assert (focal["alpha"], focal["beta"], focal["gamma"], focal["epsilon"]) == (0.3, 0.7, 0.75, 1e-5)
    assert report["classes"]["TverskyLoss"]["defaults"]["average"] == "macro"


def test_confusion_loss_is_abstract_and_extensible(report):
    entry = report["classes"]["ConfusionLoss"]
    assert entry["abstract_error"] and "abstract" in entry["abstract_error"]
    np.testing.assert_allclose(entry["custom"], entry["f1"], rtol=RTOL)


@pytest.mark.parametrize("class_name", check.TRAINED)
def test_model_fit_lowers_the_loss_and_reloads(report, class_name):
    entry = entry_of(report["training"], class_name)
    history = np.asarray(entry["history"])
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    assert entry["reloaded_loss_class"] == class_name and entry["reloaded_loss_config"]
    np.testing.assert_allclose(entry["reloaded_loss"], entry["loss"], rtol=1e-6)


@pytest.mark.parametrize("class_name", check.TRAINED)
def test_mixed_float16_gives_finite_losses(report, class_name):
    entry = entry_of(report["mixed_float16"], class_name)
    assert entry["prediction_dtype"] == "float16"
    values = [entry["direct"], entry["saturated"], *entry.get("history", [])]
    assert np.all(np.isfinite(values)), values
    assert entry["saturated"] < entry["direct"]  # a perfect prediction beats an untrained model


# --- Issue 11: label dtypes and layouts, sample weights, Keras' reductions ---------------

LABEL_SPECS = {name: spec for spec, name in CLASSES if name in check.LABEL_CLASSES}


def _core_values(class_name, y_true, y_pred):
    return np.asarray(LABEL_SPECS[class_name].function(y_true, y_pred))


@pytest.mark.parametrize("dtype", check.LABEL_DTYPES)
def test_every_integer_label_dtype(report, dtype):
    """uint8 masks crashed on the tensorflow backend (TensorFlow's range and gather kernels
    take int32/int64 only); every integer dtype gives the values of int64 labels."""
    y_true, y_pred = check.make_inputs("sparse")
    for class_name, actual in report["labels"]["dtypes"][dtype].items():
        assert not isinstance(actual, dict), actual
        expected = _core_values(class_name, y_true.astype(np.int64), y_pred)
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def test_model_fit_on_small_integer_labels(report):
    fits = report["labels"]["fit_dtypes"]
    assert tuple(fits) == (check.FIT_LABEL_DTYPES if report["backend"] == "tensorflow" else ())
    for dtype, history in fits.items():
        assert not isinstance(history, dict), (dtype, history)
        assert np.all(np.isfinite(history))
        # The same labels in another dtype train the same model: the dtype changes nothing.
        np.testing.assert_allclose(history, fits["uint8"], rtol=1e-6, err_msg=dtype)


@pytest.mark.parametrize("layout", ["no_class_axis", "unit_class_axis"])
def test_float_class_indices_are_cast_back_to_integers(report, layout):
    """``model.fit`` under ``tf.distribute`` hands the loss float labels; against several
    classes, index-shaped float labels are class indices."""
    y_true, y_pred = check.make_inputs("sparse")
    for class_name, actual in report["labels"]["float_indices"][layout].items():
        assert not isinstance(actual, dict), actual
        np.testing.assert_allclose(actual, _core_values(class_name, y_true, y_pred), rtol=RTOL, atol=ATOL)


def test_one_sigmoid_channel_with_float_labels_without_a_class_axis(report):
    """``[B, H, W]`` float 0/1 labels against ``[B, H, W, 1]`` are the binary target
    (crashed with 'sparse y_true must have an integer dtype')."""
    entry = report["labels"]["single_channel"]
    labels, probs = check.make_binary_inputs()
    for class_name in check.LABEL_CLASSES:
        assert not isinstance(entry[class_name], dict), entry[class_name]
        expected = _core_values(class_name, labels[..., None], probs)
        np.testing.assert_allclose(entry[class_name], expected, rtol=RTOL, atol=ATOL)
    history = entry["fit"]
    assert not isinstance(history, dict), history
    assert np.all(np.isfinite(history)) and history[-1] < history[0]


def _hand_reduced(per_sample, weights, reduction):
    """Keras' reductions of weighted per-sample losses, written out (one weight per sample)."""
    weighted = weights * per_sample
    if reduction == "None":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean_with_sample_weight":
        return weighted.sum() / weights.sum()
    return weighted.sum() / len(per_sample)  # "sum_over_batch_size" and "mean"


@pytest.mark.parametrize("class_name", ["DiceLoss", "CategoricalCrossentropy"])
def test_per_sample_weights_of_any_rank(report, class_name):
    """``[B, 1, 1]`` and ``[B, 1, 1, 1]`` weights were broadcast against the per-sample
    losses ``[B]`` into a ``[B, 1, B]`` grid: a silently wrong loss."""
    y_true, y_pred = check.make_inputs("sparse")
    per_sample = _core_values(class_name, y_true, y_pred)
    weights = check.per_sample_weights((check.BATCH,))
    rtol = 1e-6 if report["backend"] == "torch" else RTOL  # Keras' torch divide_no_nan: float32
    for reduction, by_shape in report["weights"][class_name]["per_sample"].items():
        expected = _hand_reduced(per_sample, weights, reduction)
        for shape, actual in by_shape.items():
            if shape == "()":
                continue  # a scalar weight: compared with a stock Keras loss below
            assert not isinstance(actual, dict), actual
            assert np.shape(actual) == np.shape(expected), (reduction, shape)
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=ATOL, err_msg=f"{reduction} {shape}")


@pytest.mark.parametrize("class_name", ["DiceLoss", "CategoricalCrossentropy"])
def test_reductions_follow_a_stock_keras_loss(report, class_name):
    """The adapter reduces through Keras' public ``Loss.__call__``: no weights, a scalar
    weight and ``[B]`` weights give what a stock Keras loss gives on the same values.
    (Keras' ``ops.mean`` on the jax backend rounds float64 to float32 inside the stock
    ``MeanAbsoluteError``, and its torch backend divides in float32.)"""
    rtol = 1e-6 if report["backend"] in ("torch", "jax") else RTOL
    for reduction, by_shape in report["weights"][class_name]["stock"].items():
        for shape, entry in by_shape.items():
            assert "error" not in entry, entry["error"]
            np.testing.assert_allclose(entry["ours"], entry["keras"], rtol=rtol, atol=ATOL,
                                       err_msg=f"{reduction} {shape}")


def test_adapter_imports_no_private_keras_module():
    """The reductions go through Keras' public ``Loss.__call__``; nothing from ``keras.src``."""
    import ast

    tree = ast.parse((SCRIPT.parent.parent / "adapters" / "keras.py").read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.startswith("keras.src")], imported
