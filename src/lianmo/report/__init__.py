"""The model report: a holder's metrics, curves, WOE/IV and stability as HTML and Markdown.

:mod:`lianmo.report.data` defines what a report shows (:class:`ModelReport`),
:mod:`lianmo.report.charts` draws its charts with matplotlib as inline SVG, and
:mod:`lianmo.report.render` writes the HTML page and its Markdown twin. This package
sits just above ``models`` and imports only ``errors``, ``fileio`` and ``models``: it
renders data it is given and never talks to another party.
"""

from lianmo.report.data import (
    Calibration,
    CharacteristicPoints,
    ColumnStability,
    ColumnWoe,
    DecileRow,
    KsCurve,
    Metric,
    ModelReport,
    PointsBin,
    RocCurve,
    ScoreBand,
    ScorecardPoints,
    ScoreHistogram,
    StabilityBin,
    WoeBin,
)
from lianmo.report.render import render_html, render_markdown, write_report

__all__ = [
    "Calibration",
    "CharacteristicPoints",
    "ColumnStability",
    "ColumnWoe",
    "DecileRow",
    "KsCurve",
    "Metric",
    "ModelReport",
    "PointsBin",
    "RocCurve",
    "ScoreBand",
    "ScoreHistogram",
    "ScorecardPoints",
    "StabilityBin",
    "WoeBin",
    "render_html",
    "render_markdown",
    "write_report",
]
