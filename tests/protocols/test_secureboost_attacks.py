"""A dishonest SecureBoost guest against a real host: what it is refused, what it can learn.

Each test runs the real host (``train_host``, ``route_host``) over in-memory channels
against a guest that deviates from the protocol: one written here message by message,
or the real guest with some of its messages rewritten. Paillier keys are 1024 bits
(``SMALL_TEST_KEY_BITS``, unit tests only); the bounds that depend on the key size are
computed for 2048 bits in ``test_the_documented_bound_for_the_default_settings``.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Iterable

import numpy as np
import pytest

from lianmo.crypto.paillier import Packing, generate_keypair
from lianmo.errors import ProtocolError
from lianmo.models.binning import QuantileBins
from lianmo.models.tree import TreeParams, honest_value_bits
from lianmo.protocols.context import RoleContext
from lianmo.protocols.secureboost import (
    BoostParams,
    GuestResult,
    HostResult,
    train_guest,
    train_host,
)
from lianmo.protocols.tree_route import route_guest, route_host
from lianmo.transport import serde
from lianmo.wire.convert import NO_INDEX
from lianmo.wire.steps import (
    PREDICT_SB,
    SB_CANDIDATES,
    SB_GH,
    SB_GH_LAYOUT,
    SB_HISTOGRAMS,
    SB_NODES,
    SB_PLAN,
    SB_POSITIONS,
    SB_PUBLIC_KEY,
    SB_ROUTE,
    SB_SPLIT_IDS,
)

from .conftest import WireRecorder, run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024
GUEST, HOST = "guest", "host"
ROWS = 300


@dataclasses.dataclass(frozen=True)
class Data:
    Xg: np.ndarray
    Xh: np.ndarray
    y: np.ndarray
    Xg_val: np.ndarray
    Xh_val: np.ndarray
    y_val: np.ndarray


@pytest.fixture(scope="module")
def data() -> Data:
    """Labels that depend on two guest and four host columns, so both parties win splits."""
    rng = np.random.default_rng(18)
    X = rng.normal(size=(ROWS + 100, 6))
    logit = X @ np.array([0.8, -0.6, 2.0, 1.5, -1.2, 0.7])
    y = (rng.uniform(size=len(X)) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return Data(X[:ROWS, :2], X[:ROWS, 2:], y[:ROWS], X[ROWS:, :2], X[ROWS:, 2:], y[ROWS:])


def _params(**overrides: t.Any) -> BoostParams:
    base: dict[str, t.Any] = dict(
        rounds=3,
        tree=TreeParams(depth=3),
        max_bins=32,
        key_bits=SMALL_TEST_KEY_BITS,
        insecure_test_key=True,
    )
    return BoostParams(**(base | overrides))


def _host(data: Data, params: BoostParams) -> t.Callable[[RoleContext], HostResult]:
    return lambda ctx: train_host(ctx, data.Xh, data.Xh_val, params)


def _honest_guest(data: Data, params: BoostParams) -> t.Callable[[RoleContext], GuestResult]:
    def run(ctx: RoleContext) -> GuestResult:
        return train_guest(
            ctx, data.Xg, data.y, data.Xg_val, data.y_val, params, feature_names=("a", "b")
        )

    return run


class _Stop(Exception):
    """The dishonest guest has what it came for and ends the job."""


# ---- unlinkable split ids --------------------------------------------------------------------


def test_host_split_ids_are_random_and_name_no_feature(data: Data, wire: WireRecorder) -> None:
    params = _params()
    out = run_roles(
        {GUEST: _honest_guest(data, params), HOST: _host(data, params)},
        guest=GUEST,
        hosts=(HOST,),
        recorder=wire,
    )
    guest, host = out[GUEST], out[HOST]
    ids = list(host.rules)
    assert len(ids) >= 4, "the host should win several splits for this test to mean anything"
    assert len(set(ids)) == len(ids)
    assert ids != sorted(ids) and max(ids) > 2**24  # not counting up; drawn from 32 bits
    # sb.split_ids carries exactly one id per split made: nothing that groups features
    sent = [e for e in wire.envelopes if e.tag == SB_SPLIT_IDS.tag]
    payloads = [serde.decode_payload(e.payload_type, e.payload) for e in sent]
    assert sum(len(p.data) for p in payloads) == 4 * len(ids)  # uint32 each, nothing else
    # the guest's importance shows the host as one entry; the host's counts per feature
    host_keys = [k for k in guest.importance if k not in ("a", "b")]
    assert host_keys == [f"host:{HOST}"]
    assert guest.importance[f"host:{HOST}"]["splits"] == len(ids)
    assert sum(v["splits"] for v in host.importance.values()) == len(ids)
    assert len(host.importance) >= 2  # several host features split, which the guest cannot tell
    # every rule knows its node's tree and depth, as the guest's trees place them
    for tree_index, tree in enumerate(guest.model.trees):
        level = {0: 0}
        for i, node in enumerate(tree.nodes):
            if node.split is None:
                continue
            level[node.left] = level[node.right] = level[i] + 1
            if node.split.owner == HOST:
                rule = host.rules[node.split.split_id]
                assert (rule.tree, rule.depth) == (tree_index, level[i])


# ---- (a) an oversized (g, h) layout ----------------------------------------------------------


def _dishonest_start(ctx: RoleContext, value_bits: int, plaintexts: list[int]) -> t.Any:
    """Steps a dishonest guest sends first: key, plan, a layout, chosen [[g + h·2^s]]."""
    public, private = generate_keypair(SMALL_TEST_KEY_BITS, ctx.rng, insecure_test_size=True)
    ctx.broadcast(SB_PUBLIC_KEY, ctx.hosts, public)
    ctx.broadcast(SB_PLAN, ctx.hosts, 1)
    ctx.broadcast(SB_GH_LAYOUT, ctx.hosts, value_bits, round=0)
    ctx.broadcast(SB_GH, ctx.hosts, private.encrypt_ints(plaintexts, 0, ctx.rng), round=0)
    return private


def test_a_layout_wider_than_an_honest_guest_needs_is_refused(data: Data) -> None:
    honest = honest_value_bits(ROWS)
    assert honest == 43  # 2**51 / 300 rows is about 2**42.8

    def guest(ctx: RoleContext) -> None:
        _dishonest_start(ctx, honest + 1, [0] * ROWS)
        ctx.recv(SB_CANDIDATES, HOST, round=0)  # never comes

    with pytest.raises(ProtocolError) as info:
        run_roles({GUEST: guest, HOST: _host(data, _params())}, guest=GUEST, hosts=(HOST,))
    message = str(info.value)
    assert "guest 'guest' announced 44-bit gradients in 'sb.gh_layout' for tree 0" in message
    assert "an honest guest needs at most 43" in message and "refused" in message


# ---- (b) gradients 2^i with a valid layout ---------------------------------------------------


def _candidate_left_sets(data: Data, params: BoostParams) -> np.ndarray:
    """Every candidate the host offers at the root, as a (candidate x row) left mask."""
    binned = QuantileBins.fit(data.Xh, params.max_bins).transform(data.Xh)
    out = []
    for f in range(binned.shape[1]):
        count = np.bincount(binned[:, f], minlength=params.max_bins)
        right = np.cumsum(count[::-1])[::-1]
        for b in range(params.max_bins - 1):
            if count[b] > 0 and right[b + 1] > 0:
                out.append(binned[:, f] <= b)
    return np.array(out)


def _powers_attack(
    data: Data, rows_at: t.Callable[[Packing], range], shift: int = 0
) -> dict[str, t.Any]:
    """The guest sends [[2^p]] for row i, ``p`` the i-th of ``rows_at(layout)``.

    Returns the layout, the key's modulus, the candidate count and, for every place of
    every packed plaintext (empty places of the last one too), the bits the guest reads
    at those positions less ``shift`` places, from the place's own slots.
    """
    params = _params(rounds=1, tree=TreeParams(depth=1))
    found: dict[str, t.Any] = {}

    def guest(ctx: RoleContext) -> None:
        value_bits = honest_value_bits(ROWS)  # the widest layout the host accepts
        key_n = generate_keypair(SMALL_TEST_KEY_BITS, ctx.rng, insecure_test_size=True)[0].n
        layout = Packing.for_sums((value_bits, value_bits), ROWS).masked(key_n)
        positions = rows_at(layout)
        plain = [0] * ROWS
        for i, p in enumerate(positions):
            plain[i] = 1 << p  # row i's left/right side lands on bit p of each candidate
        private = _dishonest_start(ctx, value_bits, plain)
        ctx.broadcast(SB_NODES, ctx.hosts, [0, NO_INDEX], round=0)
        ctx.broadcast(SB_POSITIONS, ctx.hosts, np.zeros(ROWS, dtype=np.int64), round=0)
        total = int(ctx.recv(SB_CANDIDATES, HOST, round=0).sum())
        cv = ctx.recv(SB_HISTOGRAMS, HOST, round=0, key=private.public_key)
        per = layout.per_plaintext(private.public_key.n)
        n = private.public_key.n
        plaintexts = [m - n if m > n // 2 else m for m in private.decrypt_raw(cv)]  # mod n
        values = _values(plaintexts, layout, per)
        back = shift * layout.total_bits
        read = np.array([[(v >> (p - back)) & 1 for p in positions] for v in values], dtype=bool)
        found.update(layout=layout, n=private.public_key.n, total=total, places=read)
        found.update(read=read[:total], rows=len(positions))
        raise _Stop

    with pytest.raises(_Stop):
        run_roles({GUEST: guest, HOST: _host(data, params)}, guest=GUEST, hosts=(HOST,))
    return found


def _values(plaintexts: list[int], layout: Packing, per: int) -> list[int]:
    """Each packed candidate's own value, read as the honest guest reads slots (balanced
    digits, lowest first), but without refusing what overflows."""
    out = []
    for rest in plaintexts:
        for _ in range(per):
            value, shift = 0, 0
            for width in layout.slot_bits:
                half = 1 << (width - 1)
                digit = ((rest + half) & ((1 << width) - 1)) - half
                rest = (rest - digit) >> width
                value += digit << shift
                shift += width
            out.append(value)
    return out


def test_powers_of_two_in_the_honest_slots_show_exactly_b_rows_per_candidate(
    data: Data,
) -> None:
    """The attack works up to the bound: B = the honest slots' width, rows read exactly."""
    found = _powers_attack(data, lambda layout: range(sum(layout.slot_bits[:-1])))
    layout, read, rows = found["layout"], found["read"], found["rows"]
    B = sum(layout.slot_bits[:-1])
    assert (rows, B) == (106, 106)  # 2 slots of 43 + 9 + 1 bits for 300 rows
    truth = _candidate_left_sets(data, _params())[:, :rows]
    assert len(read) == len(truth) > 50
    # every candidate's B bits are exactly one true candidate's sides for rows 0..B-1
    exact = [bool((truth == r).all(axis=1).any()) for r in read]
    assert np.mean(exact) >= 0.97, np.mean(exact)  # a rare carry out of the mask slot
    assert B <= layout.exposed_bits(found["n"]) < B + 2


