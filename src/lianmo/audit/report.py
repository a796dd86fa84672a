"""``lianmo audit report``: a job's verified audit logs as a Markdown and an HTML report.

A report is built once as a list of blocks (headings, tables, charts) from a
:class:`~lianmo.audit.verify.JobVerdict`, then written out twice: as Markdown for
reading in a terminal or a review, and as one self-contained HTML page (no scripts, no
external resources, charts as inline SVG) for people. Per job, in this order:

1. the job id, task and model, and the verdict of ``verify`` with every problem, and
   which parties pruned their payloads (replay is then no longer possible);
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

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from lianmo.audit.report_blocks import (
    Block,
    Cell,
    Chart,
    Code,
    Heading,
    JobReport,
    Table,
    Text,
    Verdict,
    html_of,
    html_page,
    markdown_of,
    md_escape,
)
from lianmo.audit.report_steps import step_table
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


# ---- public API ------------------------------------------------------------------------


def render_markdown(verdict: JobVerdict) -> str:
    """The report of one job as Markdown (charts are described; they are in the HTML)."""
    return markdown_of(build(verdict), level=1)


def render_html(verdict: JobVerdict) -> str:
    """The report of one job as one self-contained HTML page."""
    job = build(verdict)
    return html_page(job.title, html_of(job, level=1, anchor="job"))


def write_report(verdicts: Sequence[JobVerdict], out: Path) -> list[Path]:
    """Write ``out/report.md`` and ``out/report.html`` covering every job; their paths."""
    jobs = [
        build(v, suffix="" if len(verdicts) == 1 else f"-{i}") for i, v in enumerate(verdicts, 1)
    ]
    summary = ", ".join(f"{j.job_id} {'PASS' if j.ok else 'FAIL'}" for j in jobs) or "no jobs"
    markdown = "\n".join(
        [
            f"# lianmo audit report\n\n{md_escape(summary)}\n",
            *(markdown_of(j, level=2) for j in jobs),
        ]
    )
    contents = "".join(
        f'<li><a href="#job-{i}">{escape(j.title)}</a></li>' for i, j in enumerate(jobs, 1)
    )
    body = "".join(
        [
            f"<h1>lianmo audit report</h1><nav><ul>{contents}</ul></nav>",
            *(html_of(j, level=2, anchor=f"job-{i}") for i, j in enumerate(jobs, 1)),
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.md", out / "report.html"]
    write_atomic(paths[0], markdown.encode())
    write_atomic(paths[1], html_page("lianmo audit report", body).encode())
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
        *(Text(f"Retention: {note}.") for note in verdict.notes),
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
    return [Heading("Parties"), Table(header, rows), *_data_use(verdict)]


def _data_use(verdict: JobVerdict) -> list[Block]:
    """Purpose, policy and consent per data party (job_start and data_use records)."""
    rows: list[tuple[Cell, ...]] = []
    for name, log in _logs(verdict):
        use = next((r for r in reversed(log.records) if r.get("kind") == "data_use"), None)
        if "purpose" not in log.start and use is None:
            continue
        counts = (
            (_NONE,) * 4
            if use is None
            else tuple(_text(use.get(k)) for k in ("rows", "used", "not_matched", "no_consent"))
        )
        rows.append(
            (
                name,
                _text(log.start.get("purpose")),
                _short(log.start.get("policy_sha256")),
                _text(log.start.get("consent_at")),
                *counts,
                _short(None if use is None else use.get("subjects_sha256")),
            )
        )
    if not rows:
        return []
    header = (
        *("party", "purpose", "policy sha256", "consent as of", "ids in table"),
        *("used", "not matched", "no valid consent", "subjects file sha256"),
    )
    return [Heading("Purpose and consent"), Table(header, rows)]


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
        *step_table(log for _, log in _logs(verdict)),
    ]


def _model(verdict: JobVerdict) -> list[Block]:
    rows: list[tuple[Cell, ...]] = []
    for name, log in _logs(verdict):
        checkpoints = _of(log, "checkpoint")
        rounds = [c.get("round") for c in checkpoints if isinstance(c.get("round"), int)]
        last = f" (last after round {rounds[-1]})" if rounds else ""
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
