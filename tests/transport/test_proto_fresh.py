"""The generated code committed under src/lianmo/transport/_pb matches proto/ exactly."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "src" / "lianmo" / "transport" / "_pb"


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason="grpcio-tools is not installed (pip install -e '.[dev]')",
)
def test_generated_code_is_fresh(tmp_path: Path) -> None:
    # scripts/gen_proto runs "python -m grpc_tools.protoc": make that this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto"), str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    committed = {p.name: p.read_bytes() for p in COMMITTED.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(committed), "generated file set differs"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"{stale} are stale: run scripts/gen_proto and commit the result"


def _requirement(name: str, operator: str) -> str:
    """Return the version a pyproject requirement on ``name`` pins with ``operator``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"]]
    requirements += project["project"]["optional-dependencies"]["dev"]
    found = [r for r in requirements if re.fullmatch(rf"{name}{re.escape(operator)}[\d.]+", r)]
    assert len(found) == 1, f"pyproject.toml should require {name}{operator}VERSION once"
    return found[0].split(operator)[1]


def test_dependency_floors_match_the_generated_code() -> None:
    # The generated modules refuse to import under an older runtime than the one they
    # were generated for, so the floors in pyproject.toml must be exactly those versions.
    for pb2 in sorted(COMMITTED.glob("*_pb2.py")):
        check = re.search(
            r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
            r"\s*(\d+),\s*(\d+),\s*(\d+),\s*'',",
            pb2.read_text(),
        )
        assert check, f"{pb2.name} has no protobuf runtime check"
        assert _requirement("protobuf", ">=") == ".".join(check.groups()), pb2.name
    for grpc_py in sorted(COMMITTED.glob("*_pb2_grpc.py")):
        generated = re.search(r"^GRPC_GENERATED_VERSION = '([\d.]+)'$", grpc_py.read_text(), re.M)
        assert generated, f"{grpc_py.name} has no GRPC_GENERATED_VERSION"
        assert _requirement("grpcio", ">=") == generated[1], grpc_py.name
        assert _requirement("grpcio-tools", "==") == generated[1], grpc_py.name
