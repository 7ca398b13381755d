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
                     "--cases", "2d,3d16_sparse", "--contenders", TORCH_CONTENDERS,
                     "--losses", "dice,unified_focal,binary_focal", "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["machine"]["cores"] >= 1 and "torch" in saved["machine"]["versions"]
    assert (tmp_path / "results.png").stat().st_size > 1000
    markdown = (tmp_path / "results.md").read_text()
    assert "| 2d | dice |" in markdown and "| 3d16_sparse | unified_focal |" in markdown

    ran = [r for r in data["records"] if "skipped" not in r]
    assert {r["contender"] for r in ran} >= {"lossfns_torch", "naive", "floor"}
    for record in ran:
        for entry in record["results"]:
            assert "error" not in entry, (record["contender"], entry)
            assert entry["median_wall_s"] > 0 and math.isfinite(entry["median_cpu_s"])
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


def _record(case, contender, loss, seconds, peak=None, inputs=None):
    entry = {"loss": loss, "median_cpu_s": seconds, "median_wall_s": seconds, "inputs_mb": inputs}
    if peak is not None:
        entry["peak_mb"] = peak
    return {"case": case, "contender": contender, "results": [entry]}


def test_targets_arithmetic():
    records = [
        _record("3d", "lossfns_torch", "dice", 0.6),
        _record("3d", "monai", "dice", 1.0),
        _record("3d", "smp", "dice", 0.5),
        _record("3d", "lossfns_compile", "dice", 0.3),
        _record("3d", "floor", "floor", 0.25),
        _record("3d_bf16", "lossfns_torch", "dice", 0.5),
        _record("3d16_sparse", "lossfns_torch", "dice", 1.0, peak=30.0, inputs=10.0),
        _record("3d16_onehot", "lossfns_torch", "dice", 1.0, peak=40.0, inputs=60.0),
    ]
    data = {"settings": {"clock": "cpu"}, "records": records}
    found = {(t["target"], t["case"]): t for t in report.targets(data)}
    eager = found[("region eager ≤ 0.8× fastest peer", "3d")]
    assert eager["value"] == pytest.approx(0.6 / 0.5) and not eager["met"] and "smp" in eager["detail"]
    assert found[("compiled ≤ 1.5× floor", "3d")]["value"] == pytest.approx(1.2)
    memory = found[("sparse 16-class peak memory ≤ 0.5× one-hot", "3d16")]
    assert memory["value"] == pytest.approx(40.0 / 100.0) and memory["met"]
    assert found[("bf16 no slower than f32", "3d_bf16")]["value"] == pytest.approx(0.5 / 0.6)


def test_profile_counts_passes(capsys):
    from benchmarks import profile

    profile.main(["--quick", "--case", "2d", "--losses", "dice", "--contenders", "lossfns_torch,naive",
                  "--repeats", "1", "--top", "2", "--threads", "0"])
    table = capsys.readouterr().out.split("full-tensor passes per forward + backward step")[-1]
    row = next(line for line in table.splitlines() if line.startswith("| dice |"))
    passes = [float(cell) for cell in row.strip("|").split("|")[1:]]
    # At least a read of the prediction forward and a gradient write backward.
    assert all(p >= 2 for p in passes)
