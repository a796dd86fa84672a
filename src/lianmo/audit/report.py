"""``lianmo audit report``: a job's verified audit logs as a Markdown and an HTML report.

A report is built once as a list of blocks (headings, tables, charts) from a
:class:`~lianmo.audit.verify.JobVerdict`, then written out twice: as Markdown for
reading in a terminal or a review, and as one self-contained HTML page (no scripts, no
external resources, charts as inline SVG) for people. Per job, in this order:

1. the job id, task and model, and the verdict of ``verify`` with every problem;
2. the parties: role, data set, lianmo version, signing key id, TLS certificate, and
   whether every peer logged the same signing key for the party as the party itself;
3. each party's phases (start, seconds) and wall time from job_start to job_end;
4. the loss per round (chart and table), per epoch, tree levels, evaluation metrics;
5. messages and bytes per sender, receiver and phase (table and chart);
6. each party's model digest, the model it started from, and its checkpoint count.

Everything in a log was written by a party that may be another institution, so all of
it is escaped on output, and a log with problems or a failed job is rendered as far as
its records go rather than refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from lianmo.audit.signing import UNSIGNED_KEY, key_id
from lianmo.audit.svg import bar_chart, line_chart
from lianmo.audit.verify import JobVerdict, PartyLog
from lianmo.fileio import write_atomic

Record = dict[str, object]

MAX_TABLE_ROWS = 50
"""Longer tables are thinned to evenly spaced rows (first and last kept); charts keep all."""
SETUP = "(setup)"
"""The stretch from job_start to a party's first phase record: the signing-key exchange."""
LOSS_FIELDS = ("loss", "train_loss", "validation_loss")
_META = frozenset({"format", "seq", "party", "job_id", "kind", "prev", "hash", "time", "sig"})
_LEAD = ("tree", "level", "round", "epoch", "on")  # table columns that come first
_NONE = "—"


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


# ---- public API ------------------------------------------------------------------------


def render_markdown(verdict: JobVerdict) -> str:
    """The report of one job as Markdown (charts are described; they are in the HTML)."""
    return _markdown(build(verdict), level=1)


def render_html(verdict: JobVerdict) -> str:
    """The report of one job as one self-contained HTML page."""
    job = build(verdict)
    return _page(job.title, _html(job, level=1, anchor="job"))


