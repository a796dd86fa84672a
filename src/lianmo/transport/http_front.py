"""The HTTP/JSON front for decision engines: ``POST /v1/score`` onto a guest's scoring port.

Each HTTP request becomes exactly one ``lianmo.v1.Scoring/Score`` call to the guest, made
by a :class:`~lianmo.transport.scoring.ScoringClient` (mutual TLS, the front's own
certificate, which the guest must list in ``[serving] clients``). The request's deadline
(header ``Lianmo-Timeout-Ms``, or the default) is that call's gRPC deadline.

Callers authenticate with ``Authorization: Bearer TOKEN``
(:mod:`lianmo.transport.http_tokens`). Every error is a JSON body ``{"error", "kind"}``
with the status of :func:`status_of`, never a traceback. Bounded: request bodies, ids per
request, requests in flight (the next is refused with 429 at once), and, in
:class:`HttpServer`, connections.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import socket
import ssl
import threading
import time
import types
import typing as t
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import anyio
import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    DataError,
    LianmoError,
    ProtocolError,
    TransportError,
    VersionMismatchError,
)
from lianmo.transport.http_tokens import TokenFile
from lianmo.transport.scoring import MAX_IDS, Cell, OverloadedError, ScoreAnswer, ScoreQuery

if t.TYPE_CHECKING:
    from lianmo.transport.scoring import ScoringClient

TIMEOUT_HEADER = "lianmo-timeout-ms"
_LOG = logging.getLogger("lianmo.http")
_FIELDS = {"model", "version", "ids", "features"}
#: the answer carries scores of people: no cache on the way may keep it
_NO_STORE = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class FrontSettings:
    """The front's bounds and defaults (``lianmo http-front serve`` flags)."""

    max_body: int = 1 << 20  # bytes of one request body
    max_ids: int = 1000  # ids per request (the guest's [serving] max_ids applies too)
    timeout_s: float = 2.0  # the gRPC deadline when a request sets none
    max_timeout_s: float = 30.0  # the longest deadline a request may ask for
    max_inflight: int = 64  # requests at the guest at once; the next gets 429
    health_timeout_s: float = 0.5  # how long /healthz waits for the guest's port

    def __post_init__(self) -> None:
        if not 1 <= self.max_ids <= MAX_IDS:
            raise ConfigError(f"--max-ids must be 1..{MAX_IDS}, not {self.max_ids}")
        if self.max_body < 1024:
            raise ConfigError(f"--max-body must be at least 1024 bytes, not {self.max_body}")
        if self.max_inflight < 1:
            raise ConfigError(f"--max-inflight must be at least 1, not {self.max_inflight}")
        if not 0 < self.timeout_s <= self.max_timeout_s:
            raise ConfigError(
                f"--timeout must be above 0 and at most {self.max_timeout_s} s, not "
                f"{self.timeout_s}"
            )


