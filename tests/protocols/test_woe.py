"""Federated WOE/IV of host columns on the raw credit files: equal to pooled, what crosses.

Guest and hosts run ``guest_woe`` / ``host_woe`` over in-memory channels. Paillier keys
are 512 bits (``SMALL_TEST_KEY_BITS_512``, unit tests only; every real path refuses them).
"""

from __future__ import annotations

import dataclasses
import typing as t
import warnings
from pathlib import Path

import numpy as np
import pytest
from optbinning.binning.binning_statistics import BinningTable

from lianmo.errors import ConfigError, ProtocolError
from lianmo.models.binning import QuantileBins
from lianmo.protocols.context import RoleContext
from lianmo.protocols.woe import (
    GuestWoe,
    HostWoe,
    WoeParams,
    guest_woe,
    host_woe,
    slot_bits,
)
from lianmo.transport import serde
from lianmo.wire.steps import WOE_BIN_SUMS, WOE_BINS, WOE_LABELS, WOE_PUBLIC_KEY

from ..raw_credit import raw_credit
from .conftest import WireRecorder, run_roles

# Unit tests only: 512-bit keys keep these tests fast. Every real path refuses them.
SMALL_TEST_KEY_BITS_512 = 512
GUEST = "broker"
PAY = [f"pay_{i}" for i in range(1, 7)]  # categorical in the raw platform file
HOSTS = {
    "platform": PAY + [f"pay_amt{i}" for i in range(1, 7)],
    "bureau": [f"bill_amt{i}" for i in range(1, 7)],
}
ROWS = 3000


@dataclasses.dataclass(frozen=True)
class Job:
    y: np.ndarray
    X: dict[str, np.ndarray]  # host -> its training columns
    categories: dict[str, tuple[int | None, ...]]
    names: dict[str, tuple[str, ...]]


@pytest.fixture(scope="module")
def job(shared_data: Path) -> Job:
    """``ROWS`` common rows of the raw credit files, the platform's columns as two hosts."""
    broker, platform = raw_credit(shared_data)
    keep = np.sort(np.random.default_rng(0).choice(len(broker.ids), size=ROWS, replace=False))
    assert broker.y is not None
    X, cats, names = {}, {}, {}
    for host, columns in HOSTS.items():
        table = platform.rows(keep).columns(columns)
        X[host], cats[host], names[host] = table.X, table.categorical, table.names
    return Job(broker.y[keep], X, cats, names)


def _params(**overrides: t.Any) -> WoeParams:
    base: dict[str, t.Any] = dict(
        max_bins=10, key_bits=SMALL_TEST_KEY_BITS_512, insecure_test_key=True
    )
    return WoeParams(**(base | overrides))


def _run(job: Job, recorder: WireRecorder | None = None) -> dict[str, t.Any]:
    params = _params()
    roles: dict[str, t.Callable[[RoleContext], t.Any]] = {
        GUEST: lambda ctx: guest_woe(ctx, job.y, params)
    }
    for host in HOSTS:
        roles[host] = _host_role(job, host, params)
    return run_roles(roles, guest=GUEST, hosts=tuple(HOSTS), recorder=recorder)


def _host_role(job: Job, host: str, params: WoeParams) -> t.Callable[[RoleContext], HostWoe]:
    return lambda ctx: host_woe(ctx, job.X[host], params, categories=job.categories[host])


def _pooled(job: Job, host: str) -> tuple[QuantileBins, list[np.ndarray], list[float]]:
    """The same bins on pooled rows, WOE and IV from optbinning's ``BinningTable``."""
    X = job.X[host]
    bins = QuantileBins.fit(X, _params().max_bins, job.categories[host])
    binned = bins.transform(X)
    woes, ivs = [], []
    for f in range(X.shape[1]):
        cells = bins.n_cells(f)
        events = np.bincount(binned[:, f], weights=job.y, minlength=cells)
        rows = np.bincount(binned[:, f], minlength=cells)
        # optbinning's table ends with a special and a missing bin: empty here
        table = BinningTable(
            "x",
            "numerical",
            None,
            np.arange(cells - 1, dtype=np.float64),
            np.append(rows - events, [0, 0]),
            np.append(events, [0, 0]),
        )
        with warnings.catch_warnings():  # optbinning 0.21 on pandas 3: its totals row
            warnings.filterwarnings("ignore", "Setting an item of incompatible dtype")
            table.build()
        woes.append(np.asarray(table._woe[:cells]))  # noqa: SLF001 - its WOE per bin
        ivs.append(float(table.iv))
    return bins, woes, ivs