def test_powers_of_two_above_the_honest_slots_show_nothing(data: Data) -> None:
    """Rows put in the mask slot's bits read back at chance: the mask hides them."""

    def above(layout: Packing) -> range:
        B = sum(layout.slot_bits[:-1])
        return range(B, layout.total_bits)

    found = _powers_attack(data, above)
    read, rows = found["read"], found["rows"]
    truth = _candidate_left_sets(data, _params())[:, :rows]
    assert rows == found["layout"].slot_bits[-1] >= 5
    # the best the guest can do: match each reading to the candidate it fits best
    best = np.array([(truth == r).mean(axis=1).max() for r in read])
    chance = np.array([(truth == r).mean(axis=1).max() for r in _coin_flips(read.shape)])
    assert abs(best.mean() - chance.mean()) < 0.05, (best.mean(), chance.mean())
    # and the bits themselves look like coin flips
    assert 0.4 < read.mean() < 0.6
    assert best.mean() < 0.95  # without the mask every reading would match exactly (1.0)


def test_a_part_filled_plaintext_shows_nothing_in_its_empty_places(data: Data) -> None:
    """Rows put one place up spill into the next candidate's slots: B rows, no more.

    In the last, part-filled plaintext each candidate's slots then show the previous
    candidate's sides (the guest chooses which candidate a place shows, not how much;
    in full plaintexts the top candidate's spill wraps modulo n and garbles them). Above
    the last candidate the empty places are masked in full: without that mask they
    would show its sides for B more rows.
    """

    def next_place(layout: Packing) -> range:
        B = sum(layout.slot_bits[:-1])
        return range(layout.total_bits, layout.total_bits + B)

    found = _powers_attack(data, next_place, shift=1)
    per = found["layout"].per_plaintext(found["n"])
    total, places, rows = found["total"], found["places"], found["rows"]
    truth = _candidate_left_sets(data, _params())[:, :rows]
    last = total - total % per
    assert total - last >= 4, "the last plaintext must be part filled for this test"
    spilled = range(last + 1, total)  # its places above the lowest: the spill, readable
    exact = [bool((truth == places[c]).all(axis=1).any()) for c in spilled]
    assert np.mean(exact) >= 0.8, exact  # the spill channel carries B rows
    empty = places[total]  # the first empty place: the last candidate's spill, masked
    best = (truth == empty).mean(axis=1).max()
    chance = np.mean([(truth == r).mean(axis=1).max() for r in _coin_flips((20, rows))])
    assert best < 0.9 and abs(best - chance) < 0.1, (best, chance)


