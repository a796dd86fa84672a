"""Shared fixtures for crypto tests: session-scoped small (insecure, test-only) keypairs."""

from __future__ import annotations

import pytest

from lianmo.crypto import Drbg, PrivateKey, PublicKey, generate_keypair

TEST_KEY_BITS = 1024


@pytest.fixture(scope="session")
def small_test_keypair() -> tuple[PublicKey, PrivateKey]:
    """A 1024-bit keypair: fast enough for unit tests, far too small for real use."""
    return generate_keypair(TEST_KEY_BITS, insecure_test_size=True)


@pytest.fixture(scope="session")
def other_test_keypair() -> tuple[PublicKey, PrivateKey]:
    """A second, unrelated test keypair for key-mismatch checks."""
    return generate_keypair(TEST_KEY_BITS, insecure_test_size=True)


@pytest.fixture
def rng() -> Drbg:
    """A fixed-seed generator so failures replay."""
    return Drbg(b"lianmo-crypto-tests-fixed-seed-0", "tests")
