"""A description of the machine and library versions, read without importing frameworks."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

DISTRIBUTIONS = ("lossfns", "numpy", "array-api-compat", "torch", "jax", "jaxlib", "tensorflow",
                 "tensorflow-cpu", "keras", "monai", "segmentation-models-pytorch", "matplotlib")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    found = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def source_state(root: Path | None = None) -> str | None:
    """The checkout's commit, with ``+dirty`` when the library's sources have local changes.

    ``LOSSFNS_SOURCE`` overrides it, for a copy of the sources outside the checkout
    (``benchmarks/gpu_check.sh``). ``root`` names another checkout (an earlier version
    measured by ``benchmarks.overhead``); there untracked files do not count, because such a
    checkout needs an untracked ``lossfns/adapters`` link to import as installed."""
    if root is None and os.environ.get("LOSSFNS_SOURCE"):
        return os.environ["LOSSFNS_SOURCE"]
    status = ["git", "status", "--porcelain", "--", "lossfns", "adapters"]
    if root is not None:
        status.insert(3, "--untracked-files=no")
    root = root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(status, cwd=root,
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if changed else "")


def describe() -> dict:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1min_at_start": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "lossfns_source": source_state(),
    }


# -- other processes' use of the CPUs ---------------------------------------------------------
# On a shared machine another process's work inflates a wall-clock figure, and with several
# threads per framework it does so in steps of a scheduler time slice (a parallel region
# waits for the thread that lost its core). The worker waits for a quiet machine before it
# times, and records how much of the machines' CPU time other processes took meanwhile.

def _jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from ``/proc/stat`` (Linux only)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


class OtherLoad:
    """``with OtherLoad() as load: ...``; then ``load.share``: the fraction of all CPUs' time
    that processes other than this one used during the block (``None`` without /proc/stat)."""

    def __enter__(self):
        self.start, self.own = _jiffies(), time.process_time()
        return self

    def __exit__(self, *exc):
        end, own = _jiffies(), time.process_time() - self.own
        self.share = None
        if self.start is not None and end is not None and end[1] > self.start[1]:
            tick = os.sysconf("SC_CLK_TCK")
            busy, total = (end[0] - self.start[0]) / tick, (end[1] - self.start[1]) / tick
            self.share = min(max((busy - own) / total, 0.0), 1.0)
        return False


def wait_until_quiet(limit_s: float, share: float = 0.1, sample_s: float = 1.0) -> float:
    """Wait (at most ``limit_s``) until other processes use under ``share`` of the CPUs over
    ``sample_s``; returns the seconds waited (0 when the machine was quiet or ``limit_s`` is 0)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        with OtherLoad() as load:
            time.sleep(sample_s)
        if load.share is None or load.share < share:
            break
    return time.perf_counter() - start


class QuietGate:
    """Keeps timed chunks only while other processes leave the CPUs alone, within a budget.

    A chunk timed while others took more than ``share`` of the CPUs is dropped, and the gate
    waits for a quiet machine before the next one, until ``budget_s`` seconds have gone on
    dropped chunks and waiting; after that every chunk is kept. ``other_share`` is the share
    others took during the kept chunks (what the figures were measured under).
    """

    def __init__(self, budget_s: float, share: float = 0.15):
        self.budget, self.share, self.spent, self.dropped = budget_s, share, 0.0, 0
        self.busy, self.seconds = 0.0, 0.0

    def keep(self, load: OtherLoad, seconds: float) -> bool:
        if load.share is None or load.share <= self.share or self.spent >= self.budget:
            if load.share is not None:
                self.busy, self.seconds = self.busy + load.share * seconds, self.seconds + seconds
            return True
        self.dropped += 1
        self.spent += seconds
        self.spent += wait_until_quiet(min(self.budget - self.spent, 30.0))
        return False

    def new_figure(self) -> int:
        """Start the share of a new figure (the budget runs on); returns the chunks dropped so far."""
        self.busy, self.seconds = 0.0, 0.0
        return self.dropped

    @property
    def other_share(self) -> float | None:
        return self.busy / self.seconds if self.seconds else None
