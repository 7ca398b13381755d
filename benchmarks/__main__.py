"""``python -m benchmarks``: time and measure every (case, contender) pair, then report.

Each pair runs in a fresh ``python -m benchmarks.worker`` process so that imports, caches,
allocator state and peak memory of one contender never leak into another. The results go to
``benchmarks/results/`` as ``results.json`` (raw figures and the machine), ``results.md``
(ratio tables and the performance targets) and ``results.png`` (bar chart).

The headline figures are wall-clock times with each framework's default number of threads
(``--threads 0``, the default); ``--threads 1`` runs are kept beside them in the same
``results.json`` as a second view, reported in process CPU time. ``--cases overhead`` runs
:mod:`benchmarks.overhead` (per-call cost on tiny inputs, one thread); ``--before DIR`` adds
the same measurement of the lossfns checkout at ``DIR``.

Examples::

    python -m benchmarks --quick                       # tiny shapes, one repetition
    python -m benchmarks --cases 3d --contenders lossfns_torch,monai,floor --losses dice
    python -m benchmarks --report-only                 # re-render from results.json
    python -m benchmarks --report-only --readme        # ... and print the docs' performance tables
    python -m benchmarks --merge --cases overhead --before /tmp/oldmain  # per-call overhead, now and before
    python -m benchmarks --device cuda --quick         # torch and JAX on the GPU -> results/cuda/

On ``--device cuda`` the default clock is the device time (CUDA events for torch, the wall
clock up to ``block_until_ready`` for JAX), the TensorFlow contenders are skipped, and the
results go to ``results/cuda/``. Without a CUDA device it exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import machine, overhead, report
from .cases import CASE_NAMES, DEFAULT_LOSS_NAMES, LOSS_NAMES
from .contenders import CONTENDER_NAMES, CONTENDERS
from .worker import FLOOR, gpu_name, thread_environment
from .worker import run as run_in_process

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
CUDA_OUT = DEFAULT_OUT / "cuda"
PROG = "python -m benchmarks"
EXIT_USAGE = 2


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    return "cuda:0" if text == "cuda" else text


def cuda_missing(device: str) -> str | None:
    """Why torch cannot run on ``device`` (``None`` when it can, or on CPU)."""
    if device == "cpu":
        return None
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        build = torch.version.cuda and f"CUDA {torch.version.cuda}" or "a build without CUDA"
        return f"torch {torch.__version__} ({build}) sees no CUDA device"
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return f"torch sees {torch.cuda.device_count()} CUDA device(s), not {device}"
    return None


def _names(text, known, what):
    if text is None:
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 warm-up, 1 repetition")
    parser.add_argument("--cases", help=f"comma-separated, from: {', '.join(CASE_NAMES + (overhead.CASE,))}")
    parser.add_argument("--contenders", help=f"comma-separated, from: {', '.join(CONTENDER_NAMES)}")
    parser.add_argument("--losses", help=f"comma-separated, from: {', '.join(LOSS_NAMES)}")
    parser.add_argument("--warmup", type=int, help="untimed runs first (default 1)")
    parser.add_argument("--repeats", type=int, help="timed runs at least, median reported (default 3; quick 1)")
    parser.add_argument("--min-time", type=float,
                        help="keep timing (up to 100 runs) until the runs add up to this many seconds "
                             "(default 1; quick 0)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads per framework (default 0: each framework's default, the headline "
                             "figures; 1: the one-thread view, same compute for everyone)")
    parser.add_argument("--device", type=_device, default="cpu",
                        help="cpu (default), cuda or cuda:N: where torch and JAX run (TensorFlow is CPU only)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    parser.add_argument("--in-process", action="store_true",
                        help="run workers in this process (fast; CPU memory figures are not isolated, CUDA "
                             "ones are: the allocator's peak is reset per step)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per worker process")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                        help="each worker waits up to this long for other processes to leave the CPUs "
                             "before timing (default 0: no wait); the share they take is recorded anyway")
    parser.add_argument("--out-dir", type=Path,
                        help="default benchmarks/results (cpu) or benchmarks/results/cuda (cuda)")
    parser.add_argument("--report-only", action="store_true", help="re-render the report from results.json")
    parser.add_argument("--readme", action="store_true",
                        help="also print the performance tables of docs/guides/performance.md (use with "
                             "--report-only)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="with --cases overhead: also measure the lossfns checkout at DIR (its "
                             "lossfns/adapters must be the adapters, as installed)")
    parser.add_argument("--merge", action="store_true",
                        help="add to results.json, replacing the (case, contender) pairs run again")
    parser.add_argument("--clock", choices=("cpu", "wall", "device"),
                        help="time of the headline view: wall (default on cpu), process CPU time, or device "
                             "(default on cuda: CUDA events / block_until_ready); the one-thread view is "
                             "always CPU time")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.out_dir = args.out_dir or (CUDA_OUT if cuda else DEFAULT_OUT)
    args.clock_given = args.clock is not None
    args.clock = args.clock or ("device" if cuda else "wall")
    # The overhead case is on request only (--cases overhead): it is a run of its own kind,
    # on the CPU with one thread, whatever --device and --threads say.
    args.cases = _names(args.cases, CASE_NAMES, "cases") if args.cases is None else \
        _names(args.cases, CASE_NAMES + (overhead.CASE,), "cases")
    if args.before is not None and overhead.CASE not in args.cases:
        parser.error("--before needs --cases overhead")
    if overhead.CASE in args.cases and args.device != "cpu":
        parser.error("the overhead case runs on the CPU only")
    args.contenders = _names(args.contenders, CONTENDER_NAMES, "contenders")
    args.losses = _names(args.losses, LOSS_NAMES, "losses") if args.losses else list(DEFAULT_LOSS_NAMES)
    args.warmup = 1 if args.warmup is None else args.warmup
    args.repeats = (1 if args.quick else 3) if args.repeats is None else args.repeats
    args.min_time = (0.0 if args.quick else 1.0) if args.min_time is None else args.min_time
    return args


#: glibc keeps freed memory instead of returning it to the system, like a caching allocator:
#: without this, whether a step pays for page faults on fresh memory depends on the order of
#: its allocations, which swung medians by 2× between identical runs. Blocks above 32 MiB
#: (glibc's ceiling for this threshold) are still mapped afresh each time.
CACHING_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
                  "MALLOC_TRIM_THRESHOLD_": str(1 << 40), "MALLOC_TOP_PAD_": str(256 * 1024 * 1024)}


def worker_environment(threads: int) -> dict:
    env = dict(os.environ)
    env.update(CACHING_MALLOC)
    env.update(thread_environment(threads))
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow keeps allocator statistics on the CPU (the peak-memory step reads them)
    # only with its BFC allocator; without it `reset_memory_stats("CPU:0")` raises.
    env.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(case, contender, losses, args) -> dict:
    """One worker process; a crash or timeout becomes an error record, never an exception."""
    if args.in_process:
        return run_in_process(case, contender, losses, quick=args.quick, warmup=args.warmup,
                              repeats=args.repeats, device=args.device,
                              memory=not args.no_memory, threads=args.threads, min_time=args.min_time,
                              quiet_wait=args.quiet_wait)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        command = [sys.executable, "-m", "benchmarks.worker", "--case", case, "--contender", contender,
                   "--losses", ",".join(losses), "--warmup", str(args.warmup), "--repeats",
                   str(args.repeats), "--min-time", str(args.min_time), "--device", args.device,
                   "--threads", str(args.threads), "--quiet-wait", str(args.quiet_wait),
                   "--out", str(out)]
        command += ["--quick"] if args.quick else []
        command += ["--no-memory"] if args.no_memory else []
        try:
            done = subprocess.run(command, cwd=ROOT, env=worker_environment(args.threads),
                                  capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"case": case, "contender": contender, "threads": args.threads, "results": [],
                    "failed": f"worker timed out after {args.timeout:.0f} s"}
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or "").strip().splitlines()[-3:]
            return {"case": case, "contender": contender, "threads": args.threads, "results": [],
                    "failed": f"worker exited with {done.returncode}: {' | '.join(tail)}"}
        return json.loads(out.read_text())


def _summary(record) -> str:
    if "skipped" in record or "failed" in record:
        return record.get("skipped") or record.get("failed")
    parts = []
    for entry in record["results"]:
        if "median_cpu_s" in entry:
            parts.append(f"{entry['loss']} {entry['median_cpu_s'] * 1e3:.1f} ms")
        else:
            parts.append(f"{entry['loss']} error")
    return ", ".join(parts)


def collect(args, checkpoint=None) -> list[dict]:
    pairs = []
    for case in (c for c in args.cases if c != overhead.CASE):
        for name in args.contenders:
            wanted = [FLOOR] if name == "floor" else [n for n in args.losses if n in CONTENDERS[name].losses]
            if wanted:
                pairs.append((case, name, wanted))
    records = []
    for number, (case, name, losses) in enumerate(pairs, 1):
        start = time.perf_counter()
        record = run_worker(case, name, losses, args)
        record["wall_s"] = time.perf_counter() - start
        records.append(record)
        print(f"[{number}/{len(pairs)}] {case} {name} ({record['wall_s']:.0f} s): {_summary(record)}",
              file=sys.stderr, flush=True)
        if checkpoint is not None:
            checkpoint(records)
    return records


def _overhead_process(label, path, args) -> dict:
    """``benchmarks.overhead`` in a process of its own, one thread; ``path``: another lossfns."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "overhead.json"
        command = [sys.executable, "-m", "benchmarks.overhead", "--out", str(out), "--label", label,
                   "--quiet-wait", str(args.quiet_wait)]
        command += ["--quick"] if args.quick else []
        # MONAI is the same module in both runs: the current run measures it once.
        command += ["--lossfns-path", str(path), "--no-peer"] if path is not None else []
        try:
            done = subprocess.run(command, cwd=ROOT, env=worker_environment(1), capture_output=True,
                                  text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"label": label, "failed": f"timed out after {args.timeout:.0f} s"}
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or "").strip().splitlines()[-3:]
            return {"label": label, "failed": f"exited with {done.returncode}: {' | '.join(tail)}"}
        return json.loads(out.read_text())


