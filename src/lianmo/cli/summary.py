"""What ``lianmo job run`` prints when a job succeeded: the model's own metrics, losses,
time and traffic per party."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import click


def print_summary(metrics: dict[str, t.Any], path: Path) -> None:
    """Human summary of a finished job: the model's own metrics, losses, time, traffic."""
    if metrics.get("validation"):
        click.echo(metric_line("validation", metrics["validation"]))
    if metrics.get("metrics"):
        click.echo(metric_line("scored rows", metrics["metrics"]))
    if metrics.get("task") == "align" and "aligned" in metrics:
        click.echo(f"aligned {metrics['aligned']} ids common to every data party")
    per = "round" if "trees" in metrics else "epoch"
    if metrics.get("loss"):
        click.echo(f"training loss per {per}: " + _numbers(metrics["loss"], ".5f"))
    if metrics.get("validation_loss"):
        click.echo(f"validation loss per {per}: " + _numbers(metrics["validation_loss"], ".5f"))
    if metrics.get("label_protection"):
        lp = metrics["label_protection"]
        click.echo(
            f"label protection: epsilon {lp['epsilon']:g}, delta {lp['delta']:g} over the whole "
            f"job (noise sigma {lp['sigma']:.3g} on the residuals hosts receive)"
        )
    if metrics.get("epoch_seconds"):
        click.echo("seconds per epoch: " + _numbers(metrics["epoch_seconds"], ".1f"))
    click.echo(f"wall time {metrics['wall_seconds']:.1f}s")
    for name, p in metrics["parties"].items():
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in p["phase_seconds"].items())
        sent = (p["bytes_sent"] or 0) / 2**20
        click.echo(
            f"  {name:<10} {p['role']:<8} sent {p['messages_sent']} messages "
            f"({sent:.1f} MiB); {phases}"
        )
    click.echo(f"metrics: {path}")


#: what each kind of model reports, as (key, label); the first key tells the kind
_METRICS = (
    (("auc", "AUC"), ("ks", "KS")),  # binary
    (("accuracy", "accuracy"), ("log_loss", "log loss")),  # multi-class
    (("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²")),  # regression
)


def metric_line(scope: str, values: t.Mapping[str, t.Any]) -> str:
    """``scope`` followed by the metrics the guest reported for its kind of model.

    Binary models report AUC and KS, multi-class ones accuracy, log loss and the recall of
    each class (``recall_k``, shown together); regression RMSE, MAE and R²; a metric of
    another name is shown as it is named.
    """
    known = next((names for names in _METRICS if names[0][0] in values), ())
    shown = [f"{label} {float(values[key]):.4f}" for key, label in known if key in values]
    recalls = sorted((int(k[7:]), k) for k in values if re.fullmatch(r"recall_\d+", k))
    if recalls:
        shown.append(
            "recall by class " + " ".join(f"{c}:{float(values[k]):.3f}" for c, k in recalls)
        )
    listed = {key for key, _ in known} | {"rows"} | {k for _, k in recalls}
    shown += [f"{key} {value}" for key, value in sorted(values.items()) if key not in listed]
    rows = f"  ({values['rows']} rows)" if "rows" in values else ""
    return f"{scope} {'  '.join(shown)}{rows}"


def _numbers(values: t.Iterable[float], spec: str) -> str:
    return ", ".join(format(v, spec) for v in values)
