"""Smoke test of ``benchmarks/``: tiny shapes, one repetition, no timing assertions.

It runs the real code paths (inputs, every contender's objective, the worker process, the
overhead case, the report, the targets and the profiler) so that the benchmark cannot rot
unnoticed.
"""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not installed

pytest.importorskip("torch", reason="the benchmark's baseline contenders run on torch")
pytest.importorskip("matplotlib", reason="the report draws a PNG")

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import overhead, report  # noqa: E402
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
                     "--losses", "dice,unified_focal,binary_focal,dice_ce,generalized_dice",
                     "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["machine"]["cores"] >= 1 and "torch" in saved["machine"]["versions"]
    assert (tmp_path / "results.png").stat().st_size > 1000
    markdown = (tmp_path / "results.md").read_text()
    assert "| 2d | dice |" in markdown and "| 3d16_sparse | unified_focal |" in markdown

    assert saved["settings"]["device"] == "cpu" and saved["settings"]["clock"] == "wall"
    assert "| 3d16_sparse | dice_ce |" in markdown and "## Performance targets" in markdown
    ran = [r for r in data["records"] if "skipped" not in r]
    assert {r["contender"] for r in ran} >= {"lossfns_torch", "naive", "floor"}
    # Each framework's default threads, and the count it ran with, are on every record.
    assert all(r["threads"] == 0 and r["threads_used"]["intra_op"] >= 1 for r in ran)
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


def _record(case, contender, loss, seconds, peak=None, inputs=None, threads=0, cpu=None, used=2):
    entry = {"loss": loss, "median_cpu_s": seconds if cpu is None else cpu, "median_wall_s": seconds,
             "inputs_mb": inputs}
    if peak is not None:
        entry["peak_mb"] = peak
    return {"case": case, "contender": contender, "threads": threads,
            "threads_used": {"intra_op": used if threads == 0 else threads}, "results": [entry]}


