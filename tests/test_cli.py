"""The ``lossfns`` command line, run as a subprocess (``python -m lossfns.cli``).

``parity`` runs are kept to two losses and tiny shapes: each run still starts one worker
process per installed framework, which is most of its cost.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossfns
from lossfns import registry

# The subprocess imports the same lossfns as this test process.
_IMPORT_ROOT = str(Path(lossfns.__file__).resolve().parent.parent)
FRAMEWORK_OF = {
    "torch": "torch", "torch-adapter": "torch", "keras-torch": "torch",
    "jax": "jax", "jax-adapter": "jax", "keras-jax": "jax",
    "tensorflow": "tensorflow", "keras-tensorflow": "tensorflow",
    "array-api-strict": "array_api_strict", "numpy": "numpy",
}
ALL_BACKENDS = list(FRAMEWORK_OF)


def run_cli(*args, cwd=None, env=None, extra_path=()):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment.pop("LOSSFNS_PARITY_PERTURB", None)
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join(
        [*map(str, extra_path), _IMPORT_ROOT, environment.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "lossfns.cli", *map(str, args)], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=300)


def installed(backend) -> bool:
    framework = FRAMEWORK_OF[backend]
    if importlib.util.find_spec(framework) is None:
        return False
    return not backend.startswith("keras") or importlib.util.find_spec("keras") is not None


def assert_usage_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def assert_one_line_error(result, *fragments):
    assert_usage_error(result, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


def parse_table(text):
    """``{row name: {column: cell text}}`` from a table whose second line is the dashed rule."""
    lines = text.splitlines()
    rule = lines[1]
    spans, start = [], 0
    for block in rule.split("  "):
        spans.append((start, start + len(block)))
        start += len(block) + 2
    cut = lambda line: [line[a:b + 2].strip() if i < len(spans) - 1 else line[a:].strip()
                        for i, (a, b) in enumerate(spans)]
    header = cut(lines[0])
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = cut(line)
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return rows


# --------------------------------------------------------------------------- import hygiene


def test_importing_the_cli_imports_no_framework():
    code = ("import sys, lossfns.cli, lossfns.testing; "
            "print([m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=_IMPORT_ROOT), check=True).stdout
    assert out.strip() == "[]"


def test_importing_lossfns_does_not_import_the_harness():
    code = "import json, sys, lossfns; print(json.dumps([m for m in sys.modules if m.startswith('lossfns.')]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=_IMPORT_ROOT), check=True).stdout
    loaded = json.loads(out)
    assert loaded and not [m for m in loaded if m.startswith(("lossfns.testing", "lossfns.cli"))], loaded


# --------------------------------------------------------------------------- list


def test_list_json_covers_registry_and_aliases():
    result = run_cli("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for spec in registry.LOSSES:
        for name, class_name in zip((spec.name,) + spec.aliases, registry.class_names(spec)):
            row = rows.pop(name)
            assert row["family"] == spec.family
            assert row["hyperparameters"] == spec.defaults
            assert row["required"] == list(spec.required)
            assert row["keras"] == row["torch"] == class_name
            assert row["jax"] == name
            assert row["alias_of"] == (None if name == spec.name else spec.name)
    assert not rows  # nothing listed that the registry lacks
    assert {"DiceLoss", "JaccardLoss"} <= {r["keras"] for r in json.loads(result.stdout)}


def test_list_table_has_a_row_per_loss_and_alias():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    rows = parse_table(result.stdout)
    assert rows["dice_loss (alias of f1_loss)"]["Keras class"] == "DiceLoss"
    assert rows["tversky_loss"]["hyperparameters (defaults)"] == "alpha=0.3, beta=0.7, epsilon=1e-05"
    assert rows["generalized_wasserstein_dice_loss"]["hyperparameters (defaults)"] == (
        "distance_matrix (required), weighting='default', epsilon=1e-05")
    assert rows["categorical_focal_loss"]["torch class"] == "CategoricalFocalLoss"
    assert len(rows) == len(registry.LOSSES) + sum(len(s.aliases) for s in registry.LOSSES)


# --------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory):
    """One parity run on every backend: two losses (region and distribution), a tiny shape."""
    path = tmp_path_factory.mktemp("parity") / "parity.json"
    result = run_cli("parity", "--losses", "focal_tversky_loss,categorical_focal_loss",
                     "--shape", "2,4,4", "--classes", "3", "--seed", "3", "--json", path)
    return result, json.loads(path.read_text()) if path.exists() else None


def test_parity_passes_on_installed_backends(parity_run):
    result, document = parity_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert document["passed"] is True
    assert set(document["results"]) == {"focal_tversky_loss", "categorical_focal_loss"}
    for backend in ALL_BACKENDS:
        info = document["backends"][backend]
        assert info["available"] == installed(backend), (backend, info)
        for loss, cells in document["results"].items():
            cell = cells[backend]
            if not installed(backend):
                assert cell["status"] == "n/a"
                continue
            assert cell["status"] == "pass", (loss, backend, cell)
            assert cell["value_diff"] <= document["tolerances"]["value"]
            if backend in ("numpy", "array-api-strict"):
                assert cell["grad_diff"] is None  # no autodiff: value only
            else:
                assert cell["grad_diff"] <= document["tolerances"]["gradient"]


def test_parity_json_matches_table(parity_run):
    result, document = parity_run
    rows = parse_table(result.stdout)
    assert set(rows) == set(document["results"])
    words = {"pass": "ok", "fail": "FAIL", "error": "error", "n/a": "n/a", "skip": "skip"}
    for loss, cells in document["results"].items():
        assert list(rows[loss]) == list(cells)  # same backends, same order
        for backend, cell in cells.items():
            shown = rows[loss][backend].split()
            assert shown[0] == words[cell["status"]]
            if cell["status"] not in ("pass", "fail"):
                continue
            for text, number in zip(shown[1:], (cell["value_diff"], cell["grad_diff"])):
                if number is None:
                    assert text == "—"
                elif number == 0:
                    assert text == "0"
                else:  # one significant digit
                    assert float(text) == pytest.approx(number, rel=0.5)
    passed = sum(c["status"] == "pass" for cells in document["results"].values() for c in cells.values())
    assert f"parity: {passed} passed, 0 failed" in result.stdout


def test_parity_perturb_hook_fails_the_run(tmp_path):
    path = tmp_path / "p.json"
    result = run_cli("parity", "--losses", "f1_loss", "--backends", "numpy,array-api-strict",
                     "--shape", "2,4", "--dtype", "float32", "--json", path,
                     env={"LOSSFNS_PARITY_PERTURB": "array-api-strict"})
    assert result.returncode == 1, result.stdout + result.stderr
    cells = json.loads(path.read_text())["results"]["f1_loss"]
    assert cells["numpy"]["status"] == "pass"
    assert cells["array-api-strict"]["status"] == "fail"
    assert cells["array-api-strict"]["value_diff"] == pytest.approx(1e-3, rel=1e-2)
    assert "FAIL" in parse_table(result.stdout)["f1_loss"]["array-api-strict"]


@pytest.mark.skipif(not installed("torch"), reason="torch is not installed")
def test_parity_perturb_hook_reaches_worker_backends():
    result = run_cli("parity", "--losses", "iou_loss", "--backends", "torch,torch-adapter",
                     "--shape", "1,3", "--sparse", "--json", "-",
                     env={"LOSSFNS_PARITY_PERTURB": "torch-adapter"})
    assert result.returncode == 1, result.stderr
    cells = json.loads(result.stdout)["results"]["iou_loss"]
    assert cells["torch"]["status"] == "pass"
    assert cells["torch-adapter"]["status"] == "fail"
    assert cells["torch-adapter"]["grad_diff"] < 1e-7  # only the value was perturbed


def test_parity_missing_framework_is_not_an_error(tmp_path):
    # A stand-in package that fails like an absent torch does.
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    result = run_cli("parity", "--losses", "tversky_loss", "--backends", "numpy,torch,torch-adapter",
                     "--shape", "1,3", "--json", "-", extra_path=[tmp_path / "fake"])
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["results"]["tversky_loss"]["torch"]["status"] == "n/a"
    assert document["results"]["tversky_loss"]["torch-adapter"]["status"] == "n/a"
    assert "not installed" in document["backends"]["torch"]["reason"]
    assert document["results"]["tversky_loss"]["numpy"]["status"] == "pass"


def test_parity_reports_inputs_a_loss_rejects_as_skipped():
    result = run_cli("parity", "--losses", "binary_crossentropy,dice_loss", "--backends", "numpy",
                     "--shape", "2", "--from-logits", "softmax", "--json", "-")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "binary_crossentropy" in document["skipped"]
    assert document["results"]["binary_crossentropy"]["numpy"]["status"] == "skip"
    assert document["results"]["dice_loss"]["numpy"]["status"] == "pass"


@pytest.mark.parametrize("args, fragment", [
    (["--shape", "2,x"], "--shape"),
    (["--shape", "0,4"], "--shape"),
    (["--dtype", "float16"], "--dtype"),
    (["--classes", "0"], "--classes"),
    (["--losses", "dice,tversky_loss"], "unknown loss 'dice'"),
    (["--backends", "numpy,mxnet"], "unknown backend 'mxnet'"),
    (["--from-logits", "relu"], "--from-logits"),
    # Regressions (issue 11, 3.10): these ended in a traceback with exit status 1 (which means
    # "parity failed"), or were accepted.
    (["--seed", "-1"], "--seed"),
    (["--timeout", "-5"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--device", "tpu"], "--device"),
    (["--fd-points", "0"], "--fd-points"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_parity_bad_arguments_exit_2_with_one_line(args, fragment, capsys):
    # In this process (cli.main(argv)): the entry point itself is run by the other tests.
    from lossfns import cli

    try:
        status = cli.main(["parity", "--backends", "numpy", *args])
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], status, out, err), fragment)


def test_missing_command_is_one_line():
    assert_one_line_error(run_cli(), "required")


def test_parity_shape_too_large_for_memory_exits_2_before_allocating():
    # Regression (issue 11, 3.10): numpy's MemoryError ended in a traceback with exit status 1.
    result = run_cli("parity", "--backends", "numpy", "--losses", "dice_loss", "--shape", "100000,100000,1000")
    assert_one_line_error(result, "--shape 100000,100000,1000", "GiB")


def test_closed_pipe_ends_quietly():
    # Regression (issue 11, 3.10): `lossfns list | head` ended in a BrokenPipeError traceback.
    environment = dict(os.environ, PYTHONPATH=_IMPORT_ROOT)
    process = subprocess.Popen([sys.executable, "-m", "lossfns.cli", "list", "--json"], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the tool writes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""


def _cuda_available() -> bool:
    if not installed("torch"):
        return False
    probe = "import torch; print(torch.cuda.is_available())"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "True"


@pytest.mark.skipif(not installed("torch"), reason="torch is not installed")
def test_parity_device_cuda_runs_there_or_exits_2():
    result = run_cli("parity", "--losses", "tversky_loss", "--backends", "numpy,torch,torch-adapter",
                     "--shape", "1,3", "--device", "cuda", "--json", "-")
    if not _cuda_available():
        assert_one_line_error(result, "no selected backend can run on cuda:0", "torch sees no CUDA device")
        return
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["settings"]["device"] == "cuda:0"
    assert document["results"]["tversky_loss"]["numpy"]["status"] == "n/a"  # host only
    for backend in ("torch", "torch-adapter"):
        assert document["backends"][backend]["device"].startswith("cuda:0 (")
        assert document["results"]["tversky_loss"][backend]["status"] == "pass"


def test_parity_device_cuda_with_host_backends_only_exits_2():
    result = run_cli("parity", "--losses", "tversky_loss", "--backends", "numpy,array-api-strict",
                     "--device", "cuda:0")
    assert_one_line_error(result, "no selected backend can run on cuda:0")


@pytest.mark.skipif(not installed("torch"), reason="torch is not installed")
def test_parity_device_cpu_is_reported():
    result = run_cli("parity", "--losses", "f1_loss", "--backends", "numpy,torch", "--shape", "1,3",
                     "--device", "cpu", "--json", "-")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["settings"]["device"] == "cpu"
    assert {b: info["device"] for b, info in document["backends"].items()} == {"numpy": "cpu", "torch": "cpu"}


def test_parity_bad_perturb_hook_exits_2():
    result = run_cli("parity", "--backends", "numpy", env={"LOSSFNS_PARITY_PERTURB": "nope"})
    assert_one_line_error(result, "LOSSFNS_PARITY_PERTURB")


# --------------------------------------------------------------------------- eval


def _probabilities(rng, shape, axis=-1):
    logits = rng.normal(size=shape)
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def eval_json(*args, **kwargs):
    result = run_cli("eval", "--json", *args, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_matches_core(document, y_true, y_pred, losses, **options):
    for name in losses:
        expected = np.asarray(getattr(lossfns, name)(y_true, y_pred, **options))
        got = document["losses"][name]
        np.testing.assert_allclose(got["per_sample"], expected, rtol=1e-13, atol=0)
        assert got["mean"] == pytest.approx(float(np.mean(expected)), rel=1e-13)


def test_eval_npy_matches_core(tmp_path):
    rng = np.random.default_rng(0)
    y_pred = _probabilities(rng, (3, 6, 5, 4))
    y_true = rng.integers(0, 4, size=(3, 6, 5))
    np.save(tmp_path / "t.npy", y_true)
    np.save(tmp_path / "p.npy", y_pred)
    document = eval_json("--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy")
    # All losses by default; those that take signed distance maps, not labels, or logits,
    # not probabilities, say why they skipped and which option they need.
    label_losses = [s.name for s in registry.LOSSES
                    if s.target_kind == "labels" and not s.logits_only and not s.required]
    option = {"distance_maps": "--distance-maps", "skeletons": "--skeletons-from-labels"}
    needs = {s.name: "--distance-matrix" if s.required else option.get(s.target_kind, "--from-logits")
             for s in registry.LOSSES if s.name not in label_losses}
    assert set(document["losses"]) == set(label_losses)
    assert set(document["skipped"]) == set(needs) and needs
    assert all(needs[name] in why for name, why in document["skipped"].items())
    assert_matches_core(document, y_true, y_pred, label_losses)
    assert document["y_pred"]["shape"] == [3, 6, 5, 4]


def test_eval_table_shows_the_same_numbers(tmp_path):
    rng = np.random.default_rng(1)
    y_pred = _probabilities(rng, (2, 7, 3))
    y_true = np.eye(3)[rng.integers(0, 3, size=(2, 7))]
    np.save(tmp_path / "t.npy", y_true)
    np.save(tmp_path / "p.npy", y_pred)
    result = run_cli("eval", "--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy",
                     "--losses", "dice_loss,combo_loss")
    assert result.returncode == 0, result.stderr
    rows = parse_table(result.stdout.split("\n", 1)[1])
    for name in ("dice_loss", "combo_loss"):
        expected = np.asarray(getattr(lossfns, name)(y_true, y_pred))
        assert float(rows[name]["mean"]) == pytest.approx(expected.mean(), rel=1e-9)
        shown = [float(x) for x in rows[name]["per-sample"].split()]
        np.testing.assert_allclose(shown, expected, rtol=1e-9)


def test_eval_npz_first_array_or_key_with_options(tmp_path):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 4, 5, 5))  # channels first
    labels = rng.integers(0, 4, size=(2, 5, 5))
    labels[0, 0, :2] = 255
    np.savez(tmp_path / "t.npz", labels=labels, other=np.zeros(3))
    np.savez(tmp_path / "p.npz", logits=logits)
    losses = ["tversky_loss", "categorical_focal_loss", "asymmetric_unified_focal_loss"]
    options = dict(class_axis=1, from_logits=True, ignore_index=255)
    common = ["--losses", ",".join(losses), "--class-axis", "1", "--from-logits", "--ignore-index", "255"]
    first = eval_json("--y-true", tmp_path / "t.npz", "--y-pred", tmp_path / "p.npz", *common)
    assert_matches_core(first, labels, logits, losses, **options)
    # --key names the array in every .npz; here both files must hold it.
    np.savez(tmp_path / "p2.npz", other=np.zeros(3), labels=logits)
    keyed = eval_json("--y-true", tmp_path / "t.npz", "--y-pred", tmp_path / "p2.npz", "--key", "labels", *common)
    assert keyed["losses"] == first["losses"]


def test_eval_nifti_adds_a_batch_axis(tmp_path):
    nibabel = pytest.importorskip("nibabel")
    rng = np.random.default_rng(3)
    probs = _probabilities(rng, (5, 4, 3, 2)).astype(np.float32)  # x, y, z, classes
    labels = rng.integers(0, 2, size=(5, 4, 3)).astype(np.int16)
    nibabel.save(nibabel.Nifti1Image(labels, np.eye(4)), tmp_path / "t.nii.gz")
    nibabel.save(nibabel.Nifti1Image(probs, np.eye(4)), tmp_path / "p.nii")
    losses = ["f1_loss", "categorical_crossentropy", "symmetric_unified_focal_loss"]
    document = eval_json("--y-true", tmp_path / "t.nii.gz", "--y-pred", tmp_path / "p.nii",
                         "--losses", ",".join(losses))
    assert document["y_true"]["shape"] == [1, 5, 4, 3]
    assert_matches_core(document, labels[None].astype(np.int64), probs[None], losses)
    assert len(document["losses"]["f1_loss"]["per_sample"]) == 1

    # Label maps saved as floats (common for NIfTI) are read as class indices.
    nibabel.save(nibabel.Nifti1Image(labels.astype(np.float32), np.eye(4)), tmp_path / "tf.nii.gz")
    as_float = eval_json("--y-true", tmp_path / "tf.nii.gz", "--y-pred", tmp_path / "p.nii",
                         "--losses", ",".join(losses))
    assert as_float["losses"] == document["losses"]


def test_eval_no_batch_for_unbatched_arrays(tmp_path):
    rng = np.random.default_rng(4)
    probs = _probabilities(rng, (6, 6, 3))
    labels = rng.integers(0, 3, size=(6, 6))
    np.save(tmp_path / "t.npy", labels)
    np.save(tmp_path / "p.npy", probs)
    document = eval_json("--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy",
                         "--no-batch", "--losses", "iou_loss")
    assert_matches_core(document, labels[None], probs[None], ["iou_loss"])


def test_eval_skips_losses_that_reject_the_inputs_unless_asked(tmp_path):
    rng = np.random.default_rng(5)
    np.save(tmp_path / "t.npy", rng.integers(0, 3, size=(2, 4)))
    np.save(tmp_path / "p.npy", rng.normal(size=(2, 4, 3)))
    paths = ["--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy", "--from-logits", "softmax"]
    document = eval_json(*paths)
    assert {"binary_crossentropy", "binary_focal_loss"} <= set(document["skipped"])
    assert "dice_loss" not in document["losses"] and "f1_loss" in document["losses"]
    assert_one_line_error(run_cli("eval", *paths, "--losses", "binary_focal_loss"), "softmax")


def test_eval_nibabel_missing_gives_a_clear_message(tmp_path):
    fake = tmp_path / "fake" / "nibabel"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no nibabel here')\n")
    (tmp_path / "t.nii").write_bytes(b"\0" * 400)
    np.save(tmp_path / "p.npy", np.full((1, 2, 2), 0.5))
    result = run_cli("eval", "--y-true", tmp_path / "t.nii", "--y-pred", tmp_path / "p.npy",
                     extra_path=[tmp_path / "fake"])
    assert_one_line_error(result, "nibabel")


@pytest.fixture
def good_files(tmp_path):
    rng = np.random.default_rng(6)
    np.save(tmp_path / "t.npy", rng.integers(0, 3, size=(2, 4, 4)))
    np.save(tmp_path / "p.npy", _probabilities(rng, (2, 4, 4, 3)))
    return tmp_path / "t.npy", tmp_path / "p.npy"


def test_eval_missing_file(good_files, tmp_path):
    true, _ = good_files
    result = run_cli("eval", "--y-true", true, "--y-pred", tmp_path / "nope.npy")
    assert_one_line_error(result, "--y-pred file not found", "nope.npy")


def test_eval_unreadable_files(good_files, tmp_path):
    true, pred = good_files
    (tmp_path / "x.txt").write_text("1 2 3")
    assert_one_line_error(run_cli("eval", "--y-true", tmp_path / "x.txt", "--y-pred", pred), "unknown format")
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    assert_one_line_error(run_cli("eval", "--y-true", true, "--y-pred", tmp_path / "bad.npy"), "cannot read")
    np.savez(tmp_path / "k.npz", a=np.zeros(2))
    assert_one_line_error(run_cli("eval", "--y-true", true, "--y-pred", tmp_path / "k.npz", "--key", "b"),
                          "no array 'b'")


def test_eval_shape_mismatch(good_files, tmp_path):
    true, _ = good_files
    np.save(tmp_path / "p5.npy", np.full((2, 5, 4, 3), 1 / 3))
    result = run_cli("eval", "--y-true", true, "--y-pred", tmp_path / "p5.npy")
    assert_one_line_error(result, "does not match y_pred shape")


def test_eval_unknown_loss_and_bad_data(good_files, tmp_path):
    true, pred = good_files
    assert_one_line_error(run_cli("eval", "--y-true", true, "--y-pred", pred, "--losses", "dice"),
                          "unknown loss 'dice'")
    np.save(tmp_path / "big.npy", np.full((2, 4, 4, 3), 1.5))  # not probabilities
    assert_one_line_error(run_cli("eval", "--y-true", true, "--y-pred", tmp_path / "big.npy"), "y_pred")
    np.save(tmp_path / "frac.npy", np.full((2, 4, 4), 0.5))  # class indices that are not whole
    assert_one_line_error(run_cli("eval", "--y-true", tmp_path / "frac.npy", "--y-pred", pred), "whole")


def test_eval_non_finite_loss_exits_1_and_writes_valid_json(good_files, monkeypatch, capsys):
    # Regression (issue 11, 3.5): eval printed nan with exit status 0 and --json wrote NaN.
    from types import SimpleNamespace

    from lossfns import cli

    def broken(y_true, y_pred, **options):
        return np.array([np.nan, np.inf])

    spec = SimpleNamespace(name="broken_loss", function=broken, target_kind="labels", logits_only=False, required=())
    monkeypatch.setattr(cli, "registry", SimpleNamespace(LOSSES=(spec,), get=lambda name: spec))
    true, pred = good_files
    assert cli.main(["eval", "--y-true", str(true), "--y-pred", str(pred), "--json"]) == 1
    out, err = capsys.readouterr()
    document = json.loads(out, parse_constant=lambda token: pytest.fail(f"invalid JSON token {token}"))
    assert document["losses"]["broken_loss"] == {"mean": None, "per_sample": [None, None]}
    assert err.strip() == "lossfns eval: error: non-finite loss: broken_loss is nan for sample 0 (and 1 more)"
    assert cli.main(["eval", "--y-true", str(true), "--y-pred", str(pred)]) == 1
    out, err = capsys.readouterr()
    assert "broken_loss  nan" in out and "non-finite loss" in err


def test_eval_without_samples_exits_2(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((0, 4), dtype=np.int64))
    np.save(tmp_path / "p.npy", np.zeros((0, 4, 3)))
    assert_one_line_error(run_cli("eval", "--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy"),
                          "no samples")


def test_eval_soft_binary_labels_without_class_axis_follow_the_core(tmp_path):
    # One rule for class indices (inputs.label_layout): against one channel, float labels
    # without the class axis are the binary target itself, soft or not (the old CLI rule
    # called them class indices and rejected 0.3 as "not a whole number").
    rng = np.random.default_rng(7)
    probs = rng.uniform(0.05, 0.95, size=(2, 5, 4, 1))
    soft = rng.uniform(0, 1, size=(2, 5, 4))
    np.save(tmp_path / "t.npy", soft)
    np.save(tmp_path / "p.npy", probs)
    losses = ["dice_loss", "binary_crossentropy"]
    document = eval_json("--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy", "--losses", ",".join(losses))
    assert_matches_core(document, soft[..., None], probs, losses)


def test_eval_requires_both_files():
    assert_usage_error(run_cli("eval", "--y-pred", "p.npy"), "--y-true")


def test_parity_broken_framework_is_an_error_not_na(tmp_path):
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('broken torch build')\n")
    result = run_cli("parity", "--losses", "tversky_loss", "--backends", "numpy,torch",
                     "--shape", "1,3", "--json", "-", extra_path=[tmp_path / "fake"])
    assert result.returncode == 1, result.stdout + result.stderr
    cell = json.loads(result.stdout)["results"]["tversky_loss"]["torch"]
    assert cell["status"] == "error" and "broken torch build" in cell["message"]


@pytest.mark.skipif(not installed("torch"), reason="torch is not installed")
def test_parity_worker_timeout_is_an_error():
    result = run_cli("parity", "--losses", "tversky_loss", "--backends", "numpy,torch",
                     "--shape", "1,3", "--timeout", "0.01", "--json", "-")
    assert result.returncode == 1, result.stdout + result.stderr
    cell = json.loads(result.stdout)["results"]["tversky_loss"]["torch"]
    assert cell["status"] == "error" and "timed out" in cell["message"]


def test_parity_unwritable_json_path_exits_2_before_running(tmp_path):
    result = run_cli("parity", "--backends", "numpy", "--json", tmp_path / "no" / "such" / "dir.json")
    assert_one_line_error(result, "cannot write --json")


# ------------------------------------------------ eval: losses that need logits or distance maps
# In process (cli.main) to stay fast; the subprocess tests above cover the entry point.


def eval_main(capsys, *args):
    """``(status, stdout, stderr)`` of ``lossfns eval`` run in this process."""
    from lossfns import cli

    status = cli.main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def assert_refused(outcome, *fragments):
    status, out, err = outcome
    assert status == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and err.startswith("lossfns eval: error: "), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def segmentation(tmp_path):
    """Sparse and one-hot labels ``[2, 6, 5]`` of 3 classes, logits and probabilities (channels last)."""
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, size=(2, 6, 5))
    labels[0, :3, :2] = 1  # a blob with an inside, so the maps take negative values
    logits = rng.normal(size=(2, 6, 5, 3))
    arrays = {"t": labels, "onehot": np.eye(3)[labels], "logits": logits,
              "p": np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)}
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    return arrays, paths


def test_eval_skips_logits_only_losses_on_probabilities(segmentation, capsys):
    # Regression: without --from-logits, lovasz_hinge_loss (logits only) read the
    # probabilities as logits and reported a meaningless number with exit status 0.
    arrays, paths = segmentation
    inputs = ["--y-true", paths["t"], "--y-pred", paths["p"]]
    status, out, _ = eval_main(capsys, *inputs, "--json")
    document = json.loads(out)
    assert status == 0 and "lovasz_hinge_loss" not in document["losses"]
    assert "--from-logits" in document["skipped"]["lovasz_hinge_loss"]
    status, out, _ = eval_main(capsys, *inputs)
    assert status == 0 and "skip  lovasz_hinge_loss: " in out and "--from-logits" in out
    # Asked for by name, it is refused, naming the option.
    assert_refused(eval_main(capsys, *inputs, "--losses", "dice_loss,lovasz_hinge_loss"),
                   "lovasz_hinge_loss", "--from-logits")
    # With logits it is computed, as the core computes it.
    status, out, _ = eval_main(capsys, "--y-true", paths["t"], "--y-pred", paths["logits"],
                               "--from-logits", "--losses", "lovasz_hinge_loss", "--json")
    assert status == 0
    assert_matches_core(json.loads(out), arrays["t"], arrays["logits"], ["lovasz_hinge_loss"], from_logits=True)


def test_eval_never_uses_labels_as_distance_maps(segmentation, capsys):
    # Regression: with one-hot labels eval reported boundary_loss from the labels taken as
    # signed distance maps. Without maps it is skipped, and refused when asked for by name.
    _, paths = segmentation
    for labels in ("t", "onehot"):
        inputs = ["--y-true", paths[labels], "--y-pred", paths["p"]]
        status, out, _ = eval_main(capsys, *inputs, "--json")
        document = json.loads(out)
        assert status == 0 and "boundary_loss" not in document["losses"], labels
        assert "--distance-maps" in document["skipped"]["boundary_loss"]
        assert document["distance_maps"] is None
        assert_refused(eval_main(capsys, *inputs, "--losses", "boundary_loss"), "boundary_loss", "--distance-maps")


def test_eval_distance_maps_file(segmentation, tmp_path, capsys):
    # Regression: given signed distance maps (as --y-true, the only way) eval exited 2 with
    # a message about labels; --distance-maps takes them next to the labels.
    arrays, paths = segmentation
    maps = lossfns.signed_distance_maps(arrays["t"], 3)
    np.save(tmp_path / "maps.npy", maps)
    inputs = ["--y-true", paths["t"], "--y-pred", paths["p"]]
    status, out, _ = eval_main(capsys, *inputs, "--distance-maps", tmp_path / "maps.npy", "--json")
    document = json.loads(out)
    assert status == 0 and set(document["skipped"]) == {"lovasz_hinge_loss", "skeleton_recall_loss",
                                                        "generalized_wasserstein_dice_loss"}
    assert_matches_core(document, maps, arrays["p"], ["boundary_loss"])
    assert document["distance_maps"]["shape"] == [2, 6, 5, 3]
    assert_matches_core(document, arrays["t"], arrays["p"], ["f1_loss", "categorical_crossentropy"])
    # .npz files are read as the other inputs are: the first array, or the one --key names.
    np.savez(tmp_path / "t.npz", x=arrays["t"])
    np.savez(tmp_path / "p.npz", x=arrays["p"])
    np.savez(tmp_path / "maps.npz", other=np.zeros(3), x=maps)
    status, out, _ = eval_main(capsys, "--y-true", tmp_path / "t.npz", "--y-pred", tmp_path / "p.npz",
                               "--distance-maps", tmp_path / "maps.npz", "--key", "x",
                               "--losses", "boundary_loss", "--json")
    assert status == 0 and json.loads(out)["losses"] == {"boundary_loss": document["losses"]["boundary_loss"]}
    # Maps that cannot be y_pred's maps are an argument error naming the option.
    np.save(tmp_path / "short.npy", maps[:, :4])
    assert_refused(eval_main(capsys, *inputs, "--distance-maps", tmp_path / "short.npy"), "--distance-maps", "shape")
    np.save(tmp_path / "int.npy", maps.astype(np.int64))
    assert_refused(eval_main(capsys, *inputs, "--distance-maps", tmp_path / "int.npy"), "--distance-maps", "int64")
    assert_refused(eval_main(capsys, *inputs, "--distance-maps", tmp_path / "none.npy"), "--distance-maps", "not found")
    # Maps given as --y-true are not labels; the error points to --distance-maps.
    assert_refused(eval_main(capsys, "--y-true", tmp_path / "maps.npy", "--y-pred", paths["p"]),
                   "y_true", "--distance-maps")


def test_eval_distance_maps_from_labels(segmentation, tmp_path, capsys):
    pytest.importorskip("scipy")
    arrays, paths = segmentation
    expected = lossfns.signed_distance_maps(arrays["t"], 3)
    for labels in ("t", "onehot"):
        status, out, _ = eval_main(capsys, "--y-true", paths[labels], "--y-pred", paths["p"],
                                   "--distance-maps-from-labels", "--losses", "boundary_loss", "--json")
        assert status == 0, labels
        document = json.loads(out)
        assert_matches_core(document, expected, arrays["p"], ["boundary_loss"])
        assert document["distance_maps"]["from_labels"] is True
    # Channels first: the maps get their class axis where y_pred has it.
    np.save(tmp_path / "p1.npy", np.moveaxis(arrays["p"], -1, 1))
    status, out, _ = eval_main(capsys, "--y-true", paths["t"], "--y-pred", tmp_path / "p1.npy", "--class-axis", "1",
                               "--distance-maps-from-labels", "--losses", "boundary_loss", "--json")
    assert status == 0
    assert_matches_core(json.loads(out), expected, arrays["p"], ["boundary_loss"])
    # One channel is the foreground: its map is that of class 1 of the 0/1 labels.
    binary = (arrays["t"] == 1).astype(np.int64)
    np.save(tmp_path / "b.npy", binary)
    np.save(tmp_path / "p_fg.npy", arrays["p"][..., 1:2])
    status, out, _ = eval_main(capsys, "--y-true", tmp_path / "b.npy", "--y-pred", tmp_path / "p_fg.npy",
                               "--distance-maps-from-labels", "--losses", "boundary_loss", "--json")
    assert status == 0
    fg_maps = lossfns.signed_distance_maps(binary, 2)[..., 1:]
    assert_matches_core(json.loads(out), fg_maps, arrays["p"][..., 1:2], ["boundary_loss"])
    # Soft labels have no boundary to measure from: an argument error naming the option.
    np.save(tmp_path / "soft.npy", arrays["p"])
    assert_refused(eval_main(capsys, "--y-true", tmp_path / "soft.npy", "--y-pred", paths["p"],
                             "--distance-maps-from-labels"), "--distance-maps-from-labels")
    # The (slow) distance transform runs only when a selected loss takes the maps.
    status, out, _ = eval_main(capsys, "--y-true", tmp_path / "soft.npy", "--y-pred", paths["p"],
                               "--distance-maps-from-labels", "--losses", "f1_loss", "--json")
    assert status == 0 and json.loads(out)["distance_maps"] is None


def test_eval_distance_map_options_exclude_each_other(segmentation, capsys):
    _, paths = segmentation
    assert_refused(eval_main(capsys, "--y-true", paths["t"], "--y-pred", paths["p"], "--distance-maps",
                             paths["onehot"], "--distance-maps-from-labels"), "--distance-maps")


def test_eval_skeletons_from_labels(tmp_path, capsys):
    """skeleton_recall_loss takes the labels' tubed skeletons: skipped without
    --skeletons-from-labels, refused when named, computed from the labels with it."""
    pytest.importorskip("skimage")
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, size=(2, 12, 10))
    y_pred = rng.dirichlet(np.ones(3), size=(2, 12, 10))
    np.save(tmp_path / "t.npy", y_true)
    np.save(tmp_path / "p.npy", y_pred)
    files = ("--y-true", tmp_path / "t.npy", "--y-pred", tmp_path / "p.npy")
    from lossfns import cli

    document = eval_json(*files)
    assert "--skeletons-from-labels" in document["skipped"]["skeleton_recall_loss"]
    status = cli.main(["eval", *map(str, files), "--losses", "skeleton_recall_loss"])
    assert status == 2 and "--skeletons-from-labels" in capsys.readouterr().err
    document = eval_json(*files, "--skeletons-from-labels", "--losses", "skeleton_recall_loss")
    expected = lossfns.skeleton_recall_loss(lossfns.tubed_skeletons(y_true), y_pred)
    np.testing.assert_allclose(document["losses"]["skeleton_recall_loss"]["per_sample"], expected, rtol=1e-12)


def test_eval_distance_matrix_file(segmentation, tmp_path, capsys):
    """The Wasserstein Dice needs its C × C matrix: --distance-matrix FILE gives it; without
    it the loss is skipped saying so, or refused when --losses names it."""
    arrays, paths = segmentation
    inputs = ["--y-true", paths["t"], "--y-pred", paths["p"]]
    name = "generalized_wasserstein_dice_loss"
    assert_refused(eval_main(capsys, *inputs, "--losses", name), "--distance-matrix")
    matrix = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    np.save(tmp_path / "m.npy", matrix)
    status, out, _ = eval_main(capsys, *inputs, "--distance-matrix", tmp_path / "m.npy", "--losses", name, "--json")
    document = json.loads(out)
    assert status == 0 and set(document["losses"]) == {name}
    expected = lossfns.generalized_wasserstein_dice_loss(arrays["t"], arrays["p"], distance_matrix=matrix)
    np.testing.assert_allclose(document["losses"][name]["per_sample"], expected, rtol=1e-12)
    np.save(tmp_path / "wrong.npy", matrix[:2, :2])  # 2 × 2 for 3 classes: the core's error, named
    assert_refused(eval_main(capsys, *inputs, "--distance-matrix", tmp_path / "wrong.npy", "--losses", name),
                   "distance_matrix")
