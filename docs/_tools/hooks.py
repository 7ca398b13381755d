"""MkDocs hooks: generate the per-loss pages and figures from the registry at build time.

* ``on_config``: expands the "Losses" entry of the navigation into one page per family,
  puts the package version in the header (``site_name``), and lays out an import tree for
  griffe (see :func:`stage_import_tree`).
* ``on_files``: adds the generated pages (``losses/*.md``, ``api/core.md``), one figure
  per loss (``figures/<name>.png``), one benchmark figure per case drawn from the committed
  ``benchmarks/results/results.json``, the committed training-demo image, and MathJax,
  copied from the ``django-static-mathjax`` wheel so that formulas render with no network
  access.
* ``on_page_markdown``: expands the include markers a page holds
  (``<!-- include file: PATH -->`` for a committed result file,
  ``<!-- include generated: NAME -->`` for what :data:`GENERATED` draws from the committed
  benchmark run), and turns "SPEC §n" references of the docstrings into links.

Every page's prose lives in ``docs/``; the README is not read here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent.parent
sys.path.insert(0, str(TOOLS))

import figures  # noqa: E402
import pages  # noqa: E402
import text  # noqa: E402

log = logging.getLogger("mkdocs.hooks.lossfns")

#: Where griffe finds ``lossfns`` with ``lossfns.adapters`` inside it, as installed.
IMPORT_TREE = TOOLS / "_tree"
#: Committed images shown on the site: source (repository-relative) -> site path.
IMAGES = {
    "benchmarks/results/training_demo.png": "assets/benchmarks/training_demo.png",
}
#: The committed benchmark run that the performance page is generated from.
BENCHMARK_RESULTS = ROOT / "benchmarks" / "results" / "results.json"
_INCLUDE = re.compile(r"^<!-- include (file|generated): (.+?) -->$", re.MULTILINE)
#: Wording of the committed benchmark report that points at the project's own history
#: (its tracker and revision ids), which a reader of the site cannot follow.
_REPORT_WORDING = (
    (re.compile(r"^(#+) Targets from the issue$", re.MULTILINE), r"\1 Performance targets"),
    (re.compile(r"; lossfns source \(git\) [^.\n]*\."), "."),
)


def stage_import_tree(destination: Path = IMPORT_TREE) -> Path:
    """``destination/lossfns``: links to the core's files plus ``adapters`` as a subpackage.

    The source tree keeps ``adapters/`` beside ``lossfns/`` and the packaging maps it to
    ``lossfns.adapters``; an editable install does that with an import hook, which static
    tools (griffe, mypy) cannot follow. This tree gives them the installed layout.
    """
    if destination.exists():
        shutil.rmtree(destination)
    # Real directories holding links to the files: griffe does not descend into linked folders.
    for source, package in ((ROOT / "lossfns", destination / "lossfns"),
                            (ROOT / "adapters", destination / "lossfns" / "adapters")):
        package.mkdir(parents=True)
        for entry in source.iterdir():
            if entry.suffix in (".py", ".pyi") or entry.name == "py.typed":
                os.symlink(entry, package / entry.name)
    return destination


# Before every plugin: mkdocstrings drops a search path that does not exist when it configures
# itself, and on a fresh clone the tree is not there yet.
@event_priority(100)
def on_config(config):
    stage_import_tree()
    version = package_version()
    if version and not config.site_name.endswith(version):
        config.site_name = f"{config.site_name} {version}"
    nav = config.nav or []
    for index, entry in enumerate(nav):
        if isinstance(entry, dict) and "Losses" in entry:
            family_pages = [{pages.family_title(f): f"losses/{pages.family_slug(f)}.md"} for f in pages.families()]
            nav[index] = {"Losses": ["losses/index.md", *family_pages]}
    return config


def package_version() -> str:
    """The version in ``pyproject.toml`` (what a build of this checkout installs)."""
    import tomllib

    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        import lossfns

        return getattr(lossfns, "__version__", "")


def _benchmark_data() -> dict:
    return json.loads(BENCHMARK_RESULTS.read_text())


def _benchmark_report():
    # benchmarks/ is a sibling of the docs, not an installed package.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import report

    return report


def benchmark_tables() -> str:
    """The tables of ``python -m benchmarks --report-only --readme`` for the committed run."""
    return _benchmark_report().performance_tables(_benchmark_data())


def benchmark_figures_markdown() -> str:
    """One image per benchmark case, as :func:`figures.benchmark_figures` draws them."""
    cases = figures.benchmark_cases(_benchmark_report(), _benchmark_data())
    return "\n\n".join(
        f"![{case}: time of each contender over lossfns' (torch eager)](../assets/benchmarks/{case}.png)"
        for case in cases
    )


#: ``<!-- include generated: NAME -->`` -> the Markdown it stands for.
GENERATED = {
    "benchmark tables": benchmark_tables,
    "benchmark figures": benchmark_figures_markdown,
}


def _generated(config, path: str, content) -> File:
    return File.generated(config, path, content=content)


def on_files(files, config):
    from lossfns import registry

    files.append(_generated(config, "losses/index.md", pages.index_page()))
    for family in pages.families():
        files.append(_generated(config, f"losses/{pages.family_slug(family)}.md", pages.family_page(family)))
    files.append(_generated(config, "api/core.md", pages.core_api_page()))
    for spec in registry.LOSSES:
        files.append(_generated(config, f"figures/{spec.name}.png", figures.render(spec)))
    report, data = _benchmark_report(), _benchmark_data()
    for case, png in figures.benchmark_figures(report, data).items():
        files.append(_generated(config, f"assets/benchmarks/{case}.png", png))
    for source, target in IMAGES.items():
        path = ROOT / source
        if path.exists():
            files.append(File.generated(config, target, abs_src_path=str(path)))
        else:
            log.warning("missing %s (shown on the site)", source)
    files.append(File.generated(config, "assets/mathjax/tex-svg.js", abs_src_path=str(mathjax_script())))
    return files


def mathjax_script() -> Path:
    """MathJax 3's single-file TeX-to-SVG bundle from the ``django-static-mathjax`` package."""
    import mathjax

    path = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the docs extra (pip install -e '.[docs]')")
    return path


def _file(path: str) -> str:
    body = (ROOT / path).read_text()
    for pattern, replacement in _REPORT_WORDING:
        body = pattern.sub(replacement, body)
    return re.sub(r"^(#+)", r"\1##", body, flags=re.MULTILINE)  # below the page's own headings


def on_page_markdown(markdown, page, config, files):
    def include(match):
        kind, argument = match.group(1), match.group(2).strip()
        if kind == "file":
            return _file(argument)
        if argument not in GENERATED:
            raise ValueError(f"{page.file.src_uri}: unknown generated include {argument!r}")
        return GENERATED[argument]().strip("\n")

    markdown = _INCLUDE.sub(include, markdown)
    return text.spec_links(markdown, pages.known_losses())