def test_woe_and_iv_of_host_columns_equal_pooled_optbinning_512_bit_key(job: Job) -> None:
    out = _run(job)
    guest: GuestWoe = out[GUEST]
    assert list(guest.hosts) == list(HOSTS)
    for host in HOSTS:
        bins, woes, ivs = _pooled(job, host)
        mine: HostWoe = out[host]
        columns = guest.hosts[host]
        assert len(columns) == len(woes) == job.X[host].shape[1]
        for f, column in enumerate(columns):
            np.testing.assert_allclose(column.woe, woes[f], rtol=0, atol=1e-9)
            assert abs(column.iv - ivs[f]) <= 1e-9
            np.testing.assert_allclose(mine.woe[f], woes[f], rtol=0, atol=1e-9)
            assert abs(mine.iv[f] - ivs[f]) <= 1e-9
            assert (column.categorical, column.missing) == (
                bins.is_categorical(f),
                bool(bins.missing[f]),
            )
            assert int(column.events.sum()) == int(job.y.sum())
        # the host WOE-transforms its own columns with its own bins
        expected = np.column_stack(
            [woes[f][bins.transform(job.X[host])[:, f]] for f in range(len(woes))]
        )
        np.testing.assert_allclose(mine.transform(job.X[host]), expected, rtol=0, atol=1e-9)
    # the case under test: categorical pay_k with an "other" bin, missing bins, real IVs
    platform = guest.hosts["platform"]
    assert all(c.categorical for c in platform[: len(PAY)])
    assert any(c.missing for c in platform) and max(c.iv for c in platform) > 0.3
    iv = guest.iv()
    assert set(iv) == {(h, j) for h in HOSTS for j in range(len(HOSTS[h]))}
    records = guest.to_records()
    assert records[0].keys() >= {"host", "column", "bin", "events", "nonevents", "woe", "iv"}
    assert out["bureau"].to_records()[0].keys() == {"column", "bin", "woe", "iv"}


def _needles_of_labels(y: np.ndarray) -> list[bytes]:
    """Runs of row labels as they could travel: bytes, ints, floats, packed bits."""
    out = []
    for start in range(0, 400, 16):
        run = y[start : start + 16]
        out += [run.astype(d).tobytes() for d in ("u1", "<u4", "<i8", "<f8")]
    out += [np.packbits(y.astype(bool), bitorder=o).tobytes()[:8] for o in ("big", "little")]
    return out


def test_no_label_threshold_or_category_name_crosses_the_wire_512_bit_key(
    job: Job, shared_data: Path, wire: WireRecorder
) -> None:
    _run(job, recorder=wire)
    tags = {(e.sender, e.receiver, e.tag) for e in wire.envelopes}
    expected = {(GUEST, h, s) for h in HOSTS for s in ("woe.public_key", "woe.labels")}
    expected |= {(h, GUEST, s) for h in HOSTS for s in ("woe.bins", "woe.bin_sums")}
    expected |= {(GUEST, h, s) for h in HOSTS for s in ("woe.merge", "woe.values", "woe.iv")}
    assert tags == expected
    payloads = [e.payload for e in wire.envelopes]
    # no row-level label, in any form
    for needle in _needles_of_labels(job.y):
        assert not any(needle in p for p in payloads)
    # no threshold: every host bin edge as float64, float32 or text
    for host in HOSTS:
        bins = QuantileBins.fit(job.X[host], _params().max_bins, job.categories[host])
        edges = [e for cut in bins.edges for e in cut if abs(e) >= 10]
        assert len(edges) > 20
        for edge in edges:
            for needle in (np.float64(edge).tobytes(), np.float32(edge).tobytes()):
                assert not any(needle in p for p in payloads), edge
            assert not any(f"{edge:g}".encode() in p for p in payloads if len(p) < 64), edge
    # no category name, and no column name
    broker, platform = raw_credit(shared_data)
    names = {c for table in (broker, platform) for cats in table.categories.values() for c in cats}
    names |= set(platform.names)
    assert "revolving" in names and "pay_amt3" in names
    for name in names:
        for encoded in (name.encode(), name.encode("utf-16-le")):
            assert not any(encoded in p for p in payloads), name
    # what a host does send in the clear: only bin shapes and row counts per bin
    sent = [e for e in wire.envelopes if e.tag == WOE_BINS.tag and e.sender == "bureau"]
    values = np.frombuffer(serde.decode_payload(sent[0].payload_type, sent[0].payload).data, "<u4")
    columns = int(values[0])
    assert columns == 6 and int(values[1 + 3 * columns :].sum()) == 6 * ROWS
    # the search finds a needle where it is
    assert _needles_of_labels(job.y)[0] in b"x" + job.y[:16].astype("u1").tobytes()


