"""Benchmark lianmo's Paillier engine against plain ``phe`` on the same data, in one run.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_crypto.py --json OUT.json [--data ../shared/data] [--quick]

Every kernel is timed with a 2048-bit key on one core (``SerialBackend``) and on all
cores (``ProcessPoolBackend``), next to the same computation written with plain ``phe``
(``EncryptedNumber`` objects, phe's own float encoding). Where phe would take minutes,
it runs on a documented subset and the time is scaled linearly to the full size; the
record says so in ``baseline_extrapolated_from``. Per-key tables are built (and timed,
``setup_s``) before the kernels are timed, in this process and in every worker.

Output: a table on stdout and, with ``--json``, a list of records
``{"kernel", "size", "cores", "baseline_s", "lianmo_s", "speedup", ...}``. ``speedup``
is always against phe on one core. ``mulmod_floor`` holds the time of 300,000 raw
4096-bit modular multiplications (``lianmo_s``), the floor for the histogram kernel.
This is a benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import typing as t
from pathlib import Path

import gmpy2
import numpy as np
import phe

from lianmo.compute import ProcessPoolBackend, SerialBackend
from lianmo.compute.backend import ComputeBackend, usable_cores
from lianmo.crypto.drbg import Drbg
from lianmo.crypto.fixedpoint import choose_exponent, quantisation_bits, quantise
from lianmo.crypto.packing import Packing
from lianmo.crypto.paillier import CipherVector, PrivateKey, PublicKey, generate_keypair
from lianmo.data.split import batch_count
from lianmo.data.table import load_table
from lianmo.models.metrics import auc
from lianmo.models.scaler import Standardizer
from lianmo.protocols import hetero_lr
from lianmo.protocols.context import RoleContext
from lianmo.transport.memory import MemoryHub

KEY_BITS = 2048
ENCRYPT_SIZE = 30_000
MATVEC_ROWS, MATVEC_COLS = 30_000, 10
HIST_ROWS, HIST_FEATURES, HIST_BINS = 30_000, 10, 32
FLOOR_MULS = 300_000
LR_ROWS: int | None = None  # all rows of default_credit_hetero
GH_BITS = 20  # g and h quantised to 2**-20

Record = dict[str, t.Any]


def timed(fn: t.Callable[[], t.Any]) -> tuple[float, t.Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def record(
    kernel: str,
    size: int,
    cores: int,
    baseline_s: float | None,
    lianmo_s: float,
    **extra: t.Any,
) -> Record:
    speedup = None if baseline_s is None else round(baseline_s / lianmo_s, 2)
    rec: Record = {
        "kernel": kernel,
        "size": size,
        "cores": cores,
        "baseline_s": None if baseline_s is None else round(baseline_s, 3),
        "lianmo_s": round(lianmo_s, 4),
        "speedup": speedup,
    }
    rec.update(extra)
    return rec


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- encrypt -------------------------------------------------------------------------------


def bench_encrypt(
    pk: PublicKey, sk: PrivateKey, pool: ComputeBackend, subset: int, size: int
) -> list[Record]:
    values = np.random.default_rng(1).standard_normal(size)
    phe_pk = pk.to_phe()
    say(f"encrypt: phe on {subset} values ...")
    base_t, _ = timed(lambda: [phe_pk.encrypt(float(v)) for v in values[:subset]])
    baseline = base_t * size / subset
    out = []
    short = PublicKey(int(pk.n), obfuscation_bits=400, allow_short_obfuscation=True)
    variants: list[tuple[str, t.Callable[[np.ndarray, ComputeBackend], CipherVector]]] = [
        ("default", lambda v, be: pk.encrypt(v, -8, Drbg(b"e" * 32), be)),
        ("crt", lambda v, be: sk.encrypt(v, -8, Drbg(b"e" * 32), be)),
        ("short400_opt_in", lambda v, be: short.encrypt(v, -8, Drbg(b"e" * 32), be)),
    ]
    for variant, run in variants:
        for backend in (SerialBackend(), pool):
            setup_s = warm(lambda n, be=backend, run=run: run(values[:n], be), backend)
            say(f"encrypt[{variant}] on {backend.workers} core(s) ...")
            elapsed, cv = timed(lambda be=backend, run=run: run(values, be))
            if variant != "short400_opt_in":
                got = sk.decrypt(cv.select(range(50)))
                assert np.allclose(got, values[:50], atol=1e-9), "encrypt is wrong"
            out.append(
                record(
                    "encrypt",
                    size,
                    backend.workers,
                    baseline,
                    elapsed,
                    variant=variant,
                    setup_s=round(setup_s, 3),
                    baseline_extrapolated_from=subset,
                )
            )
    return out


def warm(run: t.Callable[[int], t.Any], backend: ComputeBackend) -> float:
    """Run a small input twice so this process and every worker hold the per-key tables."""
    size = 256 * backend.workers
    first, _ = timed(lambda: run(size))
    run(size)
    return first


# ---- matvec --------------------------------------------------------------------------------


def bench_matvec(pk: PublicKey, sk: PrivateKey, pool: ComputeBackend, subset: int) -> list[Record]:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((MATVEC_ROWS, MATVEC_COLS))
    d = rng.uniform(-2.0, 2.0, MATVEC_ROWS)
    cv = sk.encrypt(d, -6, Drbg(b"m" * 32), pool)
    exponent = choose_exponent(X)
    Xq = quantise(X, exponent)
    phe_d = cv.to_phe()
    say(f"matvec: phe on {subset} rows x {MATVEC_COLS} columns ...")

    def phe_matvec() -> list[phe.EncryptedNumber]:
        return [
            sum((phe_d[i] * float(X[i, j]) for i in range(1, subset)), phe_d[0] * float(X[0, j]))
            for j in range(MATVEC_COLS)
        ]

    base_t, phe_out = timed(phe_matvec)
    phe_sk = sk.to_phe()
    expected_subset = X[:subset].T @ d[:subset]
    assert np.allclose([phe_sk.decrypt(x) for x in phe_out], expected_subset, atol=1e-3)
    baseline = base_t * MATVEC_ROWS / subset
    bound = 16.0**exponent / 2 * np.abs(d).sum() + 1e-6
    out = []
    for backend in (SerialBackend(), pool):
        say(f"matvec on {backend.workers} core(s) ...")
        elapsed, result = timed(lambda be=backend: cv.matvec_t(Xq, exponent, be))
        error = np.abs(sk.decrypt(result) - X.T @ d).max()
        assert error <= bound, f"matvec error {error} above its bound {bound}"
        out.append(
            record(
                "matvec",
                MATVEC_ROWS * MATVEC_COLS,
                backend.workers,
                baseline,
                elapsed,
                shape=[MATVEC_ROWS, MATVEC_COLS],
                x_exponent=exponent,
                x_bits=quantisation_bits(Xq),
                max_abs_error=float(error),
                error_bound=float(bound),
                baseline_extrapolated_from=subset,
            )
        )
    return out


# ---- histogram, floor, packed decryption ---------------------------------------------------


def gh_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    p = 1.0 / (1.0 + np.exp(-rng.standard_normal(HIST_ROWS)))
    y = rng.random(HIST_ROWS) < p
    g, h = p - y, p * (1.0 - p)
    X = rng.standard_normal((HIST_ROWS, HIST_FEATURES))
    cuts = np.quantile(X, np.linspace(0, 1, HIST_BINS + 1)[1:-1], axis=0)
    bins = np.stack(
        [np.searchsorted(cuts[:, f], X[:, f], side="right") for f in range(HIST_FEATURES)], 1
    )
    return g, h, bins.astype(np.int64)


def bench_histogram(
    pk: PublicKey, sk: PrivateKey, pool: ComputeBackend, subset: int
) -> tuple[list[Record], CipherVector, Packing, np.ndarray]:
    g, h, bins = gh_data()
    gq, hq = quantise(g, -GH_BITS // 4), quantise(h, -GH_BITS // 4)
    packing = Packing.for_sums([GH_BITS, GH_BITS - 1], HIST_ROWS)  # |g| <= 1, h <= 1/4
    packed = sk.encrypt_ints(packing.pack(np.stack([gq, hq], 1)), 0, Drbg(b"h" * 32), pool)
    expected = np.zeros((HIST_FEATURES * HIST_BINS, 2), dtype=np.int64)
    for f in range(HIST_FEATURES):
        np.add.at(expected[:, 0], f * HIST_BINS + bins[:, f], gq)
        np.add.at(expected[:, 1], f * HIST_BINS + bins[:, f], hq)

    say("mulmod floor: 300,000 raw 4096-bit modular multiplications ...")
    nsquare = pk.nsquare
    values = packed.values

    def floor() -> t.Any:
        acc = gmpy2.mpz(1)
        for k in range(FLOOR_MULS):
            acc = acc * values[k % HIST_ROWS] % nsquare
        return acc

    floor_s, _ = timed(floor)

    say(f"histogram: phe on {subset} rows (g and h as separate EncryptedNumbers) ...")
    phe_pk = pk.to_phe()
    phe_g = [phe_pk.encrypt(float(v), precision=2.0**-GH_BITS) for v in g[:subset]]
    phe_h = [phe_pk.encrypt(float(v), precision=2.0**-GH_BITS) for v in h[:subset]]

    def phe_histogram() -> list[list[t.Any]]:
        cells: list[list[t.Any]] = [[None, None] for _ in range(HIST_FEATURES * HIST_BINS)]
        for f in range(HIST_FEATURES):
            for i in range(subset):
                cell = cells[f * HIST_BINS + int(bins[i, f])]
                cell[0] = phe_g[i] if cell[0] is None else cell[0] + phe_g[i]
                cell[1] = phe_h[i] if cell[1] is None else cell[1] + phe_h[i]
        return cells

    base_t, _ = timed(phe_histogram)
    baseline = base_t * HIST_ROWS / subset
    out = [record("mulmod_floor", FLOOR_MULS, 1, None, floor_s, modulus_bits=4096)]
    hist = None
    for backend in (SerialBackend(), pool):
        say(f"histogram on {backend.workers} core(s) ...")
        elapsed, hist = timed(lambda be=backend: packed.histogram(bins, HIST_BINS, backend=be))
        out.append(
            record(
                "histogram",
                HIST_ROWS,
                backend.workers,
                baseline,
                elapsed,
                features=HIST_FEATURES,
                bins=HIST_BINS,
                modmuls=HIST_ROWS * HIST_FEATURES,
                floor_ratio=round(
                    elapsed * (FLOOR_MULS / (HIST_ROWS * HIST_FEATURES)) / floor_s, 3
                ),
                baseline_extrapolated_from=subset,
            )
        )
    assert hist is not None
    return out, hist, packing, expected


def bench_decrypt_packed(
    pk: PublicKey,
    sk: PrivateKey,
    pool: ComputeBackend,
    hist: CipherVector,
    packing: Packing,
    expected: np.ndarray,
) -> list[Record]:
    count = len(hist)
    phe_sk = sk.to_phe()
    phe_values = hist.to_phe()
    say(f"decrypt_packed: phe decrypts {count} sums one by one ...")
    baseline, _ = timed(lambda: [phe_sk.raw_decrypt(x.ciphertext(False)) for x in phe_values])
    out = []
    for backend in (SerialBackend(), pool):
        say(f"decrypt_packed on {backend.workers} core(s) ...")

        def run(be: ComputeBackend = backend) -> tuple[int, np.ndarray]:
            packed = hist.pack(packing, be)
            return len(packed), sk.decrypt_packed(packed, packing, count, be)

        elapsed, (decryptions, sums) = timed(run)
        assert (sums == expected).all(), "packed decryption is wrong"
        out.append(
            record(
                "decrypt_packed",
                count,
                backend.workers,
                baseline,
                elapsed,
                decryptions=decryptions,
                baseline_decryptions=count,
                fewer_decryptions=round(count / decryptions, 2),
                sums_per_ciphertext=packing.per_plaintext(int(pk.n)),
            )
        )
    return out


# ---- LR epoch ------------------------------------------------------------------------------


def load_credit(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    guest = load_table(data / "default_credit_hetero_guest.csv", id_column="id", label_column="y")
    host = load_table(data / "default_credit_hetero_host.csv", id_column="id")
    position = {row_id: i for i, row_id in enumerate(host.ids)}
    host = host.select(np.array([position[row_id] for row_id in guest.ids]))
    Xg = Standardizer.fit(guest.X).transform(guest.X)
    Xh = Standardizer.fit(host.X).transform(host.X)
    assert guest.y is not None
    return np.hstack([Xg, np.ones((len(Xg), 1))]), Xh, guest.y


def run_lr_epoch(
    Xg: np.ndarray,
    Xh: np.ndarray,
    y: np.ndarray,
    params: hetero_lr.LrParams,
    backend: ComputeBackend,
) -> dict[str, t.Any]:
    hub = MemoryHub("bench", ["arbiter", "guest", "host"])
    results: dict[str, t.Any] = {}
    errors: list[BaseException] = []
    roles: dict[str, t.Callable[[RoleContext], t.Any]] = {
        "arbiter": lambda ctx: hetero_lr.train_arbiter(ctx, params),
        "guest": lambda ctx: hetero_lr.train_guest(ctx, Xg, y, params),
        "host": lambda ctx: hetero_lr.train_host(ctx, Xh, params),
    }

    def run(party: str) -> None:
        ctx = RoleContext(
            job_id="bench",
            party=party,
            channel=hub.channel(party, [], recv_timeout=3600),
            rng=Drbg(party.encode().ljust(32, b"-")),
            guest="guest",
            hosts=("host",),
            arbiter="arbiter",
            compute=backend,
        )
        try:
            results[party] = roles[party](ctx)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            hub.close(f"{party} failed: {exc}")

    threads = [threading.Thread(target=run, args=(p,)) for p in roles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def phe_lr_batch_seconds(
    pk: PublicKey, sk: PrivateKey, Xg: np.ndarray, Xh: np.ndarray, y: np.ndarray, rows: int
) -> float:
    """One LR mini-batch of ``rows`` rows, the same steps as lianmo's, on plain phe."""
    phe_pk, phe_sk = pk.to_phe(), sk.to_phe()
    rng = np.random.default_rng(5)
    wg, wh = rng.normal(0, 0.1, Xg.shape[1]), rng.normal(0, 0.1, Xh.shape[1])
    xg, xh, yb = Xg[:rows], Xh[:rows], y[:rows]

    def batch() -> None:
        u_h = [phe_pk.encrypt(float(v)) for v in xh @ wh]  # 1. host forward
        own = [phe_pk.encrypt(float(v)) for v in xg @ wg + 2.0 - 4.0 * yb]  # 2. guest
        d4 = [a + b for a, b in zip(u_h, own, strict=True)]
        for X in (xg, xh):  # 5. both gradients, masked, decrypted by the arbiter
            grad = [
                sum((d4[i] * float(X[i, j]) for i in range(1, rows)), d4[0] * float(X[0, j]))
                for j in range(X.shape[1])
            ]
            masked = [gj + phe_pk.encrypt(float(rng.normal())) for gj in grad]
            [phe_sk.decrypt(m) for m in masked]

    elapsed, _ = timed(batch)
    return elapsed