def write_report(verdicts: Sequence[JobVerdict], out: Path) -> list[Path]:
    """Write ``out/report.md`` and ``out/report.html`` covering every job; their paths."""
    jobs = [
        build(v, suffix="" if len(verdicts) == 1 else f"-{i}") for i, v in enumerate(verdicts, 1)
    ]
    summary = ", ".join(f"{j.job_id} {'PASS' if j.ok else 'FAIL'}" for j in jobs) or "no jobs"
    markdown = "\n".join(
        [f"# lianmo audit report\n\n{_md(summary)}\n", *(_markdown(j, level=2) for j in jobs)]
    )
    contents = "".join(
        f'<li><a href="#job-{i}">{escape(j.title)}</a></li>' for i, j in enumerate(jobs, 1)
    )
    body = "".join(
        [
            f"<h1>lianmo audit report</h1><nav><ul>{contents}</ul></nav>",
            *(_html(j, level=2, anchor=f"job-{i}") for i, j in enumerate(jobs, 1)),
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.md", out / "report.html"]
    write_atomic(paths[0], markdown.encode())
    write_atomic(paths[1], _page("lianmo audit report", body).encode())
    return paths


def build(verdict: JobVerdict, *, suffix: str = "") -> JobReport:
    """The blocks of one job's report; ``suffix`` keeps chart ids unique on a shared page."""
    spec = verdict.spec() or {}
    starts = [log.start for log in verdict.logs.values() if log.start]
    task = str(next((s["task"] for s in starts if "task" in s), spec.get("task", "?")))
    model = spec.get("model")
    kind = str(model.get("type", "hetero_lr")) if isinstance(model, dict) else "?"
    records = sum(len(log.records) for log in verdict.logs.values())
    summary = (
        f"{len(verdict.logs)} log(s), {records} records: chains, signatures, payloads and "
        "the messages between parties all check out"
        if verdict.ok
        else f"{len(verdict.problems)} problem(s) in {len(verdict.logs)} log(s); what follows "
        "is read from the logs as they are, unverified from each problem's record on"
    )
    blocks: list[Block] = [
        Verdict(verdict.ok, summary, tuple(str(p) for p in verdict.problems)),
        *_parties(verdict),
        *_timing(verdict),
        *_rounds(verdict, task, suffix),
        *_messages(verdict, suffix),
        *_model(verdict),
    ]
    return JobReport(verdict.job_id, f"Job {verdict.job_id}: {task} ({kind})", verdict.ok, blocks)


# ---- sections --------------------------------------------------------------------------


def _parties(verdict: JobVerdict) -> list[Block]:
    rows: list[tuple[Cell, ...]] = []
    for name in _party_names(verdict):
        log = verdict.logs.get(name)
        if log is None:
            rows.append((name, _spec_role(verdict, name), "(no log)", *[_NONE] * 6))
            continue
        s = log.start
        rows.append(
            (
                name,
                log.role,
                _text(s.get("dataset")),
                _text(s.get("software")),
                _key_cell(s.get("signing_key")),
                _text(s.get("tls_subject")),
                _short(s.get("tls_sha256")),
                _text(s.get("tls_not_after")),
                _peers_view(verdict, log),
            )
        )
    header = (
        *("party", "role", "data set", "lianmo", "signing key id", "TLS subject"),
        *("certificate sha256", "certificate expires", "key as logged by peers"),
    )
    return [Heading("Parties"), Table(header, rows)]


def _timing(verdict: JobVerdict) -> list[Block]:
    phases: list[tuple[Cell, ...]] = []
    totals: list[tuple[Cell, ...]] = []
    for name, log in _logs(verdict):
        for phase, began, seconds in _phases(log):
            phases.append((name, phase, _utc(began), _seconds(seconds)))
        start, end = _time(log.start), _time(_last(log, "job_end"))
        state = _end_state(_last(log, "job_end"))
        wall = None if start is None or end is None else end - start
        totals.append((name, _utc(start), _utc(end), _seconds(wall), state))
    note = (
        f"{SETUP}: from job_start to the party's first phase record (the signing-key "
        "exchange), or to job_end for a party that logs no phases."
    )
    return [
        Heading("Phases"),
        Table(("party", "phase", "start (UTC)", "seconds"), phases, frozenset({3}), note),
        Table(
            ("party", "job_start (UTC)", "job_end (UTC)", "wall seconds", "end"),
            totals,
            frozenset({3}),
        ),
    ]


def _rounds(verdict: JobVerdict, task: str, suffix: str) -> list[Block]:
    rounds = _records(verdict, "round")
    blocks: list[Block] = [Heading("Rounds")]
    if not rounds:
        why = "a predict job trains nothing" if task == "predict" else "no round was recorded"
        blocks.append(Text(f"No rounds: {why}."))
    else:
        series = _loss_series(rounds)
        svg = line_chart(
            series,
            svg_id=f"loss-curve{suffix}",
            css_class="loss-curve",
            title="Loss per round",
            x_title="round",
            y_title="loss",
        )
        alt = f"Loss curve: {len(rounds)} rounds; series {', '.join(series)}."
        blocks += [Chart(svg, alt), _record_table(rounds, "rounds")]
    for kind, what in (("epoch", "Epochs"), ("level", "Tree levels")):
        found = _records(verdict, kind)
        if found:
            blocks += [Heading(what, 2), _record_table(found, kind + "s")]
    evaluations = _records(verdict, "evaluation")
    blocks.append(Heading("Evaluation", 2))
    blocks.append(
        _record_table(evaluations, "evaluations", party=True)
        if evaluations
        else Text("No evaluation was recorded.")
    )
    return blocks


def _messages(verdict: JobVerdict, suffix: str) -> list[Block]:
    traffic: dict[tuple[str, str, str], list[int]] = {}  # (phase, sender, receiver): n, bytes
    for name, log in _logs(verdict):
        for phase, record in _in_phases(log):
            if record.get("kind") == "message" and record.get("direction") == "sent":
                count = traffic.setdefault((phase, name, str(record.get("peer"))), [0, 0])
                count[0] += 1
                count[1] += _size(record)
    if not traffic:
        return [Heading("Messages"), Text("No party logged sending a message.")]
    phases = [p for p in _phase_order(verdict) if any(k[0] == p for k in traffic)]
    keys = sorted(traffic, key=lambda k: (phases.index(k[0]), k[1], k[2]))
    rows: list[tuple[Cell, ...]] = [
        (p, f"{s} → {r}", str(traffic[p, s, r][0]), f"{traffic[p, s, r][1]:,}") for p, s, r in keys
    ]
    total = [sum(v[0] for v in traffic.values()), sum(v[1] for v in traffic.values())]
    rows.append(("total", "", str(total[0]), f"{total[1]:,}"))
    pairs = sorted({(s, r) for _, s, r in keys})
    volume = {
        f"{s} → {r}": [float(traffic.get((p, s, r), [0, 0])[1]) for p in phases] for s, r in pairs
    }
    svg = bar_chart(
        phases,
        volume,
        svg_id=f"message-volume{suffix}",
        css_class="message-volume",
        title="Bytes sent per phase",
        y_title="bytes",
        value_label=_bytes,
    )
    return [
        Heading("Messages"),
        Table(
            ("phase", "sender → receiver", "messages", "bytes"),
            rows,
            frozenset({2, 3}),
            "From the senders' logs (payload bytes, without transport framing).",
        ),
        Chart(svg, f"Message volume: {total[1]:,} bytes in {total[0]} messages."),
    ]


def _model(verdict: JobVerdict) -> list[Block]:
    rows: list[tuple[Cell, ...]] = []
    for name, log in _logs(verdict):
        checkpoints = _of(log, "checkpoint")
        last = f" (last after {checkpoints[-1].get('rounds')} rounds)" if checkpoints else ""
        rows.append(
            (
                name,
                _code(_last(log, "model").get("sha256")),
                _code(_last(log, "model_input").get("sha256")),
                f"{len(checkpoints)}{last}",
            )
        )
    note = "sha256 of each party's model share as written; model input: the share a predict "
    note += "job started from."
    header = ("party", "model sha256", "model input", "checkpoints")
    return [Heading("Model"), Table(header, rows, note=note)]


# ---- reading logs ----------------------------------------------------------------------


def _party_names(verdict: JobVerdict) -> list[str]:
    expected = list(verdict.expected_parties)
    return expected + sorted(p for p in verdict.logs if p not in expected)


def _logs(verdict: JobVerdict) -> list[tuple[str, PartyLog]]:
    return [(p, verdict.logs[p]) for p in _party_names(verdict) if p in verdict.logs]


def _records(verdict: JobVerdict, kind: str) -> list[Record]:
    return [r for _, log in _logs(verdict) for r in _of(log, kind)]


def _of(log: PartyLog, kind: str) -> list[Record]:
    return [r for r in log.records if r.get("kind") == kind]


def _last(log: PartyLog, kind: str) -> Record:
    return next((r for r in reversed(log.records) if r.get("kind") == kind), {})


def _in_phases(log: PartyLog) -> list[tuple[str, Record]]:
    """Every record with the phase the party was in when it wrote it."""
    phase, out = SETUP, []
    for record in log.records:
        if record.get("kind") == "phase":
            phase = _text(record.get("name"))
        out.append((phase, record))
    return out


def _phase_order(verdict: JobVerdict) -> list[str]:
    """Every phase name once, each after the phases that come before it in some log."""
    order: list[str] = []
    for _, log in _logs(verdict):
        at = 0
        for name in [SETUP, *(_text(r.get("name")) for r in _of(log, "phase"))]:
            if name in order:
                at = max(at, order.index(name) + 1)
            else:
                order.insert(at, name)
                at += 1
    return order


def _phases(log: PartyLog) -> list[tuple[str, float, float | None]]:
    """(name, start, seconds) per phase; a phase lasts until the next one or job_end.

    A log that stops early (no job_end) leaves its last phase open: no seconds.
    """
    marks = [(SETUP, _time(log.start))]
    marks += [(_text(r.get("name")), _time(r)) for r in _of(log, "phase")]
    end = _time(_last(log, "job_end"))
    out: list[tuple[str, float, float | None]] = []
    for i, (name, start) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else end
        if start is None or (name == SETUP and stop == start):
            continue
        out.append((name, start, None if stop is None else stop - start))
    return out


def _loss_series(rounds: list[Record]) -> dict[str, list[tuple[float, float]]]:
    parties = {r.get("party") for r in rounds}
    series: dict[str, list[tuple[float, float]]] = {}
    for i, record in enumerate(rounds):
        x = _number(record.get("round"))
        for name in LOSS_FIELDS:
            y = _number(record.get(name))
            if y is not None:
                label = name if len(parties) == 1 else f"{record.get('party')} {name}"
                series.setdefault(label, []).append((i if x is None else x, y))
    return series


def _record_table(records: list[Record], what: str, *, party: bool = False) -> Table:
    party = party or len({r.get("party") for r in records}) > 1
    seen = {k: None for r in records for k in r if k not in _META}
    columns = [k for k in _LEAD if k in seen] + sorted(k for k in seen if k not in _LEAD)
    shown = _thin(records)
    rows = [
        (*([_text(r.get("party"))] if party else []), *(_text(r.get(c)) for c in columns))
        for r in shown
    ]
    header = (*(["party"] if party else []), *columns)
    note = "" if len(shown) == len(records) else f"{len(shown)} of {len(records)} {what} shown."
    numeric = frozenset(
        i
        for i, c in enumerate(header)
        if c != "party" and all(r.get(c) is None or _number(r.get(c)) is not None for r in shown)
    )
    return Table(tuple(header), list(rows), numeric, note)


def _thin(rows: list[Record], limit: int = MAX_TABLE_ROWS) -> list[Record]:
    if len(rows) <= limit:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (limit - 1)) for i in range(limit)})
    return [rows[i] for i in picks]