def run_overhead(args) -> dict:
    """``{"current": ..., "before": ...}``: the overhead case now and, with ``--before``, at DIR.

    The earlier version always runs in its own process: it must import another lossfns.
    """
    runs = {}
    for label, path in [("current", None)] + ([("before", args.before)] if args.before else []):
        start = time.perf_counter()
        if args.in_process and path is None:
            runs[label] = overhead.measure(quick=args.quick, quiet_wait=args.quiet_wait)
        else:
            runs[label] = _overhead_process(label, path, args)
        runs[label]["wall_time_of_run_s"] = time.perf_counter() - start
        print(f"[overhead {label}] ({runs[label]['wall_time_of_run_s']:.0f} s): "
              f"{runs[label].get('failed') or _overhead_summary(runs[label])}", file=sys.stderr, flush=True)
    return runs


def _overhead_summary(run) -> str:
    return ", ".join(f"{loss} " + "/".join(f"{e['median_wall_s'] * 1e6:.0f} µs {e['aten_ops']:.0f} ops"
                                           for e in entry.values())
                     for loss, entry in run["losses"].items())


def merge(old: dict, new: dict) -> dict:
    """``old`` with ``new``'s records added. A (case, contender, threads) triple run again
    takes the new record, which keeps the old results of the losses it did not run again
    (a stage of other losses adds to a record instead of dropping its losses); an overhead
    measurement (``current`` or ``before``) run again is replaced."""
    if old["settings"]["quick"] != new["settings"]["quick"]:
        raise SystemExit("--merge: cannot mix --quick and full-size results")

    def key(record, data):
        return record["case"], record["contender"], report.threads_of(record, data["settings"])

    previous = {key(r, old): r for r in old["records"]}
    rerun = {key(r, new) for r in new["records"]}
    # Records keep their thread count, so the merged settings' count cannot relabel them.
    kept = [dict(r, threads=key(r, old)[2]) for r in old["records"] if key(r, old) not in rerun]
    combined = []
    for record in new["records"]:
        earlier = previous.get(key(record, new))
        if earlier is not None and "results" in record:
            again = {result.get("loss") for result in record["results"]}
            carried = [result for result in earlier.get("results", []) if result.get("loss") not in again]
            record = dict(record, results=carried + record["results"])
        combined.append(record)
    merged = dict(new, records=kept + combined, wall_s=old["wall_s"] + new["wall_s"])
    runs = {**old.get("overhead", {}), **new.get("overhead", {})}
    if runs:
        merged["overhead"] = runs
    merged["command"] = "; ".join(filter(None, [old.get("command"), new["command"]]))
    merged["stages"] = old.get("stages", []) + new["stages"]
    return merged


