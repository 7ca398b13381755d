"""The documentation: a strict site build, its generated loss pages, and the doctests.

* The site (``mkdocs.yml``, ``docs/``) is built once with ``--strict`` into a temporary
  folder: any warning (broken link, unresolved reference, unknown include) fails.
* Every registered loss has its section, formula, figure, "when to use" line and linked
  references; the pages load nothing from the network (MathJax and the search index are
  bundled); every contract section the docstrings cite has a target; the performance
  page's tables are those of the committed benchmark run.
* The figures: twice the standard resolution, no derivative panel that would only show a
  constant, and hyperparameter sweeps whose curves differ.
* In a headless Chromium, where one is installed: formulas have their natural size on a
  390 px wide screen, render even when MathJax's menu stored settings that need components
  the site does not ship, the copy button leaves out ``>>>`` prompts and output, and search
  works from ``file://``. These tests are defined only when Chromium is found.
* The ``>>>`` examples of the core's public modules run as doctests on NumPy.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import lossfns
from lossfns import registry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_tools"))

pytest.importorskip("mkdocs", reason="the docs extra is part of the test extra")

import catalogue  # noqa: E402  (docs/_tools/catalogue.py)
import figures  # noqa: E402  (docs/_tools/figures.py)
import text  # noqa: E402  (docs/_tools/text.py)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    # Build as on a fresh clone: the hooks lay out griffe's import tree before mkdocstrings looks.
    shutil.rmtree(ROOT / "docs" / "_tools" / "_tree", ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out


def _family_page(site, spec) -> str:
    return (site / "losses" / f"{spec.family.replace('_', '-')}.html").read_text()


def test_no_page_shows_a_missing_default(site):
    """Regression: a required hyperparameter (distance_matrix) showed its signature's
    sentinel, ``<class 'inspect._empty'>``, as its default in the loss tables."""
    for page in site.rglob("*.html"):
        assert "inspect._empty" not in page.read_text(), page.name
    assert "(required)" in (site / "losses" / "index.html").read_text()


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


def test_every_loss_says_when_to_use_it_with_linked_references(site):
    for spec in registry.LOSSES:
        section = _family_page(site, spec).split(f'id="{spec.name}"', 1)[1].split("<h2", 1)[0]
        assert "<strong>When to use:</strong>" in section, spec.name
        assert catalogue.REFERENCES.get(spec.name), f"{spec.name}: no references in docs/_tools/catalogue.py"
        for _, url in catalogue.REFERENCES[spec.name]:
            assert f'href="{url}"' in section, (spec.name, url)


def test_pages_hold_their_own_text():
    """The pages no longer inline README sections: each page's prose lives in docs/."""
    hooks = (ROOT / "docs" / "_tools" / "hooks.py").read_text()
    assert "README.md" not in hooks and "(readme" not in hooks
    for page in (ROOT / "docs").rglob("*.md"):
        assert "include readme" not in page.read_text(), page


def test_user_facing_text_cites_no_internal_sources(site):
    """Readers cannot see the behaviour contract, the tracker or the history: the site states
    rules and links its own pages instead."""
    forbidden = re.compile(r"SPEC\s*§|SPEC\.md|shared folder|this machine|\bthe issue\b|\bPR #|"
                           r"source \(git\)", re.IGNORECASE)
    for page in [*site.rglob("*.html"), ROOT / "README.md"]:
        visible = re.sub(r"<script.*?</script>|<[^>]+>", " ", page.read_text(), flags=re.DOTALL)
        found = forbidden.search(visible)
        assert found is None, (page.name, visible[max(found.start() - 80, 0):found.end() + 80])


def test_readme_is_short_and_keeps_the_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    # CI runs the second command; the first is the parity check a newcomer starts with.
    assert ('pip install torch==2.13.0 && pip install -e ".[all]" && lossfns parity') in readme
    command = ('pip install torch==2.13.0 && pip install -e ".[test]" && pip install --no-deps '
               'segmentation-models-pytorch nnunetv2==2.8.1 && python -m pytest')
    assert command in readme
    ci = (ROOT / ".ci" / "run").read_text()  # CI runs the same installs, quietly
    assert command.replace("pip install ", "pip install -q ") in ci
    for link in re.findall(r"\]\(((?:docs/|LICENSE)[^)#]*)", readme):
        assert (ROOT / link).exists(), link


