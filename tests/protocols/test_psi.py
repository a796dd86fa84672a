"""ECDH PSI over in-memory channels: exactly the intersection, same order everywhere."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lianmo.errors import DataError, PolicyError, ProtocolError
from lianmo.protocols import psi
from lianmo.protocols.context import Limits, Progress, RoleContext
from lianmo.protocols.psi import align_guest, align_host
from lianmo.transport import serde
from lianmo.wire.steps import PSI_GUEST_SET, PSI_GUEST_SIZE, PSI_HOST_SET, PSI_HOST_SIZE

from .conftest import WireRecorder, run_roles


def _ids(prefix: str, numbers: range | list[int]) -> list[str]:
    return [f"{prefix}{i}" for i in numbers]


def test_two_party_psi_returns_exactly_the_intersection_in_id_order() -> None:
    guest_ids = _ids("c", list(range(0, 300)) + [1000, 1001])
    host_ids = _ids("c", range(200, 600))[::-1]
    out = run_roles(
        {
            "g": lambda ctx: align_guest(ctx, guest_ids, min_intersection=10),
            "h": lambda ctx: align_host(ctx, host_ids, min_intersection=10),
        },
        guest="g",
        hosts=("h",),
    )
    expected = sorted(set(guest_ids) & set(host_ids))
    assert [guest_ids[i] for i in out["g"]] == expected
    assert [host_ids[i] for i in out["h"]] == expected


def test_psi_with_two_hosts_aligns_on_the_common_ids_of_all_three() -> None:
    guest_ids = _ids("x", range(0, 100))
    host1 = _ids("x", range(50, 150))
    host2 = _ids("x", list(range(0, 60)) + list(range(90, 95)))
    out = run_roles(
        {
            "g": lambda ctx: align_guest(ctx, guest_ids, min_intersection=1),
            "h1": lambda ctx: align_host(ctx, host1, min_intersection=1),
            "h2": lambda ctx: align_host(ctx, host2, min_intersection=1),
        },
        guest="g",
        hosts=("h1", "h2"),
    )
    expected = sorted(set(guest_ids) & set(host1) & set(host2))
    assert len(expected) == 15
    assert [guest_ids[i] for i in out["g"]] == expected
    assert [host1[i] for i in out["h1"]] == expected
    assert [host2[i] for i in out["h2"]] == expected


def test_psi_wire_carries_no_id_in_plaintext(wire) -> None:  # type: ignore[no-untyped-def]
    guest_ids = _ids("client-", range(0, 50))
    host_ids = _ids("client-", range(25, 75))
    run_roles(
        {
            "g": lambda ctx: align_guest(ctx, guest_ids, min_intersection=1),
            "h": lambda ctx: align_host(ctx, host_ids, min_intersection=1),
        },
        guest="g",
        hosts=("h",),
        recorder=wire,
    )
    blob = b"".join(e.payload for e in wire.envelopes)
    assert not any(i.encode() in blob for i in guest_ids + host_ids)


def test_intersection_below_minimum_stops_both_parties() -> None:
    guest_ids = _ids("a", range(0, 20))
    host_ids = _ids("a", range(15, 40))
    with pytest.raises(DataError, match="intersection has 5 ids, below the job's minimum of 10"):
        run_roles(
            {
                "g": lambda ctx: align_guest(ctx, guest_ids, min_intersection=10),
                "h": lambda ctx: align_host(ctx, host_ids, min_intersection=10),
            },
            guest="g",
            hosts=("h",),
        )


@pytest.mark.parametrize(("n_guest", "n_host"), [(13, 8), (8, 12), (0, 5), (4, 0)])
def test_point_sets_travel_in_chunks_ended_by_a_short_one(
    monkeypatch: pytest.MonkeyPatch,
    wire,
    n_guest: int,
    n_host: int,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(psi, "CHUNK_POINTS", 4)
    guest_ids = _ids("k", range(0, n_guest))
    host_ids = _ids("k", range(3, 3 + n_host))[::-1]
    out = run_roles(
        {
            "g": lambda ctx: align_guest(ctx, guest_ids, min_intersection=0),
            "h": lambda ctx: align_host(ctx, host_ids, min_intersection=0),
        },
        guest="g",
        hosts=("h",),
        recorder=wire,
    )
    expected = sorted(set(guest_ids) & set(host_ids))
    assert [guest_ids[i] for i in out["g"]] == expected
    assert [host_ids[i] for i in out["h"]] == expected
    rounds: dict[str, list[int]] = {}
    for env in wire.envelopes:
        rounds.setdefault(env.tag, []).append(env.round)
    # a set of n points: n // 4 full chunks, then one short chunk (empty if n % 4 == 0)
    assert rounds["psi.host_set"] == list(range(n_host // 4 + 1))
    assert rounds["psi.guest_set"] == list(range(n_guest // 4 + 1))
    assert rounds["psi.guest_set_double"] == list(range(n_guest // 4 + 1))


def test_ids_as_utf8_bytes_align_exactly_as_the_strings_do() -> None:
    guest_ids = ["é-1", "b", "a10", "a9", "ü", "zz", "a"]
    host_ids = ["a", "ü", "zz", "b", "é-1", "a9", "q"]
    as_bytes = {
        role: np.array([i.encode() for i in ids], dtype=np.bytes_)
        for role, ids in (("g", guest_ids), ("h", host_ids))
    }
    outs = [
        run_roles(
            {
                "g": lambda ctx, g=g: align_guest(ctx, g, min_intersection=1),
                "h": lambda ctx, h=h: align_host(ctx, h, min_intersection=1),
            },
            guest="g",
            hosts=("h",),
        )
        for g, h in ((guest_ids, host_ids), (as_bytes["g"], as_bytes["h"]))
    ]
    assert [guest_ids[i] for i in outs[0]["g"]] == sorted(set(guest_ids) & set(host_ids))
    for role in ("g", "h"):
        np.testing.assert_array_equal(outs[0][role], outs[1][role])


def test_alignment_progress_moves_through_the_blinding_and_ends_at_100(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(psi, "CHUNK_POINTS", 64)  # several chunks per set
    seen: dict[str, list[tuple[int, int]]] = {"g": [], "h": []}

    def watch(party: str) -> Progress:
        def progress(phase: str, step: int, total: int, detail: str = "") -> None:
            assert phase == "align"
            seen[party].append((step, total))

        return progress

    guest_ids, host_ids = _ids("p", range(0, 500)), _ids("p", range(100, 600))
    run_roles(
        {
            "g": lambda ctx: align_guest(
                replace(ctx, progress=watch("g")), guest_ids, min_intersection=1
            ),
            "h": lambda ctx: align_host(
                replace(ctx, progress=watch("h")), host_ids, min_intersection=1
            ),
        },
        guest="g",
        hosts=("h",),
    )
    for party, steps in seen.items():
        values = [step for step, _ in steps]
        assert all(total == 100 for _, total in steps), party
        assert values == sorted(values) and values[-1] == 100, (party, values)
        assert len({v for v in values if 0 < v < 100}) >= 3, (party, values)  # it moves


# ---- set sizes first: what a curious or dishonest party can no longer do ----------------------


def _tags(wire: WireRecorder) -> list[str]:
    return [e.tag for e in wire.envelopes]


def test_both_sizes_are_announced_before_any_point() -> None:
    recorder = WireRecorder()
    run_roles(
        {
            "g": lambda ctx: align_guest(ctx, _ids("s", range(0, 120)), min_intersection=10),
            "h": lambda ctx: align_host(ctx, _ids("s", range(60, 200)), min_intersection=10),
        },
        guest="g",
        hosts=("h",),
        recorder=recorder,
    )
    assert _tags(recorder)[:2] == ["psi.guest_size", "psi.host_size"]
    sizes = [
        int(serde.decode_payload(e.payload_type, e.payload).value) for e in recorder.envelopes[:2]
    ]
    assert sizes == [120, 140]


def test_attack_a_one_id_guest_set_is_refused_before_the_host_sends_anything() -> None:
    """A guest aligning one id would learn whether that person is a host customer."""
    recorder = WireRecorder()
    with pytest.raises(
        DataError,
        match="party 'h': guest 'g' brings 1 ids to alignment, fewer than the job's minimum "
        "intersection of 100; so small a set could single people out",
    ):
        run_roles(
            {
                "g": lambda ctx: align_guest(ctx, ["target-person"], min_intersection=100),
                "h": lambda ctx: align_host(ctx, _ids("c", range(0, 500)), min_intersection=100),
            },
            guest="g",
            hosts=("h",),
            recorder=recorder,
        )
    # the host sent nothing at all: no size, no blinded set, no doubled guest point
    assert _tags(recorder) == ["psi.guest_size"]


def test_attack_an_oversized_guest_set_is_refused_by_the_hosts_cap() -> None:
    """A guest bringing a whole population would learn the host's customer list."""
    recorder = WireRecorder()
    with pytest.raises(
        PolicyError,
        match=r"party 'h': guest 'g' brings 300 ids to alignment, more than this party's "
        r"policy.max_peer_set of 250; alignment stops before any id is compared",
    ):
        run_roles(
            {
                "g": lambda ctx: align_guest(ctx, _ids("p", range(0, 300)), min_intersection=10),
                "h": lambda ctx: align_host(ctx, _ids("p", range(0, 200)), min_intersection=10),
            },
            guest="g",
            hosts=("h",),
            recorder=recorder,
            limits={"h": Limits(max_peer_set=250)},
        )
    assert _tags(recorder) == ["psi.guest_size"]


