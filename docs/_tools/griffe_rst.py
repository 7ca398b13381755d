"""Griffe extension: docstrings in the site's Markdown (math blocks, roles, SPEC links).

Loaded by mkdocstrings (``extensions:`` in ``mkdocs.yml``); see :mod:`text`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import griffe

sys.path.insert(0, str(Path(__file__).resolve().parent))

import text  # noqa: E402


def _known_losses() -> set[str]:
    from lossfns.registry import LOSSES

    return {spec.name for spec in LOSSES}


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, as griffe creates the object."""

    def __init__(self) -> None:
        super().__init__()
        self.known = _known_losses()

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = text.to_markdown(obj.docstring.value, self.known)
