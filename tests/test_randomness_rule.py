"""Every random value a job uses comes from the party's job DRBG, so the job replays.

Each module under ``src/lianmo`` is parsed (never imported), except ``crypto/`` (its own
``Drbg.from_entropy()`` fallbacks) and ``transport/`` (retry jitter, never in a message).
Forbidden: importing ``random`` or ``secrets`` (only ``node/service.py``, the node's seed
source, and ``node/serving/request_log.py``, for the salts of the online request record,
which no job uses, may use ``secrets``), ``os.urandom``, ``uuid.uuid1/4``, ``Drbg.from_entropy()``,
and any ``numpy.random`` call but ``default_rng(seed)`` / ``SeedSequence(seed)``. In
``protocols/``, every call of a crypto routine that falls back to fresh entropy when its
``rng`` is omitted must pass an argument naming ``rng`` (``ctx.rng``, ``ctx.rng.child(..)``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

import lianmo.crypto

SRC = Path(__file__).resolve().parents[1] / "src" / "lianmo"
SKIPPED = ("crypto", "transport")
ENTROPY_MODULES = ("random", "secrets")
ENTROPY_EXEMPT = {
    "node/service.py": "secrets",  # the node's per-job seed source
    "node/serving/request_log.py": "secrets",  # a day's salt of the online request record
}
ENTROPY_CALLS = {"os.urandom", "os.getrandom", "uuid.uuid1", "uuid.uuid4"}
SEEDED_NUMPY = {"numpy.random.default_rng", "numpy.random.SeedSequence"}
# Public crypto routines taking ``rng: Drbg | None`` (fresh entropy when it is omitted):
# paillier.generate_keypair; PublicKey and PrivateKey.encrypt / encrypt_ints; the
# obfuscation methods of PublicKey; CipherVector.obfuscate.
RNG_FALLBACKS = {
    "generate_keypair",
    "encrypt",
    "encrypt_ints",
    "encrypt_residues",
    "obfuscate",
    "obfuscator",
    "obfuscators",
    "obfuscation_base",
    "obfuscation_chunks",
    "draw_exponents",
    "prepare_obfuscation",
}
FIX = (
    "draw it from the job DRBG (ctx.rng.child(label)); seed numpy with np.random.default_rng("
    "int.from_bytes(ctx.rng.child(label).random_bytes(32), 'big'))"
)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name it was imported as (``np`` -> ``numpy``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]  # ``import numpy.random`` binds ``numpy``
                out[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def violations(source: str, rel: str) -> list[str]:
    """``src/lianmo/<rel>:line: problem; fix`` for each randomness outside the job DRBG."""
    tree = ast.parse(source, filename=rel)
    aliases = _aliases(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        what = fix = ""
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            tops = {str(name).split(".")[0] for name in names} & set(ENTROPY_MODULES)
            if tops - {ENTROPY_EXEMPT.get(rel)}:
                what = f"imports {', '.join(sorted(tops))} (fresh entropy, cannot be replayed)"
        elif isinstance(node, ast.Call):
            func = node.func
            name = _dotted(func, aliases)
            args = [*node.args, *(k.value for k in node.keywords)]
            callee = func.attr if isinstance(func, ast.Attribute) else name.rpartition(".")[2]
            seeded = any(not (isinstance(a, ast.Constant) and a.value is None) for a in args)
            if name in ENTROPY_CALLS or callee == "from_entropy":
                what = f"calls {ast.unparse(func)}() (fresh entropy, cannot be replayed)"
            elif name.startswith("numpy.random.") and not (name in SEEDED_NUMPY and seeded):
                what = f"calls {ast.unparse(func)}() without a seed from the job DRBG"
            elif rel.startswith("protocols/") and callee in RNG_FALLBACKS:
                if not any("rng" in ast.unparse(a) for a in args):
                    what = f"calls {ast.unparse(func)}() without an rng (fresh entropy)"
                    fix = "pass the job DRBG: ctx.rng or ctx.rng.child(label)"
        if what:
            line = getattr(node, "lineno", 0)  # Import and Call nodes always have one
            found.append((line, f"src/lianmo/{rel}:{line}: {what}; {fix or FIX}"))
    return [message for _, message in sorted(found)]


def test_randomness_comes_only_from_the_job_drbg() -> None:
    every = [p.relative_to(SRC) for p in sorted(SRC.rglob("*.py"))]
    scanned = [p for p in every if p.parts[0] not in SKIPPED]
    assert {"protocols", "node", "cli", "data", "models"} <= {p.parts[0] for p in scanned}
    found = [v for p in scanned for v in violations((SRC / p).read_text("utf-8"), p.as_posix())]
    assert not found, "randomness outside the job DRBG:\n" + "\n".join(found)


def _optional_rng(fn: Callable[..., object]) -> bool:
    param = inspect.signature(fn).parameters.get("rng")
    return param is not None and "None" in str(param.annotation)


def test_fallback_list_matches_the_crypto_code() -> None:
    routines: list[tuple[str, Callable[..., object]]] = []
    for info in pkgutil.iter_modules(lianmo.crypto.__path__, "lianmo.crypto."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isclass(obj):
                routines += inspect.getmembers(obj, inspect.isroutine)
            elif inspect.isfunction(obj):
                routines.append((name, obj))
    found = {n for n, fn in routines if not n.startswith("_") and _optional_rng(fn)}
    assert found == RNG_FALLBACKS, "update RNG_FALLBACKS to the crypto routines with rng=None"


NUMPY = "import numpy as np\n"
FLAGGED = [
    ("models/m.py", "import random"),
    ("models/m.py", "from random import choice"),
    ("node/job.py", "import secrets"),
    ("data/d.py", "from secrets import token_bytes"),
    ("audit/a.py", "import os\nos.urandom(16)"),
    ("audit/a.py", "from os import urandom as u\nu(16)"),
    ("cli/c.py", "import uuid\nuuid.uuid4()"),
    ("cli/c.py", "from uuid import uuid1\nuuid1()"),
    ("node/job.py", "Drbg.from_entropy('job')"),
    ("models/m.py", NUMPY + "np.random.default_rng()"),
    ("models/m.py", NUMPY + "np.random.default_rng(seed=None)"),
    ("models/m.py", NUMPY + "np.random.SeedSequence()"),
    ("models/m.py", "import numpy\nnumpy.random.rand(3)"),
    ("models/m.py", NUMPY + "np.random.seed(0)"),
    ("models/m.py", NUMPY + "np.random.shuffle(x)"),
    ("models/m.py", "from numpy.random import default_rng\ndefault_rng()"),
    ("models/m.py", "from numpy import random as npr\nnpr.normal(size=3)"),
    ("protocols/p.py", "key.encrypt(x, -6)"),
    ("protocols/p.py", "key.encrypt_ints(x, 0, rng=None)"),
    ("protocols/p.py", "cv.pack(packing).obfuscate(backend=ctx.compute)"),
    ("protocols/p.py", "key.obfuscators(3)"),
    ("protocols/p.py", "key.prepare_obfuscation()"),
    ("protocols/p.py", "from lianmo.crypto import generate_keypair as gk\ngk(2048)"),
    ("protocols/p.py", "paillier.generate_keypair(512, insecure_test_size=True)"),
]
ALLOWED = [
    ("node/service.py", "import secrets\nseed = secrets.token_bytes(32)"),
    ("models/m.py", NUMPY + "g = np.random.default_rng(int.from_bytes(b, 'big'))"),
    ("data/split.py", NUMPY + "np.random.default_rng(np.random.SeedSequence([seed, epoch]))"),
    ("models/m.py", NUMPY + "def f(g: np.random.Generator) -> None:\n    g.permutation(3)"),
    ("protocols/p.py", "key.encrypt(x, -6, ctx.rng, ctx.compute)"),
    ("protocols/p.py", "cv.obfuscate(rng=ctx.rng.child('lr'))"),
    ("protocols/p.py", "generate_keypair(bits, ctx.rng, insecure_test_size=True)"),
    ("protocols/p.py", "key.prepare_obfuscation(rng)"),
]


@pytest.mark.parametrize(("rel", "source"), FLAGGED, ids=[s for _, s in FLAGGED])
def test_checker_flags(rel: str, source: str) -> None:
    found = violations(source, rel)
    assert len(found) == 1 and found[0].startswith(f"src/lianmo/{rel}:"), found


@pytest.mark.parametrize(("rel", "source"), ALLOWED, ids=[s for _, s in ALLOWED])
def test_checker_allows(rel: str, source: str) -> None:
    assert violations(source, rel) == []
