"""``lianmo data``: check a party's table before a job uses it, and profile its columns."""

from __future__ import annotations

import json
import tomllib
import typing as t
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np

from lianmo.config import PartyConfig
from lianmo.config.party import DEFAULT_MISSING_VALUES
from lianmo.data.consent import read_register
from lianmo.data.feature_choice import choose_features
from lianmo.data.profile import ColumnProfile, Profiler
from lianmo.data.reader import read_header
from lianmo.data.table import TASKS, TableScan, scan_checked


@click.group("data")
def data() -> None:
    """Check a party's data set the way its node will load it."""


@dataclass(frozen=True, slots=True)
class _Source:
    """What to read and how: from the options, or from a catalogue entry."""

    path: Path
    id_column: str
    label_column: str | None
    categorical: tuple[str, ...] = ()
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES
    offered: tuple[str, ...] | None = None  # the catalogue's columns
    party: str = ""
    dataset: str = ""
    consent: Path | None = None  # the catalogue's consent register
    purposes: tuple[str, ...] = ()  # the catalogue's purposes (default: the register's)

    def consent_counts(self, ids: np.ndarray) -> dict[str, int]:
        """Per purpose, how many of ``ids`` have consent valid now (nothing without a register)."""
        if self.consent is None:
            return {}
        register = read_register(str(self.consent), self.party)
        purposes = self.purposes or tuple(sorted({p.decode() for p in register.purposes}))
        now = datetime.now(UTC)
        return {p: int(np.isin(ids, register.valid_ids(p, now)).sum()) for p in purposes}

    def reader_options(self) -> dict[str, t.Any]:
        """The reader's categorical and missing-value settings."""
        return {"categorical": self.categorical, "missing_values": self.missing_values}

    def features(self) -> list[str] | None:
        """The feature columns the node reads (None: every one); the catalogue's offer."""
        if self.offered is None:
            return None
        header = read_header(str(self.path), self.party)
        return list(
            choose_features(
                header,
                id_column=self.id_column,
                label_column=self.label_column,
                offered=self.offered,
                party=self.party,
                dataset=self.dataset,
            )
        )


def _missing_values(text: str | None) -> tuple[str, ...]:
    """``--missing-values`` as a TOML list of strings, as in the catalogue (None: default)."""
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


def _source(
    path: Path | None,
    id_column: str | None,
    label_column: str | None,
    categorical: tuple[str, ...],
    missing: str | None,
    config: Path | None,
    dataset: str | None,
) -> _Source:
    """The file and settings to check, from the options or from ``--config``/``--dataset``."""
    if (config is None) != (dataset is None):
        raise click.UsageError("--config and --dataset go together: the catalogue and its entry")
    if config is None:
        if path is None or id_column is None:
            raise click.UsageError("give FILE and --id, or --config and --dataset")
        return _Source(path, id_column, label_column, categorical, _missing_values(missing))
    given: dict[str, object] = {"FILE": path, "--id": id_column, "--label": label_column}
    given |= {"--categorical": categorical or None, "--missing-values": missing}
    clash = [name for name, value in given.items() if value is not None]
    if clash:
        raise click.UsageError(
            f"{', '.join(clash)} {'comes' if len(clash) == 1 else 'come'} from the catalogue "
            "with --config and --dataset; "
            "leave them out (or check a file without --config)"
        )
    party = PartyConfig.load(config)
    entry = party.dataset(str(dataset))
    return _Source(
        entry.path,
        entry.id_column,
        entry.label_column,
        entry.categorical,
        entry.missing_values,
        entry.columns,
        party.name,
        entry.name,
        entry.consent,
        tuple(entry.purposes or ()),
    )


