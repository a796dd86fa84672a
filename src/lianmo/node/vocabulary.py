"""Check that a scoring table's category codes mean what they meant when the model trained.

A model share keeps the vocabulary of each of its party's categorical columns (the texts
in code order); the scoring table is read with it, so known texts keep their codes and new
texts come after them (codes the model never saw). This check refuses a table whose codes
would mean something else: a column categorical at training but numeric now or the other
way round, or a vocabulary that does not start with the trained one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lianmo.errors import DataError

__all__ = ["check_declared", "check_vocabulary"]


def check_vocabulary(
    party: str,
    dataset: str,
    trained: Mapping[str, Sequence[str]],
    read: Mapping[str, Sequence[str]],
    columns: Sequence[str] | None = None,
) -> None:
    """Raise DataError unless ``read`` codes the columns as ``trained`` did.

    Parameters
    ----------
    party, dataset : str
        Named in the error.
    trained : mapping of str to sequence of str
        The model share's vocabulary per categorical column.
    read : mapping of str to sequence of str
        The scoring table's categories (``Table.categories`` / ``TableScan.categories``).
    columns : sequence of str, optional
        The columns the model reads; by default those of ``trained`` and ``read``.
    """
    names = sorted(set(trained) | set(read)) if columns is None else list(columns)
    _compare(party, dataset, trained, read, names)
    for name in names:
        if name in trained:
            known = tuple(trained[name])
            if tuple(read[name])[: len(known)] != known:
                raise DataError(
                    f"party '{party}': column '{name}' of data set '{dataset}' was read with "
                    "other category codes than the model was trained with; read it with the "
                    "model share's categories"
                )


def check_declared(
    party: str,
    dataset: str,
    trained: Mapping[str, Sequence[str]],
    declared: Sequence[str],
    columns: Sequence[str],
) -> None:
    """Raise DataError unless the catalogue declares categorical exactly the model's ones.

    Run before a scoring table is read: ``declared`` is the data set's ``categorical``
    list, ``columns`` the model's feature columns, ``trained`` its vocabularies. A column
    whose kind changed since training would be read with other codes than the model's.
    """
    _compare(party, dataset, trained, set(declared), columns)


def _compare(
    party: str,
    dataset: str,
    trained: Mapping[str, Sequence[str]],
    read: Mapping[str, Sequence[str]] | set[str],
    columns: Sequence[str],
) -> None:
    for name in columns:
        if name in trained and name not in read:
            raise DataError(
                f"party '{party}': column '{name}' of data set '{dataset}' was categorical "
                "when the model was trained but is read as numbers now: declare it in the "
                "data set's categorical list"
            )
        if name in read and name not in trained:
            raise DataError(
                f"party '{party}': column '{name}' of data set '{dataset}' is read as "
                "categories but the model was trained on it as numbers: remove it from the "
                "data set's categorical list, or retrain"
            )
