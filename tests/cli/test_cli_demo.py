"""`lianmo demo` guards: it only ever wipes a folder it made itself, and its output (the
folder auditors get) holds no key or seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lianmo.cli.demo import MARKER, _reset_output, lay_out, secrets_folder
from lianmo.config import PartyConfig
from lianmo.errors import ConfigError
from tests.secret_files import is_private_key, secret_files


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


def test_the_demo_output_an_auditor_gets_holds_no_key_and_points_nodes_at_the_secrets(
    tmp_path: Path,
) -> None:
    """Keys and seeds go beside demo-output, so `lianmo audit verify demo-output` sees none."""
    output = tmp_path / "demo-output"
    secrets = secrets_folder(output, None)
    assert secrets == tmp_path / "demo-output-secrets"
    certs, configs = lay_out(output, secrets)
    assert secret_files(output) == []
    found = secret_files(secrets)
    assert secrets / "ca" / "ca.key" in found and len(found) == 1 + 4 * 2  # CA + TLS, signing
    assert secret_files(certs) == [p for p in found if p.parent == certs]  # no CA key there
    for name, path in configs.items():
        config = PartyConfig.load(path)
        assert config.state_dir == output / "parties" / name
        assert config.secrets_path == (secrets / "parties" / name).resolve()
        for key in (config.key, config.signing_key_path):
            assert key.is_relative_to(secrets.resolve()) and is_private_key(key)
    lay_out(output, secrets)  # a second run wipes both folders it made


@pytest.mark.parametrize("inside", ["demo-output/secrets", "."])
def test_the_demo_refuses_secrets_inside_its_output(tmp_path: Path, inside: str) -> None:
    with pytest.raises(ConfigError, match=r"overlap; the output is what auditors may be handed"):
        secrets_folder(tmp_path / "demo-output", tmp_path / inside)
