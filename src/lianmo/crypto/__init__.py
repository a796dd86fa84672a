"""Crypto layer: Paillier keys and vectors, fixed-point codec, DRBG and PSI primitives."""

from __future__ import annotations

from .bytes_codec import fixed_bytes_to_ints as fixed_bytes_to_ints
from .bytes_codec import int_to_fixed_bytes as int_to_fixed_bytes
from .drbg import Drbg as Drbg
from .fixedpoint import BASE as BASE
from .fixedpoint import decode as decode
from .fixedpoint import decode_ints as decode_ints
from .fixedpoint import encode as encode
from .fixedpoint import encode_ints as encode_ints
from .fixedpoint import quantise as quantise
from .paillier import DEFAULT_KEY_BITS as DEFAULT_KEY_BITS
from .paillier import MIN_KEY_BITS as MIN_KEY_BITS
from .paillier import PrivateKey as PrivateKey
from .paillier import PublicKey as PublicKey
from .paillier import generate_keypair as generate_keypair
from .psi import POINT_BYTES as POINT_BYTES
from .psi import PsiKey as PsiKey
from .psi import hash_ids as hash_ids
from .vector import CipherVector as CipherVector
