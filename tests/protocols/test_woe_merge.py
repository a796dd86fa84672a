"""The merge step of federated WOE (``woe.merge``): plans from counts, checked by the host.

The guest pools each host column's bins by :func:`~lianmo.models.bin_merge.column_plan`
from the counts it decrypted and sends only the plan; the host applies it to its own rows.
A dishonest guest could send a plan that keeps a tiny bin alone, to learn the event rate of
a handful of rows from that bin's WOE, or one that breaks the bins' structure: the host
refuses both. Paillier keys are 512 bits (unit tests only; every real path refuses them).
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.paillier import generate_keypair
from lianmo.errors import ProtocolError
from lianmo.models.bin_merge import MergePlan, column_plan
from lianmo.models.binning import QuantileBins
from lianmo.models.woe import WoeTable, bin_counts
from lianmo.protocols.context import RoleContext
from lianmo.protocols.woe import WoeParams, guest_woe, host_woe, plans_message, sum_groups
from lianmo.wire.steps import (
    WOE_BIN_SUMS,
    WOE_BINS,
    WOE_IV,
    WOE_LABELS,
    WOE_MERGE,
    WOE_PUBLIC_KEY,
    WOE_VALUES,
)

from ..raw_credit import raw_credit
from .conftest import run_roles

# Unit tests only: 512-bit keys keep these tests fast. Every real path refuses them.
SMALL_TEST_KEY_BITS_512 = 512
GUEST, HOST = "broker", "platform"
COLUMNS = ["pay_1", "pay_2", "bill_amt1", "bill_amt5", "pay_amt4"]
ROWS = 2000
MIN_SHARE = 0.05


def _params(**overrides: t.Any) -> WoeParams:
    base: dict[str, t.Any] = dict(
        max_bins=10,
        min_bin_share=MIN_SHARE,
        key_bits=SMALL_TEST_KEY_BITS_512,
        insecure_test_key=True,
    )
    return WoeParams(**(base | overrides))


@pytest.fixture(scope="module")
def data(shared_data: Path) -> tuple[np.ndarray, np.ndarray, tuple[int | None, ...]]:
    broker, platform = raw_credit(shared_data)
    keep = np.sort(np.random.default_rng(5).choice(len(broker.ids), size=ROWS, replace=False))
    table = platform.rows(keep).columns(COLUMNS)
    assert broker.y is not None
    return broker.y[keep], table.X, table.categorical


@pytest.mark.parametrize("monotonic", [False, True])
def test_merged_woe_and_iv_equal_pooled_on_the_merged_bins_512_bit_key(
    data: tuple[np.ndarray, np.ndarray, tuple[int | None, ...]], monotonic: bool
) -> None:
    y, X, kinds = data
    params = _params(monotonic=monotonic)
    out = run_roles(
        {
            GUEST: lambda ctx: guest_woe(ctx, y, params),
            HOST: lambda ctx: host_woe(ctx, X, params, categories=kinds),
        },
        guest=GUEST,
        hosts=(HOST,),
    )
    host, seen = out[HOST], out[GUEST].hosts[HOST]
    bins = QuantileBins.fit(X, params.max_bins, kinds)  # pooled: the same bins, the labels
    binned = bins.transform(X)
    pooled_merges = 0
    small_missing: list[int] = []
    for f in range(X.shape[1]):
        events, nonevents = bin_counts(binned[:, f], y.astype(np.int64), bins.n_cells(f))
        plan = column_plan(events, nonevents, bins.n_bins(f), categorical=bins.is_categorical(f),
                           min_share=MIN_SHARE, monotonic=monotonic)  # fmt: skip
        pooled_merges += bins.n_cells(f) - len(plan.groups)
        e, ne = plan.apply(events), plan.apply(nonevents)
        table = WoeTable.from_counts("c", e, ne)
        assert host.plans[f] == plan == seen[f].plan
        woe, iv = table.woe.copy(), table.iv
        if bins.missing[f] and (e + ne)[-1] < MIN_SHARE * ROWS:  # WOE 0, out of the IV
            woe[-1], iv = 0.0, iv - table.iv_bins[-1]
            small_missing.append(f)
        np.testing.assert_allclose(host.woe[f], woe, rtol=0, atol=1e-12)
        assert abs(host.iv[f] - iv) < 1e-12
        np.testing.assert_array_equal(host.counts[f], plan.apply(events + nonevents))
        # every value bin (not the missing bin) holds the minimum share of the rows
        values = host.counts[f][: len(plan.groups) - int(bins.missing[f])]
        assert len(values) == 1 or values.min() >= MIN_SHARE * ROWS
        # the host's WOE of each of its rows is its merged bin's
        np.testing.assert_array_equal(host.transform(X)[:, f], woe[plan.mapping()[binned[:, f]]])
    assert pooled_merges > 0  # the test data needs merging at all
    assert not small_missing or all(host.woe[f][-1] == 0.0 for f in small_missing)


def _dishonest_guest(
    y: np.ndarray, plans: t.Callable[[list[np.ndarray]], list[int]]
) -> t.Callable[[RoleContext], None]:
    """An honest guest up to the merge step, which sends ``plans(counts per column)``."""

    def guest(ctx: RoleContext) -> None:
        public, private = generate_keypair(
            SMALL_TEST_KEY_BITS_512, ctx.rng, insecure_test_size=True
        )
        ctx.broadcast(WOE_PUBLIC_KEY, ctx.hosts, public)
        ctx.broadcast(WOE_LABELS, ctx.hosts, private.encrypt_ints(y.astype(np.int64), 0, ctx.rng))
        header = ctx.recv(WOE_BINS, HOST)
        F = int(header[0])
        cells = header[1 : 1 + 3 * F : 3]
        flat = header[1 + 3 * F :]
        bounds = np.cumsum([0, *cells])
        counts = [flat[bounds[f] : bounds[f + 1]] for f in range(F)]
        total = sum(g.ciphertexts(public.n) for g in sum_groups(flat, public.n))
        ctx.recv(WOE_BIN_SUMS, HOST, key=public, count=total)
        ctx.send(WOE_MERGE, HOST, plans(counts))
        ctx.send(WOE_VALUES, HOST, np.zeros(int(sum(cells))))
        ctx.send(WOE_IV, HOST, np.zeros(F))

    return guest


def _host_refuses(
    data: tuple[np.ndarray, np.ndarray, tuple[int | None, ...]],
    plans: t.Callable[[list[np.ndarray]], list[int]],
    match: str,
) -> None:
    y, X, kinds = data
    with pytest.raises(ProtocolError, match=match):
        run_roles(
            {
                GUEST: _dishonest_guest(y, plans),
                HOST: lambda ctx: host_woe(ctx, X, _params(), categories=kinds),
            },
            guest=GUEST,
            hosts=(HOST,),
            timeout=60,
        )


def test_a_plan_that_keeps_a_bin_under_the_minimum_share_alone_is_refused_512_bit_key(
    data: tuple[np.ndarray, np.ndarray, tuple[int | None, ...]],
) -> None:
    """Every bin alone: some bins hold fewer than 5% of the rows (the categorical pay_1's
    rare statuses), so their WOE would tell the event rate of a few rows."""
    y, X, kinds = data
    small = [c for c in _counts(X, kinds) if c.min() < MIN_SHARE * ROWS]
    assert small, "the test needs a column with a bin under the minimum share"
    _host_refuses(
        data,
        lambda counts: plans_message([MergePlan.identity(len(c)) for c in counts]),
        "fewer than 5.0% of the rows",
    )


def test_a_plan_that_pools_the_missing_bin_with_values_is_refused_512_bit_key(
    data: tuple[np.ndarray, np.ndarray, tuple[int | None, ...]],
) -> None:
    def plans(counts: list[np.ndarray]) -> list[int]:
        # every column one group: for a column with a missing bin, missing pooled in
        return plans_message([MergePlan((tuple(range(len(c))),)) for c in counts])

    _, X, _ = data
    assert np.isnan(X).any(axis=0).any(), "the test needs a column with missing cells"
    _host_refuses(data, plans, "missing bin")


def test_a_truncated_plan_is_refused_512_bit_key(
    data: tuple[np.ndarray, np.ndarray, tuple[int | None, ...]],
) -> None:
    _host_refuses(data, lambda counts: [3, 1, 0], "shorter than its groups say")


def _counts(X: np.ndarray, kinds: tuple[int | None, ...]) -> list[np.ndarray]:
    bins = QuantileBins.fit(X, 10, kinds)
    binned = bins.transform(X)
    return [np.bincount(binned[:, f], minlength=bins.n_cells(f)) for f in range(X.shape[1])]