def test_labels_that_are_not_0_1_or_one_class_are_refused_naming_the_party(job: Job) -> None:
    params = _params()
    for y, match in [
        (job.y * 2, "WOE needs binary labels .* recode the label column to 0/1"),
        (
            np.zeros(ROWS),
            "the training rows hold only label 0; WOE needs both events and non-events",
        ),
    ]:
        roles: dict[str, t.Callable[[RoleContext], t.Any]] = {
            GUEST: lambda ctx, y=y: guest_woe(ctx, y, params),
            "bureau": _host_role(job, "bureau", params),
        }
        with pytest.raises(ConfigError, match=f"party '{GUEST}': {match}"):
            run_roles(roles, guest=GUEST, hosts=("bureau",), timeout=30)


def test_bins_that_do_not_hold_the_training_rows_are_refused(job: Job) -> None:
    """A host whose row counts do not add up: the guest stops before decrypting."""
    params = _params()

    def host(ctx: RoleContext) -> None:
        key = ctx.recv(WOE_PUBLIC_KEY, ctx.guest, key_bits=512, insecure_test_key=True)
        ctx.recv(WOE_LABELS, ctx.guest, key=key, count=ROWS)
        ctx.send(WOE_BINS, ctx.guest, [1, 2, 0, 0, ROWS, 1])

    roles: dict[str, t.Callable[[RoleContext], t.Any]] = {
        GUEST: lambda ctx: guest_woe(ctx, job.y, params),
        "bureau": host,
    }
    with pytest.raises(ProtocolError, match="host 'bureau' sent a malformed 'woe.bins': a column"):
        run_roles(roles, guest=GUEST, hosts=("bureau",), timeout=30)


@pytest.mark.parametrize(
    ("events", "match"),
    [
        (ROWS + 1, "a bin's event count outside \\[0, its row count\\]"),
        (0, "event counts of a column do not add up to the training events"),
    ],
    ids=["above-the-rows", "not-the-events"],
)
def test_event_counts_no_honest_host_sends_are_refused(job: Job, events: int, match: str) -> None:
    """One column of one bin holding every row, with a chosen event count in its slot."""
    params = _params()

    def host(ctx: RoleContext) -> None:
        key = ctx.recv(WOE_PUBLIC_KEY, ctx.guest, key_bits=512, insecure_test_key=True)
        ctx.recv(WOE_LABELS, ctx.guest, key=key, count=ROWS)
        ctx.send(WOE_BINS, ctx.guest, [1, 1, 0, 0, ROWS])
        w = slot_bits(ROWS)
        ctx.send(WOE_BIN_SUMS, ctx.guest, key.encrypt_ints([events - (1 << (w - 1))], 0))

    roles: dict[str, t.Callable[[RoleContext], t.Any]] = {
        GUEST: lambda ctx: guest_woe(ctx, job.y, params),
        "bureau": host,
    }
    with pytest.raises(ProtocolError, match=f"host 'bureau' sent 'woe.bin_sums' .*{match}"):
        run_roles(roles, guest=GUEST, hosts=("bureau",), timeout=30)
