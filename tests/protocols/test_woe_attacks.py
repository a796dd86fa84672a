"""A dishonest WOE guest against a real host: what it reads per bin when its "labels" are not 0/1.

The host (``host_woe``) runs over in-memory channels against a guest written here
message by message, which encrypts ``2^p`` for chosen rows instead of labels. Paillier
keys are 1024 bits (``SMALL_TEST_KEY_BITS``, unit tests only); the bound for a 2048-bit
key is computed in ``test_the_documented_bound_for_a_2048_bit_key``.
"""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.paillier import generate_keypair
from lianmo.models.binning import QuantileBins
from lianmo.protocols.context import RoleContext
from lianmo.protocols.woe import SumGroup, WoeParams, host_woe, slot_bits, sum_groups
from lianmo.wire.steps import WOE_BIN_SUMS, WOE_BINS, WOE_LABELS, WOE_PUBLIC_KEY

from ..raw_credit import raw_credit
from .conftest import run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024
GUEST, HOST = "broker", "platform"
COLUMNS = ["pay_1", "pay_2"] + [f"bill_amt{i}" for i in range(1, 7)]
ROWS = 300
PARAMS = WoeParams(max_bins=10, key_bits=SMALL_TEST_KEY_BITS, insecure_test_key=True)


@dataclasses.dataclass(frozen=True)
class Host:
    X: np.ndarray
    categories: tuple[int | None, ...]
    cells: np.ndarray  # (rows x flat bins): row i is in bin b, over all columns


@pytest.fixture(scope="module")
def host(shared_data: Path) -> Host:
    _, platform = raw_credit(shared_data)
    keep = np.sort(np.random.default_rng(3).choice(len(platform.ids), size=ROWS, replace=False))
    table = platform.rows(keep).columns(COLUMNS)
    bins = QuantileBins.fit(table.X, PARAMS.max_bins, table.categorical)
    binned = bins.transform(table.X)
    cells = np.hstack(
        [binned[:, [f]] == np.arange(bins.n_cells(f)) for f in range(bins.n_features)]
    )
    return Host(table.X, table.categorical, cells)


class _Stop(Exception):
    """The dishonest guest has what it came for and ends the job."""


@dataclasses.dataclass(frozen=True)
class Reading:
    """Per non-empty bin of one slot width: its slot and mask-slot digits as decrypted."""

    group: SumGroup
    slot: np.ndarray
    mask: np.ndarray


