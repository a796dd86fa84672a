"""Which feature columns a job reads from a table: the catalogue's offer, then the job's choice.

A party's catalogue may restrict the feature columns any job may use (``[datasets.NAME]
columns``); a job spec may then take exactly some of those (``columns``, in its order) or
all but some (``exclude``). Without either a job reads every column but the id and the
label, in file order. A name the job asks for that the data set does not offer (not in
the file, outside the catalogue's restriction, or the id or label column) is refused,
naming party, data set and column; the party's own log lists what it offers.

The public text of a refusal (what the coordinator reads) says the same for a column
that is missing and one held back by the catalogue, so a coordinator cannot probe which
columns a party holds but does not offer.
"""

from __future__ import annotations

from collections.abc import Sequence

from lianmo.errors import ConfigError

__all__ = ["choose_features"]


def choose_features(
    header: Sequence[str],
    *,
    id_column: str,
    label_column: str | None,
    offered: Sequence[str] | None,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    party: str,
    dataset: str,
) -> tuple[str, ...]:
    """The feature columns a job reads, in the order it reads them.

    Parameters
    ----------
    header : sequence of str
        The file's column names.
    id_column, label_column : str
        The id column and, for the label holder, the label column: never features.
    offered : sequence of str or None
        The catalogue's ``columns``: the only features any job may use (None: all).
    columns, exclude : sequence of str or None
        The job's choice: exactly ``columns`` in that order, or every offered column but
        ``exclude`` (in file order). At most one of them.
    party, dataset : str
        Named in errors.

    Raises
    ------
    ConfigError
        If the catalogue's ``columns`` names a column the file lacks or the id or label
        column; if ``columns`` or ``exclude`` names a column the data set does not offer;
        or if nothing is left to read. The public text names no other column.
    """
    reserved = {id_column: "id"} | ({label_column: "label"} if label_column else {})
    at = f"party '{party}', data set '{dataset}'"
    if offered is not None:
        _check_offer(header, offered, reserved, at, dataset)
    pool = [c for c in header if c not in reserved and (offered is None or c in offered)]
    if columns is None and exclude is None:
        chosen = pool
    else:
        key = "columns" if columns is not None else "exclude"
        names = list(columns if columns is not None else exclude or ())
        for name in names:
            if name not in pool:
                raise _not_offered(name, f"the job spec's {key}", header, pool, reserved, at)
        chosen = names if columns is not None else [c for c in pool if c not in names]
    if not chosen:
        raise ConfigError(
            f"{at}: no feature column is left to read (the data set offers "
            f"{', '.join(pool) or 'none'}); choose at least one",
            public=f"{at}: no feature column is left to read; the job must leave at least "
            "one of the columns the data set offers (the party's node log lists them)",
        )
    return tuple(chosen)


def _check_offer(
    header: Sequence[str],
    offered: Sequence[str],
    reserved: dict[str, str],
    at: str,
    dataset: str,
) -> None:
    """The catalogue's own list: columns of the file, not the id or label, each once."""
    fix = f"the party's operator must fix [datasets.{dataset}] columns in its party config"
    for name in offered:
        if name in reserved:
            problem = f"'{name}', the {reserved[name]} column, which is never a feature; remove it"
        elif name not in header:
            raise ConfigError(
                f"{at}: the catalogue's columns names '{name}', which the file does not have "
                f"(it has {', '.join(header)}); {fix}",
                public=f"{at}: the catalogue's columns names '{name}', which the file does "
                f"not have; {fix} (its node log lists the file's columns)",
            )
        elif list(offered).count(name) > 1:
            problem = f"'{name}' more than once; list each column once"
        else:
            continue
        raise ConfigError(f"{at}: the catalogue's columns names {problem}; {fix}")


def _not_offered(
    name: str,
    key: str,
    header: Sequence[str],
    pool: Sequence[str],
    reserved: dict[str, str],
    at: str,
) -> ConfigError:
    """A column a job asked for that the data set does not offer: why (locally) and the fix."""
    offers = ", ".join(pool) or "none"
    if name in reserved:
        text = (
            f"{at}, column '{name}': {key} names the data set's {reserved[name]} column, which "
            "is never a feature; remove it"
        )
        return ConfigError(text)
    why = "the file has no such column" if name not in header else "the catalogue holds it back"
    core = f"{at}, column '{name}': {key} names a column the data set does not offer to jobs"
    fix = "the coordinator must name only offered feature columns"
    return ConfigError(
        f"{core} ({why}; it offers {offers}); {fix}",
        public=f"{core}; {fix} (the party's node log lists them)",
    )
