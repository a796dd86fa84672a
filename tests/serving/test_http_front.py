"""The HTTP/JSON front: the same scores as gRPC, bearer tokens, errors as JSON, health.

An LR model is trained once through in-process nodes on the breast data (2048-bit
keys), promoted at both parties and served by real scoring servers over mutual TLS on
loopback (:mod:`tests.serving.served`). The front runs in real uvicorn servers on
loopback (a thread; once a ``lianmo http-front serve`` process over HTTPS), asked with
the standard library's HTTP client.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from lianmo.cli.http_front import front_module
from lianmo.cli.main import main
from lianmo.config import PartyConfig
from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    DataError,
    LianmoError,
    ProtocolError,
    TransportError,
    VersionMismatchError,
)
from lianmo.node.serving.features import Cell, SqliteStore
from lianmo.transport.certs import make_party_cert
from lianmo.transport.http_front import FrontSettings, answer_json, status_of
from lianmo.transport.http_tokens import TokenFile, add_token, token_digest
from lianmo.transport.scoring import IdScore, OverloadedError, ScoreAnswer, ScoreQuery
from tests.node.inprocess_nodes import GUEST, HOST, make_nodes, run_in_process
from tests.serving.front import Front, running
from tests.serving.served import Serving, configs, promote, serving, spec

LR = {"type": "hetero_lr", "epochs": 2, "batch_size": 320, "learning_rate": 0.3}
DATA = ("breast_hetero_guest.csv", "breast_hetero_host.csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("front")
    cfgs = configs(root, shared_data, "breast")
    nodes = make_nodes(root, shared_data, configs=cfgs)
    for job in (spec("m1", LR), spec("m2", {**LR, "epochs": 3})):
        run_in_process(nodes, job)
    for node in nodes.values():
        node.close()
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    return root


@pytest.fixture(scope="module")
def ids(shared_data: Path) -> list[str]:
    with (shared_data / DATA[0]).open(newline="") as fh:
        return [row["id"] for row in csv.DictReader(fh)][:40]


@pytest.fixture(scope="module")
def served(trained: Path, shared_data: Path) -> Iterator[Serving]:
    with serving(trained, configs(trained, shared_data, "breast")) as s:
        yield s


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    return path, add_token(path, "engine")


@pytest.fixture(scope="module")
def http(served: Serving, tokens: tuple[Path, str]) -> Iterator[Front]:
    with running(served.client, tokens[0], FrontSettings(max_ids=50, max_body=4096)) as front:
        yield front


def _auth(tokens: tuple[Path, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[1]}"}


def _own_copy(trained: Path, tmp_path: Path, shared_data: Path) -> dict[str, PartyConfig]:
    for name in (GUEST, HOST):
        shutil.copytree(trained / name, tmp_path / name)
        shutil.copy(trained / f"{name}.signing.key", tmp_path / f"{name}.signing.key")
    return configs(tmp_path, shared_data, "breast")


def test_scores_through_http_equal_scores_through_grpc(
    http: Front, served: Serving, tokens: tuple[Path, str], ids: list[str]
) -> None:
    asked = [*ids, "no-such-id"]
    got = http.post("/v1/score", json={"model": "credit", "ids": asked}, headers=_auth(tokens))
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    direct = served.client.score(ScoreQuery("credit", "", tuple(asked)), 10)
    assert got.json() == answer_json(direct)  # floats survive JSON exactly
    body = got.json()
    assert (body["model"], body["version"], body["task"]) == ("credit", "m1", "binary")
    assert [s["id"] for s in body["scores"]] == asked
    assert all(0 < s["values"][0] < 1 and not s["error"] for s in body["scores"][:-1])
    assert body["scores"][-1]["values"] == [] and "no features" in body["scores"][-1]["error"]


def test_the_guests_own_features_in_the_request_reach_the_guest(
    http: Front, served: Serving, tokens: tuple[Path, str], ids: list[str]
) -> None:
    rows = [{"x0": 3.5, "x1": -0.25}, {"x2": -1}]
    request = {"model": "credit", "version": "m1", "ids": ids[:2], "features": rows}
    got = http.post("/v1/score", json=request, headers=_auth(tokens))
    assert got.status_code == 200, got.text
    plain = served.client.score(ScoreQuery("credit", "", tuple(ids[:2])), 10)
    given = served.client.score(
        ScoreQuery("credit", "m1", tuple(ids[:2]), ({"x0": 3.5, "x1": -0.25}, {"x2": -1.0})), 10
    )
    assert got.json() == answer_json(given)
    assert [s.values for s in given.scores] != [s.values for s in plain.scores]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer lmt_not-a-token", "Basic ZW5naW5lOnB3", "Bearer ", "bearer"],
    ids=["none", "wrong", "basic", "empty", "no-token"],
)
def test_a_request_without_an_accepted_token_gets_401(
    http: Front, ids: list[str], header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    got = http.post("/v1/score", json={"ids": ids[:1]}, headers=headers)
    assert got.status_code == 401
    assert got.headers["www-authenticate"].startswith("Bearer")
    assert got.json()["kind"] == "AuthenticationError"
    assert "bearer token" in got.json()["error"]


BAD = {
    "not-json": (b'{"ids": [', "not JSON"),
    "nan": (b'{"ids": ["1"], "features": [{"x0": NaN}]}', "not JSON"),
    "deep": (b"[" * 2000 + b"]" * 2000, "not JSON"),
    "array": (b'["1", "2"]', "must be a JSON object"),
    "no-ids": (b'{"model": "credit"}', "non-empty list of strings"),
    "empty-ids": (b'{"ids": []}', "non-empty list of strings"),
    "number-ids": (b'{"ids": [133, 7]}', "non-empty list of strings"),
    "typo": (b'{"id": ["133"]}', r"unknown field\(s\) \['id'\]"),
    "model-type": (b'{"model": 1, "ids": ["133"]}', "must be strings"),
    "too-many": (json.dumps({"ids": [str(i) for i in range(51)]}).encode(), "at most 50"),
    "rows": (b'{"ids": ["133", "1"], "features": [{}]}', "one object per id"),
    "bool": (b'{"ids": ["133"], "features": [{"x0": true}]}', "not bool"),
    "blank-id": (b'{"ids": ["133", " "]}', "empty or longer"),  # the guest's own check
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_request_gets_400_with_a_json_error(
    http: Front, tokens: tuple[Path, str], case: str
) -> None:
    body, message = BAD[case]
    headers = {**_auth(tokens), "content-type": "application/json"}
    got = http.post("/v1/score", content=body, headers=headers)
    assert got.status_code == 400, got.text
    assert got.json()["kind"] == "ProtocolError"
    assert "Traceback" not in got.text
    assert re.search(message, got.json()["error"]), got.json()["error"]


@pytest.mark.parametrize(
    ("kind", "headers", "body", "status"),
    [
        ("timeout-text", {"lianmo-timeout-ms": "soon"}, None, 400),
        ("timeout-zero", {"lianmo-timeout-ms": "0"}, None, 400),
        ("timeout-huge", {"lianmo-timeout-ms": "60001"}, None, 400),
        ("text-plain", {"content-type": "text/plain"}, None, 415),
        ("big-body", {}, json.dumps({"ids": ["x" * 200] * 30}).encode(), 413),
    ],
)
def test_bad_headers_and_oversized_bodies_are_refused_before_the_guest_is_asked(
    http: Front,
    tokens: tuple[Path, str],
    kind: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
) -> None:
    content = body or b'{"model": "credit", "ids": ["133"]}'
    sent = {**_auth(tokens), "content-type": "application/json", **headers}
    got = http.post("/v1/score", content=content, headers=sent)
    assert got.status_code == status, got.text
    assert set(got.json()) == {"error", "kind"}


def test_the_guests_refusals_keep_their_class_and_get_a_fitting_status(
    http: Front, tokens: tuple[Path, str], ids: list[str]
) -> None:
    wrong = http.post(
        "/v1/score",
        json={"model": "credit", "version": "m0", "ids": ids[:1]},
        headers=_auth(tokens),
    )
    assert wrong.status_code == 409
    assert wrong.json()["kind"] == "VersionMismatchError"
    assert "serves version 'm1'" in wrong.json()["error"]
    unknown = http.post("/v1/score", json={"model": "nope", "ids": ids[:1]}, headers=_auth(tokens))
    assert unknown.status_code == 400
    assert unknown.json()["kind"] == "ConfigError" and "'nope'" in unknown.json()["error"]
    column = http.post(
        "/v1/score",
        json={"model": "credit", "ids": ids[:1], "features": [{"salary": 1}]},
        headers=_auth(tokens),
    )
    assert column.status_code == 400 and "'salary'" in column.json()["error"]
    missing = http.post(  # null is a missing cell; this model has no rule for one
        "/v1/score",
        json={"model": "credit", "ids": ids[:1], "features": [{"x1": None}]},
        headers=_auth(tokens),
    )
    assert missing.status_code == 400 and missing.json()["kind"] == "DataError"
    assert "column 'x1' has a missing cell" in missing.json()["error"]
    for method, path, status in (("GET", "/v1/score", 405), ("GET", "/v2/score", 404)):
        got = http.request(method, path, headers=_auth(tokens))
        assert got.status_code == status
        assert "POST /v1/score" in got.json()["error"]


def test_the_json_answer_carries_every_field_of_the_grpc_answer() -> None:
    card = IdScore("c-1", (0.25,), "", False, 612.5, ("x3", "x0"))
    answer = ScoreAnswer("card", "sc1", "scorecard", (card, IdScore("c-2", error="no row")))
    out = answer_json(answer)
    assert set(out) == {f.name for f in dataclasses.fields(ScoreAnswer)}
    scores = t.cast(list[dict[str, object]], out["scores"])
    assert all(set(s) == {f.name for f in dataclasses.fields(IdScore)} for s in scores)
    assert scores[0] == {
        "id": "c-1",
        "values": [0.25],
        "error": "",
        "fallback": False,
        "points": 612.5,
        "reasons": ["x3", "x0"],
    }
    assert scores[1]["points"] is None and scores[1]["values"] == []
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OverloadedError("busy"), 429),
        (AuthenticationError("front not a client"), 502),
        (TransportError("host down"), 503),
        (VersionMismatchError("m2"), 409),
        (ConfigError("no such model"), 400),
        (ProtocolError("bad"), 400),
        (DataError("bad cell"), 400),
        (LianmoError("other"), 500),
        (ValueError("bug"), 500),
    ],
)
def test_each_error_class_has_its_status(error: Exception, status: int) -> None:
    assert status_of(error) == status


def test_a_stopped_host_gives_503_and_a_stopped_guest_fails_the_health_check(
    trained: Path, tmp_path: Path, shared_data: Path, tokens: tuple[Path, str], ids: list[str]
) -> None:
    cfgs = _own_copy(trained, tmp_path, shared_data)
    with serving(tmp_path, cfgs, deadline_ms=500.0) as s, running(s.client, tokens[0]) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        request = {"model": "credit", "ids": ids[:5]}
        assert http.post("/v1/score", json=request, headers=_auth(tokens)).status_code == 200
        s.stop_host()
        started = time.monotonic()
        got = http.post(
            "/v1/score", json=request, headers={**_auth(tokens), "lianmo-timeout-ms": "1500"}
        )
        assert time.monotonic() - started < 1.5
        assert got.status_code == 503, got.text
        assert got.json()["kind"] == "TransportError"
        assert f"from host '{HOST}'" in got.json()["error"]
        assert http.get("/healthz").status_code == 200  # the guest itself still answers
        s.servers[GUEST].stop(0).wait()  # type: ignore[attr-defined]
        health = http.get("/healthz")
        assert health.status_code == 503 and health.json()["kind"] == "TransportError"
        got = http.post("/v1/score", json=request, headers=_auth(tokens))
        assert got.status_code == 503 and got.json()["kind"] == "TransportError"


def test_a_host_serving_another_version_gives_409_never_a_mixed_score(
    trained: Path, tmp_path: Path, shared_data: Path, tokens: tuple[Path, str], ids: list[str]
) -> None:
    cfgs = _own_copy(trained, tmp_path, shared_data)
    with serving(tmp_path, cfgs) as s, running(s.client, tokens[0]) as http:
        request = {"model": "credit", "ids": ids[:3]}
        assert http.post("/v1/score", json=request, headers=_auth(tokens)).status_code == 200
        promote(cfgs[GUEST], "credit", "m2")  # the guest moves on alone
        got = http.post("/v1/score", json=request, headers=_auth(tokens))
        assert got.status_code == 409, got.text
        assert got.json()["kind"] == "VersionMismatchError"
        assert f"from host '{HOST}'" in got.json()["error"]
        assert "serves version 'm1' of model 'credit', not 'm2'" in got.json()["error"]
        promote(cfgs[HOST], "credit", "m2")
        got = http.post("/v1/score", json=request, headers=_auth(tokens))
        assert got.status_code == 200 and got.json()["version"] == "m2"


class _Slow:
    """A host feature store that takes ``delay`` seconds per lookup (an institution's own)."""

    def __init__(self, inner: SqliteStore, delay: float) -> None:
        self.inner, self.delay = inner, delay

    @property
    def columns(self) -> Sequence[str]:
        return self.inner.columns

    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[Cell, ...]]:
        time.sleep(self.delay)
        return self.inner.lookup(ids)


