"""The HTTP front in a real uvicorn server on loopback, asked with the standard library."""

from __future__ import annotations

import json as _json
import ssl
import threading
import time
import typing as t
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from lianmo.transport.http_front import FrontSettings, HttpServer, make_app
from lianmo.transport.http_tokens import TokenFile
from lianmo.transport.scoring import ScoringClient


@dataclass(frozen=True)
class Reply:
    status_code: int
    headers: Message
    text: str

    def json(self) -> t.Any:
        return _json.loads(self.text)


class Front:
    """Requests to a front at ``url`` (no proxy from the environment; ``context`` for HTTPS)."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.url = url
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {k.capitalize(): v for k, v in (headers or {}).items()}  # as urllib sends them
        if json is not None:
            content = _json.dumps(json).encode()
        if content is not None:
            sent.setdefault("Content-type", "application/json")  # not urllib's form default
        request = urllib.request.Request(self.url + path, content, sent, method=method)
        try:
            with self._opener.open(request, timeout=30) as reply:
                return Reply(reply.status, reply.headers, reply.read().decode())
        except urllib.error.HTTPError as err:
            with err:
                return Reply(err.code, err.headers, err.read().decode())

    def post(self, path: str, **kwargs: t.Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: t.Any) -> Reply:
        return self.request("GET", path, **kwargs)


@contextmanager
def running(
    client: ScoringClient, tokens: Path, settings: FrontSettings | None = None
) -> Iterator[Front]:
    """A front for ``client`` served by uvicorn in a thread on 127.0.0.1 (plaintext HTTP)."""
    server = HttpServer(make_app(client, TokenFile(tokens), settings), "127.0.0.1:0")
    thread = threading.Thread(target=server.run, name="http-front", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield Front(server.url)
    finally:
        server.stop()
        thread.join(10)
