"""Ray carries Paillier key factors: a Ray cluster over a network needs Ray's TLS.

Decryption chunks hold the key's factors p and q, and Ray sends them in clear text unless
its TLS is on. An address that crosses a network (``ray://HEAD:10001``, ``HOST:6379``) is
refused without TLS, in the party config and again by the backend itself, before any byte
is sent; ``local`` (Ray inside the node) and ``auto`` on a one-machine cluster stay
allowed, since their traffic never leaves the machine.
"""

from __future__ import annotations

import socket
import typing as t
from pathlib import Path

import pytest

from lianmo.compute.backend import make_backend
from lianmo.compute.ray_backend import RayBackend, cluster_problem
from lianmo.config import PartyConfig
from lianmo.config.party import ray_tls_on
from lianmo.errors import ConfigError

TLS_ENV = {
    "RAY_USE_TLS": "1",
    "RAY_TLS_SERVER_CERT": "/etc/ray/tls.crt",
    "RAY_TLS_SERVER_KEY": "/etc/ray/tls.key",
    "RAY_TLS_CA_CERT": "/etc/ray/ca.crt",
}


@pytest.fixture(autouse=True)
def _no_ray_tls_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, **compute: t.Any) -> PartyConfig:
    return PartyConfig.from_dict(
        {
            "name": "arbiter",
            "listen": "127.0.0.1:0",
            "state_dir": "s",
            "tls": {"cert": "c", "key": "k", "ca": "a"},
            "compute": {"backend": "ray", **compute},
        },
        base=tmp_path,
        source="arbiter.toml",
    )


@pytest.mark.parametrize("address", ["ray://ray-head.lianmo.svc:10001", "10.0.0.5:6379"])
def test_a_remote_ray_cluster_without_tls_is_refused_by_the_party_config(
    tmp_path: Path, address: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, address=address)
    assert str(info.value) == (
        f"arbiter.toml: compute.address is '{address}', a Ray cluster reached over the "
        "network, but Ray's TLS is off: Ray would carry this party's Paillier key factors "
        "in clear text. Turn Ray's TLS on with [compute] tls_cert, tls_key and tls_ca (or "
        "RAY_USE_TLS=1 with RAY_TLS_SERVER_CERT, RAY_TLS_SERVER_KEY, RAY_TLS_CA_CERT in the "
        "node's environment), with the cluster itself started with RAY_USE_TLS=1; or use "
        "address = 'local' or 'auto' on this machine"
    )


def test_ray_tls_from_the_config_or_the_environment_lets_a_remote_cluster_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = "ray://ray-head.lianmo.svc:10001"
    files = {"tls_cert": "ray.pem", "tls_key": "ray.key", "tls_ca": "ray-ca.pem"}
    config = _config(tmp_path, address=remote, **files)
    assert config.ray_tls == tuple(tmp_path / f for f in files.values())
    for name, value in TLS_ENV.items():
        monkeypatch.setenv(name, value)
    assert ray_tls_on() and _config(tmp_path, address=remote).ray_tls is None
    # RAY_USE_TLS without its files is not TLS (Ray itself would fail at connect)
    monkeypatch.delenv("RAY_TLS_CA_CERT")
    assert not ray_tls_on()
    with pytest.raises(ConfigError, match="compute.address is .* but Ray's TLS is off"):
        _config(tmp_path, address=remote)
    monkeypatch.setenv("RAY_TLS_CA_CERT", "/etc/ray/ca.crt")
    monkeypatch.setenv("RAY_USE_TLS", "0")
    assert not ray_tls_on()


@pytest.mark.parametrize("address", ["local", "auto"])
def test_ray_on_this_machine_needs_no_tls(tmp_path: Path, address: str) -> None:
    assert _config(tmp_path, address=address).compute_address == address


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        (
            {"address": "local", "tls_cert": "a.pem"},
            r"compute.tls_key is missing: Ray's TLS needs tls_cert, tls_key and tls_ca "
            r"together \(the config sets tls_cert\); add tls_key, tls_ca",
        ),
        (
            {"backend": "local", "tls_ca": "ca.pem"},
            r"compute.tls_ca applies only to backend = 'ray' \(compute.backend is 'local'\)",
        ),
    ],
)
def test_ray_tls_keys_come_together_and_only_with_ray(
    tmp_path: Path, compute: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, **compute)


def test_the_backend_itself_refuses_before_a_byte_reaches_the_cluster() -> None:
    """A Ray head listening on loopback never sees a connection from a refused backend."""
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        head.setblocking(False)
        address = f"ray://127.0.0.1:{head.getsockname()[1]}"
        for attempt in (lambda: RayBackend(address), lambda: make_backend("ray", None, address)):
            with pytest.raises(ConfigError, match=r"\[compute\] address is 'ray://127.0.0.1:"):
                attempt()
        with pytest.raises(BlockingIOError):
            head.accept()  # nobody dialled it


@pytest.mark.parametrize(
    ("address", "machines", "tls", "refused"),
    [
        ("auto", 1, False, False),
        ("auto", 3, False, True),
        ("auto", 3, True, False),
        ("local", 1, False, False),
        ("ray://head:10001", 4, True, False),  # reached only with TLS (checked before)
    ],
)
def test_auto_is_refused_once_the_cluster_spans_machines_without_tls(
    address: str, machines: int, tls: bool, refused: bool
) -> None:
    problem = cluster_problem(address, machines, tls)
    assert (problem is not None) == refused
    if problem:
        assert problem.startswith(
            "[compute] address = 'auto' joined a Ray cluster of 3 machines, but Ray's TLS is "
            "off: this party's Paillier key factors would cross the network in clear text."
        )