def test_a_slow_host_gives_503_at_the_deadline_and_the_front_refuses_more_with_429(
    trained: Path, tmp_path: Path, shared_data: Path, tokens: tuple[Path, str], ids: list[str]
) -> None:
    cfgs = _own_copy(trained, tmp_path, shared_data)
    host = cfgs[HOST]
    slow = _Slow(SqliteStore(HOST, host.dataset("table"), host.state_dir / "features"), 1.5)
    request = {"model": "credit", "ids": ids[:1]}
    with (
        serving(tmp_path, cfgs, stores={HOST: {"table": slow}}, deadline_ms=5000.0) as s,
        running(s.client, tokens[0], FrontSettings(max_inflight=1)) as http,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        started = time.monotonic()
        headers = {**_auth(tokens), "lianmo-timeout-ms": "1000"}
        first = pool.submit(http.post, "/v1/score", json=request, headers=headers)
        time.sleep(0.5)  # the first is at the guest now (it is held there for 1 s)
        busy = http.post("/v1/score", json=request, headers=_auth(tokens))
        assert not first.done()
        assert busy.status_code == 429, busy.text
        assert busy.json()["kind"] == "OverloadedError"
        assert busy.headers["retry-after"] == "1"
        hung = first.result()
        waited = time.monotonic() - started
    assert hung.status_code == 503 and hung.json()["kind"] == "TransportError", hung.text
    assert 0.9 < waited < 1.5  # the request's own deadline: not the guest's 5 s, nor 1.5 s


def test_the_tokens_file_holds_digests_only_and_a_deleted_line_revokes_its_token(
    tmp_path: Path, served: Serving, ids: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    with pytest.raises(SystemExit) as done:
        main(["http-front", "token", "--tokens", str(path), "--name", "engine-a"])
    assert done.value.code == 0
    token_a = capsys.readouterr().out.strip()
    token_b = add_token(path, "engine-b")
    text = path.read_text()
    assert token_a.startswith("lmt_") and len(token_a) == 47 and token_a != token_b
    assert token_a not in text and token_b not in text
    assert f"{token_digest(token_a)}  engine-a" in text
    assert path.stat().st_mode & 0o777 == 0o600
    with running(served.client, path) as http:
        request = {"model": "credit", "ids": ids[:1]}
        for token in (token_a, token_b):
            got = http.post("/v1/score", json=request, headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 200, got.text
        path.write_text("\n".join(line for line in text.splitlines() if "engine-a" not in line))
        gone = http.post("/v1/score", json=request, headers={"Authorization": f"Bearer {token_a}"})
        assert gone.status_code == 401
        with pytest.raises(ConfigError, match="already has a token named 'engine-b'"):
            add_token(path, "engine-b")
        with path.open("a") as fh:  # an operator pastes a token in by mistake
            fh.write(f"\n{token_b}  engine-c\n")
        with pytest.raises(ConfigError, match=r"line 3 of the tokens file .* digests only") as err:
            TokenFile(path)
        assert token_b not in str(err.value)
        broken = http.post(
            "/v1/score", json=request, headers={"Authorization": f"Bearer {token_b}"}
        )
        assert broken.status_code == 500 and broken.json()["kind"] == "ConfigError"


def test_without_the_extra_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "lianmo.transport.http_front")
    for name in [m for m in sys.modules if m.split(".")[0] == "starlette"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'lianmo\[http\]'"):
        front_module()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-ids", "0"], "--max-ids must be 1..10000, not 0"),
        (["--timeout", "45"], "--timeout must be above 0 and at most 30.0 s"),
        (["--tokens", "missing.txt"], "cannot read the HTTP front's tokens file missing.txt"),
    ],
)
def test_lianmo_http_front_serve_refuses_bad_settings_in_one_line(
    tokens: tuple[Path, str], capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    args = ["--guest", "127.0.0.1:1", "--party", GUEST, "--ca", "ca.pem", "--cert", "c.pem"]
    args += ["--key", "c.key", "--tokens", str(tokens[0]), *flags]
    with pytest.raises(SystemExit) as done:
        main(["http-front", "serve", *args])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("lianmo: error: ") and message in err and len(err.splitlines()) == 1


def test_lianmo_http_front_serve_answers_over_https_and_stops_on_sigterm(
    served: Serving, trained: Path, tokens: tuple[Path, str], tmp_path: Path, ids: list[str]
) -> None:
    certs = tmp_path / "https"
    certs.mkdir()
    ca = trained / "certs"  # tests.serving.served.identities: the CA and decision-engine
    cert, key = make_party_cert(
        (ca / "ca.pem").read_bytes(), (ca / "ca/ca.key").read_bytes(), "localhost"
    )
    (certs / "localhost.pem").write_bytes(cert)
    (certs / "localhost.key").write_bytes(key)
    port_file = tmp_path / "front.port"
    args = [
        *("--listen", "127.0.0.1:0", "--guest", f"127.0.0.1:{served.ports[GUEST]}"),
        *("--party", GUEST, "--ca", ca / "ca.pem"),
        *("--cert", ca / "decision-engine.pem", "--key", ca / "decision-engine.key"),
        *("--tokens", tokens[0], "--port-file", port_file),
        *("--tls-cert", certs / "localhost.pem", "--tls-key", certs / "localhost.key"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lianmo.cli.main", "http-front", "serve", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the front never wrote its port"
            time.sleep(0.05)
        url = f"https://localhost:{port_file.read_text()}"
        client = Front(url, ssl.create_default_context(cafile=str(ca / "ca.pem")))
        assert client.get("/healthz").status_code == 200
        got = client.post("/v1/score", json={"model": "credit", "ids": ids}, headers=_auth(tokens))
        assert got.status_code == 200, got.text
        assert got.json() == answer_json(
            served.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "HTTP front on https://127.0.0.1:" in out and "HTTP front stopped" in out
    assert tokens[1] not in out
