"""Markdown reports from templates: ``render`` fills a template file, ``table`` builds a table.

A report is a Markdown template (``training/templates/*.md.tmpl`` or ``benchmarks/templates/``)
with ``${name}`` placeholders (``string.Template``), filled from a dict that the report's
function computes from the JSON its step wrote. Rows that repeat come from ``table``, not from
loops in the template. Like huggingface_hub's ``ModelCard.from_template``, minus jinja2.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

#: The training reports' templates (model card, evaluation report, framing).
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: ``table`` column alignments: left (Markdown's default) and right.
ALIGN = {"l": "---", "r": "---:"}


def render(name: str, values: Mapping[str, Any], folder: Path = TEMPLATES) -> str:
    """The template ``folder/name`` with every ``${key}`` replaced by ``str(values[key])``.

    A placeholder without a value raises KeyError, so a template and its function stay in step.
    """
    return Template((folder / name).read_text(encoding="utf-8")).substitute(values)


def row(cells: Iterable[Any]) -> str:
    """One Markdown table row, each cell as ``str(cell)``; a None cell is blank (``| |``)."""
    return "|" + "|".join(" " if cell is None else f" {cell} " for cell in cells) + "|"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table: header, the ``---`` line (``align``: one 'l' or 'r' per column, default 'l'), rows."""
    align = align or "l" * len(columns)
    if len(align) != len(columns):
        raise ValueError(f"{len(columns)} columns but alignment {align!r}")
    rule = "|" + "|".join(ALIGN[a] for a in align) + "|"
    return "\n".join([row(columns), rule, *(row(cells) for cells in rows)])


def bullets(items: Iterable[str]) -> str:
    """A Markdown list, one ``- item`` a line."""
    return "\n".join(f"- {item}" for item in items)


def confusion_table(labels: Sequence[str], confusion: Iterable[Sequence[int]]) -> str:
    """A confusion matrix of counts (rows: true, columns: predicted) as a Markdown table."""
    return table(["true \\ predicted", *labels], [[label, *row] for label, row in zip(labels, confusion)],
                 "l" + "r" * len(labels))


def command_line(module: str, argv: Sequence[str | Path]) -> str:
    """The shell command ``python -m MODULE ARGV...`` that reports record."""
    return " ".join(["python -m", module, *(shlex.quote(str(arg)) for arg in argv)])
