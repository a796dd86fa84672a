"""`lianmo data check`: one test per bad input, the summaries, and the node's same verdicts."""

from __future__ import annotations

import gzip
import json
import statistics
import subprocess
import sys
import typing as t
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lianmo.cli.main import main
from lianmo.config import DatasetEntry
from lianmo.errors import DataError
from lianmo.node import job_data
from lianmo.protocols.context import RoleContext

GOOD = "id,age,income,y\na,30,1.5,0\nb,41,2.5,1\nc,52,-3e2,0\nd,23,7,0\n"


def _write(tmp_path: Path, text: str, name: str = "party.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``lianmo data check ARGS`` in process; return exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _error_line(err: str) -> str:
    """The single stderr line of a failed check (no traceback), without its prefix."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lianmo: error: "), err
    return lines[0].removeprefix("lianmo: error: ")


def _ctx(party: str) -> RoleContext:
    """Just enough of a RoleContext for job_data.load, which only reads the party name."""
    return t.cast(RoleContext, SimpleNamespace(party=party))


# ---- bad inputs: exit 3, one line naming file, column and row -------------------------


@pytest.mark.parametrize(
    ("text", "args", "column", "row", "message"),
    [
        pytest.param(
            "user,age,y\na,1,0\n",
            ["--label", "y"],
            "id",
            None,
            "id column not found; the file has columns user, age, y",
            id="missing-id-column",
        ),
        pytest.param(
            GOOD,
            ["--label", "label"],
            "label",
            None,
            "label column not found; the file has columns id, age, income, y",
            id="misnamed-label-column",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,1\na,3,0\n",
            ["--label", "y"],
            "id",
            3,
            "id 'a' already appears in data row 1; ids must be unique",
            id="duplicate-ids",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,x1,1\n",
            ["--label", "y"],
            "age",
            2,
            "the cell is 'x1' but a number was expected",
            id="non-numeric-cell",
        ),
        pytest.param(
            "id,age,income,y\na,1,2,0\nb,2,NaN,1\n",
            ["--label", "y", "--missing-values", "[]"],
            "income",
            2,
            "the cell is 'NaN', which is not a finite number",
            id="nan-cell",
        ),
        pytest.param(
            "id,age,income,y\na,1,2,0\nb,2,3,1\nc,-inf,4,0\n",
            ["--label", "y"],
            "age",
            3,
            "the cell is '-inf', which is not a finite number",
            id="inf-cell",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,1\nc,3,nan\n",
            ["--label", "y", "--task", "regression"],
            "y",
            3,
            "the cell is 'nan', which is not a finite number",
            id="nan-regression-label",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,3\nc,3,1\n",
            ["--label", "y", "--task", "binary"],
            "y",
            2,
            "(id 'b'): label is 3 but binary classification expects 0 or 1",
            id="label-3-binary",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,1\nc,3,3\n",
            ["--label", "y"],
            "y",
            3,
            "(id 'c'): label is 3 but binary classification expects 0 or 1",
            id="label-3-binary-by-default",
        ),
        pytest.param(
            "id,age,y\na,1,1\nb,2,1\n",
            ["--label", "y"],
            "y",
            None,
            "every one of the 2 labels is 1; a binary model needs rows of both classes",
            id="binary-one-class",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,1.5\nc,3,2\n",
            ["--label", "y", "--task", "multiclass"],
            "y",
            2,
            "(id 'b'): label is 1.5 but multiclass classification expects a class number",
            id="multiclass-non-integer",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,1\nc,3,-1\n",
            ["--label", "y", "--task", "multiclass"],
            "y",
            3,
            "(id 'c'): label is -1 but multiclass classification expects a class number",
            id="multiclass-negative",
        ),
        pytest.param(
            "id,age,y\na,1,0\nb,2,256\n",
            ["--label", "y", "--task", "multiclass"],
            "y",
            2,
            "label is 256 but multiclass classification expects a class number 0, 1, ..., "
            "K-1 (at most 255)",
            id="multiclass-too-many-classes",
        ),
        pytest.param(
            "id,age,y\na,1,2\nb,2,2\n",
            ["--label", "y", "--task", "multiclass"],
            "y",
            None,
            "every one of the 2 labels is 2; a multiclass model needs rows of at least two",
            id="multiclass-one-class",
        ),
    ],
)
def test_bad_input_exits_3_with_one_line_naming_file_column_and_row(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    args: list[str],
    column: str,
    row: int | None,
    message: str,
) -> None:
    # Prepare
    path = _write(tmp_path, text)

    # Execute
    code, out, err = _check(capsys, path, "--id", "id", *args)

    # Assert
    assert code == DataError.exit_code == 3
    assert out == ""
    where = f"file '{path}', column '{column}'" + ("" if row is None else f", data row {row}")
    line = _error_line(err)
    assert line.startswith(where), line
    assert message in line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "", "the file is empty; expected a header line naming the columns", id="empty-file"
        ),
        pytest.param(
            "\n\n", "the file is empty; expected a header line naming the columns", id="blank"
        ),
        pytest.param(
            "id,age,y\n",
            "the file has a header but no data rows; add the party's rows",
            id="header-only",
        ),
    ],
)
def test_file_without_rows_exits_3_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    code, out, err = _check(capsys, path, "--id", "id", "--label", "y")
    assert code == 3
    assert out == ""
    assert _error_line(err) == f"file '{path}': {message}"


def test_missing_file_exits_3_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere.csv"
    code, _, err = _check(capsys, path, "--id", "id")
    assert code == 3
    assert _error_line(err).startswith(f"file '{path}': file not found")


def test_task_without_label_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _check(capsys, _write(tmp_path, GOOD), "--id", "id", "--task", "regression")
    assert code == 2
    assert "--task checks the labels; give the label column with --label" in err


def test_bad_file_through_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,age,y\na,1,0\nb,2,3\n")
    done = subprocess.run(
        [sys.executable, "-m", "lianmo.cli.main", "data", "check", str(path), "--id", "id"]
        + ["--label", "y"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"lianmo: error: file '{path}', column 'y', data row 2 (id 'b'): label is 3 but binary "
        "classification expects 0 or 1; recode the labels"
    ]


# ---- good files: exit 0, one summary line ----------------------------------------------


def _labelled(labels: list[float]) -> str:
    rows = "".join(f"r{i},{i * 0.5},{-i},{y:g}\n" for i, y in enumerate(labels))
    return "id,f1,f2,target\n" + rows


def _shares(labels: list[float]) -> str:
    classes = sorted(set(labels))
    return ", ".join(f"{c:g}: {100 * labels.count(c) / len(labels):.1f}%" for c in classes)


@pytest.mark.parametrize(
    ("task", "labels"),
    [
        ("binary", [0, 0, 0, 1, 0, 1, 0, 0, 0]),
        ("multiclass", [0, 2, 1, 2, 2, 0, 1, 2]),
    ],
)
def test_good_classification_file_prints_row_count_and_balance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, labels: list[float]
) -> None:
    # Prepare
    path = _write(tmp_path, _labelled(labels))

    # Execute
    code, out, err = _check(capsys, path, "--id", "id", "--label", "target", "--task", task)

    # Assert
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"ok: {path}: {len(labels)} rows, 2 feature columns (id 'id', label 'target'); "
        f"label balance {_shares(labels)}"
    )


def test_good_binary_file_summary_matches_hand_computed_balance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _labelled([0, 0, 0, 1, 0, 1, 0, 0, 0]))
    _, out, _ = _check(capsys, path, "--id", "id", "--label", "target")  # binary by default
    assert out.splitlines()[0].endswith("label balance 0: 77.8%, 1: 22.2%")


def test_good_regression_file_prints_mean_std_min_max(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    labels = [3.5, -1.25, 10.0, 0.0, 2.75]
    path = tmp_path / "party.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(_labelled(labels))

    # Execute
    code, out, err = _check(capsys, path, "--id", "id", "--label", "target", "--task", "regression")

    # Assert
    mean, std = statistics.fmean(labels), statistics.pstdev(labels)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"ok: {path}: 5 rows, 2 feature columns (id 'id', label 'target'); label mean "
        f"{mean:.6g}, std {std:.6g}, min -1.25, max 10"
    )


def test_good_file_without_label_counts_every_other_column_as_a_feature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD)
    code, out, _ = _check(capsys, path, "--id", "id")
    assert code == 0
    assert out.splitlines()[0] == f"ok: {path}: 4 rows, 3 feature columns (id 'id', no label)"


# ---- the node loads with the same function, so it gives the same verdict --------------


@pytest.mark.parametrize(
    ("task", "labels"),
    [("binary", "0,1,3"), ("multiclass", "0,1,-1"), ("multiclass", "0,0.5,1")],
)
def test_node_refuses_the_same_labels_with_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, labels: str
) -> None:
    # Prepare
    cells = zip("abc", labels.split(","), strict=True)
    rows = "".join(f"{row_id},{i},{y}\n" for i, (row_id, y) in enumerate(cells))
    path = _write(tmp_path, "id,x,y\n" + rows)
    dataset = DatasetEntry(name="d", path=path, id_column="id", label_column="y")

    # Execute
    _, _, err = _check(capsys, path, "--id", "id", "--label", "y", "--task", task)
    with pytest.raises(DataError) as node_error:
        job_data.load(_ctx("broker"), "guest", dataset, training=True, task=task)

    # Assert
    assert str(node_error.value) == "party 'broker', " + _error_line(err)


def test_node_skips_the_label_check_when_predicting(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,x,y\na,1,0\nb,2,7\n")
    dataset = DatasetEntry(name="d", path=path, id_column="id", label_column="y")
    table = job_data.load(_ctx("broker"), "guest", dataset, training=False)
    assert table.y is not None
    np.testing.assert_array_equal(table.y, [0, 7])


def test_prediction_refuses_a_data_set_whose_feature_columns_changed(tmp_path: Path) -> None:
    # Prepare: train on age, income; the share keeps table.feature_names (as job.py does)
    train = DatasetEntry("train", _write(tmp_path, GOOD, "train.csv"), "id", "y")
    trained = job_data.load(_ctx("broker"), "guest", train, training=True)
    share_features = list(trained.feature_names)
    renamed = "id,age,salary,y\na,30,1.5,0\nb,41,2.5,1\n"
    new = DatasetEntry("new", _write(tmp_path, renamed, "new.csv"), "id", "y")

    # Execute
    with pytest.raises(DataError) as exc:
        job_data.load(_ctx("broker"), "guest", new, training=False, feature_columns=share_features)

    # Assert
    assert str(exc.value) == (
        f"party 'broker', file '{new.path}', column 'income': feature column required by the "
        "model is missing; the file has columns id, age, salary, y. Provide a file with the "
        "training columns (age, income)."
    )


def test_prediction_reads_reordered_feature_columns_by_name(tmp_path: Path) -> None:
    host = DatasetEntry("h", _write(tmp_path, "id,income,extra,age\na,1.5,9,30\n"), "id")
    table = job_data.load(
        _ctx("platform"), "host", host, training=False, feature_columns=["age", "income"]
    )
    assert table.feature_names == ("age", "income")
    np.testing.assert_array_equal(table.read_rows(np.array([0])).X, [[30, 1.5]])


# ---- the per-column report ----------------------------------------------------------------


def _column_lines(out: str) -> list[list[str]]:
    """The report's rows after the summary line, split on runs of two or more spaces."""
    import re

    return [re.split(r" {2,}", line.strip()) for line in out.splitlines()[1:]]


def test_each_feature_column_is_reported_after_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: 20 rows (enough to judge uniqueness); 'customer' is an id in disguise
    rows = [f"r{i},{1000 + i},7,{i % 4 * 0.5},{i % 2}" for i in range(20)]
    path = _write(tmp_path, "id,customer,flat,score,y\n" + "\n".join(rows) + "\n")

    # Execute
    code, out, err = _check(capsys, path, "--id", "id", "--label", "y")

    # Assert: hand-computed: score is 0, 0.5, 1, 1.5 five times each (mean 0.75)
    assert (code, err) == (0, "")
    assert _column_lines(out) == [
        ["column", "type", "missing", "distinct", "min", "max", "mean", "flags"],
        ["customer", "number", "0.0%", "-", "1000", "1019", "1009.5", "unique per row"],
        ["flat", "number", "0.0%", "-", "7", "7", "7", "constant"],
        ["score", "number", "0.0%", "-", "0", "1.5", "0.75"],
    ]


def test_json_report_holds_the_summary_and_every_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD)
    code, out, _ = _check(capsys, path, "--id", "id", "--label", "y", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["summary"].startswith(f"ok: {path}: 4 rows, 2 feature columns")
    assert report["rows"] == 4
    assert [c["name"] for c in report["columns"]] == ["age", "income"]
    assert report["columns"][1] == {
        "name": "income", "kind": "number", "rows": 4, "missing": 0, "missing_share": 0.0,
        "distinct": None, "min": -300.0, "max": 7.0, "mean": -72.25, "flags": [],
    }  # fmt: skip


# ---- --config and --dataset: a catalogue entry, as its node reads it ------------------------


def _party_toml(tmp_path: Path, entry: str) -> Path:
    config = tmp_path / "party.toml"
    config.write_text(
        'name = "broker"\nlisten = "127.0.0.1:0"\nstate_dir = "state"\n'
        '[tls]\ncert = "c.pem"\nkey = "c.key"\nca = "ca.pem"\n'
        f"[datasets.credit]\n{entry}\n",
        encoding="utf-8",
    )
    return config


def test_a_catalogue_entry_is_checked_with_its_offered_columns_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: the catalogue offers income only; age holds a cell no job may read
    _write(tmp_path, "id,age,income,y\na,x,1.5,0\nb,41,2.5,1\n")
    config = _party_toml(
        tmp_path, 'path = "party.csv"\nid_column = "id"\nlabel_column = "y"\ncolumns = ["income"]'
    )

    # Execute
    code, out, err = _check(capsys, "--config", config, "--dataset", "credit")

    # Assert
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"ok: {tmp_path / 'party.csv'}: 2 rows, 1 feature column (id 'id', label 'y'); "
        "label balance 0: 50.0%, 1: 50.0%"
    )
    assert [row[0] for row in _column_lines(out)] == ["column", "income"]


