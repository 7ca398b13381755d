"""Smoke test of ``benchmarks/``: tiny shapes, one repetition, no timing assertions.

It runs the real code paths (inputs, every contender's objective, the worker process, the
report and the profiler) so that the benchmark cannot rot unnoticed.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not installed

pytest.importorskip("torch", reason="the benchmark's baseline contenders run on torch")
pytest.importorskip("matplotlib", reason="the report draws a PNG")

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks.contenders import CONTENDERS, missing_requirement  # noqa: E402
from benchmarks.worker import run  # noqa: E402

TORCH_CONTENDERS = "lossfns_torch,naive,monai,smp,torch_adapter,floor"


def _available(name):
    reason = missing_requirement(CONTENDERS[name])
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    if name.startswith("keras"):
        import keras

        if keras.backend.backend() != "tensorflow":  # the benchmark times Keras on TensorFlow
            pytest.skip(f"keras was imported with the {keras.backend.backend()} backend")


def test_quick_run_writes_every_result_file(tmp_path, capsys):
    data = cli.main(["--quick", "--in-process", "--threads", "0", "--no-memory", "--warmup", "0",
                     "--device", "cpu", "--cases", "2d,3d16_sparse", "--contenders", TORCH_CONTENDERS,
                     "--losses", "dice,unified_focal,binary_focal", "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["machine"]["cores"] >= 1 and "torch" in saved["machine"]["versions"]
    assert (tmp_path / "results.png").stat().st_size > 1000
    markdown = (tmp_path / "results.md").read_text()
    assert "| 2d | dice |" in markdown and "| 3d16_sparse | unified_focal |" in markdown

    assert saved["settings"]["device"] == "cpu" and saved["settings"]["clock"] == "cpu"
    ran = [r for r in data["records"] if "skipped" not in r]
    assert {r["contender"] for r in ran} >= {"lossfns_torch", "naive", "floor"}
    for record in ran:
        for entry in record["results"]:
            assert "error" not in entry, (record["contender"], entry)
            assert entry["median_wall_s"] > 0 and math.isfinite(entry["median_cpu_s"])
            assert entry["median_device_s"] > 0  # on CPU the wall clock of a finished step
    # smp has no unified focal loss, so it must not have been asked for one.
    smp = [r for r in ran if r["contender"] == "smp"]
    assert all(e["loss"] != "unified_focal" for r in smp for e in r["results"])


@pytest.mark.parametrize("contender", ["lossfns_jax", "lossfns_tf", "keras", "keras_adapter"])
def test_other_framework_contenders_run(contender):
    _available(contender)
    record = run("2d", contender, ["dice"], quick=True, warmup=0, repeats=1, memory=False)
    (entry,) = record["results"]
    assert "error" not in entry, entry
    assert entry["inputs_mb"] > 0


def test_worker_process_measures_memory(tmp_path):
    args = cli.parse_args(["--quick", "--repeats", "1", "--out-dir", str(tmp_path)])
    sparse = cli.run_worker("3d16_sparse", "floor", ["floor"], args)
    (entry,) = sparse["results"]
    assert "error" not in entry and entry["peak_mb"] >= 0, sparse
    assert sparse["memory_method"].startswith(("cpu", "cuda"))


def test_tensorflow_worker_process_measures_memory(tmp_path):
    """The TensorFlow peak comes from its allocator's statistics, which its default CPU
    allocator does not keep: the worker environment selects the BFC allocator."""
    _available("lossfns_tf")
    args = cli.parse_args(["--quick", "--repeats", "1", "--warmup", "0", "--out-dir", str(tmp_path)])
    record = cli.run_worker("2d", "lossfns_tf", ["dice"], args)
    (entry,) = record["results"]
    assert "error" not in entry and entry["peak_mb"] >= 0, record
    assert record["memory_method"].startswith("tensorflow")


def _record(case, contender, loss, seconds, peak=None, inputs=None):
    entry = {"loss": loss, "median_cpu_s": seconds, "median_wall_s": seconds, "inputs_mb": inputs}
    if peak is not None:
        entry["peak_mb"] = peak
    return {"case": case, "contender": contender, "results": [entry]}


def test_targets_arithmetic():
    records = [
        _record("3d", "lossfns_torch", "dice", 0.6, peak=8.0),
        _record("3d", "monai", "dice", 1.0),
        _record("3d", "smp", "dice", 0.5),
        _record("3d", "lossfns_compile", "dice", 0.3),
        _record("3d", "lossfns_jax", "dice", 0.6),
        _record("3d", "lossfns_torch", "binary_focal", 2.0, peak=30.0),
        _record("3d", "monai", "binary_focal", 2.5),
        _record("3d", "floor", "floor", 0.25, peak=10.0),
        _record("3d_bf16", "lossfns_torch", "dice", 0.5, peak=12.0),
        _record("3d16_sparse", "lossfns_torch", "dice", 1.0, peak=30.0, inputs=10.0),
        _record("3d16_sparse", "floor", "floor", 0.5, peak=25.0),
        _record("3d16_onehot", "lossfns_torch", "dice", 2.0, peak=40.0, inputs=60.0),
    ]
    data = {"settings": {"clock": "cpu"}, "records": records}
    found = {(t["target"], t["case"], t["loss"]): t for t in report.targets(data)}
    eager = found[("region eager ≤ 0.7× fastest peer", "3d", "dice")]
    assert eager["value"] == pytest.approx(0.6 / 0.5) and not eager["met"] and "smp" in eager["detail"]
    assert found[("region eager ≤ 1.3× floor", "3d", "dice")]["value"] == pytest.approx(2.4)
    assert found[("compiled ≤ 1.0× floor", "3d", "dice")]["value"] == pytest.approx(1.2)
    assert found[("jax/tf ≤ 1.5× torch eager", "3d", "dice")]["met"]
    monai = found[("CE family ≤ 0.6× MONAI", "3d", "binary_focal")]
    assert monai["value"] == pytest.approx(0.8) and not monai["met"]
    assert found[("CE family ≤ 4× floor", "3d", "binary_focal")]["value"] == pytest.approx(8.0)
    assert found[("CE family peak ≤ 2× floor's", "3d", "binary_focal")]["value"] == pytest.approx(3.0)
    sparse = found[("sparse 16-class ≤ 0.6× one-hot time", "3d16", "dice")]
    assert sparse["value"] == pytest.approx(0.5) and sparse["met"]
    memory = found[("sparse 16-class peak ≤ 1.1× floor's", "3d16_sparse", "dice")]
    assert memory["value"] == pytest.approx(30.0 / 25.0) and not memory["met"]
    assert found[("bf16 ≤ 0.8× f32 time", "3d_bf16", "dice")]["value"] == pytest.approx(0.5 / 0.6)
    assert found[("bf16 peak ≤ f32 peak", "3d_bf16", "dice")]["value"] == pytest.approx(1.5)


def test_profile_counts_passes(capsys):
    from benchmarks import profile

    profile.main(["--quick", "--case", "2d", "--losses", "dice", "--contenders", "lossfns_torch,naive",
                  "--repeats", "1", "--top", "2", "--threads", "0"])
    table = capsys.readouterr().out.split("full-tensor passes per forward + backward step")[-1]
    row = next(line for line in table.splitlines() if line.startswith("| dice |"))
    passes = [float(cell) for cell in row.strip("|").split("|")[1:]]
    # At least a read of the prediction forward and a gradient write backward.
    assert all(p >= 2 for p in passes)


def test_cuda_without_a_device_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        cli.main(["--device", "cuda", "--quick", "--in-process", "--out-dir", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m benchmarks: error: --device cuda:0: ") and "no CUDA device" in err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())  # nothing written


def test_cuda_defaults_and_bad_device_names(tmp_path):
    args = cli.parse_args(["--device", "cuda:1", "--quick"])
    assert args.device == "cuda:1" and args.clock == "device" and args.out_dir == cli.CUDA_OUT
    assert cli.parse_args([]).out_dir == cli.DEFAULT_OUT and cli.parse_args([]).clock == "cpu"
    with pytest.raises(SystemExit) as stop:
        cli.parse_args(["--device", "gpu"])
    assert stop.value.code == 2


def test_tensorflow_contenders_are_skipped_on_cuda():
    from benchmarks.worker import device_problem

    assert "CPU only" in device_problem("tensorflow", "cuda:0")
    assert device_problem("torch", "cpu") is None


def test_readme_summary_counts_every_target():
    data = {"settings": {"clock": "cpu"}, "records": [
        _record("2d", "lossfns_torch", "dice", 2.0), _record("2d", "monai", "dice", 4.0),
        _record("2d", "floor", "floor", 1.0),
    ]}
    summary = report.readme_summary(data)
    assert "| 2d | dice | 2000.0 | 2.00× |" in summary
    assert "| region eager ≤ 0.7× fastest peer | 1 of 1 | 0.50 (2d dice, vs monai) |" in summary
    assert "| region eager ≤ 1.3× floor | 0 of 1 | 2.00 (2d dice) | 2.00 (2d dice) |" in summary
