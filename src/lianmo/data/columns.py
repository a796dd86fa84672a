"""Find a table's id, label and feature columns in its header, or say which columns exist."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from lianmo.data.cells import data_error

__all__ = ["Columns", "check_categorical", "find_column", "find_columns"]


@dataclass(frozen=True, slots=True)
class Columns:
    """Positions in a header: the id, the label (if loaded) and the features, in order."""

    id: int
    label: int | None
    features: tuple[int, ...]

    @property
    def numeric(self) -> list[int]:
        """The columns read as numbers: the features, then the label if any."""
        return [*self.features, *([] if self.label is None else [self.label])]


def find_columns(
    header: list[str],
    id_column: str,
    label_column: str | None,
    feature_columns: Sequence[str] | None,
    source: str,
    party: str,
) -> Columns:
    """Return the positions of the id, label and feature columns named for a table.

    Raises
    ------
    DataError
        If a named column is missing, the label column is the id column, or the
        required features repeat a name or name the id or label column.
    """
    id_index = find_column(header, id_column, "id", source, party)
    label_index = None
    if label_column is not None:
        label_index = find_column(header, label_column, "label", source, party)
        if label_index == id_index:
            raise data_error(
                party,
                source,
                "named as both the id and the label column; set the label column to the "
                "column holding the labels",
                column=id_column,
            )
    features = _feature_indices(header, id_index, label_index, feature_columns, source, party)
    return Columns(id=id_index, label=label_index, features=tuple(features))


def find_column(header: list[str], name: str, role: str, source: str, party: str) -> int:
    """Return the position of column ``name`` or explain which columns exist."""
    if name in header:
        return header.index(name)
    lowered = {column.lower(): column for column in header}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f" Did you mean '{lowered[close[0]]}'?" if close else ""
    raise data_error(
        party,
        source,
        f"{role} column not found; the party's node log lists the file's columns. Set the "
        f"{role} column to one of them.",
        column=name,
        private=f"{role} column not found; the file has columns {', '.join(header)}.{hint} "
        f"Set the {role} column to one of them.",
    )


def _feature_indices(
    header: list[str],
    id_index: int,
    label_index: int | None,
    feature_columns: Sequence[str] | None,
    source: str,
    party: str,
) -> list[int]:
    """Return the feature column positions: the required ones, or all the others."""
    reserved = {id_index} if label_index is None else {id_index, label_index}
    if feature_columns is None:
        return [i for i in range(len(header)) if i not in reserved]
    if len(set(feature_columns)) != len(feature_columns):
        raise data_error(
            party,
            source,
            "the required feature columns repeat a name; list each feature once",
            private=f"the required feature columns repeat a name ({', '.join(feature_columns)}); "
            "list each feature once",
        )
    indices = []
    for name in feature_columns:
        if name not in header:
            raise data_error(
                party,
                source,
                "feature column required by the model is missing; provide a file with the "
                "training columns (the party's node log lists them)",
                column=name,
                private=f"feature column required by the model is missing; the file has "
                f"columns {', '.join(header)}. Provide a file with the training columns "
                f"({', '.join(feature_columns)}).",
            )
        if header.index(name) in reserved:
            raise data_error(
                party,
                source,
                "the id or label column cannot also be a feature; remove it from the "
                "feature columns",
                column=name,
            )
        indices.append(header.index(name))
    return indices


def check_categorical(
    header: list[str], columns: Columns, categorical: Sequence[str], source: str, party: str
) -> None:
    """Refuse a categorical column that is not in the file, or is the id or label column."""
    reserved = {header[columns.id]}
    if columns.label is not None:
        reserved.add(header[columns.label])
    for name in categorical:
        if name in reserved:
            raise data_error(
                party,
                source,
                "the id or label column cannot be categorical; remove it from the data "
                "set's categorical list in the party config",
                column=name,
            )
        if name not in header:
            raise data_error(
                party,
                source,
                "declared categorical, but the file has no such column; correct or remove "
                "it in the data set's categorical list in the party config",
                column=name,
                private="declared categorical, but the file has no such column (it has "
                f"{', '.join(header)}); correct or remove it in the data set's categorical "
                "list in the party config",
            )