def _coin_flips(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 2, size=shape).astype(bool)


def test_the_documented_bound_for_the_default_settings() -> None:
    """24,000 rows and a 2048-bit key: B = 106 bits, exposed per candidate below B + 1."""
    n = (1 << 2047) + 1  # any 2048-bit modulus has the same room
    layout = Packing.for_sums((honest_value_bits(24_000),) * 2, 24_000).masked(n)
    assert layout.slot_bits == (53, 53, 7)
    assert layout.per_plaintext(n) == 18
    assert 106 <= layout.exposed_bits(n) < 107


# ---- (c) routing questions about foreign splits ---------------------------------------------


class _Rewriting(RoleContext):  # a RoleContext whose broadcast a test rewrites
    """The real guest, with chosen outgoing messages rewritten (``rewrite``) or noted."""

    rewrite: t.Callable[[str, int, t.Any], t.Any]

    def broadcast(self, step: t.Any, to: Iterable[str], value: t.Any, *, round: int = 0) -> None:
        super().broadcast(step, to, type(self).rewrite(step.tag, round, value), round=round)


def _rewriting(ctx: RoleContext, rewrite: t.Callable[[str, int, t.Any], t.Any]) -> RoleContext:
    cls = type("Guest", (_Rewriting,), {"rewrite": staticmethod(rewrite)})
    fields = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}
    return t.cast(RoleContext, cls(**fields))


