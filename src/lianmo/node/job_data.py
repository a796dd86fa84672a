"""What every model's job shares: outcome, loading, alignment, the validation split, scores.

Each function is one step of a party's job, independent of the model being trained.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from lianmo.config import DatasetEntry, JobSpec, PartySpec
from lianmo.data.feature_choice import choose_features
from lianmo.data.reader import read_header
from lianmo.data.split import validation_mask
from lianmo.data.table import Table, TableScan, scan_checked
from lianmo.errors import ConfigError, DataError
from lianmo.fileio import write_atomic_chunks
from lianmo.models.evaluation import Evaluation, EvaluationError, evaluate
from lianmo.node.data_use import JobDataset
from lianmo.node.vocabulary import check_declared, check_vocabulary
from lianmo.protocols import psi, split
from lianmo.protocols.context import Recorder, RoleContext, no_record


@dataclass
class JobSummary:
    """What a party reports about its job in ``result.json``: counts, its own evaluation,
    losses, timings and its model share's digest; never rows, ids, weights or trees.

    Which fields are set depends on the job and the role; unset ones are left out.
    """

    aligned: int | None = None
    rows: int | None = None  # alignment jobs: ids the party brought (with valid consent)
    train_rows: int | None = None
    validation_rows: int | None = None
    scored: int | None = None
    validation: Evaluation | None = None  # the guest's, on the validation rows
    metrics: Evaluation | None = None  # the guest's, on scored rows that carry labels
    losses: tuple[float, ...] | None = None
    validation_loss: tuple[float, ...] | None = None
    round_losses: tuple[float, ...] | None = None
    epoch_seconds: tuple[float, ...] | None = None
    rounds: int | None = None
    trees: int | None = None
    best_rounds: int | None = None
    protocol_seconds: t.Mapping[str, float] | None = None
    protocol_counts: t.Mapping[str, int] | None = None
    model_digest: str | None = None
    # the guest's, with model.label_protection: epsilon, delta and the noise sigma
    label_protection: t.Mapping[str, float] | None = None
    # scorecard training: column counts (and the guest's Gini); never column names
    scorecard: t.Mapping[str, object] | None = None
    # scorecard scoring: the guest's score PSI, each party's largest CSI
    stability: t.Mapping[str, float] | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Evaluation):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, t.Mapping):
                value = dict(value)
            if value is not None:
                out[f.name] = value
        return out


@dataclass
class JobOutcome:
    """A party's result: its role, :class:`JobSummary` and time per phase.

    Each :meth:`timed` phase also starts a ``phase`` record in the audit log; the
    record's timestamp, not a duration field, tells when, so logs stay reproducible.
    """

    role: str
    summary: JobSummary = field(default_factory=JobSummary)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    record: Recorder = no_record

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        self.record("phase", name=phase)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds[phase] = round(
                self.phase_seconds.get(phase, 0.0) + time.perf_counter() - start, 3
            )


def load(
    ctx: RoleContext,
    role: str,
    data: JobDataset,
    *,
    training: bool,
    feature_columns: list[str] | None = None,
    task: str = "binary",
    categories: t.Mapping[str, Sequence[str]] | None = None,
    job_party: PartySpec | None = None,
) -> TableScan:
    """Check this party's table and keep its ids and labels; features are read after align.

    The guest's labels are required for training only; ``task`` (binary, multiclass or
    regression) is what training labels must suit. The features are ``feature_columns``
    (scoring: the model share's), else those :func:`job_features` chooses for
    ``job_party`` (this party's entry in the job spec); either way only columns the
    catalogue offers to the job's purpose. The catalogue entry's ``categorical`` and
    ``missing_values`` say how feature cells are read; ``categories`` are the known
    vocabularies of a model share, for scoring (their texts keep their codes).
    """
    dataset = data.entry
    label = dataset.label_column if role == "guest" else None
    if training and role == "guest" and label is None:
        raise ConfigError(
            f"party '{ctx.party}': data set '{dataset.name}' has no label_column in the "
            "catalogue, but the guest must hold the labels"
        )
    features = (
        job_features(ctx.party, role, dataset, job_party)
        if feature_columns is None
        else scoring_features(ctx.party, dataset, feature_columns)
    )
    if categories is not None and feature_columns is not None:
        check_declared(ctx.party, dataset.name, categories, dataset.categorical, feature_columns)
    return scan_checked(
        dataset.path,
        id_column=dataset.id_column,
        label_column=label,
        task=task if training else None,
        party=ctx.party,
        feature_columns=features,
        categorical=dataset.categorical,
        missing_values=dataset.missing_values,
        categories=categories,
    )


class _Scoring(t.Protocol):
    """What a predict job reads its table with: a model share's columns and vocabulary."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def categories(self) -> t.Mapping[str, Sequence[str]]: ...


def load_for_scoring(ctx: RoleContext, role: str, data: JobDataset, share: _Scoring) -> TableScan:
    """A predict job's table: the share's feature columns, read with its vocabulary
    (known texts keep their codes, new ones come after them: unseen), and checked to
    code every categorical column as the model was trained."""
    table = load(
        ctx,
        role,
        data,
        training=False,
        feature_columns=list(share.feature_names),
        categories=share.categories,
    )
    check_vocabulary(ctx.party, data.name, share.categories, table.categories)
    return table


def job_features(
    party: str, role: str, dataset: DatasetEntry, job_party: PartySpec | None
) -> list[str] | None:
    """The feature columns a job reads from ``dataset`` (None: all, in file order).

    The catalogue's ``columns`` restrict what any job may use; ``job_party`` is the
    party's entry in the job spec, with its ``columns`` or ``exclude``. Reads the file's
    header only, so the node can refuse a job at prepare, before anything starts.

    Raises
    ------
    ConfigError
        If a chosen column is not offered by the data set (public text: party, data set,
        column; the node log lists what it offers).
    DataError
        If the file's header cannot be read.
    """
    columns = None if job_party is None else job_party.columns
    exclude = None if job_party is None else job_party.exclude
    if dataset.columns is None and columns is None and exclude is None:
        return None  # every feature column, found as load always found them
    header = read_header(str(dataset.path), party)
    return list(
        choose_features(
            header,
            id_column=dataset.id_column,
            label_column=dataset.label_column if role == "guest" else None,
            offered=dataset.columns,
            columns=columns,
            exclude=exclude,
            party=party,
            dataset=dataset.name,
        )
    )


def scoring_features(party: str, dataset: DatasetEntry, names: Sequence[str]) -> list[str]:
    """A model share's feature columns, if the catalogue still offers them all (to the
    job's purpose: ``dataset`` is narrowed to it).

    Whether the file holds them is checked as the table is read (with the message that
    lists the file's columns in the node log).
    """
    for name in names:
        if dataset.columns is not None and name not in dataset.columns:
            raise ConfigError(
                f"party '{party}', data set '{dataset.name}', column '{name}': the model "
                "share was trained on this column, but the catalogue does not offer it to "
                "this job (its columns, or the columns of the job's purpose); the party's "
                f"operator must offer it under [datasets.{dataset.name}] again, or train a "
                "new model"
            )
    return list(names)


def aligned_table(
    ctx: RoleContext,
    role: str,
    spec: JobSpec,
    scan: TableScan,
    data: JobDataset,
    outcome: JobOutcome,
) -> Table:
    """Align (phase ``align``), then read the aligned rows' features (phase ``read``)."""
    with outcome.timed("align"):
        rows = align_rows(ctx, role, spec, scan, data)
    with outcome.timed("read"):
        return scan.read_rows(rows)


@dataclass(frozen=True)
class RowList:
    """Checkpoint ``align``: the file positions of the aligned rows, in agreed order."""

    rows: tuple[int, ...]
    KEY: t.ClassVar[str] = "rows"

    @classmethod
    def of(cls, rows: np.ndarray) -> t.Self:
        return cls(tuple(int(r) for r in rows))

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.int64)

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {self.KEY: list(self.rows)}

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> t.Self:
        return cls(tuple(int(r) for r in raw[cls.KEY]))


class ValidationRows(RowList):
    """Checkpoint ``split``: the aligned positions of the validation rows."""

    KEY: t.ClassVar[str] = "validation"


def align_rows(
    ctx: RoleContext, role: str, spec: JobSpec, scan: TableScan, data: JobDataset
) -> np.ndarray:
    """The file positions of the intersection's rows, in the order all parties agree on.

    Only ids with valid consent for the job's purpose go to alignment; afterwards the
    party commits to whose data the job used (:meth:`JobDataset.account`).
    """
    eligible = data.eligible(scan.ids)
    saved = ctx.checkpoints.restore("align", RowList)
    if saved is not None:
        rows = saved.array()
    else:
        ids = scan.ids if eligible is None else scan.ids[eligible]
        minimum = spec.alignment.min_intersection
        if eligible is not None and len(eligible) < minimum:
            raise DataError(
                f"party '{ctx.party}': only {len(eligible)} of the {len(scan)} ids of data set "
                f"'{data.name}' have consent valid for purpose '{data.purpose}' now, fewer "
                f"than the job's minimum intersection of {minimum}; check the consent "
                "register's purpose names and dates",
                party=ctx.party,
                problem=f"fewer ids with consent valid for purpose '{data.purpose}' than the "
                f"job's minimum intersection of {minimum}; the party's operator must check "
                "its consent register (purpose names, dates)",
            )
        if role == "guest":
            rows = psi.align_guest(ctx, ids, min_intersection=minimum)
        else:
            rows = psi.align_host(ctx, ids, min_intersection=minimum)
        if eligible is not None:
            rows = eligible[rows]
        ctx.checkpoints.save("align", RowList.of(rows))
    data.account(ctx, scan.ids, eligible, rows)
    return rows


def model_path(job_dir: Path, spec: JobSpec) -> Path:
    """Where this party keeps the share of the model a predict job's ``model_job`` trained."""
    return job_dir.parent / str(spec.model_job) / "model.json"


def split_rows(ctx: RoleContext, role: str, spec: JobSpec, aligned: Table) -> tuple[Table, Table]:
    """Training and validation rows; a stratified split is drawn by the guest and shared."""
    share, seed = spec.validation.share, spec.seed
    saved = ctx.checkpoints.restore("split", ValidationRows)
    if saved is not None:
        is_val = np.zeros(len(aligned), dtype=bool)
        is_val[saved.array()] = True
    elif not spec.validation.stratify:
        is_val = validation_mask(aligned.ids, share, seed)
    elif role == "guest":
        is_val = split.send_validation_rows(ctx, labels(aligned), share)
    else:
        is_val = split.receive_validation_rows(ctx, len(aligned))
    if saved is None:
        ctx.checkpoints.save("split", ValidationRows.of(np.flatnonzero(is_val)))
    return aligned.select(np.flatnonzero(~is_val)), aligned.select(np.flatnonzero(is_val))


def check_split(party: str, y_train: np.ndarray, y_val: np.ndarray) -> None:
    """Refuse before training what would fail at evaluation: no rows or one class."""
    for name, y in (("training", y_train), ("validation", y_val)):
        if len(np.unique(y)) < 2:
            raise DataError(
                f"party '{party}': the {name} split has {len(y)} rows and not both classes; "
                "change validation.share or the seed, or use a larger intersection"
            )


def labels(table: Table) -> np.ndarray:
    if table.y is None:
        raise DataError(f"{table.source}: the guest's table has no labels")
    return table.y


def evaluation(task: str, y: np.ndarray, scores: np.ndarray, n_classes: int = 2) -> Evaluation:
    """The guest's evaluation for ``task``; DataError if the labels do not allow it."""
    try:
        return evaluate(task, y, scores, n_classes)
    except EvaluationError as exc:
        raise DataError(str(exc)) from exc


IdList = Sequence[str] | np.ndarray  # strings, or UTF-8 bytes as TableScan.ids holds them
WRITE_ROWS = 1 << 16  # rows formatted at a time: a file of 10M scores is never one string


def write_id_csv(
    path: Path,
    header: Sequence[str],
    ids: IdList,
    values: np.ndarray | None = None,
    cells: t.Callable[[np.ndarray], Sequence[str]] = lambda block: [],
) -> None:
    """A CSV of one line per id, in order: the id, then ``cells`` of its rows of ``values``
    (one comma-joined text per row). Streamed block by block and atomic.

    Raises
    ------
    ValueError
        If ``values`` has not one row per id (and no file is written).
    """
    if values is not None and len(values) != len(ids):
        raise ValueError(f"{path.name}: {len(values)} rows of values for {len(ids)} ids")

    def blocks() -> Iterator[bytes]:
        yield (",".join(header) + "\n").encode()
        for lo in range(0, len(ids), WRITE_ROWS):
            names = _id_text(ids[lo : lo + WRITE_ROWS])
            if values is not None:
                texts = cells(values[lo : lo + WRITE_ROWS])
                names = [f"{i},{c}" for i, c in zip(names, texts, strict=True)]
            yield ("\n".join(names) + "\n").encode()

    write_atomic_chunks(path, blocks())


def decimals(block: np.ndarray) -> list[str]:
    """One score per row at full precision: the shortest text that reads back as the same
    float64 (the text of every scores file, so online scores can be checked against it)."""
    return [repr(float(s)) for s in block]


def _id_text(ids: IdList) -> list[str]:
    if isinstance(ids, np.ndarray) and ids.dtype.kind == "S":
        return [v.decode("utf-8") for v in ids.tolist()]
    return [str(i) for i in ids]


def write_ids(path: Path, ids: IdList) -> None:
    """The aligned ids, one per line under the header ``id``, in the jobs' row order."""
    write_id_csv(path, ["id"], ids)


def write_scores(path: Path, ids: IdList, scores: np.ndarray) -> None:
    """``id,score`` per row, scores at full precision (:func:`decimals`)."""
    write_id_csv(path, ["id", "score"], ids, scores, decimals)


def write_class_probabilities(path: Path, ids: IdList, probabilities: np.ndarray) -> None:
    """``id,p_0..p_K-1,class`` per row: each class's probability at full precision, then
    the most likely class."""

    def cells(block: np.ndarray) -> list[str]:
        return [",".join([*decimals(row), str(int(row.argmax()))]) for row in block]

    header = ["id", *(f"p_{k}" for k in range(probabilities.shape[1])), "class"]
    write_id_csv(path, header, ids, probabilities, cells)
