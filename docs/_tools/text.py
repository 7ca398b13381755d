"""Docstring text (reStructuredText-flavoured Google style) to the site's Markdown.

The core's docstrings are written for ``help()`` and Sphinx-style readers: ``.. math::``
blocks, ``:func:`` roles and "SPEC §n" references. The site renders Markdown with
``pymdownx.arithmatex``, so this module turns math blocks into ``$$ ... $$`` display math,
roles into inline code, and "SPEC §n" into links to the page that documents section n.
It is used by the griffe extension (API pages) and by the generated loss pages alike.
"""

from __future__ import annotations

import re

#: Where each section of the behaviour contract is documented on the site: an anchor id
#: (mkdocs-autorefs resolves it to its page). Loss names stand for their section on a
#: loss-family page; :func:`spec_anchor` falls back when that loss is not registered yet.
SPEC_ANCHORS = {
    1: "packages",
    2: "inputs",
    3: "confusion-terms",
    4: "losses-region",
    5: "losses-distribution",
    6: "losses-unified-focal",
    7: "adapters",
    8: "errors",
    9: "numerics",
    10: "numerics",
    11: "differences",
    12: "dice_ce_loss",
    13: "generalized_dice_loss",
    14: "mcc_loss",
    15: "label-smoothing",
    16: "lovasz_softmax_loss",
    17: "boundary_loss",
    18: "cldice_loss",
    19: "deep-supervision",
    20: "errors",
}

SPEC_TITLES = {
    1: "packages", 2: "inputs", 3: "confusion terms", 4: "region losses",
    5: "distribution and compound losses", 6: "Unified Focal family", 7: "adapters",
    8: "errors", 9: "numerics", 10: "numerics", 11: "other implementations",
    12: "Dice + cross-entropy", 13: "generalized Dice", 14: "Matthews correlation",
    15: "label smoothing", 16: "Lovász losses", 17: "boundary loss", 18: "clDice",
    19: "deep supervision", 20: "errors",
}

_FALLBACK = {12: "losses", 13: "losses", 14: "losses", 16: "losses", 17: "losses", 18: "losses"}

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):`~?([^`]+)`")
_SPEC = re.compile(r"SPEC\s*§\s*(\d+)(?:\s*[-–]\s*§?\s*(\d+))?")
_MATH = re.compile(r"^(\s*)\.\. math::\s*(.*)$")


def spec_anchor(section: int, known_losses=()) -> str:
    anchor = SPEC_ANCHORS.get(section, "losses")
    if section in _FALLBACK and anchor not in known_losses:
        return _FALLBACK[section]
    return anchor


def spec_links(text: str, known_losses=()) -> str:
    """``SPEC §4`` → a link to the page section that documents it."""

    def link(match):
        first = int(match.group(1))
        label = f"{SPEC_TITLES.get(first, 'contract')}"
        return f"[{label}][{spec_anchor(first, known_losses)}]"

    return _SPEC.sub(link, text)


def math_blocks(text: str) -> str:
    """``.. math::`` directives (indented bodies) → ``$$ ... $$`` blocks."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        match = _MATH.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        body = [match.group(2).strip()] if match.group(2).strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        body = [line for line in body if line]
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}$$", *(f"{indent}{line}" for line in body), f"{indent}$$", ""]
    return "\n".join(out)


def formulas(text: str) -> list[str]:
    """The bodies of the ``.. math::`` blocks of a docstring, in order."""
    found, lines, i = [], (text or "").splitlines(), 0
    while i < len(lines):
        match = _MATH.match(lines[i])
        i += 1
        if not match:
            continue
        indent = len(match.group(1))
        body = [match.group(2).strip()] if match.group(2).strip() else []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i].strip())
            i += 1
        found.append(" ".join(line for line in body if line))
    return found


def to_markdown(text: str, known_losses=()) -> str:
    """A docstring's text in the site's Markdown."""
    text = math_blocks(text)
    # An Args entry naming several parameters may wrap before its colon; griffe wants one line.
    text = re.sub(r"^(\s+\w+(?:, \w+)*,)\n\s+(?=\w+(?:, \w+)*:)", r"\1 ", text, flags=re.MULTILINE)
    # griffe reads doctests as code only in an "Examples:" section.
    text = re.sub(r"^(\s*)Example:\s*$", r"\1Examples:", text, flags=re.MULTILINE)
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    text = re.sub(r"(?<=\S)::$", ":", text, flags=re.MULTILINE)  # rST literal-block marker
    return spec_links(text, known_losses)
