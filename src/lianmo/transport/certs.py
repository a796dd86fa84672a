"""Make the X.509 CA and per-party certificates that mutual TLS between lianmo nodes uses."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lianmo.errors import ConfigError

# Same rule as ``lianmo.config.check_name``: the certificate name *is* the party name.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Tolerate a few minutes of clock skew between institutions.
_BACKDATE = dt.timedelta(minutes=5)
_RESERVED = frozenset({"ca"})
#: The CA's private key, in a folder of its own (never one mounted into a party node).
CA_KEY_FILE = "ca.key"
# One certificate serves both a node's listener and its outgoing calls.
_PARTY_EKU = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # ECDSA P-256: accepted by gRPC's BoringSSL on both sides and fast to make.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name in _RESERVED:
        raise ConfigError(
            f"cannot issue a certificate for {name!r}: a party name uses letters, digits, "
            "'_', '.', '-' (at most 63 characters, starting with a letter or digit) and is "
            "not 'ca'; use the party's name from the job spec"
        )


def make_ca(common_name: str = "lianmo demo CA", days: int = 365) -> tuple[bytes, bytes]:
    """Make a self-signed certificate authority.

    Parameters
    ----------
    common_name
        Subject common name of the CA.
    days
        Validity period from now.

    Returns
    -------
    tuple of bytes
        ``(cert_pem, key_pem)``; the key is unencrypted PKCS#8.
    """
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_party_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    name: str,
    days: int = 365,
    *,
    not_valid_after: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """Issue a certificate whose only identity is the party name ``name``.

    The name is both the subject CN and the single DNS subject-alternative name, and the
    certificate is valid for TLS server and client authentication, so the same pair
    serves a node's listener and its outgoing calls.

    Parameters
    ----------
    ca_cert_pem, ca_key_pem
        The issuing CA, as made by :func:`make_ca`.
    name
        The party (or ``"coordinator"``) name, exactly as the job spec uses it.
    days
        Validity period from now, unless ``not_valid_after`` is given.
    not_valid_after
        Explicit expiry (timezone-aware), e.g. to make an expired certificate in a test.

    Returns
    -------
    tuple of bytes
        ``(cert_pem, key_pem)``.

    Raises
    ------
    ConfigError
        If ``name`` is not a valid party name or the CA does not load.
    """
    _check_name(name)
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    key = _new_key()
    now = _now()
    expiry = not_valid_after if not_valid_after is not None else now + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now - _BACKDATE, expiry - dt.timedelta(days=1)))
        .not_valid_after(expiry)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(_PARTY_EKU), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _load_ca(
    ca_cert_pem: bytes, ca_key_pem: bytes
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the CA certificate or key does not load: {exc}") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(
            f"the CA key is a {type(ca_key).__name__}; lianmo issues certificates with an "
            "ECDSA P-256 CA made by make_ca (lianmo certs)"
        )
    return ca_cert, ca_key


def write_identity_dir(
    directory: Path,
    names: Sequence[str],
    *,
    force: bool = False,
    ca_dir: Path | None = None,
) -> Path:
    """Write a fresh CA and one certificate per name; the CA key apart from the rest.

    Files: ``directory/ca.pem``, ``directory/<name>.pem``, ``directory/<name>.key``, and
    the CA's key ``ca_dir/ca.key`` (by default ``directory/ca/``, a folder of its own,
    mode 0700). Keys are mode 0600. Whoever holds the CA key can mint any party's
    identity, so it must never sit among the files handed to (or mounted into) a party
    node. Parties and the coordinator must all be listed (e.g. ``["broker", "platform",
    "coordinator"]``): they trust each other only through this one CA.

    Parameters
    ----------
    directory
        Created if missing.
    names
        Party names, each issued its own certificate.
    force
        Overwrite existing files instead of refusing.
    ca_dir
        The folder for the CA key; neither ``directory`` itself nor a folder above it.

    Returns
    -------
    Path
        The CA key's path.

    Raises
    ------
    ConfigError
        If a name is invalid or repeated, ``ca_dir`` is ``directory`` or holds it, or a
        file exists and ``force`` is false.
    """
    for name in names:
        _check_name(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"party names must be distinct to issue certificates, got {list(names)}")
    ca_dir = directory / "ca" if ca_dir is None else ca_dir
    if directory.resolve().is_relative_to(ca_dir.resolve()):
        raise ConfigError(
            f"the CA key folder {ca_dir} holds the party identities' folder {directory}; the "
            "CA key must stay apart from the parties' keys: choose another --ca-dir"
        )
    files = [directory / "ca.pem", ca_dir / CA_KEY_FILE] + [
        directory / f"{n}.{ext}" for n in names for ext in ("pem", "key")
    ]
    existing = [str(f) for f in files if f.exists()]
    if existing and not force:
        raise ConfigError(
            f"refusing to overwrite {existing}: these may be a live deployment's "
            "identities; choose an empty directory or pass force=True (--force)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_dir.chmod(0o700)
    ca_cert, ca_key = make_ca()
    _write(directory / "ca.pem", ca_cert, 0o644)
    _write(ca_dir / CA_KEY_FILE, ca_key, 0o600)
    for name in names:
        cert, key = make_party_cert(ca_cert, ca_key, name)
        _write(directory / f"{name}.pem", cert, 0o644)
        _write(directory / f"{name}.key", key, 0o600)
    return ca_dir / CA_KEY_FILE


def _write(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so a private key is never world-readable, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
