"""The building blocks of an audit report and their two renderings: Markdown and HTML.

:mod:`lianmo.audit.report` says what a report contains as a list of blocks (headings,
text, the verdict, tables, charts); this module turns them into Markdown and into one
self-contained HTML page. Every string from a log is escaped on output: logs are
written by parties that may be other institutions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# ---- blocks: what a report says, before it is Markdown or HTML -------------------------


@dataclass(frozen=True)
class Code:
    """A table cell shown as code: digests and key ids."""

    text: str


Cell = str | Code


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1  # below the job's title


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    right: frozenset[int] = frozenset()  # right-aligned (numeric) columns
    note: str = ""


@dataclass(frozen=True)
class Chart:
    svg: str
    alt: str  # what Markdown shows instead


Block = Heading | Text | Verdict | Table | Chart


@dataclass(frozen=True)
class JobReport:
    """One job's report, ready to render."""

    job_id: str
    title: str
    ok: bool
    blocks: list[Block] = field(default_factory=list)


# ---- Markdown --------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])|(?<!\w)_|_(?!\w)")


def md_escape(text: str) -> str:
    """Log text as inert Markdown: one line, no emphasis, links, table breaks or HTML."""
    one_line = " ".join(text.split())
    escaped = escape(one_line, quote=False)
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), escaped)


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Code) and "`" not in cell.text and "\n" not in cell.text:
        return f"`{cell.text}`" if cell.text else ""
    return md_escape(cell.text if isinstance(cell, Code) else cell)


def markdown_of(job: JobReport, *, level: int) -> str:
    lines = [f"{'#' * level} {md_escape(job.title)}", ""]
    for block in job.blocks:
        lines += [*_md_block(block, level), ""]
    return "\n".join(lines)


def _md_block(block: Block, level: int) -> list[str]:
    if isinstance(block, Heading):
        return [f"{'#' * min(level + block.level, 6)} {md_escape(block.text)}"]
    if isinstance(block, Text):
        return [md_escape(block.text)]
    if isinstance(block, Chart):
        return [f"_{md_escape(block.alt)} The chart is in the HTML report._"]
    if isinstance(block, Verdict):
        word = "PASS" if block.ok else "FAIL"
        return [
            f"**Verification: {word}**: {md_escape(block.summary)}",
            *([""] if block.problems else []),
            *(f"- {md_escape(p)}" for p in block.problems),
        ]
    rule = ["---:" if i in block.right else "---" for i in range(len(block.header))]
    lines = [_md_row([md_escape(h) for h in block.header]), _md_row(rule)]
    lines += [_md_row([_md_cell(c) for c in row]) for row in block.rows]
    return lines + (["", f"_{md_escape(block.note)}_"] if block.note else [])


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ---- HTML ------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
code { font-size: 0.95em; }
.verdict { font-weight: bold; padding: 0.3em 0.6em; display: inline-block; }
.pass { background: #d8f0d8; } .fail { background: #f8d7d7; }
.note { color: #555; font-size: 0.85em; }
svg { max-width: 100%; height: auto; }
section.job { border-top: 2px solid #888; margin-top: 2em; }
"""
# Nothing in a report is fetched or run: the policy holds even if an escape were missed.
_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def html_page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def html_of(job: JobReport, *, level: int, anchor: str) -> str:
    parts = [f'<section class="job" id="{escape(anchor)}"><h{level}>{escape(job.title)}</h{level}>']
    parts += [_html_block(block, level) for block in job.blocks]
    return "".join([*parts, "</section>"])


def _html_block(block: Block, level: int) -> str:
    if isinstance(block, Heading):
        h = min(level + block.level, 6)
        return f"<h{h}>{escape(block.text)}</h{h}>"
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Chart):
        return f"<figure>{block.svg}</figure>"
    if isinstance(block, Verdict):
        word, css = ("PASS", "pass") if block.ok else ("FAIL", "fail")
        items = "".join(f"<li>{escape(p)}</li>" for p in block.problems)
        return (
            f'<p><span class="verdict {css}">Verification: {word}</span> '
            f"{escape(block.summary)}</p>" + (f'<ul class="problems">{items}</ul>' if items else "")
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in block.header)
    body = "".join(
        "<tr>" + "".join(_html_cell(c, i in block.right) for i, c in enumerate(row)) + "</tr>"
        for row in block.rows
    )
    note = f'<p class="note">{escape(block.note)}</p>' if block.note else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _html_cell(cell: Cell, numeric: bool) -> str:
    attr = ' class="num"' if numeric else ""
    text = f"<code>{escape(cell.text)}</code>" if isinstance(cell, Code) else escape(cell)
    return f"<td{attr}>{text}</td>"
