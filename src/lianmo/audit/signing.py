"""Ed25519 signing keys that party nodes sign their audit records with.

A party's signing key lives next to its TLS identity (``NAME.signing.key``, PKCS#8 PEM,
mode 0600) and is independent of it: rotating either one does not touch the other.
Every job's log carries the public half in its first record, and every peer logs the
public key it received from the party at the start of the job, so verifying an old job
needs nothing but the logs, even after the key has been rotated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lianmo.errors import ConfigError
from lianmo.fileio import write_atomic

UNSIGNED_KEY = "0" * 64
"""What a party at audit level ``chain`` announces and logs instead of a public key."""


class SigningKey:
    """An Ed25519 private key; ``public_hex`` is what logs and peers record."""

    __slots__ = ("_key", "public_hex")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_hex = raw.hex()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path, *, party: str) -> SigningKey:
        """Read a PEM key, or say how to make one."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"party '{party}' has no audit signing key at {path}; make one with "
                f"`lianmo certs signing-key {path}` (or set [audit] signing_key in the "
                "party config)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"party '{party}': cannot read signing key {path}: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"party '{party}': {path} is not an unencrypted PEM private key ({exc})"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                f"party '{party}': {path} holds a {type(key).__name__}, not an Ed25519 key; "
                f"make one with `lianmo certs signing-key {path}`"
            )
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key as PKCS#8 PEM, readable by the owner only."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(path, pem, mode=0o600)

    def sign(self, data: bytes) -> str:
        """Hex Ed25519 signature of ``data`` (deterministic: same data, same signature)."""
        return self._key.sign(data).hex()


def key_id(public_hex: str) -> str:
    """Short fingerprint of a public signing key for people to compare (16 hex digits)."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def signature_ok(public_hex: str, signature_hex: str, data: bytes) -> bool:
    """Whether ``signature_hex`` is a valid signature of ``data`` under ``public_hex``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        public.verify(bytes.fromhex(signature_hex), data)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def signing_key_file(directory: Path, name: str) -> Path:
    """Where ``lianmo certs init`` puts a party's signing key: next to its TLS key."""
    return directory / f"{name}.signing.key"


def write_signing_key(path: Path, *, force: bool = False) -> SigningKey:
    """Make a new signing key at ``path`` (refusing to replace one unless ``force``)."""
    if path.exists() and not force:
        raise ConfigError(
            f"refusing to overwrite the signing key {path}; old jobs stay verifiable after a "
            "rotation (their logs carry the public key), so pass --force to rotate it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    key.save(path)
    return key