def test_a_catalogue_entry_fails_as_its_node_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    path = _write(tmp_path, "id,age,y\na,1,0\nb,2,7\n")
    config = _party_toml(tmp_path, 'path = "party.csv"\nid_column = "id"\nlabel_column = "y"')
    dataset = DatasetEntry(name="credit", path=path, id_column="id", label_column="y")

    # Execute
    code, _, err = _check(capsys, "--config", config, "--dataset", "credit")
    with pytest.raises(DataError) as node_error:
        job_data.load(_ctx("broker"), "guest", dataset, training=True)

    # Assert: the same party, file, column and row
    assert code == 3
    assert _error_line(err) == str(node_error.value)
    assert str(node_error.value).startswith(f"party 'broker', file '{path}', column 'y'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "party.toml"], "--config and --dataset go together"),
        (["--id", "id"], "give FILE and --id, or --config and --dataset"),
        (
            ["FILE", "--id", "id", "--config", "party.toml", "--dataset", "credit"],
            "FILE, --id come from the catalogue with --config and --dataset",
        ),
        (
            ["--categorical", "sex", "--config", "party.toml", "--dataset", "credit"],
            "--categorical comes from the catalogue with --config and --dataset",
        ),
    ],
)
def test_catalogue_and_file_options_do_not_mix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = _write(tmp_path, GOOD)
    args = [str(path) if a == "FILE" else a for a in args]
    code, _, err = _check(capsys, *args)
    assert code == 2
    assert message in err