def _peers_view(verdict: JobVerdict, log: PartyLog) -> str:
    """How every other party logged this party's signing key: ✓ same, ✗ different."""
    own = log.start.get("signing_key")
    views = []
    for peer, other in _logs(verdict):
        if peer == log.party:
            continue
        got = [
            r.get("signing_key")
            for r in other.records
            if r.get("kind") == "peer_key" and r.get("peer") == log.party
        ]
        mark = "not logged" if not got else "✓" if all(k == own for k in got) else "✗ differs"
        views.append(f"{peer} {mark}")
    return ", ".join(views) or _NONE


def _spec_role(verdict: JobVerdict, name: str) -> str:
    parties = (verdict.spec() or {}).get("parties")
    for entry in parties if isinstance(parties, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return str(entry.get("role", "?"))
    return "?"


# ---- values ----------------------------------------------------------------------------


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _size(record: Record) -> int:
    size = record.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) else 0


def _time(record: Record) -> float | None:
    return _number(record.get("time"))


def _text(value: object) -> str:
    if value is None:
        return _NONE
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _code(value: object) -> Cell:
    return Code(value) if isinstance(value, str) else _NONE


def _short(value: object) -> Cell:
    return Code(value[:16] + "…") if isinstance(value, str) and len(value) > 16 else _code(value)


