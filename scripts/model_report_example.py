"""Render an example model report from a quick pooled WOE scorecard on the raw credit files.

Pooled on one machine (numpy, pandas), for looking at the report only: the federated
workflow computes the same tables without pooling rows. Writes the guest's report
(performance, its columns, score PSI, CSI) and a host's (its columns, CSI) under OUT:

    python scripts/model_report_example.py OUT [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lianmo.models.metrics import auc
from lianmo.report import (
    Calibration,
    ColumnStability,
    ColumnWoe,
    DecileRow,
    KsCurve,
    Metric,
    ModelReport,
    RocCurve,
    ScoreBand,
    ScoreHistogram,
    StabilityBin,
    WoeBin,
    write_report,
)

LABEL = "default_next_month"
PDO, BASE_SCORE, BASE_ODDS = 20.0, 600.0, 50.0


def bin_labels(train: pd.Series, rest: pd.Series, max_bins: int = 8) -> tuple[pd.Series, ...]:
    """Quantile bins of a numeric column, category bins of a text one; missing its own bin."""
    if not pd.api.types.is_numeric_dtype(train):
        keep = train.value_counts()
        keep = set(keep[keep >= 0.02 * len(train)].index)
        f = lambda s: s.where(s.isin(keep) | s.isna(), "other").fillna("missing")  # noqa: E731
        return f(train), f(rest)
    edges = np.unique(np.nanquantile(train, np.linspace(0, 1, max_bins + 1)[1:-1]))
    names = (
        [f"< {edges[0]:,.0f}"]
        + [f"[{a:,.0f}, {b:,.0f})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        + [f">= {edges[-1]:,.0f}"]
    )

    def f(s: pd.Series) -> pd.Series:
        idx = np.searchsorted(edges, s.to_numpy(float), side="right")
        out = pd.Series([names[i] for i in idx], index=s.index)
        return out.where(s.notna(), "missing")

    return f(train), f(rest)


def woe_table(
    name: str, party: str, bins: pd.Series, y: np.ndarray
) -> tuple[ColumnWoe, dict[str, float]]:
    frame = pd.DataFrame({"bin": bins.to_numpy(), "y": y})
    order = list(dict.fromkeys(sorted(frame["bin"].unique(), key=_bin_key)))
    events = frame.groupby("bin")["y"].sum().reindex(order).to_numpy(float)
    counts = frame.groupby("bin")["y"].size().reindex(order).to_numpy(float)
    nonevents = counts - events
    ge, gn = events / events.sum(), nonevents / nonevents.sum()
    woe = np.log(np.maximum(gn, 1e-9) / np.maximum(ge, 1e-9))
    iv = (gn - ge) * woe
    rows = tuple(
        WoeBin(str(b), int(c), int(e), float(e / c), float(w), float(v))
        for b, c, e, w, v in zip(order, counts, events, woe, iv, strict=True)
    )
    return ColumnWoe(name, rows, party), dict(zip(order, woe, strict=True))


def _bin_key(label: str) -> tuple[int, float, str]:
    if label == "missing":
        return (2, 0.0, label)
    if label.startswith("<"):
        return (0, -math.inf, label)
    if label.startswith(("[", ">=")):
        number = label[1:].split(", ")[0] if label.startswith("[") else label[3:]
        return (0, float(number.replace(",", "")), label)
    return (1, 0.0, label)


def fit_lr(X: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    A = np.column_stack([np.ones(len(X)), X])
    w = np.zeros(A.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-A @ w))
        hess = A.T @ (A * (p * (1 - p))[:, None]) + 1e-6 * np.eye(A.shape[1])
        w -= np.linalg.solve(hess, A.T @ (p - y))
    return w


def stability(
    name: str, party: str, train: pd.Series, later: pd.Series, order: list[str] | None = None
) -> ColumnStability:
    order = order or sorted(set(train) | set(later), key=_bin_key)
    e = train.value_counts(normalize=True).reindex(order, fill_value=0).to_numpy() + 1e-6
    a = later.value_counts(normalize=True).reindex(order, fill_value=0).to_numpy() + 1e-6
    rows = tuple(
        StabilityBin(str(b), float(x), float(z), float((z - x) * np.log(z / x)))
        for b, x, z in zip(order, e, a, strict=True)
    )
    return ColumnStability(name, rows, party)


def performance(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> dict[str, object]:
    order = np.argsort(-p, kind="stable")
    tpr = np.concatenate([[0], np.cumsum(y[order]) / y.sum()])
    fpr = np.concatenate([[0], np.cumsum(1 - y[order]) / (1 - y).sum()])
    s_order = np.argsort(score, kind="stable")
    ev = np.cumsum(y[s_order]) / y.sum()
    ne = np.cumsum(1 - y[s_order]) / (1 - y).sum()
    gap = int(np.argmax(np.abs(ev - ne)))
    step = max(1, len(y) // 400)
    deciles, cal = [], ([], [], [])
    rate = y.mean()
    for d, rows in enumerate(np.array_split(order, 10), 1):
        captured = y[order[: sum(len(r) for r in np.array_split(order, 10)[:d])]].sum()
        deciles.append(
            DecileRow(
                d,
                len(rows),
                int(y[rows].sum()),
                float(y[rows].mean()),
                float(y[rows].mean() / rate),
                float(captured / y.sum()),
            )
        )
    for rows in reversed(np.array_split(order, 10)):
        cal[0].append(float(p[rows].mean()))
        cal[1].append(float(y[rows].mean()))
        cal[2].append(len(rows))
    edges = np.linspace(np.floor(score.min() / 10) * 10, np.ceil(score.max() / 10) * 10, 31)
    bands_edges = np.quantile(score, np.linspace(0, 1, 8))
    bands = []
    for lo, hi in zip(bands_edges[:-1], bands_edges[1:], strict=True):
        inside = (score >= lo) & ((score < hi) | (hi == bands_edges[-1]))
        bands.append(
            ScoreBand(
                f"{lo:.0f}–{hi:.0f}",
                int(inside.sum()),
                int(y[inside].sum()),
                float(y[inside].mean()),
            )
        )
    a = auc(y, p)
    return {
        "metrics": (
            Metric("AUC", a),
            Metric("KS", float(abs(ev - ne)[gap])),
            Metric("Gini", 2 * a - 1, "2 × AUC − 1"),
            Metric("event rate", float(rate), f"{len(y):,} validation rows"),
        ),
        "roc": RocCurve(tuple(fpr[::step]) + (1.0,), tuple(tpr[::step]) + (1.0,), a),
        "ks": KsCurve(
            tuple(score[s_order][::step]),
            tuple(ev[::step]),
            tuple(ne[::step]),
            float(abs(ev - ne)[gap]),
            float(score[s_order][gap]),
        ),
        "deciles": tuple(deciles),
        "score_histogram": ScoreHistogram(
            tuple(edges),
            tuple(np.histogram(score[y == 1], edges)[0].tolist()),
            tuple(np.histogram(score[y == 0], edges)[0].tolist()),
        ),
        "calibration": Calibration(tuple(cal[0]), tuple(cal[1]), tuple(cal[2])),
        "score_bands": tuple(bands),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    guest = pd.read_csv(args.data / "credit_broker_raw.csv")
    host = pd.read_csv(args.data / "credit_platform_raw.csv")
    table = guest.merge(host, on="client_id")
    rng = np.random.default_rng(7)
    train = rng.random(len(table)) < 0.7
    y_all = table[LABEL].to_numpy(float)
    party = {c: "broker" for c in guest.columns} | {c: "platform" for c in host.columns}
    columns = [c for c in table.columns if c not in ("client_id", LABEL)]
    woe_tr, woe_va, tables, csi = [], [], [], []
    for c in columns:
        b_tr, b_va = bin_labels(table[c][train], table[c][~train])
        col, woe = woe_table(c, party[c], b_tr, y_all[train])
        tables.append(col)
        csi.append(stability(c, party[c], b_tr, b_va))
        woe_tr.append(b_tr.map(woe).to_numpy(float))
        woe_va.append(b_va.map(woe).fillna(0.0).to_numpy(float))
    w = fit_lr(np.column_stack(woe_tr), y_all[train])
    factor = PDO / math.log(2)
    offset = BASE_SCORE - factor * math.log(BASE_ODDS)

    def score_of(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logit = w[0] + X @ w[1:]
        return 1 / (1 + np.exp(-logit)), offset - factor * logit

    p_va, s_va = score_of(np.column_stack(woe_va))
    _, s_tr = score_of(np.column_stack(woe_tr))
    cut = np.quantile(s_tr, np.linspace(0, 1, 11)[1:-1])
    names = (
        [f"< {cut[0]:.0f}"]
        + [f"{a:.0f}–{b:.0f}" for a, b in zip(cut[:-1], cut[1:], strict=True)]
        + [f">= {cut[-1]:.0f}"]
    )
    score_psi = stability(
        "score (points)",
        "broker",
        pd.Series([names[i] for i in np.searchsorted(cut, s_tr)]),
        pd.Series([names[i] for i in np.searchsorted(cut, s_va)]),
        names,
    )
    perf = performance(y_all[~train], p_va, s_va)
    mine = [t for t in tables if t.party == "broker"]
    notes = (
        "Example: a pooled WOE scorecard on the raw credit files (70/30 split); "
        "points = 600 at odds 50:1, 20 points to double the odds.",
    )
    write_report(
        ModelReport(
            "Credit scorecard: validation report",
            "broker",
            "guest",
            columns=tuple(mine),
            score_psi=score_psi,
            column_stability=tuple(c for c in csi if c.party == "broker"),
            notes=notes,
            **perf,
        ),  # type: ignore[arg-type]
        args.out / "guest",
    )
    write_report(
        ModelReport(
            "Credit scorecard: host characteristics",
            "platform",
            "host",
            columns=tuple(t for t in tables if t.party == "platform"),
            column_stability=tuple(c for c in csi if c.party == "platform"),
        ),
        args.out / "host",
    )
    print(f"AUC {perf['metrics'][0].value:.4f}; reports in {args.out}")  # type: ignore[index]


if __name__ == "__main__":
    main()
