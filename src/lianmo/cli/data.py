"""``lianmo data``: check a party's table before a job uses it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click
import numpy as np

from lianmo.config.party import DEFAULT_MISSING_VALUES
from lianmo.data.table import TASKS, scan_checked


@click.group("data")
def data() -> None:
    """Check a party's data set the way its node will load it."""


@data.command("check")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--id", "id_column", required=True, help="Column holding the row ids.")
@click.option("--label", "label_column", default=None, help="Column holding the labels (guest).")
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="What the labels are for (needs --label; default binary, as for hetero_lr).",
)
@click.option(
    "--categorical",
    "categorical",
    multiple=True,
    metavar="COL",
    help="A feature column read as categories (repeat for each), as the catalogue's categorical.",
)
@click.option(
    "--missing-values",
    "missing_values",
    default=None,
    metavar="LIST",
    help="Cell texts read as missing, as the catalogue's missing_values in TOML: "
    "'[\"\", \"NA\"]', or '[]' to refuse missing cells (default: the empty cell and the "
    "usual NA spellings).",
)
def check_cmd(
    path: Path,
    id_column: str,
    label_column: str | None,
    task: str | None,
    categorical: tuple[str, ...],
    missing_values: str | None,
) -> None:
    """Validate FILE (.csv, .csv.gz or .parquet) exactly as a party node does when a job loads it.

    Every cell is checked: ids non-empty and unique, labels finite numbers, features
    numbers, missing (--missing-values) or categories (--categorical); with --label the
    labels must suit --task. Prints a one-line summary, or exits 3 naming the file,
    column and data row of the first problem.
    """
    if task is not None and label_column is None:
        raise click.UsageError("--task checks the labels; give the label column with --label")
    if label_column is not None and task is None:
        task = "binary"
    table = scan_checked(
        path,
        id_column=id_column,
        label_column=label_column,
        task=task,
        categorical=categorical,
        missing_values=_tokens(missing_values),
    )
    label = "no label" if label_column is None else f"label '{label_column}'"
    features = _count(len(table.feature_names), "feature column")
    line = f"ok: {path}: {_count(len(table), 'row')}, {features} (id '{id_column}', {label})"
    if table.y is not None:
        line += "; " + label_summary(table.y, task)
    click.echo(line)


def label_summary(y: np.ndarray, task: str | None) -> str:
    """Class shares for classification; mean, population std, min and max for regression."""
    if task == "regression":
        return f"label mean {y.mean():.6g}, std {y.std():.6g}, min {y.min():.6g}, max {y.max():.6g}"
    classes, counts = np.unique(y, return_counts=True)
    shares = ", ".join(
        f"{c:g}: {100 * n / len(y):.1f}%" for c, n in zip(classes, counts, strict=True)
    )
    return f"label balance {shares}"


def _tokens(text: str | None) -> tuple[str, ...]:
    """``--missing-values`` as a TOML list of strings (None: the default tokens)."""
    if text is None:
        return DEFAULT_MISSING_VALUES
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise click.BadParameter(
            f"{text!r} is not a TOML list of strings; write it as in the party config, e.g. "
            "'[\"\", \"NA\"]' or '[]'",
            param_hint="--missing-values",
        )
    return tuple(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
