"""Mutual-TLS identity of a node, and the authenticated name of whoever calls it."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lianmo.errors import AuthenticationError, ConfigError

_SAN_KEY = "x509_subject_alternative_name"
_CN_KEY = "x509_common_name"


class NoIdentityError(AuthenticationError):
    """The caller presented no verified certificate at all (gRPC: UNAUTHENTICATED)."""


@dataclass(frozen=True)
class TlsIdentity:
    """A node's certificate, private key and the CA it trusts, all PEM.

    The certificate's name (its single DNS subject-alternative name) is the party name
    peers see; the CA is the only one whose certificates this node accepts.
    """

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    def __repr__(self) -> str:
        # Never put the private key into logs or tracebacks.
        return f"TlsIdentity(name={self.own_name()!r})"

    @classmethod
    def load(cls, cert: Path, key: Path, ca: Path, party: str = "") -> TlsIdentity:
        """Read and check the three PEM files of a party config's ``[tls]`` table.

        Parameters
        ----------
        cert, key, ca
            Paths of the ``tls.cert``, ``tls.key`` and ``tls.ca`` config entries.
        party
            The party name, used only in error messages.

        Raises
        ------
        ConfigError
            If a file is missing, unreadable, not PEM, or the key does not match the cert.
        """
        who = f"party '{party}'" if party else "this node"
        pems = {k: _read(who, k, p) for k, p in (("cert", cert), ("key", key), ("ca", ca))}
        identity = cls(cert_pem=pems["cert"], key_pem=pems["key"], ca_pem=pems["ca"])
        identity._check(who, cert, key, ca)
        return identity

    def _check(self, who: str, cert: Path, key: Path, ca: Path) -> None:
        own = _parse_cert(who, "cert", cert, self.cert_pem)
        _parse_cert(who, "ca", ca, self.ca_pem)
        try:
            private = serialization.load_pem_private_key(self.key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{who}: tls.key {key} is not an unencrypted PEM private key: {exc}"
            ) from exc
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if private.public_key().public_bytes(der, spki) != own.public_key().public_bytes(der, spki):
            raise ConfigError(
                f"{who}: tls.key {key} is not the private key of tls.cert {cert}; "
                "point both at the same identity (lianmo certs writes <name>.pem/<name>.key)"
            )

    def own_name(self) -> str:
        """The party name this certificate proves: its DNS SAN, else its common name."""
        return cert_name(self.cert_pem)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server side of mutual TLS: present our cert, demand one signed by our CA."""
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Client side of mutual TLS: trust only our CA, present our own cert."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )


def cert_name(cert_pem: bytes) -> str:
    """The identity of a PEM certificate: its DNS subject-alternative name, else its CN."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    if dns:
        return str(dns[0])
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def peer_name(context: grpc.ServicerContext) -> str:
    """The authenticated certificate name of the caller of an RPC.

    Raises
    ------
    NoIdentityError
        If the call carries no verified certificate identity.
    AuthenticationError
        If the certificate carries several names.
    """
    # grpc's stubs type the values as bytes; at runtime each is a list of bytes.
    auth = t.cast(t.Mapping[str, t.Sequence[bytes]], context.auth_context())
    names = list(dict.fromkeys(auth.get(_SAN_KEY) or auth.get(_CN_KEY) or []))
    if not names:
        raise NoIdentityError(
            f"caller {context.peer()} presented no verified certificate identity; connect "
            "with mutual TLS using a certificate issued by this job's CA"
        )
    if len(names) > 1:
        decoded = [n.decode("utf-8", "replace") for n in names]
        raise AuthenticationError(
            f"caller {context.peer()} presented a certificate with several names {decoded}; "
            "lianmo party certificates carry exactly one (reissue it with lianmo certs)"
        )
    return names[0].decode("utf-8", "replace")


def _read(who: str, config_key: str, path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{who}: tls.{config_key} file {path} does not exist; fix [tls] {config_key} in "
            "the party config or create the identity with lianmo certs"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{who}: tls.{config_key} file {path} cannot be read ({exc.strerror}); check "
            f"its permissions and [tls] {config_key} in the party config"
        ) from exc


def _parse_cert(who: str, config_key: str, path: Path, pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ConfigError(
            f"{who}: tls.{config_key} file {path} is not a PEM certificate: {exc}"
        ) from exc
