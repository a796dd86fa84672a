"""Online features: a party's rows looked up by id, and turned into a model's inputs.

:class:`FeatureSource` is the adapter an institution implements to plug in its own online
feature store: ``columns`` and ``lookup(ids)``, which returns the raw cells (a number, a
category text, or None for a missing cell) of the ids it holds. The default,
:class:`SqliteStore`, needs no server: an SQLite file per data set under
``STATE_DIR/features/``, built from the catalogue's file with the same reader and checks
as a batch job (:func:`lianmo.data.load.load_table`), so a served row holds exactly the
numbers batch scoring reads. It is rebuilt in the background when the file changes
(size, modification time or the catalogue entry's reading rules), checked at most every
``[serving] refresh_s`` seconds; lookups go on against the old file meanwhile.

:class:`ModelColumns` turns cells into a model share's inputs the way batch scoring reads
a table with the share's vocabulary: a category keeps its training code, a text the
model never saw gets a code after its vocabulary (every model treats all of those alike),
and a missing cell is NaN.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.config import DatasetEntry
from lianmo.data.load import load_table
from lianmo.data.reader import read_header
from lianmo.errors import ConfigError, DataError

_LOG = logging.getLogger("lianmo.node")
Cell = float | str | None
#: SQLite's default column limit, less the id
MAX_COLUMNS = 1999
SCHEMA = "lianmo.features/v1"
#: rows turned into SQLite cells at a time when a store is built
_CHUNK = 20_000


class FeatureSource(t.Protocol):
    """An online feature store for one data set (see the module docstring)."""

    @property
    def columns(self) -> Sequence[str]:
        """The feature columns, in the order :meth:`lookup` gives cells."""

    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[Cell, ...]]:
        """The cells of each id it holds, in :attr:`columns` order; ids it lacks are left out."""


@dataclass(frozen=True)
class ModelColumns:
    """How a share reads cells: its feature names, and the vocabulary per categorical one."""

    party: str
    feature_names: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]]

    def inputs(self, columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> np.ndarray:
        """``(len(rows), features)`` float64 from cells in ``columns`` order."""
        where = {name: j for j, name in enumerate(columns)}
        missing = [n for n in self.feature_names if n not in where]
        if missing:
            raise ConfigError(
                f"party '{self.party}': the feature store has no column {missing[0]!r}, which "
                "the served model reads; rebuild the store from the data set the model was "
                "trained on"
            )
        X = np.empty((len(rows), len(self.feature_names)), dtype=np.float64)
        for k, name in enumerate(self.feature_names):
            j = where[name]
            vocabulary = self.categories.get(name)
            if vocabulary is None:
                X[:, k] = [_number(r[j], name, self.party) for r in rows]
            else:
                code = {text: c for c, text in enumerate(vocabulary)}
                unseen = float(len(vocabulary))
                X[:, k] = [
                    np.nan if r[j] is None else code.get(str(r[j]).strip(), unseen) for r in rows
                ]
        return X


def _number(cell: Cell, column: str, party: str) -> float:
    if cell is None:
        return np.nan
    try:
        value = float(cell)
    except ValueError:
        raise DataError(
            f"party '{party}': column '{column}' holds the text {str(cell)[:40]!r} where the "
            "model reads a number"
        ) from None
    if not np.isfinite(value):
        raise DataError(f"party '{party}': column '{column}' holds {cell!r}, not a finite number")
    return value


def store_columns(party: str, entry: DatasetEntry) -> list[str]:
    """The feature columns of a data set: the header less id and label, within ``columns``."""
    header = read_header(str(entry.path), party)
    out = [c for c in header if c not in (entry.id_column, entry.label_column)]
    if entry.columns is not None:
        out = [c for c in out if c in entry.columns]
    return out


def source_stamp(entry: DatasetEntry) -> str:
    """What the store was built from: the file's size and time, and the reading rules."""
    st = os.stat(entry.path)
    rules = {
        "path": str(entry.path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "id": entry.id_column,
        "label": entry.label_column,
        "categorical": list(entry.categorical),
        "missing": list(entry.missing_values),
        "columns": None if entry.columns is None else list(entry.columns),
        "schema": SCHEMA,
    }
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


def build_store(party: str, entry: DatasetEntry, path: Path) -> int:
    """Write the SQLite store of ``entry`` at ``path`` (atomically); returns its row count."""
    stamp = source_stamp(entry)
    columns = store_columns(party, entry)
    if len(columns) > MAX_COLUMNS:
        raise ConfigError(
            f"party '{party}': data set '{entry.name}' has {len(columns)} feature columns; the "
            f"SQLite feature store holds at most {MAX_COLUMNS}: narrow it with columns"
        )
    table = load_table(
        entry.path,
        id_column=entry.id_column,
        party=party,
        feature_columns=columns,
        categorical=entry.categorical,
        missing_values=entry.missing_values,
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        quoted = ", ".join(_quote(c) for c in columns)
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute(f"CREATE TABLE features (id TEXT PRIMARY KEY, {quoted}) WITHOUT ROWID")
        meta = {"stamp": stamp, "columns": json.dumps(columns), "schema": SCHEMA}
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        marks = ", ".join("?" * (len(columns) + 1))
        for lo in range(0, len(table.ids), _CHUNK):  # cells as Python objects a chunk at a time
            block = table.X[lo : lo + _CHUNK]
            cells = [
                _column_cells(block[:, j], table.categories.get(c)) for j, c in enumerate(columns)
            ]
            ids = table.ids[lo : lo + _CHUNK]
            db.executemany(
                f"INSERT INTO features VALUES ({marks})",
                ((i, *row) for i, row in zip(ids, zip(*cells, strict=True), strict=True))
                if columns
                else ((i,) for i in ids),
            )
        db.commit()
    finally:
        db.close()
    os.replace(tmp, path)
    return len(table.ids)


def _column_cells(x: np.ndarray, vocabulary: tuple[str, ...] | None) -> list[Cell]:
    if vocabulary is None:
        return [None if np.isnan(v) else float(v) for v in x]
    return [None if np.isnan(v) else vocabulary[int(v)] for v in x]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteStore:
    """The default :class:`FeatureSource`: ``STATE_DIR/features/DATASET.sqlite``."""

    def __init__(
        self, party: str, entry: DatasetEntry, folder: Path, *, refresh_s: float = 5.0
    ) -> None:
        self.party = party
        self.entry = entry
        self.path = folder / f"{entry.name}.sqlite"
        self.refresh_s = refresh_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._checked = 0.0
        self._rebuilding: threading.Thread | None = None
        self._columns: tuple[str, ...] = ()
        self._open_or_build()

    @property
    def columns(self) -> Sequence[str]:
        return self._columns

    def _open_or_build(self) -> None:
        if self._stamp() != source_stamp(self.entry):
            started = time.monotonic()
            rows = build_store(self.party, self.entry, self.path)
            _LOG.info(
                "feature store of data set '%s' built: %d rows in %.1f s (%s)",
                *(self.entry.name, rows, time.monotonic() - started, self.path),
            )
        self._load_meta()

    def _stamp(self) -> str | None:
        if not self.path.exists():
            return None
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                row = db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        except sqlite3.Error:
            return None  # unreadable: rebuilt
        return None if row is None else str(row[0])

    def _load_meta(self) -> None:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            raw = db.execute("SELECT value FROM meta WHERE key = 'columns'").fetchone()
        with self._lock:
            self._columns = tuple(json.loads(raw[0]))
            self._generation += 1

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            if getattr(local, "db", None) is not None:
                local.db.close()
            local.db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
            local.generation = self._generation
        return t.cast(sqlite3.Connection, local.db)

    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[Cell, ...]]:
        self._maybe_refresh()
        db = self._connection()
        out: dict[str, tuple[Cell, ...]] = {}
        unique = list(dict.fromkeys(ids))
        for lo in range(0, len(unique), 500):  # SQLite's variable limit
            chunk = unique[lo : lo + 500]
            marks = ", ".join("?" * len(chunk))
            for row in db.execute(f"SELECT * FROM features WHERE id IN ({marks})", chunk):
                out[row[0]] = tuple(row[1:])
        return out

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return
        with self._lock:
            if now - self._checked < self.refresh_s or self._rebuilding is not None:
                return
            self._checked = now
        try:
            changed = self._stamp() != source_stamp(self.entry)
        except OSError as exc:
            _LOG.warning("data set '%s' cannot be checked for changes: %s", self.entry.name, exc)
            return
        if changed:
            thread = threading.Thread(target=self._rebuild, daemon=True, name="feature-store")
            with self._lock:
                self._rebuilding = thread
            thread.start()

    def _rebuild(self) -> None:
        try:
            self._open_or_build()
        except Exception:  # the old store keeps serving; the next check tries again
            _LOG.exception("feature store of data set '%s': rebuild failed", self.entry.name)
        finally:
            with self._lock:
                self._rebuilding = None
