"""Network faults for tests: a TCP proxy that delays and cuts, a gRPC interceptor that
loses acknowledgements, duplicates and delays calls.

The proxy sits between a party and a peer's node (the job spec names the proxy's address)
and forwards the TLS bytes untouched, so mutual TLS still runs end to end. It can hold
every forwarded read back for a random delay, and it can reset the connection (RST, as a
failing middlebox or a peer's crash would) after a random number of bytes, in the middle
of whatever was streaming.

The interceptor wraps a party's outgoing federation calls in process. It can drop a call
before it leaves, deliver it and then report UNAVAILABLE as if the reply were lost (the
sender must resend and the receiver drop the copy), deliver it twice, or delay it. Every
fault is drawn from a seeded generator and counted, so a test can assert it happened.
"""

from __future__ import annotations

import collections
import random
import socket
import struct
import threading
import time
import typing as t
from collections.abc import Callable, Iterator

import grpc

_READ_BYTES = 64 * 1024


class FaultyProxy:
    """A TCP proxy from a loopback port to ``upstream`` (``host:port``), with faults.

    Parameters
    ----------
    upstream
        Where the real node listens.
    delay_s
        Upper bound of a uniform random delay before each forwarded read, either way.
    cut_every
        ``(low, high)``: after a uniform random number of forwarded bytes in that range
        (counted over all connections, both ways) the connection in use is reset.
    max_cuts
        Stop cutting after this many resets.
    seed
        Seed of the fault generator.
    """

    def __init__(
        self,
        upstream: str,
        *,
        delay_s: float = 0.0,
        cut_every: tuple[int, int] | None = None,
        max_cuts: int = 0,
        seed: int = 0,
    ) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._delay_s = delay_s
        self._cut_every = cut_every
        self._max_cuts = max_cuts
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._forwarded = 0
        self._next_cut = self._draw_cut()
        self.cuts = 0
        self.connections = 0
        self.bytes_forwarded = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _draw_cut(self) -> int | None:
        if self._cut_every is None:
            return None
        return self._forwarded + self._rng.randint(*self._cut_every)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _reset(client)  # the node is down: so is the proxy, to the dialler
                continue
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets |= {client, server}
            pair = (client, server)
            for src, dst in (pair, pair[::-1]):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        while True:
            try:
                data = src.recv(_READ_BYTES)
            except OSError:
                data = b""
            if not data:
                _close_both(pair)
                return
            if self._delay_s:
                with self._lock:
                    delay = self._rng.uniform(0, self._delay_s)
                time.sleep(delay)
            if self._should_cut(len(data)):
                _close_both(pair, reset=True)
                return
            try:
                dst.sendall(data)
            except OSError:
                _close_both(pair)
                return

    def _should_cut(self, size: int) -> bool:
        with self._lock:
            self._forwarded += size
            self.bytes_forwarded += size
            if (
                self._next_cut is None
                or self.cuts >= self._max_cuts
                or self._forwarded < self._next_cut
            ):
                return False
            self.cuts += 1
            self._next_cut = self._draw_cut()
            return True

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close_quietly(sock)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close_quietly(sock)


def _close_both(pair: tuple[socket.socket, socket.socket], *, reset: bool = False) -> None:
    for sock in pair:
        if reset:
            _reset(sock)
        else:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            _close_quietly(sock)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class _Unavailable(grpc.RpcError):
    """What grpc raises when a peer cannot be reached (code and details as a grpc.Call)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._details


class FaultyCalls(grpc.StreamUnaryClientInterceptor):  # type: ignore[misc]
    """Injects faults into a party's outgoing ``Federation.Send`` calls.

    Parameters
    ----------
    drop, lose_ack, duplicate
        Probability that a call is dropped before it leaves, delivered but its reply
        "lost" (UNAVAILABLE raised after delivery), or delivered twice.
    delay_s
        Upper bound of a uniform random delay before each call.
    seed
        Seed of the fault generator.
    """

    def __init__(
        self,
        *,
        drop: float = 0.0,
        lose_ack: float = 0.0,
        duplicate: float = 0.0,
        delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._p = {"drop": drop, "lose_ack": lose_ack, "duplicate": duplicate}
        self._delay_s = delay_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def _draw(self) -> tuple[str | None, float]:
        with self._lock:
            delay = self._rng.uniform(0, self._delay_s) if self._delay_s else 0.0
            roll = self._rng.random()
            self.counts["calls"] += 1
            for fault, p in self._p.items():
                if roll < p:
                    self.counts[fault] += 1
                    return fault, delay
                roll -= p
            return None, delay

    def intercept_stream_unary(
        self,
        continuation: Callable[[t.Any, Iterator[t.Any]], t.Any],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[t.Any],
    ) -> t.Any:
        fault, delay = self._draw()
        time.sleep(delay)
        if fault == "drop":
            raise _Unavailable("injected fault: call dropped before it left")
        chunks = list(request_iterator)
        call = continuation(client_call_details, iter(chunks))
        if fault == "lose_ack":
            call.result()  # delivered...
            raise _Unavailable("injected fault: reply lost after delivery")  # ...but unseen
        if fault == "duplicate":
            call.result()
            continuation(client_call_details, iter(chunks)).result()  # "duplicate": True
            return call
        return call
