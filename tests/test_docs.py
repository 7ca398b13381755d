"""The documentation: a strict site build, its generated loss pages, and the doctests.

* The site (``mkdocs.yml``, ``docs/``) is built once with ``--strict`` into a temporary
  folder: any warning (broken link, unresolved reference, missing README section) fails.
* Every registered loss has its section, formula and figure; the pages load nothing from
  the network (MathJax is bundled); every contract section the docstrings cite has a target.
* The ``>>>`` examples of the core's public modules run as doctests on NumPy.
"""

from __future__ import annotations

import doctest
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossfns
from lossfns import registry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_tools"))

pytest.importorskip("mkdocs", reason="the docs extra is part of the test extra")

import text  # noqa: E402  (docs/_tools/text.py)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    # Build as on a fresh clone: the hooks lay out griffe's import tree before mkdocstrings looks.
    shutil.rmtree(ROOT / "docs" / "_tools" / "_tree", ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out


def _family_page(site, spec) -> str:
    return (site / "losses" / f"{spec.family.replace('_', '-')}.html").read_text()


def test_every_registered_loss_has_a_section_formula_and_figure(site):
    for spec in registry.LOSSES:
        page = _family_page(site, spec)
        assert f'id="{spec.name}"' in page, spec.name
        section = page.split(f'id="{spec.name}"', 1)[1].split("<h2", 1)[0]
        assert 'class="arithmatex"' in section, f"{spec.name}: no formula rendered from its docstring"
        figure = site / "figures" / f"{spec.name}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", spec.name
        assert f"../figures/{spec.name}.png" in section
        for hyperparameter in spec.hyperparameters:
            assert f"<code>{hyperparameter.name}</code>" in section, (spec.name, hyperparameter.name)


def test_adapter_api_pages_show_every_generated_name(site):
    for framework in ("keras", "torch", "jax"):
        page = (site / "api" / f"{framework}.html").read_text()
        for spec in registry.LOSSES:
            names = registry.class_names(spec) if framework != "jax" else (spec.name,)
            for name in names:
                assert f'id="lossfns.adapters.{framework}.{name}"' in page, (framework, name)


def test_pages_load_nothing_from_the_network(site):
    remote = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""")
    pages = list(site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        assert not remote.search(page.read_text()), page.relative_to(site)
    mathjax = site / "assets" / "mathjax" / "tex-svg.js"
    assert mathjax.stat().st_size > 1_000_000
    assert "assets/mathjax/tex-svg.js" in (site / "index.html").read_text()


def test_every_cited_contract_section_has_a_target(site):
    ids = set()
    for page in site.rglob("*.html"):
        ids.update(re.findall(r'id="([^"]+)"', page.read_text()))
    known = {spec.name for spec in registry.LOSSES}
    for section in text.SPEC_ANCHORS:
        assert text.spec_anchor(section, known) in ids, section


def test_text_conversion():
    doc = "Loss.\n\n.. math::\n    L = 1 - x\n\nSee :func:`~lossfns.dice_loss` and SPEC §4.\n\nExample:\n  >>> 1\n  1\n"
    converted = text.to_markdown(doc, known_losses=())
    assert "$$\nL = 1 - x\n$$" in converted
    assert "`lossfns.dice_loss`" in converted and ":func:" not in converted
    assert "[region losses][losses-region]" in converted
    assert "Examples:" in converted
    # A contract section whose loss is not registered links to the loss index instead.
    assert text.spec_links("SPEC §16", known_losses=()) == "[Lovász losses][losses]"
    assert text.formulas(doc) == ["L = 1 - x"]


# --------------------------------------------------------------------------- doctests


def _core_modules():
    """The modules that define the public core names (``lossfns.__all__``)."""
    names = sorted({getattr(lossfns, name).__module__ for name in lossfns.__all__})
    return [name for name in names if name.startswith("lossfns")]


def _public_names(module_name):
    return [name for name in lossfns.__all__ if getattr(lossfns, name).__module__ == module_name
            and getattr(getattr(lossfns, name), "__name__", name) == name]


def test_every_public_core_function_has_an_example():
    missing = [name for name in lossfns.__all__ if callable(getattr(lossfns, name))
               and not isinstance(getattr(lossfns, name), type)
               and ">>>" not in (getattr(lossfns, name).__doc__ or "")]
    assert not missing, f"public functions without a >>> example: {missing}"


@pytest.mark.parametrize("module_name", _core_modules())
def test_doctests_run_on_numpy(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    saved = np.get_printoptions()
    np.set_printoptions(legacy=False, precision=8, suppress=False, linewidth=75)
    globs = {"np": np, "lossfns": lossfns}
    # The decorated public functions are wrappers defined in lossfns.validation, which
    # doctest's module search leaves out: collect them by name as well.
    tests = {t.name: t for t in finder.find(module, module_name, globs=globs)}
    for name in _public_names(module_name):
        for test in finder.find(getattr(lossfns, name), f"{module_name}.{name}", globs=globs):
            tests.setdefault(test.name, test)
    try:
        for test in tests.values():
            runner.run(test)
    finally:
        np.set_printoptions(**saved)
    results = runner.summarize(verbose=False)
    with_examples = [n for n in _public_names(module_name) if ">>>" in (getattr(lossfns, n).__doc__ or "")]
    assert results.attempted >= len(with_examples), (module_name, results, with_examples)
    assert results.failed == 0, f"{results.failed} of {results.attempted} doctest examples failed in {module_name}"
