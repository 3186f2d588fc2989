"""Markdown table cells: the one escape every generated docs page uses (``docs/datasets.md``,
``docs/warehouse.md``). Imports nothing of ours, so ``warehouse/`` may use it too."""

from __future__ import annotations


def markdown_cell(text: object) -> str:
    """``text`` as one Markdown table cell: ``|`` escaped, line breaks as spaces (a cell is one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")
