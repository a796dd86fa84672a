"""Certificates and TLS identities: what certs.py issues and what TlsIdentity accepts."""

from __future__ import annotations

import stat
import typing as t
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lianmo.errors import ConfigError
from lianmo.transport.certs import make_ca, make_party_cert, write_identity_dir
from lianmo.transport.tls import TlsIdentity, cert_name

if t.TYPE_CHECKING:
    from conftest import Pki


def test_party_cert_carries_exactly_its_name_and_both_usages() -> None:
    ca_pem, ca_key = make_ca()
    cert = x509.load_pem_x509_certificate(make_party_cert(ca_pem, ca_key, "platform")[0])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

    assert san.get_values_for_type(x509.DNSName) == ["platform"]
    assert len(list(san)) == 1
    assert cn == "platform"
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ca = x509.load_pem_x509_certificate(ca_pem)
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)


@pytest.mark.parametrize("name", ["", "ca", "has space", "-dash", "x" * 64, "名字"])
def test_invalid_party_names_are_refused(name: str) -> None:
    ca_pem, ca_key = make_ca()
    with pytest.raises(ConfigError, match="cannot issue a certificate"):
        make_party_cert(ca_pem, ca_key, name)


def test_identity_dir_files_and_key_modes(pki: Pki) -> None:
    names = sorted(p.name for p in pki.directory.iterdir())
    assert names == sorted(["ca.pem", "ca"] + [f"{n}.{e}" for n in pki.ids for e in ("pem", "key")])
    assert [p.name for p in (pki.directory / "ca").iterdir()] == ["ca.key"]
    assert stat.S_IMODE((pki.directory / "ca").stat().st_mode) == 0o700
    for key in [*pki.directory.glob("*.key"), pki.directory / "ca" / "ca.key"]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert {n: i.own_name() for n, i in pki.ids.items()} == {n: n for n in pki.ids}


def _public(key_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ca_public(directory: Path) -> bytes:
    return (
        x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize("ca_dir", [None, "../vault/ca"])
def test_no_file_handed_to_a_party_is_the_ca_key(tmp_path: Path, ca_dir: str | None) -> None:
    """The party files (DIR/*) hold no key that signs as the CA; the CA key sits apart."""
    directory = tmp_path / "certs"
    written = write_identity_dir(
        directory, ["broker", "platform"], ca_dir=None if ca_dir is None else directory / ca_dir
    )
    ca = _ca_public(directory)
    party_files = [p for p in directory.iterdir() if p.is_file()]
    keys = [p for p in party_files if p.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")]
    assert sorted(p.name for p in keys) == ["broker.key", "platform.key"]
    assert all(_public(p.read_bytes()) != ca for p in keys)
    assert written.name == "ca.key" and _public(written.read_bytes()) == ca  # it is the CA's
    expected = directory / "ca" if ca_dir is None else tmp_path / "vault" / "ca"
    assert written.parent.resolve() == expected.resolve()


@pytest.mark.parametrize("ca_dir", [".", "..", "../.."])
def test_the_ca_key_may_not_go_among_or_above_the_party_files(tmp_path: Path, ca_dir: str) -> None:
    directory = tmp_path / "a" / "certs"
    with pytest.raises(ConfigError, match=r"the CA key must stay apart from the parties' keys"):
        write_identity_dir(directory, ["broker"], ca_dir=directory / ca_dir)
    assert not directory.exists()


def test_identity_dir_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    write_identity_dir(tmp_path, ["broker"])
    before = (tmp_path / "broker.pem").read_bytes()

    with pytest.raises(ConfigError, match=r"refusing to overwrite .*broker\.pem.*force"):
        write_identity_dir(tmp_path, ["broker", "platform"])
    assert not (tmp_path / "platform.pem").exists()

    write_identity_dir(tmp_path, ["broker"], force=True)
    assert (tmp_path / "broker.pem").read_bytes() != before


def test_identity_dir_refuses_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="distinct"):
        write_identity_dir(tmp_path, ["broker", "broker"])


@pytest.mark.parametrize("missing", ["cert", "key", "ca"])
def test_load_names_the_missing_file_and_config_key(pki: Pki, missing: str) -> None:
    paths = {
        "cert": pki.directory / "broker.pem",
        "key": pki.directory / "broker.key",
        "ca": pki.directory / "ca.pem",
    }
    paths[missing] = pki.directory / "nope.pem"
    with pytest.raises(ConfigError, match=rf"party 'broker': tls\.{missing} file .*nope\.pem"):
        TlsIdentity.load(paths["cert"], paths["key"], paths["ca"], party="broker")


def test_load_refuses_a_key_of_another_cert(pki: Pki) -> None:
    d = pki.directory
    with pytest.raises(ConfigError, match="is not the private key of tls.cert"):
        TlsIdentity.load(d / "broker.pem", d / "platform.key", d / "ca.pem", party="broker")


def test_load_refuses_non_pem(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    d = pki.directory
    with pytest.raises(ConfigError, match=r"tls\.ca file .*junk\.pem is not a PEM certificate"):
        TlsIdentity.load(d / "broker.pem", d / "broker.key", junk)


def test_repr_never_shows_the_key(pki: Pki) -> None:
    identity = pki.ids["broker"]
    assert repr(identity) == "TlsIdentity(name='broker')"
    assert b"PRIVATE KEY" in identity.key_pem


def test_cert_name_falls_back_to_common_name() -> None:
    ca_pem, ca_key = make_ca("only a CN")
    assert cert_name(ca_pem) == "only a CN"