# ---- categories and missing cells (the readers of issue 19's part A) -----------------------

RAW = "id,sex,months,y\n" + "".join(
    f"r{i},{'MF'[i % 2]},{'' if i % 5 == 0 else ('NA' if i % 5 == 1 else i)},{i % 2}\n"
    for i in range(20)
)


def test_categories_are_counted_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: sex has categories F and M; months is missing in 8 of 20 rows ('' and NA)
    path = _write(tmp_path, RAW)

    # Execute
    code, out, err = _check(capsys, path, "--id", "id", "--label", "y", "--categorical", "sex")
    _, as_json, _ = _check(
        capsys, path, "--id", "id", "--label", "y", "--categorical", "sex", "--json"
    )

    # Assert
    present = [i for i in range(20) if i % 5 > 1]
    mean = f"{sum(present) / len(present):.6g}"
    assert (code, err) == (0, "")
    assert _column_lines(out)[1:] == [
        ["sex", "category", "0.0%", "2", "-", "-", "-"],
        ["months", "number", "40.0%", "-", "2", "19", mean],
    ]
    for text in (out, as_json):
        assert "'M'" not in text and '"M"' not in text and " F " not in text
        assert not any(cell in {"F", "M"} for row in _column_lines(out) for cell in row)


@pytest.mark.parametrize(
    ("missing", "column", "row"),
    [("[]", "months", 1), ('["NA"]', "months", 1), ('[""]', "months", 2)],
)
def test_missing_values_option_narrows_or_refuses_missing_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str, column: str, row: int
) -> None:
    # []: no missing cells at all; ["NA"]: the empty cell of row 1 is an error; [""]: the
    # empty cell is missing, the 'NA' of row 2 is text in a numeric column
    path = _write(tmp_path, RAW)
    code, out, err = _check(
        capsys, path, "--id", "id", "--categorical", "sex", "--missing-values", missing
    )
    assert (code, out) == (3, "")
    assert _error_line(err).startswith(f"file '{path}', column '{column}', data row {row}")