def _overhead_entry(wall, ops):
    return {"median_wall_s": sorted(wall)[len(wall) // 2], "min_wall_s": min(wall), "max_wall_s": max(wall),
            "median_cpu_s": wall[0], "wall_s": wall, "cpu_s": wall, "aten_ops": ops, "aten_ops_by_name": {}}


OVERHEAD = {
    "current": {"shape": [2, 4, 8, 8, 8], "labels": "int64", "repeats": 3, "steps_per_block": 10, "losses": {
        "dice": {"lossfns": _overhead_entry([2e-4, 3e-4, 4e-4], 30), "monai": _overhead_entry([5e-4, 5e-4, 5e-4], 50)},
        "categorical_focal": {"lossfns": _overhead_entry([5e-4, 5e-4, 5e-4], 40),
                              "monai": _overhead_entry([5e-4, 5e-4, 5e-4], 30)}}},
    "before": {"losses": {"dice": {"lossfns": _overhead_entry([9e-4, 9e-4, 9e-4], 90)}}},
}


def _run():
    return {"settings": {"clock": "wall", "threads": 0}, "overhead": OVERHEAD, "records": [
        _record("3d", "lossfns_torch", "dice", 0.6, peak=8.0),
        _record("3d", "lossfns_torch", "dice", 0.9, threads=1, cpu=0.8),
        _record("3d", "monai", "dice", 1.0),
        _record("3d", "smp", "dice", 0.5),
        _record("3d", "lossfns_compile", "dice", 0.3),
        _record("3d", "lossfns_jax", "dice", 0.6),
        _record("3d", "lossfns_torch", "binary_focal", 2.0, peak=30.0),
        _record("3d", "monai", "binary_focal", 2.5),
        _record("3d", "floor", "floor", 0.25, peak=10.0),
        _record("3d_sparse", "lossfns_torch", "dice", 0.54),
        _record("3d_sparse", "lossfns_torch", "dice_ce", 1.0),
        _record("3d_sparse", "monai", "dice_ce", 2.0),
        _record("3d_bf16", "lossfns_torch", "dice", 0.5, peak=12.0),
        _record("3d16_sparse", "lossfns_torch", "dice", 1.0, peak=30.0, inputs=10.0),
        _record("3d16_sparse", "floor", "floor", 0.5, peak=25.0),
        _record("3d16_onehot", "lossfns_torch", "dice", 2.0, peak=40.0, inputs=60.0),
    ]}


def test_targets_arithmetic():
    found = {(t["target"], t["case"], t["loss"]): t for t in report.targets(_run())}
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
    assert found[("sparse 16-class no slower than before", "3d16", "dice")]["met"]
    memory = found[("sparse 16-class peak ≤ 1.1× floor's", "3d16_sparse", "dice")]
    assert memory["value"] == pytest.approx(30.0 / 25.0) and not memory["met"]
    assert found[("bf16 ≤ 1.0× f32 time", "3d_bf16", "dice")]["value"] == pytest.approx(0.5 / 0.6)
    assert found[("bf16 peak ≤ f32 peak", "3d_bf16", "dice")]["value"] == pytest.approx(1.5)


def test_new_targets_arithmetic():
    """The targets of the default-thread headline: labels, compound losses, thread scaling
    (wall over wall, whatever the one-thread view's CPU clock says) and the overhead case."""
    found = {(t["target"], t["case"], t["loss"]): t for t in report.targets(_run())}
    labels = found[("integer labels ≤ 1.0× one-hot time (4 classes)", "3d_sparse", "dice")]
    assert labels["value"] == pytest.approx(0.9) and labels["met"]
    assert found[("DiceCE ≤ 0.7× MONAI DiceCELoss", "3d_sparse", "dice_ce")]["value"] == pytest.approx(0.5)
    scaling = found[("default threads ≤ 0.8× one thread (wall)", "3d", "dice")]
    assert scaling["value"] == pytest.approx(0.6 / 0.9) and scaling["met"] and scaling["detail"] == "2 vs 1 threads"
    time = found[("per-call overhead ≤ 0.8× MONAI time", "overhead", "dice")]
    assert time["value"] == pytest.approx(0.6) and time["met"] and "0.40–0.80" in time["detail"]
    ops = found[("per-call aten ops ≤ MONAI's", "overhead", "categorical_focal")]
    assert ops["value"] == pytest.approx(40 / 30) and not ops["met"]
    # The one-thread record is a view of its own, not a second headline figure.
    assert report.Table(_run()).median[("3d", "dice", "lossfns_torch")] == 0.6
    assert report.Table(_run(), report.ONE_THREAD).median[("3d", "dice", "lossfns_torch")] == 0.8


def test_performance_tables_show_every_view():
    tables = report.performance_tables(_run())
    assert "**Headline: wall clock, each framework's default threads (torch: 2).**" in tables
    assert "**Second view: process CPU time, one thread per framework.**" in tables
    assert "| 3d | dice | 900.0 | 2 | 600.0 | 0.67× |" in tables  # thread scaling, wall clock
    assert "| dice | 300 (200–400) | 500 (500–500) | 0.60× | 0.40–0.80 | 30 | 50 |" in tables
    assert "| dice | 90 | 30 | 50 | 900 (900–900) | 300 (200–400) |" in tables  # before / after
    assert "| categorical_focal | — | 40 | 30 |" in tables
    run = _run()
    run["settings"].update(warmup=1, repeats=3)
    markdown = report.markdown(dict(run, command="x", wall_s=1.0, machine={
        "cpu": "cpu", "cores": 2, "python": "3", "versions": {}, "load_average_1min_at_start": 0.5},
        stages=[{"load_average_1min_at_start": 0.5, "lossfns_source": "abc1234"}]))
    assert "## Performance targets" in markdown and "abc1234" not in markdown


def test_merge_keeps_both_thread_views_and_the_earlier_overhead():
    def run(records, **extra):
        return dict({"settings": {"quick": True, "threads": 0}, "records": records, "wall_s": 1.0,
                     "command": "c", "stages": []}, **extra)

    old = run([_record("3d", "lossfns_torch", "dice", 1.0), _record("3d", "monai", "dice", 1.0)],
              overhead={"before": {"losses": {}}})
    old["records"][1].pop("threads")  # a record of a run saved before records carried threads
    new = run([_record("3d", "lossfns_torch", "dice", 2.0, threads=1)], overhead={"current": {"losses": {}}})
    new["settings"]["threads"] = 1
    merged = cli.merge(old, new)
    assert sorted((r["contender"], r["threads"]) for r in merged["records"]) == [
        ("lossfns_torch", 0), ("lossfns_torch", 1), ("monai", 0)]
    assert set(merged["overhead"]) == {"before", "current"}


def test_merge_of_other_losses_keeps_the_earlier_losses_of_a_record():
    # Regression: a --merge stage of other losses (wasserstein_dice, topk) on a case and
    # contender already timed replaced the record and dropped its dice figures.
    def run(records):
        return {"settings": {"quick": True, "threads": 0}, "records": records, "wall_s": 1.0,
                "command": "c", "stages": []}

    old = run([_record("3d", "lossfns_torch", "dice", 1.0)])
    new = run([_record("3d", "lossfns_torch", "topk", 2.0)])
    merged = cli.merge(old, new)
    (record,) = merged["records"]
    assert [r["loss"] for r in record["results"]] == ["dice", "topk"]
    again = cli.merge(merged, run([_record("3d", "lossfns_torch", "dice", 3.0)]))
    (record,) = again["records"]
    assert sorted((r["loss"], r["median_wall_s"]) for r in record["results"]) == [("dice", 3.0), ("topk", 2.0)]


def test_overhead_case_counts_top_level_aten_ops(tmp_path):
    import torch

    # ones, add and mul: the fill inside ones is a sub-operation of it and not counted.
    ops, names = overhead.top_level_aten_ops(lambda: torch.ones(3).add(1).mul(2), 2)
    assert ops == 3 and set(names) == {"aten::ones", "aten::add", "aten::mul"}
    data = cli.main(["--quick", "--in-process", "--cases", "overhead", "--out-dir", str(tmp_path)])
    losses = data["overhead"]["current"]["losses"]
    assert set(losses) == set(overhead.LOSSES)
    for loss, entry in losses.items():
        if "monai" not in entry:
            pytest.skip("MONAI is not installed")
        for who in ("lossfns", "monai"):
            assert entry[who]["aten_ops"] >= 3 and entry[who]["median_wall_s"] > 0, (loss, who)
    markdown = (tmp_path / "results.md").read_text()
    assert "## Per-call overhead" in markdown and "| per-call aten ops ≤ MONAI's | overhead | dice |" in markdown


def test_overhead_refuses_a_lossfns_from_elsewhere(tmp_path, monkeypatch):
    """``--lossfns-path`` must import that checkout's lossfns, not the installed one."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit, match="came from"):
        overhead.use_lossfns_from(str(tmp_path))


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
    assert cli.parse_args([]).out_dir == cli.DEFAULT_OUT and cli.parse_args([]).clock == "wall"
    assert cli.parse_args([]).threads == 0 and "overhead" not in cli.parse_args([]).cases
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


def test_quiet_gate_drops_busy_chunks_within_its_budget(monkeypatch):
    """Chunks timed while other processes held the CPUs are timed again, until the budget is
    spent; the share others took during the kept chunks is what the figure reports."""
    from benchmarks import machine
    from benchmarks.worker import time_step

    monkeypatch.setattr(machine, "wait_until_quiet", lambda limit: 0.5)
    busy, quiet = types.SimpleNamespace(share=0.9), types.SimpleNamespace(share=0.05)
    gate = machine.QuietGate(budget_s=1.2)
    assert not gate.keep(busy, 0.2) and gate.spent == pytest.approx(0.7)
    assert gate.keep(quiet, 0.1) and gate.other_share == pytest.approx(0.05)
    assert not gate.keep(busy, 0.1)  # 1.3 s spent: the budget is gone, so ...
    assert gate.keep(busy, 0.1) and gate.dropped == 2  # ... a busy chunk is kept
    assert gate.other_share == pytest.approx((0.05 * 0.1 + 0.9 * 0.1) / 0.2)
    assert gate.new_figure() == 2 and gate.other_share is None
    # time_step keeps timing until it has the steps it wants from kept chunks.
    shares = iter([0.9, 0.0, 0.0, 0.0])
    monkeypatch.setattr(machine.OtherLoad, "__exit__", lambda self, *exc: setattr(self, "share", next(shares)))
    wall, cpu, device = time_step(lambda: None, 0, 3, gate=machine.QuietGate(budget_s=5.0))
    assert len(wall) == len(cpu) == len(device) == 3
