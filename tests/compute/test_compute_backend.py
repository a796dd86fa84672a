"""Tests for the compute backends: chunking, the factory, and serial-versus-pool equality.

The contract: a kernel's output never depends on the backend, so every chunked Paillier
operation gives bit-for-bit the same ciphertexts on a process pool as in this process,
for the same Drbg seed. Inputs are sized so that the pool really splits the work.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.compute import (
    ComputeBackend,
    ProcessPoolBackend,
    SerialBackend,
    chunk_bounds,
    make_backend,
)
from lianmo.compute.backend import cpu_quota_cores, usable_cores
from lianmo.compute.ray_backend import RayBackend
from lianmo.config import PartyConfig
from lianmo.crypto import CipherVector, Drbg, PrivateKey, PublicKey, generate_keypair
from lianmo.crypto.packing import Packing
from lianmo.crypto.psi import MIN_CHUNK as PSI_MIN_CHUNK
from lianmo.crypto.psi import PsiKey, hash_ids
from lianmo.errors import ConfigError, CryptoError, LianmoError

Keypair = tuple[PublicKey, PrivateKey]
T = t.TypeVar("T")
R = t.TypeVar("R")

SEED = b"lianmo-compute-contract-seed-000"
ROWS = 600  # above every row-chunk threshold: 2 x 256 for matvec and histogram
INT64_MAX = 2**63 - 1


class CountingBackend(ComputeBackend):
    """Forwards to another backend and records how many chunks each map call got."""

    def __init__(self, inner: ComputeBackend) -> None:
        self.inner = inner
        self.workers = inner.workers
        self.chunks: list[int] = []

    def map(self, kernel: t.Callable[[T], R], chunks: t.Sequence[T]) -> list[R]:
        self.chunks.append(len(chunks))
        return self.inner.map(kernel, chunks)


@pytest.fixture(scope="module")
def keypair() -> Keypair:
    """A 1024-bit keypair: fast enough for unit tests, far too small for real use."""
    return generate_keypair(1024, insecure_test_size=True)


@pytest.fixture(scope="module")
def local_pool() -> t.Iterator[ComputeBackend]:
    with ProcessPoolBackend(2) as backend:
        yield backend


@pytest.fixture(scope="module")
def ray_pool() -> t.Iterator[RayBackend]:
    """A Ray instance started in this process, on two cores."""
    with RayBackend("local", cpus=2) as backend:
        yield backend


@pytest.fixture(scope="module", params=["local", "ray"])
def pool(request: pytest.FixtureRequest) -> ComputeBackend:
    """A parallel backend with two workers: the local process pool, or a local Ray cluster.

    Every contract test below runs on both, against the serial backend.
    """
    return t.cast(ComputeBackend, request.getfixturevalue(f"{request.param}_pool"))


@pytest.fixture
def split(pool: ComputeBackend) -> CountingBackend:
    """The pool, recording chunk counts so a test can check the work was really split."""
    return CountingBackend(pool)


def _rng(label: str = "") -> Drbg:
    return Drbg(SEED, label)


def _assert_split(backend: CountingBackend) -> None:
    assert backend.chunks and all(count >= 2 for count in backend.chunks), backend.chunks


# --- chunk_bounds and the factory ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(-3, 5000),
    parts=st.integers(1, 64),
    min_size=st.integers(-2, 600),
)
def test_chunk_bounds_partition(total: int, parts: int, min_size: int) -> None:
    bounds = chunk_bounds(total, parts, min_size)
    if total <= 0:
        assert bounds == []
        return
    assert 1 <= len(bounds) <= parts
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [stop - start for start, stop in bounds]
    assert [i for a, b in bounds for i in range(a, b)] == list(range(total))
    assert max(sizes) - min(sizes) <= 1  # near-equal
    if len(bounds) > 1:
        assert min(sizes) >= max(1, min_size)
    # as many chunks as the limits allow
    assert len(bounds) == max(1, min(parts, total // max(1, min_size)))


def test_chunk_bounds_defaults() -> None:
    assert chunk_bounds(5, 2) == [(0, 3), (3, 5)]
    assert chunk_bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]
    assert chunk_bounds(100, 4, 64) == [(0, 100)]
    assert chunk_bounds(0, 4) == []


def test_make_backend() -> None:
    serial = make_backend("serial")
    assert isinstance(serial, SerialBackend) and serial.workers == 1
    with make_backend("local", workers=3) as local:
        assert isinstance(local, ProcessPoolBackend) and local.workers == 3
    with make_backend() as default:
        assert isinstance(default, ProcessPoolBackend) and default.workers == usable_cores()
    for kind in ("", "Serial", "LOCAL", "Ray"):
        with pytest.raises(ConfigError, match="unknown compute backend"):
            make_backend(kind)


def fake_cgroup(root: Path, files: dict[str, str]) -> Path:
    """Write cgroup files (paths relative to ``root``) and return ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture()