def bench_lr_epoch(
    pk: PublicKey, sk: PrivateKey, pool: ComputeBackend, data: Path, subset: int
) -> list[Record]:
    Xg, Xh, y = load_credit(data)
    if LR_ROWS is not None:
        Xg, Xh, y = Xg[:LR_ROWS], Xh[:LR_ROWS], y[:LR_ROWS]
    n = len(y)
    params = hetero_lr.LrParams(
        epochs=1,
        batch_size=1024,
        learning_rate=0.15,
        lr_decay=0.0,
        l2=0.0,
        tol=1e-4,
        key_bits=KEY_BITS,
        seed=42,
    )
    batches = batch_count(n, params.batch_size)
    say(f"lr_epoch: phe on one batch of {subset} rows ...")
    per_batch = phe_lr_batch_seconds(pk, sk, Xg, Xh, y, subset)
    # per-row work scales with rows; the 23 decryptions per batch are a small part
    baseline = per_batch * n / subset
    out = []
    for backend in (SerialBackend(), pool):
        say(f"lr_epoch on {backend.workers} core(s): {n} rows, {batches} batches ...")
        elapsed, results = timed(lambda be=backend: run_lr_epoch(Xg, Xh, y, params, be))
        scores = Xg @ results["guest"] + Xh @ results["host"]
        out.append(
            record(
                "lr_epoch",
                n,
                backend.workers,
                baseline,
                elapsed,
                data="default_credit_hetero",
                batch_size=params.batch_size,
                batches=batches,
                train_auc_after_epoch=round(auc(y, scores), 4),
                baseline_extrapolated_from=subset,
                channel="in-memory",
            )
        )
    return out


