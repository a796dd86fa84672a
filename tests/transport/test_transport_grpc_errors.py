"""The lianmo error <-> gRPC status mapping, and reading the caller's certificate name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
import pytest

from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    CryptoError,
    DataError,
    JobFailedError,
    LianmoError,
    ProtocolError,
    TransportError,
    UnexpectedMessageError,
    UnknownJobError,
)
from lianmo.transport.grpc_errors import (
    ERROR_KIND_KEY,
    error_from_rpc,
    is_tls_failure,
    status_for,
    wire_kind,
)
from lianmo.transport.tls import NoIdentityError, peer_name

Code = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("x"), Code.INVALID_ARGUMENT),
        (DataError("x"), Code.INVALID_ARGUMENT),
        (CryptoError("x"), Code.INVALID_ARGUMENT),
        (ProtocolError("x"), Code.INVALID_ARGUMENT),
        (UnknownJobError("x"), Code.NOT_FOUND),
        (UnexpectedMessageError("x"), Code.FAILED_PRECONDITION),
        (AuthenticationError("x"), Code.PERMISSION_DENIED),
        (NoIdentityError("x"), Code.UNAUTHENTICATED),
        (TransportError("x"), Code.FAILED_PRECONDITION),
        (JobFailedError("p", "x"), Code.FAILED_PRECONDITION),
        (LianmoError("x"), Code.FAILED_PRECONDITION),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.name,
)
def test_status_of_each_error_class(error: LianmoError, code: grpc.StatusCode) -> None:
    assert status_for(error) == code


def test_transport_only_subclass_travels_as_its_public_parent() -> None:
    assert wire_kind(NoIdentityError("x")) == "AuthenticationError"
    assert wire_kind(UnknownJobError("x")) == "UnknownJobError"


class FakeRpcError(grpc.RpcError):
    """What grpc raises: an RpcError that is also a Call."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, str]]):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing


@pytest.mark.parametrize(
    ("code", "kind", "cls", "text"),
    [
        (Code.INVALID_ARGUMENT, "DataError", DataError, "[p] boom"),
        (Code.INVALID_ARGUMENT, "", ProtocolError, "[p] INVALID_ARGUMENT: boom"),
        (Code.INVALID_ARGUMENT, "NotALianmoError", ProtocolError, "[p] INVALID_ARGUMENT: boom"),
        (Code.PERMISSION_DENIED, "", AuthenticationError, "[p] PERMISSION_DENIED: boom"),
        (Code.UNKNOWN, "", TransportError, "[p] UNKNOWN: boom"),
        (Code.DEADLINE_EXCEEDED, "", TransportError, "call to party 'p' at a:1 failed"),
    ],
)
def test_error_from_rpc(code: grpc.StatusCode, kind: str, cls: type, text: str) -> None:
    trailing = [(ERROR_KIND_KEY, kind)] if kind else []
    error = error_from_rpc(FakeRpcError(code, "boom", trailing), "p", "a:1")
    assert type(error) is cls
    assert str(error).startswith(text)


def test_tls_failures_are_recognised_but_connection_refused_is_not() -> None:
    assert is_tls_failure("... Tls handshake failed (TSI_PROTOCOL_FAILURE): ...")
    assert is_tls_failure("Custom verification check failed ... Hostname Verification")
    assert not is_tls_failure("Failed to connect to remote host: Connection refused")
    assert not is_tls_failure("Socket closed")


class FakeContext:
    """Just enough of a ServicerContext for peer_name."""

    def __init__(self, auth: Mapping[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> Mapping[str, list[bytes]]:
        return self._auth

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1234"


@pytest.mark.parametrize(
    ("auth", "name"),
    [
        ({"x509_subject_alternative_name": [b"broker"], "x509_common_name": [b"cn"]}, "broker"),
        ({"x509_common_name": [b"broker"]}, "broker"),
    ],
)
def test_peer_name_prefers_the_san(auth: Mapping[str, list[bytes]], name: str) -> None:
    assert peer_name(FakeContext(auth)) == name  # type: ignore[arg-type]


def test_peer_name_without_identity_is_unauthenticated() -> None:
    with pytest.raises(NoIdentityError, match="no verified certificate identity"):
        peer_name(FakeContext({"transport_security_type": [b"ssl"]}))  # type: ignore[arg-type]


def test_peer_name_refuses_several_names() -> None:
    auth = {"x509_subject_alternative_name": [b"broker", b"platform"]}
    with pytest.raises(AuthenticationError, match="several names"):
        peer_name(FakeContext(auth))  # type: ignore[arg-type]
