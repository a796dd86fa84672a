"""Tests for the X25519 ECDH-PSI primitives."""

from __future__ import annotations

import pickle

import pytest

from lianmo.crypto import POINT_BYTES, Drbg, PsiKey, hash_ids
from lianmo.crypto.psi import hash_ids_packed, match_points, split_points
from lianmo.errors import CryptoError

SALT = b"job-0001-salt-16"


def _key(label: str) -> PsiKey:
    return PsiKey(Drbg(b"psi-test-seed-0123456789abcdef!!", label))


def test_hash_ids_gives_masked_32_byte_points() -> None:
    points = hash_ids(["alice", "bob", "", "ünïcode"], SALT)
    assert all(len(p) == POINT_BYTES == 32 for p in points)
    assert all(p[-1] & 0x80 == 0 for p in points)
    assert len(set(points)) == 4
    assert hash_ids(["alice"], SALT) == points[:1]


def test_different_salts_give_unrelated_points() -> None:
    ids = [f"id-{i}" for i in range(200)]
    a, b = hash_ids(ids, SALT), hash_ids(ids, b"job-0002-salt-16")
    assert not set(a) & set(b)


def test_blinding_commutes() -> None:
    points = hash_ids([f"customer-{i}" for i in range(50)], SALT)
    ka, kb = _key("a"), _key("b")
    assert kb.blind(ka.blind(points)) == ka.blind(kb.blind(points))
    assert ka.blind(points) != kb.blind(points)
    assert set(ka.blind(points)).isdisjoint(points)


def test_double_blinding_finds_exactly_the_intersection() -> None:
    common = [f"shared-{i}" for i in range(40)]
    only_a = [f"a-only-{i}" for i in range(25)]
    only_b = [f"b-only-{i}" for i in range(30)]
    ids_a, ids_b = only_a[:10] + common + only_a[10:], common[::-1] + only_b
    ka, kb = _key("a"), _key("b")
    # a sends a(H(x)); b blinds it again and returns it in order; b sends b(H(y)).
    double_a = kb.blind(ka.blind(hash_ids(ids_a, SALT)))
    double_b = set(ka.blind(kb.blind(hash_ids(ids_b, SALT))))
    found = {x for x, point in zip(ids_a, double_a, strict=True) if point in double_b}
    assert found == set(ids_a) & set(ids_b) == set(common)


def test_key_is_deterministic_given_the_seed() -> None:
    points = hash_ids(["x", "y"], SALT)
    assert _key("a").blind(points) == _key("a").blind(points)


def test_blind_rejects_low_order_and_malformed_points() -> None:
    key = _key("a")
    good = hash_ids(["x"], SALT)[0]
    with pytest.raises(CryptoError, match="index 1 has low order"):
        key.blind([good, bytes(32)])
    with pytest.raises(CryptoError, match="index 0 must be 32 bytes, got 31"):
        key.blind([good[:31]])


def test_input_validation() -> None:
    with pytest.raises(CryptoError, match="index 1 is int"):
        hash_ids(["a", 5], SALT)  # type: ignore[list-item]
    with pytest.raises(CryptoError, match="salt must be bytes"):
        hash_ids(["a"], "salt")  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="needs a Drbg"):
        PsiKey(b"0" * 32)  # type: ignore[arg-type]


def test_key_cannot_be_pickled() -> None:
    with pytest.raises(CryptoError, match="never leaves"):
        pickle.dumps(_key("a"))


def test_packed_and_listed_forms_agree() -> None:
    ids = [f"c{i}" for i in range(300)]
    packed = hash_ids_packed(ids, SALT)
    assert len(packed) == 300 * POINT_BYTES and split_points(packed) == hash_ids(ids, SALT)
    key = _key("a")
    assert split_points(key.blind_packed(packed)) == key.blind(hash_ids(ids, SALT))
    with pytest.raises(CryptoError, match="32-byte units; got 33 bytes"):
        key.blind_packed(packed[:33])


def test_match_points_finds_each_query_exactly() -> None:
    table = hash_ids([f"t{i}" for i in range(500)], SALT)
    queries = [table[7], hash_ids(["absent"], SALT)[0], table[499], table[0]]
    # differs from table[3] only in its trailing bytes: must not match it
    near = table[3][:-1] + bytes([table[3][-1] ^ 1])
    queries.append(near)
    found = match_points(b"".join(queries), b"".join(table))
    assert found.tolist() == [7, -1, 499, 0, -1]
    assert match_points(b"".join(queries), b"").tolist() == [-1] * 5
    assert match_points(b"", b"".join(table)).tolist() == []
    # and a reference dict agrees on a larger random case
    where = {p: j for j, p in enumerate(table)}
    sample = [table[j] for j in range(0, 500, 3)] + hash_ids([f"x{i}" for i in range(50)], SALT)
    assert match_points(b"".join(sample), b"".join(table)).tolist() == [
        where.get(p, -1) for p in sample
    ]