def test_performance_page_tables_are_generated_from_the_committed_run(site):
    """The performance page shows ``python -m benchmarks --report-only --readme`` of the
    committed ``benchmarks/results/results.json``: a new run means new tables."""
    from benchmarks import report

    data = json.loads((ROOT / "benchmarks" / "results" / "results.json").read_text())
    page = (site / "guides" / "performance.html").read_text()
    cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", page, re.DOTALL)]
    joined = "\x00".join(cells)
    lines = report.performance_tables(data).splitlines()
    # Body rows only: a header row is the one above its |---| line (it renders as <th>).
    rows = [line for line, below in zip(lines, lines[1:] + [""])
            if line.startswith("| ") and not below.startswith("|---")]
    assert len(rows) > 10 and any(row.startswith("| dice | ") for row in rows)  # overhead tables too
    for row in rows:
        expected = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert "\x00".join(expected) in joined, row
    for case in figures.benchmark_cases(report, data):
        assert f"../assets/benchmarks/{case}.png" in page
        assert (site / "assets" / "benchmarks" / f"{case}.png").read_bytes()[:4] == b"\x89PNG"


def test_errors_page_table_is_what_the_code_raises():
    """The error table of docs/guides/errors.md is ``tests/error_table.py``'s rendering of what
    the code raises (``python tests/error_table.py`` prints it)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import error_table

    page = (ROOT / "docs" / "guides" / "errors.md").read_text()
    assert error_table.readme_table(page) == error_table.render(), \
        "docs/guides/errors.md's error table is stale: paste `python tests/error_table.py`"


def test_search_index_is_bundled_for_file_urls(site):
    index = site / "search" / "search_index.js"
    assert index.read_text().startswith("var __index =")
    assert "iframe-worker-offline.js" in (site / "index.html").read_text()


def test_signatures_are_wrapped_and_show_their_source(site):
    page = (site / "api" / "core.html").read_text()
    signature = re.search(r'class="doc-signature highlight"><pre><span></span><code>(.*?)</code>', page, re.DOTALL)
    assert signature is not None and signature.group(1).count("\n") > 3, "signatures are not wrapped (is Ruff installed?)"
    assert "Source code in" in page


def test_header_shows_the_package_version(site):
    assert f"lossfns {lossfns.__version__}" in (site / "index.html").read_text()


# --------------------------------------------------------------------------- figures


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_figures_are_drawn_at_twice_the_standard_resolution(site):
    for spec in registry.LOSSES:
        width, height = _png_size((site / "figures" / f"{spec.name}.png").read_bytes())
        assert width >= 2 * 480 and height >= 2 * 280, (spec.name, width, height)


def _spec(name):
    return next(spec for spec in registry.LOSSES if spec.name == name)


def test_no_derivative_panel_shows_only_a_constant():
    for spec in registry.LOSSES:
        _, data = figures.curves(spec)
        slopes = figures.constant_slopes(data)
        one_panel = figures.render(spec) if slopes is not None else None
        if one_panel is not None:
            # One panel: narrower than the two-panel figures.
            assert _png_size(one_panel)[0] < 1200, spec.name
    for name in ("lovasz_softmax_loss", "boundary_loss"):
        assert figures.constant_slopes(figures.curves(_spec(name))[1]) is not None, name


def test_hyperparameter_sweeps_draw_curves_that_differ():
    lovasz = figures.curves(_spec("lovasz_softmax_loss"))[1]
    assert np.max(np.abs(lovasz["present"][0] - lovasz["all"][0])) > 0.05
    for name in ("f1_loss", "iou_loss", "mcc_loss"):
        varied, data = figures.curves(_spec(name))
        assert varied == "epsilon"
        losses = [loss for loss, _ in data.values()]
        apart = sum(np.max(np.abs(a - b)) > 0.02 for a, b in zip(losses, losses[1:]))
        assert apart >= len(losses) - 2, (name, apart)


# --------------------------------------------------------------------------- in a browser

CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)

#: A page written next to the built pages: it frames one of them at a phone's width and,
#: once MathJax has typeset it, writes what the test reads into <pre id="probe">.
_FRAME_PROBE = """<!doctype html><html><body style="margin:0">
<script>
// A setting that used to make MathJax load a11y/sre.js and input/mml.js, which the site does
// not ship; once stored, no formula rendered again until the site data was cleared.
localStorage.setItem("MathJax-Menu-Settings", JSON.stringify({explorer: true, collapsible: true, renderer: "CHTML"}));
</script>
<iframe id="page" src="PAGE" style="width:390px;height:3000px;border:0"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var w = this.contentWindow, out = document.createElement("pre");
  out.id = "probe";
  w.MathJax.startup.promise.then(function () {
    var sizes = Array.prototype.map.call(w.document.querySelectorAll("div.arithmatex"), function (box) {
      var svg = box.querySelector("svg"), r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
      return [r.width, r.height];
    });
    var prompt = w.document.querySelector("div.highlight .gp"), copied = null;
    if (prompt) {
      var code = prompt.closest("code");
      code.setAttribute("data-md-copying", "");  // what Material's copy button does
      copied = code.innerText;
      code.removeAttribute("data-md-copying");
    }
    out.textContent = JSON.stringify({width: w.innerWidth, sizes: sizes, copied: copied});
    document.body.appendChild(out);
  });
});
</script></body></html>"""

#: Appended to a copy of index.html: types a query into the search box and counts results.
_SEARCH_PROBE = """<script>
window.addEventListener("load", function () {
  var input = document.querySelector("input.md-search__input");
  setTimeout(function () {
    input.focus();
    input.value = "tversky";
    input.dispatchEvent(new Event("input", {bubbles: true}));
    input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true, key: "y"}));
  }, 1000);
  setTimeout(function () {
    var out = document.createElement("pre");
    out.id = "probe";
    out.textContent = JSON.stringify({results: document.querySelectorAll(".md-search-result__item").length});
    document.body.appendChild(out);
  }, 6000);
});
</script>"""


def _chromium(*arguments, timeout=120):
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile}", "--hide-scrollbars", "--virtual-time-budget=20000", *arguments]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _open_probe(path: Path, html: str, *arguments) -> dict:
    """Write ``html`` to ``path`` in the built site, load it in Chromium, and read its probe."""
    path.write_text(html)
    try:
        return _probe(_chromium(*arguments, "--dump-dom", path.as_uri()).stdout)
    finally:
        path.unlink()


def _probe(dump: str) -> dict:
    found = re.search(r'<pre id="probe">(.*?)</pre>', dump, re.DOTALL)
    assert found is not None, "the page never finished typesetting (or its script failed)"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&gt;", ">").replace("&lt;", "<")
                      .replace("&amp;", "&"))


if CHROMIUM:  # defined only where Chromium is installed: in CI a skipped test fails
    @pytest.mark.parametrize("page", ["concepts.html", "losses/region.html"])
    def test_formulas_render_at_phone_width_in_chromium(site, page):
        """Headless Chromium (only collected where it is installed) opens ``page`` in a
        390 px wide frame. Every display formula must keep its natural size (Material's
        phone CSS once collapsed them to 1×1 px), formulas must render although MathJax's
        menu stored settings that need components the site does not ship, and the copy
        button must leave out ``>>>`` prompts and printed output. The frame lets the test
        read the page: headless Chromium's own windows are at least 500 px wide."""
        # --allow-file-access-from-files lets the probe page read the framed file:// page.
        found = _open_probe(site / f"_probe_{page.replace('/', '_')}", _FRAME_PROBE.replace("PAGE", page),
                            "--allow-file-access-from-files", "--window-size=800,1000")
        assert found["width"] == 390
        assert found["sizes"], "no display formula on the page"
        for width, height in found["sizes"]:
            assert width > 40 and height > 8, found["sizes"]
        if found["copied"] is not None:  # the first example of the page, as the button copies it
            lines = found["copied"].strip().splitlines()
            assert lines and not any(line.startswith((">>>", "...")) for line in lines), lines
            assert lines[0].startswith("import"), lines

    def test_search_works_from_file_urls_in_chromium(site):
        """Search from a page opened as a file, with no server and no network (only collected
        where Chromium is installed)."""
        page = (site / "index.html").read_text().replace("</body>", _SEARCH_PROBE + "</body>")
        assert _open_probe(site / "_probe_search.html", page, "--window-size=1300,1000")["results"] > 0

    @pytest.mark.parametrize("width", [390, 1400])
    def test_pages_render_at_phone_and_desktop_width_in_chromium(site, tmp_path, width):
        """A screenshot of the concepts page at each width (only collected where Chromium is
        installed) is an image with content, not a blank page."""
        from PIL import Image

        shot = tmp_path / f"concepts_{width}.png"
        _chromium(f"--window-size={width},2400", f"--screenshot={shot}", (site / "concepts.html").as_uri())
        with Image.open(shot) as image:
            assert image.size == (width, 2400)
            colours = image.convert("L").getextrema()
        assert colours[1] - colours[0] > 100, colours


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
