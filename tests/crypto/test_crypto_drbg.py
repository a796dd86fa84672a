"""Tests for the HMAC-SHA256 deterministic random bit generator."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lianmo.crypto import Drbg
from lianmo.errors import CryptoError

SEED = bytes(range(32))


def test_same_seed_and_label_give_same_stream() -> None:
    assert Drbg(SEED, "a").random_bytes(100) == Drbg(SEED, "a").random_bytes(100)


@pytest.mark.parametrize(("seed", "label"), [(SEED, "b"), (bytes(32), "a"), (SEED, "")])
def test_other_seed_or_label_gives_other_stream(seed: bytes, label: str) -> None:
    assert Drbg(seed, label).random_bytes(32) != Drbg(SEED, "a").random_bytes(32)


def test_stream_does_not_depend_on_call_sizes() -> None:
    split = Drbg(SEED)
    parts = split.random_bytes(5) + split.random_bytes(0) + split.random_bytes(20000)
    parts += split.random_bytes(3)
    assert parts == Drbg(SEED).random_bytes(20008)


def test_children_are_deterministic_independent_and_leave_parent_alone() -> None:
    parent = Drbg(SEED)
    first = parent.child("masks").random_bytes(64)
    assert first == Drbg(SEED).child("masks").random_bytes(64)
    assert first != parent.child("psi").random_bytes(64)
    assert first != Drbg(bytes(32)).child("masks").random_bytes(64)
    assert first != parent.random_bytes(64)
    # Deriving and reading children does not advance the parent's stream.
    reread = Drbg(SEED)
    reread.child("x").random_bytes(10)
    assert reread.random_bytes(64) == Drbg(SEED).random_bytes(64)


def test_child_of_child_is_deterministic() -> None:
    a = Drbg(SEED).child("job").child("round-1").random_bytes(16)
    assert a == Drbg(SEED).child("job").child("round-1").random_bytes(16)
    assert a != Drbg(SEED).child("job").child("round-2").random_bytes(16)


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 256, 257, 2**64 + 1, 2**1024 - 3])
def test_randbelow_stays_in_range(bound: int) -> None:
    rng = Drbg(SEED, str(bound))
    draws = [rng.randbelow(bound) for _ in range(300)]
    assert all(0 <= d < bound for d in draws)
    if bound <= 7:
        assert set(draws) == set(range(bound))


@pytest.mark.parametrize("k", [0, 1, 7, 8, 9, 1024])
def test_randbits_stays_in_range(k: int) -> None:
    rng = Drbg(SEED)
    draws = [rng.randbits(k) for _ in range(200)]
    assert all(0 <= d < 2**k for d in draws)
    if k >= 8:
        assert max(draws).bit_length() == k


def test_from_entropy_gives_fresh_seeds() -> None:
    a, b = Drbg.from_entropy(), Drbg.from_entropy()
    assert len(a.seed) == 32
    assert a.seed != b.seed
    assert Drbg(a.seed).random_bytes(32) == a.random_bytes(32)


def test_repr_hides_the_seed() -> None:
    assert SEED.hex() not in repr(Drbg(SEED, "x"))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Drbg(b"short"), "at least 16 bytes"),
        (lambda: Drbg("not bytes"), "must be bytes"),  # type: ignore[arg-type]
        (lambda: Drbg(SEED).random_bytes(-1), "non-negative"),
        (lambda: Drbg(SEED).randbits(-1), "non-negative"),
        (lambda: Drbg(SEED).randbelow(0), "positive"),
    ],
)
def test_invalid_arguments_raise(call: Callable[[], object], match: str) -> None:
    with pytest.raises(CryptoError, match=match):
        call()


@pytest.mark.parametrize("reads", [[0], [1], [31, 1], [32], [33, 200], [5000, 7], [8191, 2]])
def test_seek_to_position_continues_the_same_stream(reads: list[int]) -> None:
    original = Drbg(b"s" * 32, "ckpt")
    for n in reads:
        original.random_bytes(n)
    position = original.position
    assert position == sum(reads)
    resumed = Drbg(b"s" * 32, "ckpt")
    resumed.seek(position)
    assert resumed.position == position
    assert resumed.random_bytes(100) == original.random_bytes(100)
    assert resumed.randbits(77) == original.randbits(77)


def test_seek_refuses_a_negative_position() -> None:
    with pytest.raises(CryptoError, match="non-negative"):
        Drbg(b"s" * 32).seek(-1)
