"""The model report's charts, drawn with matplotlib and returned as inline SVG text.

Every chart has a title and both axes labelled with their units; the title and axis
labels carry the SVG ids ``<chart id>-title``, ``-x`` and ``-y``, so a test (or CI) can
find them in the page. Text stays text (``svg.fonttype = none``): searchable, and
escaped by matplotlib's SVG writer. Math-text parsing is off, so a column named
``$x$`` is printed as it is. Output is deterministic: no date, and the SVG's internal
ids are salted with the chart id, so charts on one page never share an id.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from lianmo.report.data import (
    Calibration,
    ColumnStability,
    ColumnWoe,
    DecileRow,
    KsCurve,
    RocCurve,
    ScoreBand,
    ScoreHistogram,
)

__all__ = [
    "calibration_chart",
    "gain_chart",
    "iv_chart",
    "ks_chart",
    "lift_chart",
    "psi_chart",
    "roc_chart",
    "score_band_chart",
    "score_histogram_chart",
    "shares_chart",
    "woe_chart",
]

EVENT, NONEVENT, NEUTRAL, GREY = "#D55E00", "#0072B2", "#009E73", "#888888"
"""Okabe-Ito colours, told apart by colour-blind readers: events (bad) are vermilion."""

_DRAWING = threading.Lock()
"""matplotlib's rc settings are process-wide: one chart is drawn at a time, so two jobs
(or two in-process parties) writing reports at once cannot swap each other's settings."""

_SIZE = (7.2, 3.8)  # inches: 518 x 274 pt, a page column
_MAX_TICK_LABELS = 24
_MAX_NAME = 32
_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
}