def sixty_four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process may run on 64 cores, like a pod on a large Kubernetes node."""
    monkeypatch.setattr("lianmo.compute.backend.os.sched_getaffinity", lambda pid: set(range(64)))


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # v2: 1.5 CPUs rounds up
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU still gets one worker
        ({"cpu.max": "400000 50000\n"}, 8),
        ({"cpu.max": "max 100000\n"}, 64),  # v2: no limit
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        (
            {
                "cpu,cpuacct/cpu.cfs_quota_us": "250000\n",
                "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            3,
        ),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 64),  # v1
        ({}, 64),  # no cgroup files at all (not Linux, or not mounted)
        ({"cpu.max": "100000000 100000\n"}, 64),  # a quota above the affinity count
    ],
    ids=[
        "v2-1.5",
        "v2-2",
        "v2-0.5",
        "v2-period-50ms",
        "v2-max",
        "v1-cpu",
        "v1-cpu,cpuacct",
        "v1-unlimited",
        "none",
        "v2-1000",
    ],
)
def test_pool_sized_from_container_cpu_quota(
    tmp_path: Path, sixty_four_cores: None, files: dict[str, str], cores: int
) -> None:
    root = fake_cgroup(tmp_path, files)
    assert usable_cores(root) == cores
    with ProcessPoolBackend(cgroup_root=root) as backend:  # the pool starts on first use
        assert backend.workers == cores


@pytest.mark.parametrize(
    "files",
    [
        {"cpu.max": "lots 100000\n"},
        {"cpu.max": "\n"},
        {"cpu.max": "200000\n"},
        {"cpu.max": "200000 100000 7\n"},
        {"cpu.max": "200000 0\n"},
        {"cpu.max": "0 100000\n"},
        {"cpu.max": "-5 100000\n"},
        {"cpu/cpu.cfs_quota_us": "many\n", "cpu/cpu.cfs_period_us": "100000\n"},
        {"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "\xff\n"},
    ],
)
def test_garbled_cpu_quota_falls_back_to_affinity(
    tmp_path: Path,
    sixty_four_cores: None,
    files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = fake_cgroup(tmp_path, files)
    assert cpu_quota_cores(root) is None
    assert usable_cores(root) == 64
    assert "ignoring the CPU quota" in caplog.text and "[compute] workers" in caplog.text


def test_v1_quota_needs_both_files(tmp_path: Path, sixty_four_cores: None) -> None:
    root = fake_cgroup(tmp_path, {"cpu/cpu.cfs_quota_us": "200000\n"})
    assert cpu_quota_cores(root) is None and usable_cores(root) == 64


def test_explicit_workers_ignore_the_cpu_quota(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path, {"cpu.max": "100000 100000\n"})
    with ProcessPoolBackend(3, cgroup_root=root) as backend:
        assert backend.workers == 3


@pytest.mark.parametrize("workers", [0, -1, True, 1.5, "2"])
def test_process_pool_refuses_bad_worker_counts(workers: object) -> None:
    with pytest.raises(ConfigError, match="positive int"):
        ProcessPoolBackend(workers)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive int"):
        make_backend("local", workers)  # type: ignore[arg-type]


def test_serial_backend_maps_in_order() -> None:
    with SerialBackend() as backend:
        assert backend.map(abs, [-3, 2, -1]) == [3, 2, 1]
        assert backend.map(abs, []) == []


def test_pool_maps_in_order(pool: ComputeBackend) -> None:
    assert pool.workers == 2
    chunks = list(range(-50, 0))
    assert pool.map(abs, chunks) == [abs(c) for c in chunks]
    assert pool.map(abs, []) == [] and pool.map(abs, [-7]) == [7]


def _fails_on_negatives(chunk: int) -> int:
    if chunk < 0:
        raise CryptoError(f"chunk {chunk} is negative")
    return chunk


def test_a_kernels_own_error_comes_back_as_itself(pool: ComputeBackend) -> None:
    with pytest.raises(CryptoError, match="chunk -2 is negative"):
        pool.map(_fails_on_negatives, [1, -2, 3])


def test_ray_backend_comes_from_the_party_config(ray_pool: RayBackend, tmp_path: Path) -> None:
    config = PartyConfig.from_dict(
        {
            "name": "broker",
            "listen": "127.0.0.1:0",
            "state_dir": "s",
            "tls": {"cert": "c", "key": "k", "ca": "a"},
            "compute": {"backend": "ray", "address": "local"},
        },
        base=tmp_path,
    )
    with make_backend(config.compute_backend, config.compute_workers, config.compute_address) as b:
        assert isinstance(b, RayBackend) and b.workers == ray_pool.workers == 2
        assert b.map(abs, [-1, -2, -3]) == [1, 2, 3]
    assert ray_pool.map(abs, [-4, -5]) == [4, 5]  # closing the second left the cluster up


def test_ray_auto_on_a_one_machine_cluster_runs_without_tls(
    ray_pool: RayBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'auto' joins the cluster this machine is in; with one machine, nothing crosses a network."""
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    with make_backend("ray", None, "auto") as joined:
        assert isinstance(joined, RayBackend) and joined.map(abs, [-1, -2]) == [1, 2]
    assert ray_pool.map(abs, [-4, -5]) == [4, 5]


