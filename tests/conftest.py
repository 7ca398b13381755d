"""Shared fixtures: the ``xp`` fixture runs a test on every array library the core supports.

``backend`` objects convert NumPy arrays to the library (``backend.asarray``) and back
(``backend.to_numpy``), and know whether the library computes in float64.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class Backend:
    def __init__(self, name, module, asarray, to_numpy, float64=True):
        self.name = name
        self.module = module
        self._asarray = asarray
        self._to_numpy = to_numpy
        self.float64 = float64

    def asarray(self, x, dtype=None):
        x = np.asarray(x)
        if dtype is not None:
            x = x.astype(dtype)
        elif x.dtype == np.float64 and not self.float64:
            x = x.astype(np.float32)
        return self._asarray(x)

    def to_numpy(self, x):
        return np.asarray(self._to_numpy(x))

    def __repr__(self):
        return self.name


def _make(name):
    if name == "numpy":
        return Backend("numpy", np, np.asarray, np.asarray)
    if name == "array_api_strict":
        xs = importlib.import_module("array_api_strict")
        return Backend(name, xs, xs.asarray, lambda x: np.asarray(x))
    if name == "torch":
        torch = importlib.import_module("torch")
        return Backend(name, torch, torch.from_numpy, lambda x: x.detach().cpu().numpy())
    if name == "jax":
        jax = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", True)
        return Backend(name, jax.numpy, jax.numpy.asarray, np.asarray)
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return Backend(name, tf, tf.constant, lambda x: x.numpy())
    raise ValueError(name)


BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "tensorflow")


def load_backend(name):
    try:
        return _make(name)
    except ImportError as exc:  # CI installs every framework, so nothing is skipped there
        pytest.skip(f"{name} is not installed: {exc}")


#: JAX and TensorFlow run eagerly here, an operation at a time: the slow part of the
#: per-library tests, left out of the quick tier (``-m "not slow"``).
SLOW_BACKENDS = ("jax", "tensorflow")


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) if name in SLOW_BACKENDS else name
                        for name in BACKENDS])
def xp(request):
    """A :class:`Backend` for each supported array library."""
    return load_backend(request.param)


@pytest.fixture
def other_device():
    """``(namespace, device)``: array-api-strict's non-default device, to guard device propagation."""
    xs = importlib.import_module("array_api_strict")
    return xs, xs.Device("device1")


#: Files left out of the quick tier as a whole: subprocesses (Keras backends, distributed
#: ranks, the CLI, benchmark workers), the site build, and JAX/TensorFlow-heavy suites.
SLOW_FILES = {
    "test_adapter_keras.py", "test_distributed.py", "test_docs.py", "test_gradcheck.py",
    "test_properties.py", "test_benchmarks_smoke.py", "test_half_precision.py", "test_adapter_jax.py",
    "test_defects_adapters.py", "test_cli.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI=true``) every framework is installed, so a skip means something is broken."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every framework is installed: {reason}"


def pytest_sessionfinish(session, exitstatus):
    """Skips decided at collection (a module-level ``importorskip``) fail CI too."""
    if os.environ.get("CI", "").lower() != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = 1
