"""A description of the machine and library versions, read without importing frameworks."""

from __future__ import annotations

import os
import platform
import subprocess
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


def source_state() -> str | None:
    """The checkout's commit, with ``+dirty`` when the library's sources have local changes.

    ``LOSSFNS_SOURCE`` overrides it, for a copy of the sources outside the checkout
    (``benchmarks/gpu_check.sh``)."""
    if os.environ.get("LOSSFNS_SOURCE"):
        return os.environ["LOSSFNS_SOURCE"]
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "lossfns", "adapters"], cwd=root,
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