def test_map_after_close_raises() -> None:
    unused = ProcessPoolBackend(2)
    unused.close()
    with pytest.raises(LianmoError, match="after close"):
        unused.map(abs, [-1, -2])
    started = ProcessPoolBackend(2)
    assert started.map(abs, [-1, -2, -3]) == [1, 2, 3]
    started.close()
    started.close()  # idempotent
    with pytest.raises(LianmoError, match="after close"):
        started.map(abs, [-1, -2])


# --- serial == pool, bit for bit -------------------------------------------------------------


def test_public_encrypt_is_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    m = list(range(-ROWS // 2, ROWS // 2))
    m[:4] = [int(pk.max_int), -int(pk.max_int), 0, INT64_MAX]
    serial = pk.encrypt_ints(m, -2, _rng(), SerialBackend())
    pooled = pk.encrypt_ints(m, -2, _rng(), split)
    _assert_split(split)
    assert pooled.values == serial.values and pooled.exponent == -2
    assert sk.decrypt_ints(pooled) == m
    x = np.linspace(-3.0, 3.0, ROWS)
    assert pk.encrypt(x, -6, _rng("f"), split).values == pk.encrypt(x, -6, _rng("f")).values


def test_crt_encrypt_is_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    m = [(-1) ** i * i**3 for i in range(ROWS)]
    serial = sk.encrypt_ints(m, 0, _rng(), SerialBackend())
    pooled = sk.encrypt_ints(m, 0, _rng(), split)
    _assert_split(split)
    assert pooled.values == serial.values
    assert pooled.values == pk.encrypt_ints(m, 0, _rng()).values  # CRT == public path
    x = np.linspace(-1.0, 1.0, ROWS)
    assert sk.encrypt(x, -4, _rng("f"), split).values == pk.encrypt(x, -4, _rng("f")).values


def test_obfuscate_is_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    cv = pk.encrypt_ints(list(range(ROWS)), -1, _rng())
    serial = pk.obfuscate(cv, _rng("obf"), SerialBackend())
    pooled = pk.obfuscate(cv, _rng("obf"), split)
    _assert_split(split)
    assert pooled.values == serial.values
    assert pooled.values != cv.values
    assert sk.decrypt_ints(pooled) == list(range(ROWS))


def _matrix(rows: int, cols: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    X = gen.integers(-INT64_MAX, INT64_MAX, size=(rows, cols), dtype=np.int64)
    X[gen.random(X.shape) < 0.2] = 0
    X[: min(rows, 4), 0] = [INT64_MAX, -INT64_MAX, 2**62, -(2**62)][: min(rows, 4)]
    return X


def _python_matvec_t(X: np.ndarray, m: list[int]) -> list[int]:
    return [sum(int(X[i, j]) * m[i] for i in range(X.shape[0])) for j in range(X.shape[1])]


@pytest.mark.parametrize(
    ("rows", "cols"),
    [(40, 7), (ROWS, 1), (ROWS, 2)],
    ids=["many-columns", "single-column-many-rows", "two-columns"],
)
def test_matvec_t_is_backend_independent(
    keypair: Keypair, split: CountingBackend, rows: int, cols: int
) -> None:
    pk, sk = keypair
    m = [(i * 7919) % 2001 - 1000 for i in range(rows)]
    cv = pk.encrypt_ints(m, -2, _rng())
    X = _matrix(rows, cols, rows + cols)
    if cols > 1:
        X[:, 1] = 0  # a zero column
    serial = cv.matvec_t(X, -3, SerialBackend())
    pooled = cv.matvec_t(X, -3, split)
    _assert_split(split)
    assert pooled.values == serial.values and pooled.exponent == -5
    assert sk.decrypt_ints(pooled) == _python_matvec_t(X, m)


def test_dot_ints_is_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    m = [i - ROWS // 2 for i in range(ROWS)]
    cv = pk.encrypt_ints(m, 0, _rng())
    q = _matrix(ROWS, 1, 3)[:, 0]
    pooled = cv.dot_ints(q, 0, split)
    _assert_split(split)
    assert pooled.values == cv.dot_ints(q, 0, SerialBackend()).values
    assert sk.decrypt_ints(pooled) == [sum(int(a) * b for a, b in zip(q, m, strict=True))]


def _histogram_inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    bins = gen.integers(0, 8, size=(ROWS, 3), dtype=np.int64)
    nodes = gen.integers(-1, 3, size=ROWS, dtype=np.int64)
    return bins, nodes


def test_histogram_is_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    m = [(i * 104729) % 4001 - 2000 for i in range(ROWS)]
    cv = pk.encrypt_ints(m, -4, _rng())
    bins, nodes = _histogram_inputs(5)
    serial = cv.histogram(bins, 8, nodes=nodes, n_nodes=3, backend=SerialBackend())
    pooled = cv.histogram(bins, 8, nodes=nodes, n_nodes=3, backend=split)
    _assert_split(split)
    assert pooled.values == serial.values and len(pooled) == 3 * 3 * 8
    expected = [0] * len(pooled)
    for i in range(ROWS):
        if nodes[i] >= 0:
            for f in range(3):
                expected[(nodes[i] * 3 + f) * 8 + bins[i, f]] += m[i]
    assert sk.decrypt_ints(pooled) == expected
    whole = cv.histogram(bins, 8, backend=split)
    assert whole.values == cv.histogram(bins, 8).values


def test_pack_and_decrypt_are_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    packing = Packing.for_sums([40, 40], ROWS)
    per = packing.per_plaintext(int(pk.n))
    gen = np.random.default_rng(11)
    values = gen.integers(1 - 2**40, 2**40 - 1, size=(ROWS, 2), dtype=np.int64, endpoint=True)
    values[:3] = [[2**40 - 1, 1 - 2**40], [2**40 - 1, 2**40 - 1], [1 - 2**40, 1 - 2**40]]
    cv = pk.encrypt_ints(packing.pack(values), 0, _rng())
    bins, nodes = _histogram_inputs(6)
    hist = cv.histogram(bins, 8, nodes=nodes, n_nodes=3, backend=split)
    count = len(hist)
    assert -(-count // per) >= 8  # enough groups for two pack chunks

    serial = hist.pack(packing, SerialBackend())
    pooled = hist.pack(packing, split)
    _assert_split(split)
    assert pooled.values == serial.values and len(pooled) == -(-count // per)

    raw = sk.decrypt_raw(pooled, split)
    assert raw == sk.decrypt_raw(pooled, SerialBackend())
    got = sk.decrypt_packed(pooled, packing, count, split)
    np.testing.assert_array_equal(got, sk.decrypt_packed(pooled, packing, count))
    expected = np.zeros((count, 2), dtype=np.int64)
    for i in range(ROWS):
        if nodes[i] >= 0:
            for f in range(3):
                expected[(nodes[i] * 3 + f) * 8 + bins[i, f]] += values[i]
    np.testing.assert_array_equal(got, expected)


def test_decrypt_raw_is_backend_independent(keypair: Keypair, split: CountingBackend) -> None:
    pk, sk = keypair
    m = [i * 2**500 - 7 for i in range(-ROWS // 2, ROWS // 2)]
    cv = pk.encrypt_ints(m, 0, _rng())
    raw = sk.decrypt_raw(cv, split)
    _assert_split(split)
    assert raw == sk.decrypt_raw(cv, SerialBackend())
    assert raw == [v % int(pk.n) for v in m]
    assert sk.decrypt_ints(cv, split) == m


def test_psi_hashing_and_blinding_are_backend_independent(split: CountingBackend) -> None:
    ids = [f"client-{i:06d}" for i in range(3 * PSI_MIN_CHUNK + 17)]
    serial = hash_ids(ids, b"salt")
    assert hash_ids(ids, b"salt", split) == serial
    key = PsiKey(_rng("psi"))
    assert key.blind(serial, split) == key.blind(serial)
    assert max(split.chunks) > 1  # the work was really split


def test_psi_errors_name_the_index_in_the_whole_input(split: CountingBackend) -> None:
    points = hash_ids([str(i) for i in range(2 * PSI_MIN_CHUNK + 5)], b"salt")
    points[PSI_MIN_CHUNK + 3] = b"short"
    with pytest.raises(CryptoError, match=f"index {PSI_MIN_CHUNK + 3} must be 32 bytes, got 5"):
        PsiKey(_rng("psi")).blind(points, split)


def test_empty_vectors_on_the_pool(keypair: Keypair, pool: ComputeBackend) -> None:
    pk, sk = keypair
    empty = pk.encrypt_ints([], 0, _rng(), pool)
    assert len(empty) == 0 and sk.decrypt_raw(empty, pool) == []
    assert empty.matvec_t(np.zeros((0, 3), dtype=np.int64), 0, pool).values == [1, 1, 1]
    hist = empty.histogram(np.zeros((0, 2), dtype=np.int64), 4, backend=pool)
    assert hist.values == [1] * 8
    assert len(CipherVector.concat([empty]).pack(Packing((8,)), pool)) == 0
