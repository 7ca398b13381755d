"""MkDocs hooks: generate the per-loss pages and figures from the registry at build time.

* ``on_config``: expands the "Losses" entry of the navigation into one page per family
  and lays out an import tree for griffe (see :func:`stage_import_tree`).
* ``on_files``: adds the generated pages (``losses/*.md``, ``api/core.md``), one figure
  per loss (``figures/<name>.png``), the committed benchmark and training-demo images,
  and MathJax, copied from the ``django-static-mathjax`` wheel so that formulas render
  with no network access.
* ``on_page_markdown``: inlines README sections and committed result tables where a page
  asks for them, and turns "SPEC §n" references into links.
"""

from __future__ import annotations

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
    "benchmarks/results/results.png": "assets/benchmarks/results.png",
    "benchmarks/results/training_demo.png": "assets/benchmarks/training_demo.png",
}
_INCLUDE = re.compile(r"^<!-- include (readme|file): (.+?) -->$", re.MULTILINE)


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
    nav = config.nav or []
    for index, entry in enumerate(nav):
        if isinstance(entry, dict) and "Losses" in entry:
            family_pages = [{pages.family_title(f): f"losses/{pages.family_slug(f)}.md"} for f in pages.families()]
            nav[index] = {"Losses": ["losses/index.md", *family_pages]}
    return config


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


def _readme_section(title: str) -> str:
    """The body of the README section whose heading starts with ``## <title>``, one level up."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"README.md has no section '## {title}' (included by the docs)")
    return re.sub(r"^###", "##", match.group(1).strip(), flags=re.MULTILINE)


def _file(path: str) -> str:
    body = (ROOT / path).read_text()
    return re.sub(r"^(#+)", r"\1##", body, flags=re.MULTILINE)  # below the page's own headings


def on_page_markdown(markdown, page, config, files):
    def include(match):
        kind, argument = match.group(1), match.group(2).strip()
        return _readme_section(argument) if kind == "readme" else _file(argument)

    markdown = _INCLUDE.sub(include, markdown)
    return text.spec_links(markdown, pages.known_losses())