def _attack(host: Host, plain: t.Callable[[dict[int, SumGroup]], list[int]], width: int) -> Reading:
    """The guest encrypts ``plain(groups)`` as row "labels" and reads group ``width``.

    The groups follow from the row counts, which arrive before the sums; an attacker
    knows them from the counts alone, so the test computes them up front the same way.
    """
    counts = host.cells.sum(axis=0)
    found: dict[str, Reading] = {}

    def guest(ctx: RoleContext) -> None:
        public, private = generate_keypair(SMALL_TEST_KEY_BITS, ctx.rng, insecure_test_size=True)
        groups = {g.width: g for g in sum_groups(counts, public.n)}
        ctx.broadcast(WOE_PUBLIC_KEY, ctx.hosts, public)
        ctx.broadcast(WOE_LABELS, ctx.hosts, private.encrypt_ints(plain(groups), 0, ctx.rng))
        header = ctx.recv(WOE_BINS, HOST)
        assert (header[-len(counts) :] == counts).all()
        total = sum(g.ciphertexts(public.n) for g in groups.values())
        cv = ctx.recv(WOE_BIN_SUMS, HOST, key=public, count=total)
        n, start = public.n, 0
        for w, g in groups.items():
            k = g.ciphertexts(n)
            if w == width:
                raw = private.decrypt_raw(cv.select(range(start, start + k)))
                digits = _digits([m - n if m > n // 2 else m for m in raw], g, n)
                found["reading"] = Reading(g, digits[: len(g.bins), 0], digits[: len(g.bins), 1])
            start += k
        raise _Stop

    with pytest.raises(_Stop):
        run_roles(
            {
                GUEST: guest,
                HOST: lambda ctx: host_woe(ctx, host.X, PARAMS, categories=host.categories),
            },
            guest=GUEST,
            hosts=(HOST,),
            timeout=60,
        )
    return found["reading"]


def _digits(plaintexts: list[int], group: SumGroup, n: int) -> np.ndarray:
    """Every place's (slot, mask) as balanced digits, lowest place first, never refusing."""
    layout = group.layout
    per = layout.per_plaintext(n)
    out = []
    for rest in plaintexts:
        for _ in range(per):
            place = []
            for width in layout.slot_bits:
                half = 1 << (width - 1)
                digit = ((rest + half) & ((1 << width) - 1)) - half
                rest = (rest - digit) >> width
                place.append(digit)
            out.append(place)
    return np.array(out, dtype=object)


def _mode_width(host: Host) -> int:
    """The slot width most non-empty bins share (the attack reads that group)."""
    counts = host.cells.sum(axis=0)
    widths = [slot_bits(c) for c in counts if c > 0]
    return max(set(widths), key=widths.count)


def test_powers_of_two_in_a_slot_show_exactly_w_rows_per_bin(host: Host) -> None:
    """``y_i = 2^i`` for the first ``w`` rows: every bin of width ``w`` shows which of
    those ``w`` rows it holds, exactly; no more rows fit (the slot is ``w`` bits)."""
    w = _mode_width(host)

    def plain(groups: dict[int, SumGroup]) -> list[int]:
        return [1 << i if i < w else 0 for i in range(ROWS)]

    reading = _attack(host, plain, w)
    bins = reading.group.bins
    assert len(bins) >= 30 and w == 5  # bins of 16 to 31 rows of 300
    read = np.array(
        [[((int(s) + (1 << (w - 1))) >> i) & 1 for i in range(w)] for s in reading.slot],
        dtype=bool,
    )
    truth = host.cells[:w, bins].T  # (bin x row)
    assert (read == truth).all()
    # an honest guest reads the same w bits per bin: the event count 0 .. c < 2^w
    assert all(slot_bits(int(c)) == w for c in host.cells[:, bins].sum(axis=0))


def test_powers_of_two_above_the_slot_show_nothing(host: Host) -> None:
    """Rows put at bits ``w ..`` land in the mask slot: they read back at chance, and the
    slot itself shows no event."""
    w = _mode_width(host)
    rows: list[int] = []

    def plain(groups: dict[int, SumGroup]) -> list[int]:
        W = groups[w].layout.slot_bits[-1]
        rows.extend(range(W))
        return [1 << (w + i) if i < W else 0 for i in range(ROWS)]

    reading = _attack(host, plain, w)
    W = len(rows)
    assert W >= 2
    bins = reading.group.bins
    # S mod 2^w = 0, "no events", plus at most a carry out of the place below's mask
    # slot: the fraction of a bit per place that exposed_bits counts above w
    assert set(reading.slot) <= {-(1 << (w - 1)), 1 - (1 << (w - 1))}
    read = np.array([[(int(m) >> i) & 1 for i in range(W)] for m in reading.mask], dtype=bool)
    truth = host.cells[:W, bins].T
    agree = (read == truth).mean()
    coin = np.random.default_rng(7).integers(0, 2, size=read.shape).astype(bool)
    chance = (coin == truth).mean()
    assert abs(agree - chance) < 0.15, (agree, chance)  # without the mask: 1.0
    assert 0.3 < read.mean() < 0.7


def test_the_documented_bound_for_a_2048_bit_key() -> None:
    """Up to 24,000 rows per bin: a bin's slot is ``w = max(2, bit_length(c))`` bits and a
    decryption shows at most ``w + 0.07`` bits per bin; an honest reading is ``log2(c + 1)``."""
    n = (1 << 2047) + 1  # any 2048-bit modulus has the same room
    counts = np.array([1, 2, 3, 7, 8, 100, 1000, 4095, 4096, 24_000])
    groups = sum_groups(counts, n)
    assert [g.width for g in groups] == [2, 3, 4, 7, 10, 12, 13, 15]
    for g in groups:
        exposed = g.layout.exposed_bits(n)
        assert g.width <= exposed < g.width + 0.07, (g.width, exposed)
        assert all(np.log2(c + 1) <= g.width for c in counts[g.bins])
    widest = groups[-1].layout
    assert widest.slot_bits == (15, 2) and widest.per_plaintext(n) == 120
