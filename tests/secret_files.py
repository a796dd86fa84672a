"""Find secrets in a folder: DRBG seeds and PEM private keys (TLS, CA, audit signing)."""

from __future__ import annotations

from pathlib import Path

SEED_NAME = "drbg.seed"


def is_private_key(path: Path) -> bool:
    """A PEM file whose first line says PRIVATE KEY (PKCS#8, EC, RSA, OpenSSH)."""
    with path.open("rb") as f:
        head = f.read(80)
    return head.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in head


def secret_files(folder: Path) -> list[Path]:
    """Every seed or private key anywhere under ``folder``."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and (p.name == SEED_NAME or is_private_key(p))
    )