# ---- main ----------------------------------------------------------------------------------


def print_table(records: list[Record]) -> None:
    header = (
        f"{'kernel':<16}{'variant':<17}{'size':>9}{'cores':>6}"
        f"{'phe s':>10}{'lianmo s':>10}{'speedup':>9}"
    )
    print(header)
    print("-" * len(header))
    for rec in records:
        base = "-" if rec["baseline_s"] is None else f"{rec['baseline_s']:.2f}"
        speed = "-" if rec["speedup"] is None else f"{rec['speedup']:.1f}x"
        print(
            f"{rec['kernel']:<16}{rec.get('variant', ''):<17}{rec['size']:>9}{rec['cores']:>6}"
            f"{base:>10}{rec['lianmo_s']:>10.3f}{speed:>9}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--quick", action="store_true", help="smaller phe subsets (noisier)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the script runs, times nothing"
    )
    parser.add_argument(
        "--kernels",
        default="encrypt,matvec,histogram,decrypt_packed,lr_epoch",
        help="comma-separated subset to run (histogram is needed for decrypt_packed)",
    )
    args = parser.parse_args()
    wanted = set(args.kernels.split(","))
    scale = 3 if args.quick else 1
    if args.smoke:
        global ENCRYPT_SIZE, MATVEC_ROWS, HIST_ROWS, FLOOR_MULS, LR_ROWS
        ENCRYPT_SIZE, MATVEC_ROWS, HIST_ROWS, FLOOR_MULS, LR_ROWS = 600, 600, 600, 6000, 2048
        scale = 30
    say(f"generating a {KEY_BITS}-bit key ...")
    pk, sk = generate_keypair(KEY_BITS)
    pk.prepare_obfuscation(Drbg(b"bench-obfuscation".ljust(32, b"-")))
    records: list[Record] = []
    with ProcessPoolBackend() as pool:
        if "encrypt" in wanted:
            records += bench_encrypt(pk, sk, pool, max(10, 300 // scale), ENCRYPT_SIZE)
        if "matvec" in wanted:
            records += bench_matvec(pk, sk, pool, max(20, 600 // scale))
        if "histogram" in wanted or "decrypt_packed" in wanted:
            hist_records, hist, packing, expected = bench_histogram(
                pk, sk, pool, min(HIST_ROWS, 3000 // scale)
            )
            records += hist_records
            if "decrypt_packed" in wanted:
                records += bench_decrypt_packed(pk, sk, pool, hist, packing, expected)
        if "lr_epoch" in wanted:
            records += bench_lr_epoch(pk, sk, pool, args.data, max(16, 256 // scale))
    print_table(records)
    if args.json:
        meta = {
            "python": platform.python_version(),
            "gmpy2": gmpy2.version(),
            "gmp": gmpy2.mp_version(),
            "phe": phe.__version__,
            "cores": usable_cores(),
            "key_bits": KEY_BITS,
            "cpu": platform.processor() or platform.machine(),
            "pid": os.getpid(),
        }
        for rec in records:
            rec.setdefault("machine", meta)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
        say(f"wrote {len(records)} records to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