@data.command("check")
@click.argument("path", metavar="[FILE]", required=False, type=click.Path(path_type=Path))
@click.option("--id", "id_column", default=None, help="Column holding the row ids.")
@click.option("--label", "label_column", default=None, help="Column holding the labels (guest).")
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="What the labels are for (needs a label column; default binary, as for hetero_lr).",
)
@click.option(
    "--categorical",
    "categorical",
    multiple=True,
    metavar="COLUMN",
    help="Read COLUMN as categories (text or codes); repeat for each such column.",
)
@click.option(
    "--missing-values",
    "missing",
    default=None,
    metavar="LIST",
    help="Cell texts read as missing in feature columns, as the catalogue's missing_values "
    "in TOML: '[\"\", \"NA\"]', or '[]' to refuse missing cells (default: the empty cell "
    "and the usual NA spellings).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    default=None,
    help="A party config: check its catalogue entry --dataset exactly as its node loads it.",
)
@click.option("--dataset", default=None, help="The catalogue entry to check (with --config).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def check_cmd(
    path: Path | None,
    id_column: str | None,
    label_column: str | None,
    task: str | None,
    categorical: tuple[str, ...],
    missing: str | None,
    config: Path | None,
    dataset: str | None,
    as_json: bool,
) -> None:
    """Validate FILE (.csv, .csv.gz or .parquet) exactly as a party node does when a job loads
    it, then describe each feature column.

    Every cell is checked: ids and labels present and valid, ids unique, a feature cell a
    finite number, a category of a --categorical column, or a missing value; with a label
    column the labels must suit --task. With --config and --dataset the file and these
    settings come from the party's catalogue entry, and only the columns it offers to
    jobs are read.

    Prints a one-line summary, then per feature column its type, missing share, number
    of distinct categories (never the categories themselves), min, max and mean of
    numbers, and flags: constant, almost all missing, unique per row (an id in
    disguise). Exits 3 naming the file, column and data row of the first problem.
    """
    source = _source(path, id_column, label_column, categorical, missing, config, dataset)
    label_column = source.label_column
    if task is not None and label_column is None:
        raise click.UsageError("--task checks the labels; give the label column with --label")
    if label_column is not None and task is None:
        task = "binary"
    table = scan_checked(
        source.path,
        id_column=source.id_column,
        label_column=label_column,
        task=task,
        party=source.party,
        feature_columns=source.features(),
        **source.reader_options(),
    )
    profiles = _profile(table)
    label = "no label" if label_column is None else f"label '{label_column}'"
    features = _count(len(table.feature_names), "feature column")
    line = f"ok: {source.path}: {_count(len(table), 'row')}, {features} "
    line += f"(id '{source.id_column}', {label})"
    if table.y is not None:
        line += "; " + label_summary(table.y, task)
    consent = source.consent_counts(table.ids)
    if consent:
        line += "; with consent valid now: " + ", ".join(
            f"{n} for '{p}'" for p, n in consent.items()
        )
    if as_json:
        report = {"summary": line, "rows": len(table), "columns": [p.to_json() for p in profiles]}
        if consent:
            report["consent"] = consent
        click.echo(json.dumps(report, allow_nan=False))
        return
    click.echo(line)
    for row in column_table(profiles):
        click.echo(row.rstrip())


def _profile(table: TableScan) -> tuple[ColumnProfile, ...]:
    """Profile the features in one more pass over the file, block by block."""
    profiler = Profiler(table.feature_names, table.categories)

    def add(block: np.ndarray) -> np.ndarray:
        profiler.add(block)
        return np.zeros(len(block))

    table.map_rows(np.arange(len(table)), add)
    return profiler.result()


def column_table(profiles: t.Sequence[ColumnProfile]) -> list[str]:
    """The per-column report as aligned text lines, with a header line."""
    header = ("column", "type", "missing", "distinct", "min", "max", "mean", "flags")
    rows = [header] + [
        (
            p.name,
            p.kind,
            f"{100 * p.missing_share:.1f}%",
            "-" if p.distinct is None else str(p.distinct),
            _number(p.minimum),
            _number(p.maximum),
            _number(p.mean),
            ", ".join(p.flags),
        )
        for p in profiles
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def label_summary(y: np.ndarray, task: str | None) -> str:
    """Class shares for classification; mean, population std, min and max for regression."""
    if task == "regression":
        return f"label mean {y.mean():.6g}, std {y.std():.6g}, min {y.min():.6g}, max {y.max():.6g}"
    classes, counts = np.unique(y, return_counts=True)
    shares = ", ".join(
        f"{c:g}: {100 * n / len(y):.1f}%" for c, n in zip(classes, counts, strict=True)
    )
    return f"label balance {shares}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