class FrontError(Exception):
    """A request the front refuses itself, before asking the guest."""

    def __init__(
        self, status: int, kind: str, text: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(text)
        self.status, self.kind, self.text = status, kind, text
        self.headers = headers or {}


def status_of(exc: BaseException) -> int:
    """The HTTP status for an error the guest (or the way to it) answered with."""
    if isinstance(exc, OverloadedError):
        return 429  # the guest's bounded queue is full: retry shortly
    if isinstance(exc, AuthenticationError):
        return 502  # the guest refused this front's certificate: the front's operator fixes it
    if isinstance(exc, TransportError):
        return 503  # the guest or one of its hosts is unreachable, or the deadline passed
    if isinstance(exc, VersionMismatchError):
        return 409
    if isinstance(exc, (ProtocolError, DataError, ConfigError)):
        return 400  # a malformed request, an unknown model, a column the guest lacks
    return 500


def error_response(
    status: int, kind: str, text: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": text, "kind": kind}, status, headers={**_NO_STORE, **(headers or {})}
    )


def answer_json(answer: ScoreAnswer) -> dict[str, object]:
    """The answer as JSON: every field of :class:`ScoreAnswer` and :class:`IdScore`."""
    return {
        "model": answer.model,
        "version": answer.version,
        "task": answer.task,
        "scores": [
            {
                "id": s.id,
                "values": list(s.values),
                "error": s.error,
                "fallback": s.fallback,
                "points": s.points,  # null unless a scorecard
                "reasons": list(s.reasons),
            }
            for s in answer.scores
        ],
        "fallback_hosts": list(answer.fallback_hosts),
    }


# ---- reading a request ---------------------------------------------------------------


def _bad(text: str) -> FrontError:
    return FrontError(400, ProtocolError.__name__, text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def query_from_json(body: bytes, max_ids: int) -> ScoreQuery:
    """The :class:`ScoreQuery` a request body asks for, checked (FrontError 400 if not)."""
    try:
        raw = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"the request body is not JSON ({exc}); send a JSON object") from None
    if not isinstance(raw, dict):
        raise _bad('the request body must be a JSON object: {"model": ..., "ids": [...]}')
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _bad(f"unknown field(s) {unknown}; a request has {sorted(_FIELDS)}")
    model, version = raw.get("model", ""), raw.get("version", "")
    if not isinstance(model, str) or not isinstance(version, str):
        raise _bad("'model' and 'version' must be strings ('' or left out: the defaults)")
    ids = raw.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _bad("'ids' must be a non-empty list of strings (ids are text: '007' is not 7)")
    if len(ids) > max_ids:
        raise _bad(f"the request names {len(ids)} ids; this front takes at most {max_ids}")
    features = raw.get("features", [])
    if not isinstance(features, list) or (features and len(features) != len(ids)):
        raise _bad(
            f"'features' must be a list of one object per id ({len(ids)}), in the order of "
            "'ids', or left out"
        )
    rows = tuple(_row(k, row) for k, row in enumerate(features))
    return ScoreQuery(model, version, tuple(ids), rows)


def _row(k: int, row: object) -> dict[str, Cell]:
    if not isinstance(row, dict):
        raise _bad(f"features[{k}] must be an object: column name -> value")
    out: dict[str, Cell] = {}
    for column, value in row.items():
        if value is None or isinstance(value, str):
            out[column] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _bad(f"features[{k}][{column!r}] is not a finite number")
            out[column] = float(value)
        else:
            raise _bad(
                f"features[{k}][{column!r}] must be a number, a text (a category) or null "
                f"(missing), not {type(value).__name__}"
            )
    return out


def _timeout(request: Request, settings: FrontSettings) -> float:
    text = request.headers.get(TIMEOUT_HEADER)
    if text is None:
        return settings.timeout_s
    try:
        ms = float(text)
    except ValueError:
        ms = math.nan
    if not 0 < ms <= settings.max_timeout_s * 1000:
        raise _bad(
            f"header {TIMEOUT_HEADER} must be milliseconds above 0 and at most "
            f"{settings.max_timeout_s * 1000:.0f}"
        )
    return ms / 1000


async def _body(request: Request, limit: int) -> bytes:
    too_big = FrontError(
        413, ProtocolError.__name__, f"the request body is over {limit} bytes; send fewer ids"
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind.lower() != "application/json":
        raise FrontError(415, ProtocolError.__name__, "send the body as application/json")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer(request: Request, tokens: TokenFile) -> str:
    """The name of the caller's token (FrontError 401 without a token it accepts)."""
    challenge = {"www-authenticate": 'Bearer realm="lianmo"'}
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise FrontError(
            401,
            AuthenticationError.__name__,
            "no bearer token: send the header 'Authorization: Bearer TOKEN'",
            challenge,
        )
    try:
        holder = tokens.holder(token.strip())
    except ConfigError as exc:  # the front's own file: its operator's problem, not the caller's
        _LOG.error("refusing every request: %s", exc)
        raise FrontError(
            500,
            ConfigError.__name__,
            "the front cannot check bearer tokens now (its tokens file is unreadable or "
            "malformed); its log says why",
        ) from exc
    if holder is None:
        raise FrontError(
            401,
            AuthenticationError.__name__,
            "the bearer token is not one this front accepts (unknown or revoked); ask the "
            "front's operator for a token",
            challenge,
        )
    return holder


# ---- the app -------------------------------------------------------------------------


def make_app(
    client: ScoringClient, tokens: TokenFile, settings: FrontSettings | None = None
) -> Starlette:
    """The ASGI app: ``POST /v1/score`` (bearer token) and ``GET /healthz`` (open)."""
    settings = settings or FrontSettings()
    limiter = anyio.CapacityLimiter(settings.max_inflight)
    inflight = 0

    async def score(request: Request) -> JSONResponse:
        nonlocal inflight
        started = time.monotonic()
        who, query = "-", None
        try:
            who = _bearer(request, tokens)
            timeout = _timeout(request, settings)
            query = query_from_json(await _body(request, settings.max_body), settings.max_ids)
            if inflight >= settings.max_inflight:  # no await from here to the increment
                raise FrontError(
                    429,
                    OverloadedError.__name__,
                    f"the front has {settings.max_inflight} requests in flight; retry shortly",
                    {"retry-after": "1"},
                )
            inflight += 1
            try:
                answer = await anyio.to_thread.run_sync(
                    client.score, query, timeout, limiter=limiter
                )
            finally:
                inflight -= 1
        except FrontError as exc:
            response = error_response(exc.status, exc.kind, exc.text, exc.headers)
        except LianmoError as exc:
            status = status_of(exc)
            headers = {"retry-after": "1"} if status == 429 else None
            response = error_response(status, type(exc).__name__, str(exc), headers)
        except Exception as exc:  # never a traceback to the caller; the log has it
            _LOG.exception("POST /v1/score failed (token '%s')", who)
            response = error_response(500, type(exc).__name__, "internal error in the front")
        else:
            response = JSONResponse(answer_json(answer), headers=_NO_STORE)
        ids = len(query.ids) if query is not None else 0
        _LOG.info(
            "score: token '%s', %d ids, %d, %.1f ms",
            *(who, ids, response.status_code, (time.monotonic() - started) * 1000),
        )
        return response

    async def healthz(request: Request) -> JSONResponse:
        up = await anyio.to_thread.run_sync(client.ready, settings.health_timeout_s)
        if up:
            return JSONResponse({"status": "ok"}, headers=_NO_STORE)
        return error_response(
            503, TransportError.__name__, "the guest's scoring port does not answer"
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        kind = HTTPStatus(status).phrase.replace(" ", "")
        text = "use POST /v1/score or GET /healthz" if status in (404, 405) else kind
        return error_response(status, kind, text)

    return Starlette(
        routes=[
            Route("/v1/score", score, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )


# ---- the server ----------------------------------------------------------------------


def split_listen(listen: str) -> tuple[str, int]:
    """``"0.0.0.0:8080"`` or ``"[::1]:8080"`` -> (host, port)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen {listen!r} is not HOST:PORT (e.g. 0.0.0.0:8080)")
    return host, int(port)


class HttpServer:
    """uvicorn serving ``app`` on ``listen`` (port 0: a free one), HTTPS given a cert.

    The socket is bound at once, so :attr:`port` is known before :meth:`run`; ``run``
    blocks until SIGINT/SIGTERM (main thread) or :meth:`stop`.
    """

    def __init__(
        self,
        app: Starlette,
        listen: str,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        max_connections: int = 1000,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("give both --tls-cert and --tls-key for HTTPS, or neither")
        if tls_cert is not None and tls_key is not None:
            _check_tls(tls_cert, tls_key)
        host, port = split_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise ConfigError(
                f"the HTTP front cannot listen on {listen!r} ({exc.strerror}); choose another "
                "--listen"
            ) from exc
        self.host, self.port = host, int(self._socket.getsockname()[1])
        self.https = tls_cert is not None
        config = uvicorn.Config(
            app,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            limit_concurrency=max_connections,  # beyond it: 503 at once
            timeout_keep_alive=5,
            server_header=False,
            log_config=None,  # lianmo's own logging (lianmo.cli.logs): text or JSON lines
            log_level=None,
        )
        self._server = uvicorn.Server(config)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (in the main thread) or :meth:`stop`, then return.

        uvicorn drains open requests on a signal and then raises it again under the
        handlers it found; those are no-ops here, so the command ends normally (exit 0).
        """
        main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGINT, signal.SIGTERM) if main else ()
        previous = {sig: signal.signal(sig, _stopping) for sig in signals}
        try:
            self._server.run(sockets=[self._socket])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._socket.close()

    def stop(self) -> None:
        self._server.should_exit = True

    @property
    def started(self) -> bool:
        return bool(self._server.started)


def _stopping(sig: int, frame: types.FrameType | None) -> None:
    """Under uvicorn's own handler while it runs; after it, the re-raised signal lands here."""


def _check_tls(cert: Path, key: Path) -> None:
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"the HTTPS certificate {cert} and key {key} do not load ({exc}); give a PEM "
            "certificate (chain) and its private key"
        ) from exc
