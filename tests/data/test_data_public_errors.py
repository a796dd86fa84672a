"""The public form of a table's errors: what a node may tell the coordinator.

Every :class:`DataError` the data layer raises has a full message (file, line, id, cell
value: ``lianmo data check`` and the node's own log show it) and a public one that names
the party, the data set, the column and the row only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lianmo.data.table import check_labels, load_table, scan_checked
from lianmo.errors import DataError

from .test_data_table import TEXT_ERRORS

# what the full message quotes and the public one must not: ids, cell values, columns
# other than the one concerned
SECRETS: dict[str, tuple[str, ...]] = {
    "duplicate_id": ("'7'",),
    "duplicate_id_spaces": ("'7'",),
    "text_cell": ("abc",),
    "nan_cell": ("'NaN'",),
    "na_not_a_token": ("'NA'",),
    "na_label": ("'NA'",),
    "categorical_absent": ("id, x",),
    "too_many_categories": ("c1000",),
    "inf_cell": ("'-inf'",),
    "bad_label": ("yes",),
    "id_missing": ("client_ID",),
    "id_missing_no_hint": ("a, b",),
    "label_missing": ("id, x, label",),
    "feature_missing": ("id, x",),
    "feature_repeated": ("x, x",),
}


def _located(text: str) -> tuple[str | None, str | None]:
    column = re.search(r"column '([^']*)'", text)
    row = re.search(r"data row (\d+)", text)
    return (column and column.group(1), row and row.group(1))


@pytest.mark.parametrize(
    ("case", "text", "kwargs"),
    [case[:3] for case in TEXT_ERRORS],
    ids=[case[0] for case in TEXT_ERRORS],
)
def test_every_table_error_has_a_public_form_without_file_ids_or_values(
    tmp_path: Path, case: str, text: str, kwargs: dict[str, Any]
) -> None:
    path = tmp_path / "private-share" / "kyc_export.csv"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_table(path, **{"id_column": "id", "party": "guest", **kwargs})
    exc = caught.value
    public = exc.public_text("customers")
    assert public is not None
    assert public.startswith("party 'guest', data set 'customers'")
    for hidden in (str(path.parent), path.name, "(line ", *SECRETS.get(case, ())):
        assert hidden not in public, hidden
    # it points at the same cell as the full message, which still quotes everything
    assert _located(public) == _located(str(exc))
    assert str(exc).startswith(f"party 'guest', file '{path}'")
    for secret in SECRETS.get(case, ()):
        assert secret in str(exc)


@pytest.mark.parametrize(
    ("task", "labels", "public"),
    [
        ("binary", "0,1,2", "column 'y', data row 3: the label does not suit the task: binary"),
        ("multiclass", "0,1,7.5", "column 'y', data row 3: the label does not suit the task"),
        ("multiclass", "4,4,4", "column 'y': every one of the 3 labels is the same class"),
    ],
)
def test_label_errors_name_the_row_but_not_its_id_or_value(
    tmp_path: Path, task: str, labels: str, public: str
) -> None:
    path = tmp_path / "labels.csv"
    ids = ("c-901", "c-902", "c-903")
    rows = [f"{i},0.5,{y}" for i, y in zip(ids, labels.split(","), strict=True)]
    path.write_text("id,x,y\n" + "\n".join(rows) + "\n")
    scan = scan_checked(path, id_column="id", label_column="y", party="guest")
    with pytest.raises(DataError) as caught:
        check_labels(scan, task, party="guest")
    told = caught.value.public_text("kyc")
    assert told is not None and told.startswith(f"party 'guest', data set 'kyc', {public}")
    for hidden in ("c-903", "7.5", "is 2", "is 4", str(path)):
        assert hidden not in told
    assert "c-903" in str(caught.value) or "is 4" in str(caught.value)


def test_a_data_error_raised_elsewhere_has_no_public_form() -> None:
    # the node then clears paths from the full text itself (tests/node)
    assert DataError("party 'p': the intersection has 5 ids").public_text("d") is None