def _trained(data: Data) -> tuple[GuestResult, HostResult]:
    params = _params()
    out = run_roles(
        {GUEST: _honest_guest(data, params), HOST: _host(data, params)},
        guest=GUEST,
        hosts=(HOST,),
    )
    return out[GUEST], out[HOST]


@pytest.fixture(scope="module")
def trained(data: Data) -> tuple[GuestResult, HostResult]:
    return _trained(data)


def _first_split(host: HostResult, *, tree: int | None = None, depth: int) -> int:
    return next(i for i, r in host.rules.items() if r.depth == depth and tree in (None, r.tree))


def test_training_refuses_a_split_of_another_tree(
    data: Data, trained: tuple[GuestResult, HostResult]
) -> None:
    """While tree 1's validation rows are routed, the guest asks about a tree-0 split."""
    _, honest_host = trained  # the same seeds draw the same split ids in the run below
    foreign = next(i for i, r in honest_host.rules.items() if r.tree == 0)
    depth = honest_host.rules[foreign].depth

    def rewrite(tag: str, round: int, value: t.Any) -> t.Any:
        if tag == SB_ROUTE.splits.tag and round == 1:
            return [foreign]
        if tag == SB_ROUTE.rows.tag and round == 1:
            mask = np.zeros((1, len(data.y_val)), dtype=bool)
            mask[0, :10] = True
            return mask
        return value

    params = _params()
    guest = _honest_guest(data, params)
    with pytest.raises(ProtocolError) as info:
        run_roles(
            {GUEST: lambda ctx: guest(_rewriting(ctx, rewrite)), HOST: _host(data, params)},
            guest=GUEST,
            hosts=(HOST,),
        )
    assert f"about split {foreign} of tree 0 at depth {depth}" in str(info.value)
    assert "routes depth 0 of tree(s) [1]: refused" in str(info.value)


