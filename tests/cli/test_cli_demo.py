"""`lianmo demo` guards: it only ever wipes a folder it made itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from lianmo.cli.demo import MARKER, _reset_output
from lianmo.errors import ConfigError


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not a lianmo demo output folder"):
        _reset_output(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_demo_wipes_its_own_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    _reset_output(out)
    (out / "metrics.json").write_text("{}")
    _reset_output(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]
