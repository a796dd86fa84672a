"""Tests for CipherVector arithmetic, selection and fixed-width serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.crypto import CipherVector, Drbg, PrivateKey, PublicKey
from lianmo.errors import CryptoError

Keypair = tuple[PublicKey, PrivateKey]
M = [3, -7, 0, 12345, -1, 2**40]


@pytest.fixture
def cv(small_test_keypair: Keypair, rng: Drbg) -> CipherVector:
    return small_test_keypair[0].encrypt_ints(M, -4, rng)


def test_add(small_test_keypair: Keypair, cv: CipherVector, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    other = [1, 1, -1, -12345, 0, 5]
    total = cv.add(pk.encrypt_ints(other, -4, rng))
    assert total.exponent == -4
    assert sk.decrypt_ints(total) == [a + b for a, b in zip(M, other, strict=True)]


def test_add_plain_ints(small_test_keypair: Keypair, cv: CipherVector) -> None:
    _, sk = small_test_keypair
    plain = np.array([-3, 7, 0, 1, 1, -(2**40)], dtype=np.int64)
    assert sk.decrypt_ints(cv.add_plain_ints(plain)) == [0, 0, 0, 12346, 0, 0]
    with pytest.raises(CryptoError, match="lengths differ"):
        cv.add_plain_ints([1])


@pytest.mark.parametrize("k", [0, 1, 2, -1, -3, 2**70])
def test_mul_int(small_test_keypair: Keypair, cv: CipherVector, k: int) -> None:
    _, sk = small_test_keypair
    assert sk.decrypt_ints(cv.mul_int(k)) == [k * m for m in M]


def test_sum(small_test_keypair: Keypair, cv: CipherVector) -> None:
    _, sk = small_test_keypair
    total = cv.sum()
    assert len(total) == 1 and total.exponent == cv.exponent
    assert sk.decrypt_ints(total) == [sum(M)]
    assert sk.decrypt_ints(cv.select([]).sum()) == [0]


def test_decrease_exponent_to(small_test_keypair: Keypair, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    x = np.array([1.5, -2.25])
    lowered = pk.encrypt(x, -2, rng).decrease_exponent_to(-5)
    assert lowered.exponent == -5
    np.testing.assert_array_equal(sk.decrypt(lowered), x)
    with pytest.raises(CryptoError, match="cannot raise the exponent"):
        lowered.decrease_exponent_to(-1)


def test_select_and_concat(small_test_keypair: Keypair, cv: CipherVector) -> None:
    _, sk = small_test_keypair
    picked = cv.select(np.array([5, 0, 0]))
    assert sk.decrypt_ints(picked) == [M[5], M[0], M[0]]
    joined = CipherVector.concat([picked, cv.select([1])])
    assert sk.decrypt_ints(joined) == [M[5], M[0], M[0], M[1]]
    with pytest.raises(CryptoError, match=r"\[0, 6\)"):
        cv.select([6])
    with pytest.raises(CryptoError, match=r"\[0, 6\)"):
        cv.select([-1])
    with pytest.raises(CryptoError, match="at least one"):
        CipherVector.concat([])


def test_matvec_t_matches_integer_arithmetic(small_test_keypair: Keypair, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    gen = np.random.default_rng(7)
    rows = 300
    m = gen.integers(-(2**20), 2**20, size=rows)
    X = gen.integers(-(2**15), 2**15, size=(rows, 6))
    X[gen.random(X.shape) < 0.3] = 0
    X[:, 1] = 0  # all zero
    X[:, 2] = -np.abs(X[:, 2]) - 1  # all negative
    X[:, 3] = gen.integers(-(2**40), 2**40, size=rows)  # wide entries
    X[:5, 4] = [2**62, -(2**62), 1, -1, 2**63 - 1]
    cv = pk.encrypt_ints(m, -3, rng)
    result = cv.matvec_t(X, -2)
    assert len(result) == 6 and result.exponent == -5
    expected = [sum(int(X[i, k]) * int(m[i]) for i in range(rows)) for k in range(6)]
    assert sk.decrypt_ints(result) == expected


@pytest.mark.parametrize("rows", [1, 2, 17])
def test_matvec_t_small_shapes(small_test_keypair: Keypair, rng: Drbg, rows: int) -> None:
    pk, sk = small_test_keypair
    m = [i - rows // 2 for i in range(rows)]
    X = np.arange(rows * 3, dtype=np.int64).reshape(rows, 3) - rows
    expected = (X.T.astype(object) @ np.array(m, dtype=object)).tolist()
    assert sk.decrypt_ints(pk.encrypt_ints(m, 0, rng).matvec_t(X, 0)) == expected


def test_matvec_t_validates(cv: CipherVector) -> None:
    with pytest.raises(CryptoError, match="integer numpy array"):
        cv.matvec_t(np.zeros((6, 2)), 0)  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match=r"shape \(6, n_cols\)"):
        cv.matvec_t(np.zeros((5, 2), dtype=np.int64), 0)
    with pytest.raises(CryptoError, match="-2\\*\\*63"):
        cv.matvec_t(np.full((6, 1), np.iinfo(np.int64).min), 0)


def test_dot_ints(small_test_keypair: Keypair, cv: CipherVector) -> None:
    _, sk = small_test_keypair
    q = np.array([2, -3, 99, 0, -5, 1], dtype=np.int64)
    result = cv.dot_ints(q, -1)
    assert len(result) == 1 and result.exponent == -5
    assert sk.decrypt_ints(result) == [sum(int(a) * b for a, b in zip(q, M, strict=True))]
    with pytest.raises(CryptoError, match="1-D"):
        cv.dot_ints(q.reshape(2, 3), 0)


def test_binary_ops_refuse_mismatches(
    small_test_keypair: Keypair, other_test_keypair: Keypair, cv: CipherVector, rng: Drbg
) -> None:
    pk, _ = small_test_keypair
    foreign = other_test_keypair[0].encrypt_ints(M, -4, rng)
    with pytest.raises(CryptoError, match="ciphertexts under different public keys"):
        cv.add(foreign)
    with pytest.raises(CryptoError, match="different public keys"):
        CipherVector.concat([cv, foreign])
    with pytest.raises(CryptoError, match=r"exponents differ \(-4 vs -5\)"):
        cv.add(pk.encrypt_ints(M, -5, rng))
    with pytest.raises(CryptoError, match=r"lengths differ \(6 vs 1\)"):
        cv.add(pk.encrypt_ints([1], -4, rng))
    with pytest.raises(CryptoError, match="expects a CipherVector"):
        cv.add([1, 2])  # type: ignore[arg-type]


def test_bytes_round_trip(small_test_keypair: Keypair, cv: CipherVector) -> None:
    pk, sk = small_test_keypair
    width, data = cv.to_bytes()
    assert width == 256 and len(data) == 6 * 256
    back = CipherVector.from_bytes(pk, -4, 6, width, data)
    assert back.values == cv.values and back.exponent == -4
    assert sk.decrypt_ints(back) == M
    empty = CipherVector.from_bytes(pk, 0, 0, width, b"")
    assert len(empty) == 0


def _pack(values: list[int], width: int) -> bytes:
    return b"".join(int(v).to_bytes(width, "big") for v in values)


def test_from_bytes_rejects_bad_payloads(small_test_keypair: Keypair, cv: CipherVector) -> None:
    pk, sk = small_test_keypair
    width, data = cv.to_bytes()
    good = int(cv.values[0])
    p = int(sk.to_phe().p)
    with pytest.raises(CryptoError, match="width is 255 bytes, expected 256"):
        CipherVector.from_bytes(pk, -4, 6, 255, data[: 6 * 255])
    with pytest.raises(CryptoError, match="truncated"):
        CipherVector.from_bytes(pk, -4, 6, width, data[:-1])
    cases = {
        "outside \\(0, n\\^2\\)": _pack([good, 0], width),
        "outside": _pack([good, int(pk.nsquare)], width),
        "shares a factor with n": _pack([good, p], width),
    }
    for match, payload in cases.items():
        with pytest.raises(CryptoError, match="index 1 " + ".*" + match):
            CipherVector.from_bytes(pk, -4, 2, width, payload)
    with pytest.raises(CryptoError, match="index 0 .*shares a factor"):
        CipherVector.from_bytes(pk, -4, 1, width, _pack([int(pk.n) * 3], width))