def _score(data: Data, trained: tuple[GuestResult, HostResult]) -> np.ndarray:
    """Route the validation rows through the trained model as a predict job does."""
    guest, host = trained
    model = guest.model

    def guest_side(ctx: RoleContext) -> np.ndarray:
        return route_guest(
            ctx, model.trees, model.rules, data.Xg_val, depth=model.depth, steps=PREDICT_SB
        )

    out = run_roles(
        {GUEST: guest_side, HOST: _scoring_host(data, host)}, guest=GUEST, hosts=(HOST,)
    )
    return t.cast(np.ndarray, out[GUEST])


def _scoring_host(data: Data, host: HostResult) -> t.Callable[[RoleContext], None]:
    depth = _params().tree.depth
    return lambda ctx: route_host(ctx, host.rules, data.Xh_val, depth=depth, steps=PREDICT_SB)


def _ask_at_step_0(
    data: Data, host: HostResult, split_ids: list[int], rows: list[list[int]]
) -> np.ndarray:
    """A scoring guest's first question, chosen freely; the host's answer if it gives one."""
    answer: list[np.ndarray] = []

    def guest(ctx: RoleContext) -> None:
        n = len(data.y_val)
        mask = np.zeros((len(rows), n), dtype=bool)
        for j, r in enumerate(rows):
            mask[j, r] = True
        ctx.send(PREDICT_SB.splits, HOST, split_ids)
        ctx.send(PREDICT_SB.rows, HOST, mask)
        answer.append(ctx.recv(PREDICT_SB.left, HOST, count=len(rows), cols=n))
        raise _Stop

    with pytest.raises(_Stop):
        run_roles({GUEST: guest, HOST: _scoring_host(data, host)}, guest=GUEST, hosts=(HOST,))
    return answer[0]


def test_scoring_answers_honest_questions(
    data: Data, trained: tuple[GuestResult, HostResult]
) -> None:
    guest, _ = trained
    leaves = _score(data, trained)
    scores = guest.model.objective.predict_proba(guest.model.raw_scores(leaves))
    np.testing.assert_allclose(scores, guest.validation_scores, rtol=0, atol=1e-12)


@pytest.mark.parametrize("foreign", ["deeper", "random"])
def test_scoring_refuses_a_split_not_at_the_step_depth(
    data: Data, trained: tuple[GuestResult, HostResult], foreign: str
) -> None:
    _, host = trained
    if foreign == "deeper":
        split_id = _first_split(host, depth=1)
        expect = f"about split {split_id} of tree {host.rules[split_id].tree} at depth 1"
    else:
        split_id = next(i for i in range(12345, NO_INDEX) if i not in host.rules)
        expect = f"about split {split_id}, which this host does not have: refused"
    with pytest.raises(ProtocolError) as info:
        _ask_at_step_0(data, host, [split_id], [[0, 1, 2]])
    assert "guest 'guest' asked 'predict.sb.splits' at step 0 " + expect in str(info.value)


def test_scoring_refuses_a_row_asked_twice_in_one_tree(
    data: Data, trained: tuple[GuestResult, HostResult]
) -> None:
    """Two root splits of one tree cannot both hold row 5; of two trees they can."""
    _, host = trained
    roots: dict[int, list[int]] = {}
    for i, r in host.rules.items():
        if r.depth == 0:
            roots.setdefault(r.tree, []).append(i)
    assert len(roots) >= 2, "the host should own the root of two trees"
    a, b = (splits[0] for splits in list(roots.values())[:2])
    left = _ask_at_step_0(data, host, [a, b], [[5, 6], [5, 7]])  # two trees: answered
    assert left.shape == (2, len(data.y_val)) and not left[:, 8:].any()
    with pytest.raises(ProtocolError, match="about a row twice in tree"):
        _ask_at_step_0(data, host, [a, a], [[5, 6], [5, 7]])
