"""The model report: every chart titled and labelled, absent sections absent, names escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lianmo.report import (
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
    render_html,
    render_markdown,
    write_report,
)

SVG_NS = "{http://www.w3.org/2000/svg}"
PERFORMANCE_CHARTS = {
    "roc",
    "ks",
    "lift",
    "gain",
    "score-distribution",
    "calibration",
    "score-bands",
}


def _column(name: str, party: str = "broker", shift: float = 0.0) -> ColumnWoe:
    return ColumnWoe(
        name,
        (
            WoeBin("< 30", 400, 120, 0.30, -0.42 + shift, 0.05),
            WoeBin("[30, 50)", 500, 90, 0.18, 0.21, 0.02),
            WoeBin("missing", 100, 22, 0.22, -0.01, 0.0001),
        ),
        party,
    )


def _stability(name: str, party: str = "broker") -> ColumnStability:
    return ColumnStability(
        name,
        (StabilityBin("a", 0.5, 0.4, 0.0223), StabilityBin("b", 0.5, 0.6, 0.0182)),
        party,
    )


def _guest(columns: tuple[ColumnWoe, ...] = ()) -> ModelReport:
    deciles = tuple(
        DecileRow(d, 100, 40 - 3 * d, (40 - 3 * d) / 100, (40 - 3 * d) / 23.5, min(1.0, d / 8))
        for d in range(1, 11)
    )
    return ModelReport(
        title="Scorecard validation",
        party="broker",
        role="guest",
        metrics=(Metric("AUC", 0.7712), Metric("KS", 0.41), Metric("Gini", 0.5424, "2 AUC - 1")),
        roc=RocCurve((0.0, 0.1, 0.4, 1.0), (0.0, 0.4, 0.8, 1.0), 0.7712),
        ks=KsCurve((400.0, 500.0, 600.0), (0.2, 0.7, 1.0), (0.05, 0.3, 1.0), 0.41, 500.0),
        deciles=deciles,
        score_histogram=ScoreHistogram((400.0, 450.0, 500.0, 550.0), (30, 20, 5), (50, 300, 500)),
        calibration=Calibration((0.05, 0.2, 0.5), (0.06, 0.18, 0.55), (300, 300, 300)),
        score_bands=(ScoreBand("400-500", 300, 90, 0.3), ScoreBand("500-600", 600, 30, 0.05)),
        columns=columns or (_column("limit_bal"), _column("age", shift=0.2)),
        score_psi=_stability("score"),
        column_stability=(_stability("limit_bal"), _stability("age")),
    )


def _host() -> ModelReport:
    return ModelReport(
        "Host columns",
        "platform",
        "host",
        columns=(_column("pay_1", "platform"),),
        column_stability=(_stability("pay_1", "platform"),),
    )


def _svgs(html: str) -> dict[str, ET.Element]:
    """Every inline chart of a page, parsed as XML, by its id."""
    out = {}
    for text in re.findall(r"<svg .*?</svg>", html, re.S):
        root = ET.fromstring(text)
        out[root.attrib["id"]] = root
    return out


def _label(svg: ET.Element, gid: str) -> str:
    group = next((g for g in svg.iter(f"{SVG_NS}g") if g.attrib.get("id") == gid), None)
    assert group is not None, f"no element {gid!r} in the chart"
    return "".join(group.itertext()).strip()


@pytest.fixture(scope="module")
def guest_html() -> str:
    return render_html(_guest())


def test_every_chart_has_a_title_and_labelled_axes(guest_html: str) -> None:
    charts = _svgs(guest_html)
    expected = PERFORMANCE_CHARTS | {"iv", "woe-1", "woe-2", "score-psi", "csi"}
    assert set(charts) == expected
    for chart_id, svg in charts.items():
        for part in ("title", "x", "y"):
            assert len(_label(svg, f"{chart_id}-{part}")) >= 3, (chart_id, part)
    assert _label(charts["roc"], "roc-title") == "ROC curve (AUC 0.7712)"
    assert "(%)" in _label(charts["roc"], "roc-x") and "(%)" in _label(charts["roc"], "roc-y")
    assert _label(charts["woe-2"], "woe-2-title").startswith("age: WOE per bin")
    assert "points" in _label(charts["ks"], "ks-x")


def test_the_page_is_self_contained(guest_html: str) -> None:
    assert "<script" not in guest_html and " src=" not in guest_html
    links = re.findall(r'href="([^"]*)"', guest_html)
    assert links and all(link.startswith("#") for link in links)
    ids = re.findall(r' id="([^"]*)"', guest_html)
    assert len(ids) == len(set(ids)), "charts share an SVG id"


def test_rendering_is_deterministic(guest_html: str) -> None:
    assert render_html(_guest()) == guest_html


def test_a_hosts_report_has_only_its_columns() -> None:
    html, markdown = render_html(_host()), render_markdown(_host())
    assert set(_svgs(html)) == {"iv", "woe-1", "csi"}
    for absent in ("Summary", "ROC", "KS curve", "Lift", "Calibration", "score band", "PSI 0."):
        assert absent not in html and absent not in markdown
    assert "pay\\_1" in markdown and "Party platform (host)." in markdown
    assert not any(f"{c}.svg" in markdown for c in PERFORMANCE_CHARTS)


def test_a_report_of_only_metrics_has_no_charts() -> None:
    report = ModelReport("Just numbers", "broker", "guest", metrics=(Metric("AUC", 0.7),))
    html = render_html(report)
    assert "<svg" not in html and "Characteristics" not in html and "Stability" not in html
    assert "| AUC | 0.7000 |  |" in render_markdown(report)


def test_names_are_escaped_in_html_svg_and_markdown() -> None:
    evil = "<b>x</b> | $\\alpha$ [a](http://e)"
    report = ModelReport(
        "<script>alert(1)</script>",
        "<i>p</i>",
        "guest",
        columns=(_column(evil, party="<i>p</i>"),),
        column_stability=(_stability(evil),),
    )
    html, markdown = render_html(report), render_markdown(report)
    assert "<b>" not in html and "<script>" not in html and "<i>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    charts = _svgs(html)  # parses: the SVG text is escaped too
    assert evil[:20] in _label(charts["woe-1"], "woe-1-title")  # printed as is, no math text
    assert "$\\alpha$" in _label(charts["woe-1"], "woe-1-title")
    assert "<b>" not in markdown and "<i>" not in markdown
    assert "](http" not in markdown.replace("\\[a\\](http", "")  # the brackets are escaped
    row = next(line for line in markdown.splitlines() if line.startswith("| \\<b\\>x"))
    assert row.count(" | ") == 4  # the column name's | did not add a cell


def test_markdown_tables_match_the_data() -> None:
    markdown = render_markdown(_guest())
    lines = markdown.splitlines()
    start = lines.index("| bin | rows | events | event rate | WOE | IV |")
    assert lines[start + 1] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert lines[start + 2 : start + 5] == [
        "| \\< 30 | 400 | 120 | 30.00% | -0.4200 | 0.0500 |",
        "| \\[30, 50) | 500 | 90 | 18.00% | 0.2100 | 0.0200 |",
        "| missing | 100 | 22 | 22.00% | -0.0100 | 0.0001 |",
    ]
    assert "| age | broker | 3 | 0.0701 | weak |" in lines  # ranked by IV, with the verdict
    assert "| limit\\_bal | broker | 0.0405 | stable |" in lines
    assert "![ROC curve.](roc.svg)" in lines


def test_write_report_writes_each_chart_beside_the_markdown(tmp_path: Path) -> None:
    paths = write_report(_guest(), tmp_path / "out")
    names = {p.name for p in paths}
    assert {"report.html", "report.md", "roc.svg", "woe-2.svg"} <= names
    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\(([^)]+\.svg)\)", markdown)
    assert len(linked) == len(names) - 2
    for name in linked:
        root = ET.parse(tmp_path / "out" / name).getroot()
        assert root.tag == f"{SVG_NS}svg" and _label(root, name[:-4] + "-title")
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_to_records_give_one_dict_per_bin() -> None:
    records = _column("age").to_records()
    assert len(records) == 3 and records[0]["column"] == "age" and records[0]["woe"] == -0.42
    assert _guest().calibration is not None
    assert _guest().calibration.to_records()[2] == {  # type: ignore[union-attr]
        "decile": 3,
        "count": 300,
        "mean_predicted": 0.5,
        "observed_rate": 0.55,
    }
    assert _stability("s").psi == pytest.approx(0.0405)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RocCurve((0.0, 1.0), (0.0,), 0.5), "RocCurve: the arrays must have the same"),
        (lambda: ScoreHistogram((0.0, 1.0), (1, 2), (3, 4)), "2 bins need 3 edges, got 2"),
        (lambda: ColumnWoe("x", ()), "ColumnWoe 'x': needs at least one bin"),
        (
            lambda: ColumnWoe("x", (WoeBin("a", 5, None, None, 0.1, None),)),
            "ColumnWoe 'x': a bin has no IV term, so pass the column's information_value",
        ),
        (lambda: CharacteristicPoints("x", 0.5, ()), "CharacteristicPoints 'x': needs at least"),
        (
            lambda: ModelReport("t", "p", "host", columns=(_column("a"), _column("a"))),
            r"column names must be unique, repeated: \['a'\]",
        ),
    ],
)
def test_malformed_input_is_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def _points(base: float | None) -> ScorecardPoints:
    bins = (PointsBin("< 30", -0.42, -12.5), PointsBin("missing", 0.0, -0.001))
    return ScorecardPoints(
        (CharacteristicPoints("age", 0.7, bins),), base, "Scaling: 600 points at odds 50:1."
    )


def test_the_points_table_has_the_base_points_only_when_given() -> None:
    with_base = render_html(ModelReport("t", "broker", "guest", points=_points(485.537)))
    without = render_markdown(ModelReport("t", "platform", "host", points=_points(None)))

    assert "Base points (held by this party): 485.54." in with_base
    assert (
        "<tr><td>base points</td><td></td><td class=num></td><td class=num>485.54</td></tr>"
        in with_base
    )
    assert "<td>age</td><td>&lt; 30</td><td class=num>-0.4200</td><td class=num>-12.50</td>" in (
        with_base
    )
    assert "<td class=num>0.00</td>" in with_base and "-0.00<" not in with_base  # no "-0"
    assert "Scaling: 600 points at odds 50:1." in with_base
    assert "## Scorecard points" in without and "base points" not in without.lower()
    assert "| age | 0.7000 | 2 | -12.50 | 0.00 |" in without
    assert _points(1.0).to_records()[0] == {
        "characteristic": "age",
        "coefficient": 0.7,
        "bin": "< 30",
        "woe": -0.42,
        "points": -12.5,
    }


def test_unknown_event_counts_show_as_a_dash_and_statuses_as_a_table() -> None:
    host_column = ColumnWoe(
        "pay_1",
        (WoeBin("a", 600, None, None, 0.3, None), WoeBin("b", 400, None, None, -0.5, None)),
        "platform",
        information_value=0.1234,
        status="correlated with pay_2 (r = 0.910, above max_corr 0.8)",
    )
    kept = ColumnWoe("pay_2", _column("pay_2").bins, "platform", 0.5, "kept")
    html = render_html(ModelReport("t", "platform", "host", columns=(host_column, kept)))

    assert host_column.iv == 0.1234
    assert (
        "<tr><td>a</td><td class=num>600</td><td class=num>—</td><td class=num>—</td>"
        "<td class=num>0.3000</td><td class=num>—</td></tr>"
    ) in html
    selection = html[html.index('id="selection"') : html.index('id="characteristics"')]
    assert "1 of 2 columns kept" in selection
    # kept first, then by IV
    assert selection.index("<td>pay_2</td>") < selection.index("<td>pay_1</td>")
    assert "<td>correlated with pay_2 (r = 0.910, above max_corr 0.8)</td>" in selection


def test_markdown_charts_can_sit_in_a_folder(tmp_path: Path) -> None:
    paths = write_report(_host(), tmp_path, chart_dir="charts")

    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\(([^)]+\.svg)\)", markdown)
    assert linked and all(name.startswith("charts/") for name in linked)
    assert {tmp_path / name for name in linked} <= set(paths)
    assert all((tmp_path / name).exists() for name in linked)
    assert not list(tmp_path.glob("*.svg"))
