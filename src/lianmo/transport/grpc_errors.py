"""The one mapping between lianmo errors and gRPC status codes, in both directions.

A servicer that fails with a :class:`~lianmo.errors.LianmoError` aborts with the status
code of its class and sends the class name in the trailing metadata key
``lianmo-error-kind``. The client turns the status back into the same class, with the
remote party's own text prefixed by its name (``[platform] ...``), so the operator who
reads it does not have to ask the other institution for its logs.
"""

from __future__ import annotations

import functools
import logging
import typing as t
from collections.abc import Callable

import grpc

from lianmo import errors
from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    CryptoError,
    DataError,
    IdBudgetError,
    JobFailedError,
    LianmoError,
    ProtocolError,
    TransportError,
    UnexpectedMessageError,
    UnknownJobError,
)
from lianmo.transport.admission import PeerBusyError
from lianmo.transport.tls import NoIdentityError

ERROR_KIND_KEY = "lianmo-error-kind"
# Set when the call was refused before anything was read and may simply be sent again.
RETRY_KEY = "lianmo-retry"
# Only for JobFailedError: which party failed (it may not be the one that answered).
ERROR_PARTY_KEY = "lianmo-error-party"
_LOGGER = logging.getLogger(__name__)

# Most specific class first: the first isinstance match wins.
_STATUS_OF: tuple[tuple[type[LianmoError], grpc.StatusCode], ...] = (
    (NoIdentityError, grpc.StatusCode.UNAUTHENTICATED),
    (PeerBusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (IdBudgetError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UnknownJobError, grpc.StatusCode.NOT_FOUND),
    (UnexpectedMessageError, grpc.StatusCode.FAILED_PRECONDITION),
    (AuthenticationError, grpc.StatusCode.PERMISSION_DENIED),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (DataError, grpc.StatusCode.INVALID_ARGUMENT),
    (CryptoError, grpc.StatusCode.INVALID_ARGUMENT),
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT),
)

# When the server sent no (or an unknown) kind: the best class for the bare status code.
_CLASS_OF_STATUS: dict[grpc.StatusCode, type[LianmoError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ProtocolError,
    grpc.StatusCode.NOT_FOUND: UnknownJobError,
    grpc.StatusCode.FAILED_PRECONDITION: ProtocolError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ProtocolError,
    grpc.StatusCode.PERMISSION_DENIED: AuthenticationError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
}

_KNOWN_KINDS: dict[str, type[LianmoError]] = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, LianmoError)
}

# Substrings of grpc's connection error text that mean the TLS handshake itself failed:
# retrying cannot help, the certificates are wrong.
_TLS_FAILURE_MARKERS = (
    "handshake failed",
    "verification check failed",
    "certificate_verify_failed",
    "peer name",
)

_F = t.TypeVar("_F", bound=Callable[..., t.Any])


def status_for(exc: LianmoError) -> grpc.StatusCode:
    """The gRPC status code a servicer answers ``exc`` with."""
    for cls, code in _STATUS_OF:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


def abort(
    context: grpc.ServicerContext, exc: LianmoError, code: grpc.StatusCode | None = None
) -> t.NoReturn:
    """End the RPC with ``exc``'s status (or ``code``), text and class name."""
    details = str(exc)
    metadata = [(ERROR_KIND_KEY, wire_kind(exc))]
    if isinstance(exc, JobFailedError):
        details = exc.reason
        metadata.append((ERROR_PARTY_KEY, exc.party))
    if isinstance(exc, PeerBusyError):
        metadata.append((RETRY_KEY, "busy"))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(code if code is not None else status_for(exc), details)
    raise AssertionError("unreachable: context.abort returned")  # pragma: no cover


def wire_kind(exc: LianmoError) -> str:
    """Name of the nearest class of ``exc`` in :mod:`lianmo.errors` (clients know only those)."""
    for cls in type(exc).__mro__:
        if _KNOWN_KINDS.get(cls.__name__) is cls:
            return cls.__name__
    return LianmoError.__name__  # pragma: no cover - every LianmoError has LianmoError in its MRO


def maps_errors(method: _F) -> _F:
    """Decorate a servicer method so that a :class:`LianmoError` becomes its gRPC status.

    A call whose client has already gone (its stream was cut, its deadline passed) is
    not answered and is logged at INFO: the truncated input it left is not an attack.
    """

    @functools.wraps(method)
    def wrapper(self: object, request: object, context: grpc.ServicerContext) -> object:
        try:
            return method(self, request, context)
        except (LianmoError, grpc.RpcError) as exc:
            if not context.is_active():
                # The caller went away mid-call (connection cut, deadline, cancel): what we
                # read was incomplete, not hostile. Nobody is left to answer; it resends.
                _LOGGER.info(
                    "%s from %s ended early, the caller is gone (%s: %s)",
                    *(method.__name__, context.peer(), type(exc).__name__, exc),
                )
                context.abort(grpc.StatusCode.CANCELLED, "the caller is gone")
            if not isinstance(exc, LianmoError):
                raise
            _LOGGER.warning("%s from %s refused: %s", method.__name__, context.peer(), exc)
            abort(context, exc)

    return t.cast(_F, wrapper)


def is_tls_failure(details: str) -> bool:
    """True if grpc's error text says the TLS handshake (not the network) failed."""
    lowered = details.lower()
    return any(marker in lowered for marker in _TLS_FAILURE_MARKERS)


def is_busy(err: grpc.RpcError) -> bool:
    """True if the peer refused the call as busy (:class:`PeerBusyError`): retry later."""
    call = t.cast(grpc.Call, err)
    return (
        call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        and _trailing(call).get(RETRY_KEY) == "busy"
    )


def error_from_rpc(err: grpc.RpcError, party: str, address: str) -> LianmoError:
    """Rebuild the lianmo error a remote party raised from the failed call ``err``.

    Parameters
    ----------
    err
        The exception grpc raised; it is also a :class:`grpc.Call`.
    party
        The remote party's certificate name, used as the message prefix.
    address
        The address dialled, for transport-level failures.
    """
    call = t.cast(grpc.Call, err)
    code = call.code()
    details = call.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and is_tls_failure(details):
        return AuthenticationError(
            f"TLS handshake with party '{party}' at {address} failed: {details}; check that "
            f"its certificate is issued for the name '{party}' by this job's CA and has not "
            "expired, and that both nodes use the same ca.pem"
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return TransportError(
            f"call to party '{party}' at {address} failed: {code.name}: {details}"
        )
    trailing = _trailing(call)
    kind = trailing.get(ERROR_KIND_KEY, "")
    cls = _KNOWN_KINDS.get(kind) or _CLASS_OF_STATUS.get(code, TransportError)
    if cls is JobFailedError:
        return JobFailedError(trailing.get(ERROR_PARTY_KEY, party), f"[{party}] {details}")
    if kind not in _KNOWN_KINDS:
        details = f"{code.name}: {details}"
    return cls(f"[{party}] {details}")


def _trailing(call: grpc.Call) -> dict[str, str]:
    metadata = call.trailing_metadata() or ()
    return {str(k): v if isinstance(v, str) else v.decode() for k, v in metadata}
