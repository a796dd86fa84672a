"""A :class:`~lianmo.report.data.ModelReport` as one HTML page and its Markdown twin.

The report is built once as a list of blocks (headings, text, tables, charts), then
written twice: HTML with the charts inline as SVG (no scripts, no external files or
network), and Markdown with the same tables, its charts as SVG files beside it. A
section whose data is absent is left out, so a host's report (its own columns) and the
guest's (global performance and its own columns) come from the same code. Names of
columns, bins and parties are escaped on output in both renderings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from lianmo.fileio import write_atomic
from lianmo.report import charts
from lianmo.report.data import ColumnStability, ColumnWoe, ModelReport, ScorecardPoints

__all__ = [
    "Chart",
    "Heading",
    "Table",
    "Text",
    "build",
    "render_html",
    "render_markdown",
    "write_report",
]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str = ""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: frozenset[int] = frozenset()  # numeric columns, right-aligned


@dataclass(frozen=True)
class Chart:
    chart_id: str  # also the SVG file's name beside the Markdown
    svg: str
    alt: str


Block = Heading | Text | Table | Chart


# ---- what the report says ---------------------------------------------------------------


def build(report: ModelReport) -> list[Block]:
    """The blocks of ``report``, in reading order; absent sections yield no blocks."""
    blocks: list[Block] = [
        Text(f"Party {report.party} ({report.role})."),
        *(Text(note) for note in report.notes),
    ]
    blocks += _performance(report)
    blocks += _points(report.points)
    blocks += _selection(report.columns)
    blocks += _characteristics(report.columns)
    blocks += _stability(report)
    return blocks


def _performance(report: ModelReport) -> list[Block]:
    out: list[Block] = []
    rows: tuple[tuple[str, ...], ...]
    if report.metrics:
        rows = tuple((m.name, f"{m.value:.4f}", m.note) for m in report.metrics)
        out += [
            Heading("Summary", anchor="summary"),
            Table(("metric", "value", "note"), rows, frozenset({1})),
        ]
    if report.roc or report.ks:
        out.append(Heading("Discrimination: ROC and KS", anchor="discrimination"))
    if report.roc:
        out.append(Chart("roc", charts.roc_chart(report.roc), "ROC curve."))
    if report.ks:
        name = report.score_histogram.score_name if report.score_histogram else "score"
        out.append(Chart("ks", charts.ks_chart(report.ks, name), "KS curve."))
    if report.deciles:
        rows = tuple(
            (
                str(d.decile),
                f"{d.count:,}",
                f"{d.events:,}",
                _pct(d.event_rate),
                f"{d.lift:.2f}",
                _pct(d.cumulative_gain),
            )
            for d in report.deciles
        )
        out += [
            Heading("Lift and gain by decile", anchor="deciles"),
            Chart("lift", charts.lift_chart(report.deciles), "Lift by decile."),
            Chart("gain", charts.gain_chart(report.deciles), "Cumulative gain by decile."),
            Table(
                ("decile", "rows", "events", "event rate", "lift", "cumulative gain"),
                rows,
                frozenset(range(6)),
            ),
        ]
    if report.score_histogram:
        h = report.score_histogram
        out += [
            Heading("Score distribution by class", anchor="distribution"),
            Chart(
                "score-distribution",
                charts.score_histogram_chart(h),
                f"Distribution of the {h.score_name} by class.",
            ),
        ]
    if report.calibration:
        rows = tuple(
            (
                str(r["decile"]),
                f"{r['count']:,}",
                _pct(float(r["mean_predicted"])),
                _pct(float(r["observed_rate"])),
            )
            for r in report.calibration.to_records()
        )
        out += [
            Heading("Calibration", anchor="calibration-by-decile"),
            Chart(
                "calibration",
                charts.calibration_chart(report.calibration),
                "Calibration by decile.",
            ),
            Table(("decile", "rows", "mean predicted", "observed rate"), rows, frozenset(range(4))),
        ]
    if report.score_bands:
        rows = tuple(
            (b.label, f"{b.count:,}", f"{b.events:,}", _pct(b.event_rate))
            for b in report.score_bands
        )
        out += [
            Heading("Event rate by score band", anchor="bands"),
            Chart(
                "score-bands",
                charts.score_band_chart(report.score_bands),
                "Event rate by score band.",
            ),
            Table(("score band", "rows", "events", "event rate"), rows, frozenset({1, 2, 3})),
        ]
    return out


def _characteristics(columns: Sequence[ColumnWoe]) -> list[Block]:
    if not columns:
        return []
    ranked = sorted(columns, key=lambda c: -c.iv)
    summary = tuple(
        (c.name, c.party, str(len(c.bins)), f"{c.iv:.4f}", _strength(c.iv)) for c in ranked
    )
    out: list[Block] = [
        Heading("Characteristics: WOE and IV", anchor="characteristics"),
        Text(
            "WOE = ln(share of non-events in the bin / share of events in the bin): above 0 "
            "the bin is less risky than average. IV = sum over bins of (non-event share - "
            "event share) × WOE."
        ),
        Chart("iv", charts.iv_chart(columns), "Information value per column."),
        Table(("column", "party", "bins", "IV", "strength"), summary, frozenset({2, 3})),
    ]
    for i, column in enumerate(columns, 1):
        rows = tuple(
            (
                b.label,
                f"{b.count:,}",
                _unknown if b.events is None else f"{b.events:,}",
                _unknown if b.event_rate is None else _pct(b.event_rate),
                _fixed(b.woe, 4),
                _unknown if b.iv is None else _fixed(b.iv, 4),
            )
            for b in column.bins
        )
        # a chart for each column in the model (all, outside a scorecard); dropped
        # columns keep their table: drawing is what makes a report slow
        chart: list[Block] = []
        if column.status in ("", "kept"):
            title = f"WOE per bin of {column.name}."
            chart = [Chart(f"woe-{i}", charts.woe_chart(column, f"woe-{i}"), title)]
        out += [
            Heading(f"{column.name} (IV {column.iv:.4f})", level=3, anchor=f"column-{i}"),
            *chart,
            Table(
                ("bin", "rows", "events", "event rate", "WOE", "IV"), rows, frozenset(range(1, 6))
            ),
        ]
    return out


def _points(points: ScorecardPoints | None) -> list[Block]:
    if points is None:
        return []
    out: list[Block] = [Heading("Scorecard points", anchor="points")]
    if points.scaling:
        out.append(Text(points.scaling))
    out.append(
        Text(
            "A row's score is the sum of the points of its bin in every characteristic of "
            "every party"
            + (", plus the base points." if points.base is not None else ".")
            + " Points of a characteristic = −factor × coefficient × WOE of the bin."
        )
    )
    if points.base is not None:
        out.append(Text(f"Base points (held by this party): {_fixed(points.base, 2)}."))
    summary: list[tuple[str, ...]] = []
    for c in points.characteristics:
        values = [b.points for b in c.bins]
        summary.append(
            (
                c.name,
                _fixed(c.coefficient, 4),
                str(len(c.bins)),
                _fixed(min(values), 2),
                _fixed(max(values), 2),
            )  # fmt: skip
        )
    out.append(
        Table(
            ("characteristic", "coefficient", "bins", "fewest points", "most points"),
            tuple(summary),
            frozenset({1, 2, 3, 4}),
        )
    )
    rows: list[tuple[str, ...]] = []
    if points.base is not None:
        rows.append(("base points", "", "", _fixed(points.base, 2)))
    for c in points.characteristics:
        rows += [(c.name, b.label, _fixed(b.woe, 4), _fixed(b.points, 2)) for b in c.bins]
    out += [
        Heading("Points per bin", level=3, anchor="points-per-bin"),
        Table(("characteristic", "bin", "WOE", "points"), tuple(rows), frozenset({2, 3})),
    ]
    return out


def _selection(columns: Sequence[ColumnWoe]) -> list[Block]:
    if not any(c.status for c in columns):
        return []
    kept = [c for c in columns if c.status == "kept"]
    ranked = sorted(columns, key=lambda c: (c.status != "kept", -c.iv))
    rows = tuple((c.name, f"{c.iv:.4f}", c.status or _unknown) for c in ranked)
    return [
        Heading("Column selection", anchor="selection"),
        Text(
            f"{len(kept)} of {len(columns)} columns kept; a dropped column says why "
            "(information value below the threshold, outside the top k, or too correlated "
            "with a kept column of higher IV)."
        ),
        Table(("column", "IV", "status"), rows, frozenset({1})),
    ]


def _stability(report: ModelReport) -> list[Block]:
    if report.score_psi is None and not report.column_stability:
        return []
    out: list[Block] = [
        Heading("Stability", anchor="stability"),
        Text(
            "PSI = sum over bins of (actual share - expected share) × ln(actual / expected); "
            "below 0.1 stable, 0.1 to 0.25 worth watching, above 0.25 shifted."
        ),
    ]
    if report.score_psi is not None:
        s = report.score_psi
        out += [
            Heading(
                f"Population stability of the score (PSI {s.psi:.4f})",
                level=3,
                anchor="score-stability",
            ),
            Chart("score-psi", charts.shares_chart(s), "Score shares, training vs later sample."),
            _stability_table(s),
        ]
    if report.column_stability:
        rows = tuple(
            (c.name, c.party, f"{c.psi:.4f}", _shift(c.psi)) for c in report.column_stability
        )
        out += [
            Heading(
                "Characteristic stability (CSI) per column", level=3, anchor="column-stability"
            ),
            Chart("csi", charts.psi_chart(report.column_stability), "CSI per column."),
            Table(("column", "party", "CSI", "reading"), rows, frozenset({2})),
        ]
        for c in report.column_stability:
            out += [Heading(f"{c.name}: CSI {c.psi:.4f}", level=4), _stability_table(c)]
    return out


def _stability_table(s: ColumnStability) -> Table:
    rows = tuple(
        (b.label, _pct(b.expected_share), _pct(b.actual_share), _fixed(b.psi, 4)) for b in s.bins
    )
    return Table(("bin", "expected share", "actual share", "PSI term"), rows, frozenset({1, 2, 3}))


_unknown = "—"  # a value its holder does not know (a host's event counts)


def _fixed(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, without the sign of a value that rounds to 0."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _pct(share: float) -> str:
    return f"{100 * share:.2f}%"


def _strength(iv: float) -> str:
    for bound, word in ((0.02, "not predictive"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong")):
        if iv < bound:
            return word
    return "very strong (check for leakage)"


def _shift(psi: float) -> str:
    return "stable" if psi < 0.1 else "watch" if psi < 0.25 else "shifted"


# ---- HTML ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #0072B2;padding-bottom:.2rem;
margin-top:2.5rem}h3{margin-top:2rem}nav ul{columns:2;padding-left:1.2rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}th{background:#f0f4f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:#555}
"""