def test_a_host_set_above_the_guests_cap_is_refused_before_the_guest_sends_its_set() -> None:
    recorder = WireRecorder()
    with pytest.raises(PolicyError, match="host 'h' brings 200 ids .*policy.max_peer_set of 150"):
        run_roles(
            {
                "g": lambda ctx: align_guest(ctx, _ids("p", range(0, 120)), min_intersection=10),
                "h": lambda ctx: align_host(ctx, _ids("p", range(0, 200)), min_intersection=10),
            },
            guest="g",
            hosts=("h",),
            recorder=recorder,
            limits={"g": Limits(max_peer_set=150)},
        )
    tags = _tags(recorder)
    assert tags[:2] == ["psi.guest_size", "psi.host_size"]
    # no guest point was blinded for the host, and the host doubled nothing
    assert "psi.guest_set" not in tags and "psi.guest_set_double" not in tags


def test_attack_a_guest_that_sends_more_points_than_it_announced_is_refused() -> None:
    """A dishonest guest announcing a small set to pass the cap, then sending a large one."""
    recorder = WireRecorder()

    def lying_guest(ctx: RoleContext) -> None:
        ctx.send(PSI_GUEST_SIZE, "h", 150)  # within the host's cap of 200
        ctx.recv(PSI_HOST_SIZE, "h")
        ctx.send(PSI_GUEST_SET, "h", bytes(32 * 400))  # 400 points in the first chunk
        ctx.recv(PSI_HOST_SET, "h", count=300)

    with pytest.raises(ProtocolError, match="sent 400 points as 'psi.guest_set', expected 150"):
        run_roles(
            {
                "g": lying_guest,
                "h": lambda ctx: align_host(ctx, _ids("q", range(0, 300)), min_intersection=10),
            },
            guest="g",
            hosts=("h",),
            recorder=recorder,
            limits={"h": Limits(max_peer_set=200)},
        )
    assert "psi.guest_set_double" not in _tags(recorder)
