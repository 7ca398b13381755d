"""Smoke test of ``benchmarks/training_demo.py``: a tiny run, the three curves coincide.

The committed run (``benchmarks/results/training_demo.*``) is made with the defaults; here
3 steps on 2 images of 8×8 exercise every code path (three frameworks, report, figure).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not installed

for _framework in ("torch", "jax", "keras", "matplotlib"):
    pytest.importorskip(_framework)

from benchmarks import training_demo  # noqa: E402


def test_tiny_run_gives_the_same_curve_in_every_framework(tmp_path):
    result = training_demo.main(["--steps", "3", "--samples", "2", "--size", "8", "--out-dir", str(tmp_path)])
    curves = result["curves"]
    assert set(curves) == {"torch", "jax", "keras"}
    torch_curve = np.asarray(curves["torch"])
    assert torch_curve.shape == (3,) and np.all(np.isfinite(torch_curve))
    assert torch_curve[-1] < torch_curve[0]  # gradient descent lowers the loss
    for name in ("jax", "keras"):
        np.testing.assert_allclose(curves[name], torch_curve, rtol=1e-10, err_msg=name)
    assert result["largest_relative_difference"] < 1e-10
    saved = json.loads((tmp_path / "training_demo.json").read_text())
    assert saved["curves"] == curves and saved["loss"] == list(training_demo.loss_parts())
    assert (tmp_path / "training_demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "Largest relative difference" in (tmp_path / "training_demo.md").read_text()


def test_same_initial_weights_and_data_every_time():
    first, second = training_demo.make_data(2, 8), training_demo.make_data(2, 8)
    np.testing.assert_array_equal(first[0], second[0])
    assert set(np.unique(first[1].argmax(-1))) <= {0, 1, 2}
    for (k1, b1), (k2, b2) in zip(training_demo.initial_weights(), training_demo.initial_weights()):
        np.testing.assert_array_equal(k1, k2)
        np.testing.assert_array_equal(b1, b2)
