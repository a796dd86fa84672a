"""TableScan: a checked file's ids and labels in memory, its features read again on demand.

:func:`~lianmo.data.load.scan_checked` builds one in a single checked pass; a job then
reads the features of the rows it uses (:meth:`TableScan.read_rows`), writes them to a
memory-mapped file (:meth:`TableScan.spill_rows`) or scores them chunk by chunk
(:meth:`TableScan.map_rows`). Every later pass checks that the file still holds the
rows the scan saw, and codes every cell as the first pass did: the scan keeps its
missing tokens and categorical vocabularies, and a text the first pass did not see means
the file changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lianmo.config.party import DEFAULT_MISSING_VALUES
from lianmo.data.cells import data_error
from lianmo.data.coding import Coder
from lianmo.data.columns import find_column
from lianmo.data.convert import CHANGED, ColumnRead
from lianmo.data.reader import checked_pass, iter_chunks, read_header
from lianmo.data.rows import Rows, Table
from lianmo.errors import DataError

__all__ = ["TableScan"]

#: what a pass hands each chunk's selected rows to: their features and their slots
_Use = Callable[[np.ndarray, np.ndarray], None]


@dataclass(frozen=True, slots=True, eq=False)
class TableScan(Rows):
    """A checked table file's ids and labels, without its features (read on demand).

    Attributes
    ----------
    source : str
        The file.
    party : str
        Party name, used in error messages.
    id_column : str
        The id column's name.
    label_name : str or None
        The label column's name, if the labels were loaded.
    feature_names : tuple of str
        The feature columns, in the order :meth:`read_rows` returns them.
    ids : numpy.ndarray
        The ids as UTF-8 bytes (numpy ``S`` dtype, read-only), in file order: a tenth of
        the memory of Python strings. Byte order sorts as the strings do.
    y : numpy.ndarray or None
        Float64 labels (read-only), or None.
    categories : mapping of str to tuple of str
        Per categorical feature column its categories in code order (as for
        :class:`~lianmo.data.rows.Table`); later passes code cells the same way.
    missing_values : tuple of str
        The cell texts read as missing in feature columns, as in the first pass.
    """

    source: str
    party: str
    id_column: str
    label_name: str | None
    feature_names: tuple[str, ...]
    ids: np.ndarray
    y: np.ndarray | None
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.ids)

    def id_at(self, row: int) -> str:
        """The id of row ``row``."""
        return bytes(self.ids[row]).decode("utf-8")

    def ids_at(self, rows: np.ndarray) -> tuple[str, ...]:
        """The ids of ``rows``, in that order, as strings."""
        return tuple(v.decode("utf-8") for v in self.ids[np.asarray(rows, dtype=np.intp)].tolist())

    def read_rows(self, rows: np.ndarray) -> Table:
        """Read the features of ``rows`` (file positions), in that order, in one pass.

        Only those rows' features are kept, so this needs memory for the selected rows
        alone. The file is read again, so it is checked against this scan: a row whose
        id changed since means the file changed under the job.

        Raises
        ------
        DataError
            If the file changed since the scan, or a cell is now unusable.
        """
        idx = np.asarray(rows, dtype=np.intp)
        X = np.empty((len(idx), len(self.feature_names)), dtype=np.float64)

        def keep(values: np.ndarray, dest: np.ndarray) -> None:
            X[dest] = values

        self._pass(idx, keep)
        return self.take(idx, X)

    def spill_rows(self, rows: np.ndarray, path: Path) -> np.ndarray:
        """The features of ``rows``, in that order, in a float64 file at ``path`` (one pass).

        For scoring a table larger than memory with a model that takes the rows in order,
        block by block (SecureBoost's routing): returns a read-only memory map of shape
        ``(len(rows), n_features)``, so only the pages in use are in memory. The caller
        deletes the file. Checked against the scan as :meth:`read_rows` is.
        """
        idx = np.asarray(rows, dtype=np.intp)
        shape = (len(idx), len(self.feature_names))
        if 0 in shape:
            return np.zeros(shape, dtype=np.float64)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)  # raw features: for this party's eyes (and process) only
        out = np.memmap(path, dtype=np.float64, mode="w+", shape=shape)

        def put(values: np.ndarray, dest: np.ndarray) -> None:
            out[dest] = values

        try:
            self._pass(idx, put)
            out.flush()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return np.memmap(path, dtype=np.float64, mode="r", shape=shape)

    def map_rows(self, rows: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``fn`` of the features of ``rows``, chunk by chunk, one value per row in order.

        For scoring a table larger than memory: ``fn`` maps a ``(k, n_features)`` block of
        features to ``k`` numbers (e.g. a model's partial scores), or ``k`` rows of numbers
        (one per class); only those numbers are kept.
        """
        idx = np.asarray(rows, dtype=np.intp)
        kept: list[np.ndarray] = []  # one array, shaped by the first block's values

        def apply(values: np.ndarray, dest: np.ndarray) -> None:
            mapped = np.asarray(fn(values), dtype=np.float64)
            if not kept:
                kept.append(np.empty((len(idx), *mapped.shape[1:]), dtype=np.float64))
            kept[0][dest] = mapped

        self._pass(idx, apply)
        return kept[0] if kept else np.empty(len(idx), dtype=np.float64)

    def _pass(self, idx: np.ndarray, use: _Use) -> None:
        """Read the file once; hand ``use`` each chunk's selected features and their slots."""
        checked_pass(self.source, lambda fast: self._read(idx, use, fast))

    def _read(self, idx: np.ndarray, use: _Use, fast: bool) -> None:
        """One pass (see :func:`~lianmo.data.reader.checked_pass`)."""
        header = read_header(self.source, self.party)
        id_index = find_column(header, self.id_column, "id", self.source, self.party)
        features = [
            find_column(header, name, "feature", self.source, self.party)
            for name in self.feature_names
        ]
        reads = [
            ColumnRead(name, coder=Coder(name, self.categories[name], fixed=True))
            if name in self.categories
            else ColumnRead(name)
            for name in self.feature_names
        ]
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        seen = 0
        for chunk in iter_chunks(
            self.source,
            header,
            id_index=id_index,
            numeric=features,
            party=self.party,
            reads=reads,
            missing_values=self.missing_values,
            fast=fast,
        ):
            stop = chunk.start + len(chunk.ids)
            if stop > len(self.ids):
                raise self._changed()
            lo, hi = np.searchsorted(ordered, [chunk.start, stop])
            local = ordered[lo:hi] - chunk.start
            if np.any(chunk.ids[local] != self.ids[chunk.start + local]):
                raise self._changed()
            if hi > lo:
                use(chunk.values[local], order[lo:hi])
            seen = stop
        if seen != len(self.ids):
            raise self._changed()

    def _changed(self) -> DataError:
        return data_error(self.party, self.source, CHANGED)
