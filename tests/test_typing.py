"""Typed package: the committed adapter stubs match the registry, and mypy checks a usage file.

The adapter classes are generated at import time, so their signatures live in stubs
(``adapters/*.pyi``) written by ``python -m lossfns.adapters._stubgen``. The stubs are
regenerated in memory here and compared with the committed files; then mypy type-checks
``tests/typing_usage.py`` (which must pass) and a file with misspelt and mistyped arguments
(which must fail, naming each error). Finally the project's own configuration in
``pyproject.toml``: ``ruff check lossfns adapters docs/_tools`` and ``mypy`` (on ``lossfns``)
must report nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("keras", "torch", "jax")

pytest.importorskip("mypy", reason="mypy is part of the test extra")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_committed_stubs_match_the_registry(framework):
    pytest.importorskip(framework)
    from lossfns.adapters import _stubgen

    committed = _stubgen.stub_path(framework)
    assert committed.exists(), f"{committed.name} missing: run python -m lossfns.adapters._stubgen"
    assert committed.read_text() == _stubgen.render(framework), (
        f"{committed.name} is out of date: run python -m lossfns.adapters._stubgen")


def test_stubs_declare_every_generated_name():
    from lossfns import registry

    for framework in FRAMEWORKS:
        stub = (ROOT / "adapters" / f"{framework}.pyi").read_text()
        for spec in registry.LOSSES:
            names = (spec.name, *spec.aliases) if framework == "jax" else registry.class_names(spec)
            for name in names:
                assert f"class {name}(" in stub or f"def {name}(" in stub or f"\n{name} = " in stub, (framework, name)


def _installed_layout(destination: Path) -> Path:
    """``lossfns`` with ``adapters`` inside it, as installed (an editable install uses an
    import hook, which mypy cannot follow)."""
    if destination.exists():
        return destination
    for source, package in ((ROOT / "lossfns", destination / "lossfns"),
                            (ROOT / "adapters", destination / "lossfns" / "adapters")):
        package.mkdir(parents=True)
        for entry in source.iterdir():
            if entry.suffix in (".py", ".pyi") or entry.name == "py.typed":
                shutil.copy(entry, package / entry.name)
    return destination


_CONFIG = """\
[mypy]
python_version = 3.11
cache_dir = {cache}
follow_imports = normal
# The frameworks are large: read them as Any, so the check is about lossfns' own types.
[mypy-torch.*,jax.*,jaxlib.*,keras.*,tensorflow.*,numpy.*,array_api_compat.*]
follow_imports = skip
ignore_missing_imports = True
# The core is checked by its own tests; here only the usage file's errors count.
[mypy-lossfns.*]
follow_imports = silent
[mypy-lossfns.adapters.*]
follow_imports = normal
"""

_BAD = """\
from lossfns.adapters import jax as lj
from lossfns.adapters import torch as lt
lt.TverskyLoss(alpha=0.3, gama=2.0)
lt.DiceLoss(reduction="average")
lt.FocalTverskyLoss(gamma="high")
lj.tversky_loss([0.5], [1], batch="yes")
import lossfns
lossfns.dice_loss([1], [0.5], epsilom=1e-5)
lossfns.tversky_loss([1], [0.5], average="mean")
lossfns.focal_tversky_loss([1], [0.5], epsilon=(1e-5, 1e-5, 1e-5))
"""


def _mypy(tmp_path: Path, source: Path):
    tree = _installed_layout(tmp_path / "tree")
    config = tmp_path / "mypy.ini"
    config.write_text(_CONFIG.format(cache=tmp_path / "cache"))
    env = {**os.environ, "MYPYPATH": str(tree)}
    # --no-site-packages: lossfns must come from the tree, not from the editable install.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-site-packages",
         "--no-error-summary", str(source)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )


def test_mypy_accepts_the_usage_file_and_rejects_bad_calls(tmp_path):
    good = _mypy(tmp_path, ROOT / "tests" / "typing_usage.py")
    assert good.returncode == 0, good.stdout + good.stderr

    bad_file = tmp_path / "bad_usage.py"
    bad_file.write_text(_BAD)
    bad = _mypy(tmp_path, bad_file)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    lines = bad.stdout.splitlines()
    expected = ((3, '"gama"'), (4, '"reduction"'), (5, '"gamma"'), (6, '"batch"'),
                (8, '"epsilom"'), (9, '"average"'), (10, '"epsilon"'))  # the core's own signatures
    for line_number, fragment in expected:
        assert any(f"bad_usage.py:{line_number}:" in line and fragment in line for line in lines), bad.stdout


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_ruff_reports_nothing():
    """The lint configuration of ``pyproject.toml`` (``[tool.ruff]``) on the project's code."""
    pytest.importorskip("ruff", reason="ruff is part of the test extra")
    result = _run("ruff", "check", "--no-fix", "lossfns", "adapters", "docs/_tools")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_nothing_on_lossfns():
    """``mypy`` with ``pyproject.toml``'s ``[tool.mypy]``: ``lossfns`` type-checks cleanly.

    The cache lives in the git-ignored ``.mypy_cache/``, so a second run takes a second.
    """
    result = _run("mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"))
    assert result.returncode == 0, result.stdout + result.stderr