def short(name: str, limit: int = _MAX_NAME) -> str:
    """``name`` cut to ``limit`` characters with an ellipsis (the tables keep it whole)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


@contextmanager
def _chart(
    chart_id: str, title: str, x_label: str, y_label: str, *, size: tuple[float, float] = _SIZE
) -> Iterator[tuple[Axes, list[str]]]:
    """Yield the axes of a new figure and a one-item list that receives its SVG."""
    out: list[str] = []
    with _DRAWING, mpl.rc_context({**_RC, "svg.hashsalt": chart_id}):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        yield ax, out
        ax.set_title(title, loc="left", gid=f"{chart_id}-title")
        ax.set_xlabel(x_label, gid=f"{chart_id}-x")
        ax.set_ylabel(y_label, gid=f"{chart_id}-y")
        ax.set_axisbelow(True)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    out.append(_inline(svg[svg.index("<svg") :], chart_id))


_ID_OR_REFERENCE = re.compile(r'(id="|href="#|url\(#)([^"\)]+)')


def _inline(svg: str, chart_id: str) -> str:
    """The SVG element with an id, and every id inside it (``figure_1``, clip paths, ...)
    and every reference to one prefixed with the chart id, unique on a shared page."""

    def prefixed(match: re.Match[str]) -> str:
        name = match.group(2)
        own = name.startswith(f"{chart_id}-")
        return match.group(1) + (name if own else f"{chart_id}-{name}")

    svg = _ID_OR_REFERENCE.sub(prefixed, svg)
    return svg.replace("<svg ", f'<svg id="{chart_id}" role="img" ', 1).strip()


def _percent_axis(ax: Axes, axis: str = "y") -> None:
    fmt = mpl.ticker.PercentFormatter(xmax=1.0, decimals=None)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _legend_on_top(ax: Axes) -> None:
    """A one-row legend in headroom above the data, where it cannot hide a bar or a line."""
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.22 * (high - low))
    ax.legend(loc="upper center", ncols=2)


def _category_ticks(ax: Axes, labels: Sequence[str], *, rotate: bool) -> None:
    """Label every bar, or every n-th one when there are too many to read."""
    step = max(1, -(-len(labels) // _MAX_TICK_LABELS))
    positions = list(range(0, len(labels), step))
    ax.set_xticks(positions, [short(labels[i], 18) for i in positions])
    if rotate and (len(positions) > 6 or max(len(labels[i]) for i in positions) > 8):
        for tick in ax.get_xticklabels():
            tick.set_rotation(35)
            tick.set_horizontalalignment("right")
    ax.grid(axis="x", visible=False)


# ---- performance ----------------------------------------------------------------------


def roc_chart(roc: RocCurve, chart_id: str = "roc") -> str:
    with _chart(
        chart_id,
        f"ROC curve (AUC {roc.auc:.4f})",
        "False positive rate: share of non-events flagged (%)",
        "True positive rate: share of events flagged (%)",
        size=(6.0, 4.6),
    ) as (ax, out):
        ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="random (AUC 0.5)")
        ax.plot(roc.fpr, roc.tpr, color=NONEVENT, linewidth=2, label="model")
        ax.set(xlim=(0, 1), ylim=(0, 1.01))
        _percent_axis(ax, "x")
        _percent_axis(ax, "y")
        ax.legend(loc="lower right")
    return out[0]


def ks_chart(ks: KsCurve, score_name: str = "score", chart_id: str = "ks") -> str:
    with _chart(
        chart_id,
        f"KS curve (KS {ks.ks:.4f} at {score_name} {ks.ks_score:.4g})",
        f"{score_name} (cut-off, points)",
        "Cumulative share of class at or below (%)",
    ) as (ax, out):
        ax.plot(ks.score, ks.event_share, color=EVENT, linewidth=2, label="events (bad)")
        ax.plot(ks.score, ks.nonevent_share, color=NONEVENT, linewidth=2, label="non-events (good)")
        ax.axvline(ks.ks_score, color=GREY, linestyle="--", linewidth=1, label="largest gap (KS)")
        _percent_axis(ax)
        ax.set_ylim(0, 1.01)
        ax.legend(loc="lower right")
    return out[0]


def lift_chart(deciles: Sequence[DecileRow], chart_id: str = "lift") -> str:
    with _chart(
        chart_id,
        "Lift by decile (riskiest decile first)",
        "Decile of rows ranked by predicted risk (1 = riskiest 10%)",
        "Lift: decile event rate / overall rate (×)",
    ) as (ax, out):
        labels = [str(d.decile) for d in deciles]
        ax.bar(labels, [d.lift for d in deciles], color=EVENT, width=0.7)
        ax.axhline(1.0, color=GREY, linestyle="--", linewidth=1, label="no lift (random)")
        for i, d in enumerate(deciles):
            ax.annotate(f"{d.lift:.2f}", (i, d.lift), ha="center", va="bottom", fontsize=8)
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper right")
    return out[0]


def gain_chart(deciles: Sequence[DecileRow], chart_id: str = "gain") -> str:
    with _chart(
        chart_id,
        "Cumulative gain: share of all events captured",
        "Share of rows, riskiest first (%)",
        "Share of all events captured (%)",
    ) as (ax, out):
        n = len(deciles)
        xs = [0.0, *((i + 1) / n for i in range(n))]
        ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="random")
        ax.plot(
            xs,
            [0.0, *(d.cumulative_gain for d in deciles)],
            color=EVENT,
            marker="o",
            linewidth=2,
            label="model",
        )
        ax.set(xlim=(0, 1), ylim=(0, 1.01))
        _percent_axis(ax, "x")
        _percent_axis(ax)
        ax.legend(loc="lower right")
    return out[0]


def score_histogram_chart(hist: ScoreHistogram, chart_id: str = "score-distribution") -> str:
    """Each class as a share of its own rows, so the smaller class is as visible."""
    with _chart(
        chart_id,
        f"Distribution of the {hist.score_name} by class",
        f"{hist.score_name} (points)",
        "Share of the class's rows in the bin (%)",
    ) as (ax, out):
        for counts, colour, label in (
            (hist.nonevents, NONEVENT, "non-events (good)"),
            (hist.events, EVENT, "events (bad)"),
        ):
            total = sum(counts) or 1
            ax.stairs(
                [c / total for c in counts],
                hist.edges,
                color=colour,
                linewidth=2,
                fill=False,
                label=f"{label}, {sum(counts):,} rows",
            )
        _percent_axis(ax)
        _legend_on_top(ax)
    return out[0]


def calibration_chart(cal: Calibration, chart_id: str = "calibration") -> str:
    with _chart(
        chart_id,
        "Calibration by decile of predicted probability",
        "Mean predicted event probability (%)",
        "Observed event rate (%)",
        size=(6.0, 4.6),
    ) as (ax, out):
        top = max(*cal.predicted, *cal.observed) * 1.05 or 1.0
        ax.plot([0, top], [0, top], color=GREY, linestyle="--", linewidth=1, label="perfect")
        ax.plot(cal.predicted, cal.observed, color=EVENT, marker="o", linewidth=2, label="deciles")
        ax.set(xlim=(0, top), ylim=(0, top))
        _percent_axis(ax, "x")
        _percent_axis(ax)
        ax.legend(loc="upper left")
    return out[0]


def score_band_chart(bands: Sequence[ScoreBand], chart_id: str = "score-bands") -> str:
    with _chart(
        chart_id,
        "Event rate by score band",
        "Score band (points)",
        "Event (bad) rate (%)",
    ) as (ax, out):
        x = range(len(bands))
        ax.bar(x, [b.event_rate for b in bands], color=EVENT, width=0.7)
        for i, b in enumerate(bands):
            ax.annotate(f"n={b.count:,}", (i, b.event_rate), ha="center", va="bottom", fontsize=7)
        _category_ticks(ax, [b.label for b in bands], rotate=True)
        _percent_axis(ax)
    return out[0]


# ---- characteristics ------------------------------------------------------------------


def woe_chart(column: ColumnWoe, chart_id: str) -> str:
    with _chart(
        chart_id,
        f"{short(column.name)}: WOE per bin (IV {column.iv:.4f})",
        "Bin",
        "WOE (above 0: less risky than average)",
    ) as (ax, out):
        woe = [b.woe for b in column.bins]
        colours = [NONEVENT if w >= 0 else EVENT for w in woe]
        ax.bar(range(len(woe)), woe, color=colours, width=0.7)
        ax.axhline(0.0, color="#333333", linewidth=0.8)
        _category_ticks(ax, [b.label for b in column.bins], rotate=True)
    return out[0]


def iv_chart(columns: Sequence[ColumnWoe], chart_id: str = "iv") -> str:
    """Information value per column, highest at the top, with the usual rule-of-thumb lines."""
    ranked = sorted(columns, key=lambda c: c.iv)
    height = min(12.0, 1.4 + 0.28 * len(ranked))
    with _chart(
        chart_id,
        "Information value per column",
        "IV (unitless; 0.02 weak, 0.1 medium, 0.3 strong)",
        "Column",
        size=(7.2, height),
    ) as (ax, out):
        ax.barh([short(c.name) for c in ranked], [c.iv for c in ranked], color=NONEVENT)
        for level in (0.02, 0.1, 0.3):
            ax.axvline(level, color=GREY, linestyle=":", linewidth=1)
        ax.grid(axis="y", visible=False)
    return out[0]


# ---- stability ------------------------------------------------------------------------


def psi_chart(items: Sequence[ColumnStability], chart_id: str = "csi") -> str:
    """PSI/CSI per column, with the usual 0.1 (watch) and 0.25 (shifted) lines."""
    height = min(12.0, 1.4 + 0.28 * len(items))
    with _chart(
        chart_id,
        "Characteristic stability index (CSI) per column",
        "CSI (unitless; 0.1 watch, 0.25 shifted)",
        "Column",
        size=(7.2, height),
    ) as (ax, out):
        ax.barh([short(c.name) for c in items], [c.psi for c in items], color=NEUTRAL)
        for level, colour in ((0.1, "#E69F00"), (0.25, EVENT)):
            ax.axvline(level, color=colour, linestyle="--", linewidth=1)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
    return out[0]


def shares_chart(stability: ColumnStability, chart_id: str = "score-psi") -> str:
    """Expected (training) and actual shares of rows per bin, side by side."""
    with _chart(
        chart_id,
        f"{short(stability.name)}: PSI {stability.psi:.4f}, training vs later sample",
        f"Bin of {short(stability.name)}",
        "Share of rows (%)",
    ) as (ax, out):
        x = range(len(stability.bins))
        ax.bar(
            [i - 0.2 for i in x],
            [b.expected_share for b in stability.bins],
            width=0.4,
            color=NONEVENT,
            label="expected (training)",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [b.actual_share for b in stability.bins],
            width=0.4,
            color="#E69F00",
            label="actual (later sample)",
        )
        _category_ticks(ax, [b.label for b in stability.bins], rotate=True)
        _percent_axis(ax)
        _legend_on_top(ax)
    return out[0]