def _key_cell(value: object) -> Cell:
    if value == UNSIGNED_KEY:
        return "unsigned"
    try:
        return Code(key_id(str(value))) if isinstance(value, str) else _NONE
    except ValueError:
        return "not a key"


def _utc(when: float | None) -> str:
    if when is None:
        return _NONE
    try:
        stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):  # a time no clock shows: say what is there
        return f"{when!r} (not a time)"
    return stamp.replace("+00:00", "Z")


def _seconds(value: float | None) -> str:
    return "open (log ends)" if value is None else f"{value:.3f}"


def _end_state(record: Record) -> str:
    if not record:
        return "no job_end"
    error = record.get("error")
    return _text(record.get("state")) + (f": {error}" if error else "")


def _bytes(value: float) -> str:
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


# ---- Markdown --------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])|(?<!\w)_|_(?!\w)")


def _md(text: str) -> str:
    """Log text as inert Markdown: one line, no emphasis, links, table breaks or HTML."""
    one_line = " ".join(text.split())
    escaped = escape(one_line, quote=False)
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), escaped)


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Code) and "`" not in cell.text and "\n" not in cell.text:
        return f"`{cell.text}`" if cell.text else ""
    return _md(cell.text if isinstance(cell, Code) else cell)


def _markdown(job: JobReport, *, level: int) -> str:
    lines = [f"{'#' * level} {_md(job.title)}", ""]
    for block in job.blocks:
        lines += [*_md_block(block, level), ""]
    return "\n".join(lines)


def _md_block(block: Block, level: int) -> list[str]:
    if isinstance(block, Heading):
        return [f"{'#' * min(level + block.level, 6)} {_md(block.text)}"]
    if isinstance(block, Text):
        return [_md(block.text)]
    if isinstance(block, Chart):
        return [f"_{_md(block.alt)} The chart is in the HTML report._"]
    if isinstance(block, Verdict):
        word = "PASS" if block.ok else "FAIL"
        return [
            f"**Verification: {word}**: {_md(block.summary)}",
            *([""] if block.problems else []),
            *(f"- {_md(p)}" for p in block.problems),
        ]
    rule = ["---:" if i in block.right else "---" for i in range(len(block.header))]
    lines = [_md_row([_md(h) for h in block.header]), _md_row(rule)]
    lines += [_md_row([_md_cell(c) for c in row]) for row in block.rows]
    return lines + (["", f"_{_md(block.note)}_"] if block.note else [])


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


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _html(job: JobReport, *, level: int, anchor: str) -> str:
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
