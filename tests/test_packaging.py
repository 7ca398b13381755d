"""Packaging (SPEC §1): a light core import and a complete public namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lossfns
from lossfns.registry import LOSSES

FRAMEWORKS = ("torch", "jax", "tensorflow", "keras")


def test_importing_the_core_loads_no_framework(tmp_path):
    # A fresh interpreter in an empty directory: nothing this test process imported counts,
    # and the checkout is not on the path by accident of the working directory.
    package_parent = str(Path(lossfns.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=package_parent)
    code = (
        "import sys, lossfns\n"
        f"loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "print(lossfns.__file__)\n"
        "assert not loaded, f'importing lossfns imported {loaded}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == Path(lossfns.__file__).resolve()


def test_all_names_every_registry_loss_and_alias():
    for spec in LOSSES:
        for name in (spec.name,) + spec.aliases:
            assert name in lossfns.__all__, name
            assert getattr(lossfns, name) is spec.function, name
    assert {"confusion_terms", "Confusion"} <= set(lossfns.__all__)
    assert all(hasattr(lossfns, name) for name in lossfns.__all__)
