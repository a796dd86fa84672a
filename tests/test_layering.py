"""Imports point down: DESIGN.md's layers and the third-party boundaries, checked with ``ast``.

Every module under ``src/lianmo`` is parsed (never imported) and all its imports are
collected: absolute and relative, at module level, inside functions and under
``if TYPE_CHECKING:`` (a type-only import is still a dependency the layering forbids:
the module cannot be type-checked or read without the other layer), plus calls of
``importlib.import_module`` / ``__import__`` with a literal name. Layers, low to high:

    errors, config, fileio, metrics < compute < crypto, models, data, demo_data < report < transport
    < wire < audit < protocols < node, coordinator < cli

A module may import lianmo modules of its own layer or below; its own package always.
``node`` and ``coordinator`` share a layer but must not import each other. Only
``lianmo.transport`` may import grpc, grpc_health or google.protobuf (and the HTTP
front's starlette, uvicorn and anyio), only
``lianmo.crypto`` may import phe or gmpy2, and ``lianmo.protocols`` may use only the
transport modules that make up the Channel interface (channel, messages, envelope,
memory), never the gRPC channel, serde or generated code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lianmo"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "config", "fileio", "metrics"),
    ("compute",),
    ("crypto", "models", "data", "demo_data"),
    ("report",),  # the model report: renders tables it is given (REPORT_MAY_IMPORT)
    ("transport",),
    ("wire",),
    ("audit",),
    ("protocols",),
    ("node", "coordinator"),
    ("cli",),
)
LAYER_OF = {pkg: level for level, pkgs in enumerate(LAYERS) for pkg in pkgs}
FACADE_LAYER = len(LAYERS)  # ``import lianmo`` itself: the public API, for outside users
MUTUALLY_EXCLUSIVE = (("node", "coordinator"),)
THIRD_PARTY_OWNERS = {
    "grpc": "transport",
    "grpc_health": "transport",
    "google.protobuf": "transport",
    "phe": "crypto",
    "gmpy2": "crypto",
    "ray": "compute",
    "starlette": "transport",  # the HTTP front (transport.http_front)
    "uvicorn": "transport",
    "anyio": "transport",
}
PROTOCOL_TRANSPORT_ALLOWED = {
    "lianmo.transport.channel",
    "lianmo.transport.messages",
    "lianmo.transport.envelope",
    "lianmo.transport.memory",
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (or package.name for ``from package import name``)
    line: int
    type_only: bool = False  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        how = " (type-checking only)" if self.type_only else ""
        return f"{self.source} (line {self.line}) imports {self.target}{how}"


# ---- collecting imports ------------------------------------------------------------------


def module_sources(root: Path = SRC) -> dict[str, tuple[str, bool]]:
    """``{dotted module name: (source, is_package)}`` for every .py file under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("lianmo", *path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        out[name] = (path.read_text(encoding="utf-8"), is_pkg)
    return out


def _resolve_relative(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    if level - 1 > len(package) - 1:
        raise AssertionError(f"{module}: relative import beyond the top-level package")
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, source: str, is_pkg: bool, known: set[str]) -> Iterator[Import]:
    """Every import in ``source``; ``from a import b`` names ``a.b`` if that is a module."""
    tree = ast.parse(source, filename=module)
    type_only = _type_checking_lines(tree)
    for imp in _raw_imports(module, tree, is_pkg, known):
        yield Import(imp.source, imp.target, imp.line, imp.line in type_only)


def _raw_imports(module: str, tree: ast.AST, is_pkg: bool, known: set[str]) -> Iterator[Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_pkg, node.level, node.module)
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = sub in known or not base.startswith("lianmo")
                yield Import(module, sub if is_module and alias.name != "*" else base, node.lineno)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if fname in ("import_module", "__import__") and isinstance(arg, ast.Constant):
                if isinstance(arg.value, str) and not arg.value.startswith("."):
                    yield Import(module, arg.value, node.lineno)


def all_imports(sources: Mapping[str, tuple[str, bool]]) -> list[Import]:
    known = set(sources)
    return [
        imp
        for name, (source, is_pkg) in sources.items()
        for imp in imports_of(name, source, is_pkg, known)
    ]


# ---- the rules ------------------------------------------------------------------------------


def package_of(module: str) -> str | None:
    """``lianmo.transport.serde`` -> ``transport``; the facade ``lianmo`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_of(module: str) -> int:
    pkg = package_of(module)
    if pkg is None:
        return FACADE_LAYER
    if pkg not in LAYER_OF:
        raise AssertionError(
            f"{module} belongs to no layer; add '{pkg}' to LAYERS in tests/test_layering.py "
            "(and to the layer diagram in DESIGN.md / docs/architecture.md)"
        )
    return LAYER_OF[pkg]


def _is_lianmo(target: str) -> bool:
    return target == "lianmo" or target.startswith("lianmo.")


def layer_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        if not _is_lianmo(imp.target) or package_of(imp.source) is None:
            continue  # third party, or the facade's own re-exports
        src_pkg, dst_pkg = package_of(imp.source), package_of(imp.target)
        if src_pkg == dst_pkg:
            continue
        if layer_of(imp.target) > layer_of(imp.source):
            out.append(
                f"{imp}: layer {layer_of(imp.target)} ({dst_pkg or 'the lianmo facade'}) is "
                f"above {src_pkg}'s layer {layer_of(imp.source)}"
            )
        for a, b in MUTUALLY_EXCLUSIVE:
            if {src_pkg, dst_pkg} == {a, b}:
                out.append(f"{imp}: {a} and {b} must not import each other")
    return out


def _third_party_root(target: str) -> str | None:
    for name in THIRD_PARTY_OWNERS:
        if target == name or target.startswith(name + "."):
            return name
    return None


def third_party_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        root = _third_party_root(imp.target)
        if root is not None and package_of(imp.source) != THIRD_PARTY_OWNERS[root]:
            out.append(f"{imp}: only lianmo.{THIRD_PARTY_OWNERS[root]} may import {root}")
    return out


def protocol_transport_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        if package_of(imp.source) != "protocols" or package_of(imp.target) != "transport":
            continue
        module = ".".join(imp.target.split(".")[:3])
        if module not in PROTOCOL_TRANSPORT_ALLOWED:
            out.append(
                f"{imp}: protocols may use only {sorted(PROTOCOL_TRANSPORT_ALLOWED)} of "
                "transport (the Channel interface), never gRPC, serde or generated code"
            )
    return out


def _report(violations: list[str]) -> str:
    return "import rule violated:\n  " + "\n  ".join(violations)


# ---- the source tree --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    sources = module_sources()
    assert len(sources) > 30 and "lianmo.protocols.hetero_lr" in sources
    return all_imports(sources)


def test_every_module_belongs_to_a_layer() -> None:
    for name in module_sources():
        layer_of(name)


def test_lianmo_imports_point_down(imports: list[Import]) -> None:
    violations = layer_violations(imports)
    assert not violations, _report(violations)


def test_only_transport_imports_grpc_and_protobuf_only_crypto_phe_and_gmpy2(
    imports: list[Import],
) -> None:
    violations = third_party_violations(imports)
    assert not violations, _report(violations)


def test_protocols_see_only_the_channel_interface(imports: list[Import]) -> None:
    violations = protocol_transport_violations(imports)
    assert not violations, _report(violations)
    used = {i.target for i in imports if package_of(i.source) == "protocols"}
    assert "lianmo.transport.channel" in used and "lianmo.transport.messages" in used


def test_transport_does_not_depend_on_crypto(imports: list[Import]) -> None:
    """Transport carries bytes: ciphertext <-> payload conversion lives in wire.convert."""
    found = [
        str(i)
        for i in imports
        if package_of(i.source) == "transport" and package_of(i.target) == "crypto"
    ]
    assert not found, _report(found)


# ---- the checker can fail ---------------------------------------------------------------------


FAKE = {
    "lianmo.protocols": ("", True),
    "lianmo.protocols.bad": (
        "import typing as t\n"
        "import grpc\n"
        "from lianmo.node import job\n"
        "from ..transport import serde\n"
        "from lianmo.transport.memory import MemoryHub\n"
        "from . import good\n"
        "if t.TYPE_CHECKING:\n"
        "    import phe\n"
        "def f():\n"
        "    import importlib\n"
        "    return importlib.import_module('lianmo.cli.main')\n",
        False,
    ),
    "lianmo.protocols.good": ("from lianmo.errors import ProtocolError\n", False),
    "lianmo.node": ("", True),
    "lianmo.node.job": ("from lianmo.coordinator.run import run_job\n", False),
    "lianmo.coordinator": ("", True),
    "lianmo.coordinator.run": ("", False),
    "lianmo.transport": ("", True),
    "lianmo.transport.serde": ("from google.protobuf.message import DecodeError\n", False),
    "lianmo.transport.memory": ("", False),
    "lianmo.errors": ("", False),
    "lianmo.cli": ("", True),
    "lianmo.cli.main": ("", False),
}


def test_the_checker_finds_planted_violations() -> None:
    imports = all_imports(FAKE)
    assert "lianmo.protocols.bad (line 4) imports lianmo.transport.serde" in map(str, imports)
    layer = layer_violations(imports)
    assert any("protocols.bad (line 3) imports lianmo.node.job" in v for v in layer)
    assert any("protocols.bad (line 11) imports lianmo.cli.main" in v for v in layer)
    assert any(
        "node.job (line 1) imports lianmo.coordinator.run" in v and "each other" in v for v in layer
    )
    assert not any("good" in v or "memory" in v for v in layer)
    third = third_party_violations(imports)
    assert len(third) == 2 and "imports grpc:" in third[0]
    assert "imports phe (type-checking only)" in third[1]
    proto = protocol_transport_violations(imports)
    assert len(proto) == 1 and "lianmo.transport.serde" in proto[0]


def test_an_unknown_package_must_be_placed_in_a_layer() -> None:
    with pytest.raises(AssertionError, match="'plugins' to LAYERS"):
        layer_of("lianmo.plugins.x")


REPORT_MAY_IMPORT = {"errors", "fileio", "models", "report"}


def report_violations(imports: list[Import]) -> list[str]:
    """The model report renders data it is given: it never reads tables, keys or the network."""
    return [
        f"{imp}: lianmo.report may import only {sorted(REPORT_MAY_IMPORT)} of lianmo"
        for imp in imports
        if package_of(imp.source) == "report"
        and _is_lianmo(imp.target)
        and package_of(imp.target) not in REPORT_MAY_IMPORT
    ]


def test_the_model_report_imports_only_errors_fileio_and_models(imports: list[Import]) -> None:
    violations = report_violations(imports)
    assert not violations, _report(violations)
    used = {package_of(i.target) for i in imports if package_of(i.source) == "report"}
    assert "report" in used and "fileio" in used


def test_the_report_checker_finds_a_planted_import() -> None:
    fake = {
        "lianmo.report": ("", True),
        "lianmo.report.bad": (
            "from lianmo.data import table\nfrom lianmo.models import metrics\n",
            False,
        ),
        "lianmo.data": ("", True),
        "lianmo.data.table": ("", False),
        "lianmo.models": ("", True),
        "lianmo.models.metrics": ("", False),
    }
    found = report_violations(all_imports(fake))
    assert len(found) == 1 and "imports lianmo.data.table" in found[0]


CRYPTO_INTERFACE = {
    "lianmo.crypto.paillier",  # the Paillier facade a faster engine replaces
    "lianmo.crypto.fixedpoint",
    "lianmo.crypto.drbg",
    "lianmo.crypto.psi",
}


def test_code_above_crypto_uses_only_its_interface_modules(imports: list[Import]) -> None:
    """Protocols, node and cli see Paillier only through the facade, so an engine can swap."""
    found = [
        str(i)
        for i in imports
        if package_of(i.source) not in ("crypto", None)
        and package_of(i.target) == "crypto"
        and ".".join(i.target.split(".")[:3]) not in CRYPTO_INTERFACE
        and i.target != "lianmo.crypto"
    ]
    assert not found, _report(found)