def _results(args, command, records, wall_s, old, overhead_runs=None) -> dict:
    data = {
        "command": command,
        "settings": {"quick": args.quick, "warmup": args.warmup, "repeats": args.repeats,
                     "min_time_s": args.min_time, "quiet_wait_s": args.quiet_wait,
                     "threads": args.threads, "device": args.device, "clock": args.clock,
                     "isolated": not args.in_process},
        # Described before the first worker starts: the load average is the one at the start.
        "machine": args.machine,
        "wall_s": wall_s,
        "records": records,
    }
    if overhead_runs:
        data["overhead"] = overhead_runs
    # Each run (a --merge adds one) notes the library source it measured.
    data["stages"] = [{"command": command, "lossfns_source": data["machine"]["lossfns_source"],
                       "threads": args.threads, "wall_s": data["wall_s"],
                       "load_average_1min_at_start": data["machine"]["load_average_1min_at_start"]}]
    return data if old is None else merge(old, data)


def main(argv=None):
    args = parse_args(argv)
    missing = None if args.report_only else cuda_missing(args.device)
    if missing:
        print(f"{PROG}: error: --device {args.device}: {missing}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / "results.json"
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.report_only:
        data = json.loads(json_path.read_text())
        if args.clock_given:
            data["settings"]["clock"] = args.clock
    else:
        old = json.loads(json_path.read_text()) if args.merge and json_path.exists() else None
        args.machine = dict(machine.describe(), gpu=gpu_name(args.device))
        start = time.perf_counter()

        def checkpoint(records):  # a run cut short keeps what it measured (--report-only renders it)
            json_path.write_text(json.dumps(_results(args, command, records, time.perf_counter() - start, old),
                                            indent=1))

        records = collect(args, checkpoint)
        runs = run_overhead(args) if overhead.CASE in args.cases else None
        data = _results(args, command, records, time.perf_counter() - start, old, runs)
    data["targets"] = report.targets(data)
    json_path.write_text(json.dumps(data, indent=1))
    report.write(data, args.out_dir)
    print(f"wrote {json_path}, results.md and results.png in {args.out_dir}", file=sys.stderr)
    if args.readme:
        print(report.readme_summary(data), end="")
    return data


if __name__ == "__main__":
    main()
