"""`lianmo data check --categorical/--missing-values`: the catalogue entry's read options."""

from __future__ import annotations

from pathlib import Path

import pytest

from lianmo.cli.main import main


def _check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_the_raw_broker_file_checks_with_its_categories(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_data / "credit_broker_raw.csv"
    args = ["--id", "client_id", "--label", "default_next_month"]
    code, out, err = _check(capsys, path, *args)
    assert code == 3 and "column 'sex', data row 1 (line 2): the cell is 'male'" in err
    assert 'categorical = ["sex"]' in err
    categories = ["--categorical", "sex", "--categorical", "education", "--categorical", "marriage"]
    code, out, err = _check(capsys, path, *args, *categories)
    assert (code, err) == (0, "")
    assert out.startswith(f"ok: {path}: 27000 rows, 5 feature columns")


@pytest.mark.parametrize(
    ("tokens", "code", "message"),
    [
        ("[]", 3, "column 'x', data row 1 (line 2): the cell is '?' but a number was expected"),
        ('["?"]', 3, "column 'x', data row 2 (line 3): the cell is empty"),
        ('["", "?"]', 0, "ok: "),
        ("NA", 2, "'NA' is not a TOML list of strings"),
        ("[1]", 2, "'[1]' is not a TOML list of strings"),
    ],
)
def test_missing_values_are_a_toml_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tokens: str, code: int, message: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,x\na,?\nb,\nc,3\n")
    got, out, err = _check(capsys, path, "--id", "id", "--missing-values", tokens)
    assert got == code
    assert message in (out if code == 0 else err)
