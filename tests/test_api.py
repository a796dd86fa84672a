"""``import lianmo``: the public API's names, its version, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

import lianmo


def test_the_version_comes_from_the_package_metadata() -> None:
    assert lianmo.__version__ == version("lianmo")


@pytest.mark.parametrize("name", sorted(set(lianmo.__all__) - {"__version__"}))
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(lianmo, name)
    assert value is not None and name in dir(lianmo)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        lianmo.Clinet  # noqa: B018


def test_importing_lianmo_loads_neither_grpc_nor_the_coordinator() -> None:
    """Every ``lianmo.*`` module imports the package first: node workers must not pay for
    the client's gRPC stack."""
    code = (
        "import sys, lianmo, lianmo.errors; "
        "print(sorted(m for m in sys.modules if m.startswith(('grpc', 'lianmo.coordinator'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