def render_html(report: ModelReport, blocks: Sequence[Block] | None = None) -> str:
    """One self-contained HTML page: inline CSS and SVG, no scripts or external files."""
    blocks = build(report) if blocks is None else blocks
    contents = "".join(
        f'<li><a href="#{b.anchor}">{escape(b.text)}</a></li>'
        for b in blocks
        if isinstance(b, Heading) and b.level == 2 and b.anchor
    )
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(report.title)}</h1><nav><ul>{contents}</ul></nav>\n{body}\n</body></html>\n"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{escape(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Chart):
        svg = block.svg.replace("<svg ", f'<svg aria-label="{escape(block.alt)}" ', 1)
        return f"<figure>{svg}</figure>"
    head = "".join(f"<th>{escape(h)}</th>" for h in block.header)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i in block.right else ''}>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


# ---- Markdown -----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>#!])")


def md_escape(text: str) -> str:
    """Text as inert Markdown on one line: no emphasis, links, table breaks or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_markdown(
    report: ModelReport, blocks: Sequence[Block] | None = None, chart_dir: str = ""
) -> str:
    """The same tables as Markdown; each chart an image link to ``<chart id>.svg`` beside
    it (or in the folder ``chart_dir`` beside it)."""
    blocks = build(report) if blocks is None else blocks
    prefix = f"{chart_dir.rstrip('/')}/" if chart_dir else ""
    lines = [f"# {md_escape(report.title)}", ""]
    for block in blocks:
        lines += [*_md_block(block, prefix), ""]
    return "\n".join(lines)


def _md_block(block: Block, prefix: str = "") -> list[str]:
    if isinstance(block, Heading):
        return [f"{'#' * block.level} {md_escape(block.text)}"]
    if isinstance(block, Text):
        return [md_escape(block.text)]
    if isinstance(block, Chart):
        return [f"![{md_escape(block.alt)}]({prefix}{block.chart_id}.svg)"]
    rule = ["---:" if i in block.right else "---" for i in range(len(block.header))]
    return [_md_row([md_escape(h) for h in block.header]), _md_row(rule)] + [
        _md_row([md_escape(c) for c in row]) for row in block.rows
    ]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ---- files --------------------------------------------------------------------------------


def write_report(report: ModelReport, out: Path, chart_dir: str = "") -> list[Path]:
    """Write ``out/report.html``, ``out/report.md`` and each chart as ``out/<id>.svg``
    (``out/<chart_dir>/<id>.svg`` if given: a job folder keeps its charts together).

    Charts are written first and the HTML last, each atomically, so a folder holding
    ``report.html`` holds a complete report.
    """
    blocks = build(report)
    charts_out = out / chart_dir if chart_dir else out
    charts_out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for block in blocks:
        if isinstance(block, Chart):
            path = charts_out / f"{block.chart_id}.svg"
            write_atomic(path, block.svg.encode())
            paths.append(path)
    for name, text in (
        ("report.md", render_markdown(report, blocks, chart_dir)),
        ("report.html", render_html(report, blocks)),
    ):
        write_atomic(out / name, text.encode())
        paths.append(out / name)
    return paths
