"""Packing several signed integers into one Paillier plaintext, overflow-free by construction.

A :class:`Packing` is a list of slot widths. A packed plaintext is the signed integer
``P = sum_k v_k * 2**offset_k`` where slot ``k`` starts at ``offset_k`` (the sum of the
widths below it). Each ``v_k`` is read back as a *balanced digit*: the low ``w`` bits of
``P`` taken as a signed number in ``[-2**(w-1), 2**(w-1))``, then ``P = (P - v) >> w``.
This works for negative values without any offset, as long as every slot's value stays
in its signed range, and homomorphic sums of packed plaintexts are packed sums.

:meth:`Packing.for_sums` sizes the slots so that this cannot fail: a slot that holds
values ``|v| < 2**b`` and must absorb sums of up to ``T`` of them gets
``b + T.bit_length() + 1`` bits, since ``|sum| < T * 2**b <= 2**(b + T.bit_length())``.
Several packed values fit in one plaintext of a key when the whole layout, repeated,
stays within ``max_int(n)`` (:meth:`Packing.per_plaintext`); ciphertexts are combined
that way by :meth:`lianmo.crypto.vector.CipherVector.pack` before decryption.

A party that packs values computed from another party's ciphertexts cannot see what they
hold, so a dishonest encrypter could put data above the honest slots.
:meth:`Packing.masked` adds one mask slot on top of each packed value, as wide as the
plaintext's room allows, and :meth:`Packing.draw_masks` gives the random plaintexts to add: a
uniform value in the mask slot of every packed value, and in every slot of the unused
places of a last, partly filled plaintext. Whatever the encrypter hid there is then
hidden from it in turn: a decryption tells it at most ``log2(n)`` minus the mask bits,
about the honest slots' width per packed value (see :meth:`Packing.exposed_bits`).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lianmo.crypto.drbg import Drbg
from lianmo.crypto.fixedpoint import max_int
from lianmo.errors import CryptoError

#: Widest slot: every slot value then fits a numpy int64.
MAX_SLOT_BITS = 64


@dataclass(frozen=True)
class Packing:
    """Slot layout of a packed plaintext, lowest slot first.

    Parameters
    ----------
    slot_bits : tuple of int
        Width of each slot in bits (2 to 64); slot ``k`` holds a signed value in
        ``[-2**(slot_bits[k] - 1), 2**(slot_bits[k] - 1))``.
    value_bits : tuple of int, optional
        For layouts from :meth:`for_sums`: the bound ``|v| < 2**value_bits[k]`` on the
        values :meth:`pack` accepts. Defaults to ``slot_bits[k] - 1``.
    """

    slot_bits: tuple[int, ...]
    value_bits: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.slot_bits:
            raise CryptoError("a packing needs at least one slot")
        for width in self.slot_bits:
            if isinstance(width, bool) or not isinstance(width, int) or not 2 <= width <= 64:
                raise CryptoError(
                    f"packing slot widths must be ints from 2 to {MAX_SLOT_BITS}, got "
                    f"{self.slot_bits}; use fewer terms or coarser fixed point"
                )
        if not self.value_bits:
            object.__setattr__(self, "value_bits", tuple(w - 1 for w in self.slot_bits))
        if len(self.value_bits) != len(self.slot_bits) or any(
            not 0 <= v < w for v, w in zip(self.value_bits, self.slot_bits, strict=True)
        ):
            raise CryptoError(
                f"packing value bits {self.value_bits} do not fit slots {self.slot_bits}"
            )

    @classmethod
    def for_sums(cls, value_bits: t.Sequence[int], max_terms: int) -> Packing:
        """Return the narrowest layout whose slots absorb sums of ``max_terms`` values.

        Parameters
        ----------
        value_bits : sequence of int
            Per slot, values satisfy ``|v| < 2**value_bits[k]``.
        max_terms : int
            Most packed plaintexts that will be added together.

        Returns
        -------
        Packing
            Slot ``k`` is ``value_bits[k] + max_terms.bit_length() + 1`` bits wide.
        """
        if isinstance(max_terms, bool) or not isinstance(max_terms, int) or max_terms < 1:
            raise CryptoError(f"max_terms must be a positive int, got {max_terms!r}")
        bits = tuple(int(b) for b in value_bits)
        if any(b < 0 for b in bits):
            raise CryptoError(f"value bits must be non-negative, got {bits}")
        slots = tuple(b + max_terms.bit_length() + 1 for b in bits)
        return cls(slots, bits)

    @property
    def total_bits(self) -> int:
        """Width of one packed value: the sum of the slot widths."""
        return sum(self.slot_bits)

    @property
    def slots(self) -> int:
        """Number of slots."""
        return len(self.slot_bits)

    def per_plaintext(self, n: int) -> int:
        """Return how many packed values fit in one plaintext modulo ``n``.

        Parameters
        ----------
        n : int
            The Paillier modulus.

        Returns
        -------
        int
            ``k >= 1`` with ``k * total_bits <= max_int(n).bit_length()``, so that a
            packed value's magnitude stays below ``max_int(n)``.

        Raises
        ------
        CryptoError
            If not even one packed value fits.
        """
        room = max_int(int(n)).bit_length()
        count = room // self.total_bits
        if count < 1:
            raise CryptoError(
                f"a packed value of {self.total_bits} bits does not fit a plaintext of "
                f"{room} bits; use a larger key or fewer/narrower slots"
            )
        return count

    def masked(self, n: int) -> Packing:
        """Return this layout plus one mask slot on top, filling the plaintext's room.

        The number of packed values per plaintext of modulus ``n`` stays what a 2-bit
        mask slot allows, and the mask slot takes the room left over (at most
        :data:`MAX_SLOT_BITS`), so masking costs no extra ciphertexts where it fits.

        Parameters
        ----------
        n : int
            The Paillier modulus.

        Returns
        -------
        Packing
            ``slot_bits + (w,)``: the honest slots, then a ``w``-bit mask slot.
        """
        room = max_int(int(n)).bit_length()
        per = room // (self.total_bits + 2)
        if per < 1:
            raise CryptoError(
                f"a packed value of {self.total_bits} bits and its mask do not fit a "
                f"plaintext of {room} bits; use a larger key or fewer/narrower slots"
            )
        width = min(room // per - self.total_bits, MAX_SLOT_BITS)
        return Packing(self.slot_bits + (width,), self.value_bits + (width - 1,))

    def exposed_bits(self, n: int) -> float:
        """Bits per packed value a decryption can show when the top slot is a mask.

        ``(log2 n - masked bits) / per_plaintext``: the honest slots' width plus the
        plaintext's unused top bits shared out, whatever the encrypter put in.
        """
        per = self.per_plaintext(int(n))
        masked = per * self.slot_bits[-1]
        return (int(n).bit_length() - masked) / per

    def draw_masks(self, count: int, n: int, rng: Drbg) -> list[int]:
        """Random plaintexts to add to ``count`` values packed in this (:meth:`masked`) layout.

        One per packed plaintext (as :meth:`~lianmo.crypto.vector.CipherVector.pack` groups
        them): a uniform signed value in the top (mask) slot of each packed value, and in
        every slot of the places a last plaintext leaves empty. Each slot keeps its signed
        range, so :meth:`Packing.unpack` still reads every slot back and the honest slots
        unchanged.

        Parameters
        ----------
        count : int
            How many values were packed.
        n : int
            The Paillier modulus.
        rng : Drbg
            Source of the masks (the packing party's job DRBG).

        Returns
        -------
        list of int
            Signed integers, ``ceil(count / per_plaintext)`` of them.
        """
        per = self.per_plaintext(int(n))
        offsets = self._offsets()
        top = len(self.slot_bits) - 1

        def uniform(k: int, shift: int, highest: bool) -> int:
            width = self.slot_bits[k]
            value = rng.randbits(width) - (1 << (width - 1))
            # the plaintext's highest slot never takes its most negative value: then the
            # mask's magnitude stays below 2^(bits used - 1) <= max_int(n) even when the
            # layout fills every bit of the room (a full-range draw could exceed max_int)
            while highest and value == -(1 << (width - 1)):
                value = rng.randbits(width) - (1 << (width - 1))
            return value << shift

        out = []
        for first in range(0, count, per):
            total = 0
            for place in range(per):
                base = place * self.total_bits
                slots = [top] if first + place < count else range(len(offsets))
                total += sum(
                    uniform(k, base + offsets[k], place == per - 1 and k == top) for k in slots
                )
            out.append(total)
        return out

    def repeat(self, count: int) -> Packing:
        """Return this layout repeated ``count`` times (the first copy lowest)."""
        return Packing(self.slot_bits * count, self.value_bits * count)

    def pack(self, values: npt.ArrayLike) -> list[int]:
        """Pack rows of slot values into signed integers.

        Parameters
        ----------
        values : numpy.ndarray
            Integer array of shape ``(count, slots)``; slot ``k`` within
            ``|v| < 2**value_bits[k]``.

        Returns
        -------
        list of int
            One signed packed integer per row (encode with
            :func:`~lianmo.crypto.fixedpoint.encode_ints` or encrypt with
            ``PublicKey.encrypt_ints``).
        """
        arr = np.asarray(values)
        if arr.ndim != 2 or arr.shape[1] != self.slots or arr.dtype.kind not in "iu":
            raise CryptoError(
                f"pack expects an integer array of shape (count, {self.slots}), got "
                f"{arr.dtype} {arr.shape}"
            )
        columns = [arr[:, k].tolist() for k in range(self.slots)]  # Python ints: no wrap
        for k, (column, bits) in enumerate(zip(columns, self.value_bits, strict=True)):
            limit = 1 << bits
            bad = next((i for i, v in enumerate(column) if not -limit < v < limit), None)
            if bad is not None:
                raise CryptoError(
                    f"pack: row {bad} slot {k} is {column[bad]}, outside the slot's range "
                    f"|v| < 2**{bits}; widen the packing or quantise more coarsely"
                )
        offsets = self._offsets()
        packed = [0] * arr.shape[0]
        for column, offset in zip(columns, offsets, strict=True):
            packed = [p + (v << offset) for p, v in zip(packed, column, strict=True)]
        return packed

    def _offsets(self) -> list[int]:
        offsets, start = [], 0
        for width in self.slot_bits:
            offsets.append(start)
            start += width
        return offsets

    def unpack(self, packed: t.Sequence[int]) -> npt.NDArray[np.int64]:
        """Read slot values back from signed packed integers (e.g. decrypted sums).

        Parameters
        ----------
        packed : sequence of int
            Signed integers, as :func:`~lianmo.crypto.fixedpoint.decode_ints` returns.

        Returns
        -------
        numpy.ndarray
            int64 array of shape ``(len(packed), slots)``.

        Raises
        ------
        CryptoError
            If a value is beyond the whole layout. Overflow of a lower slot cannot be
            seen (it carries into the next); :meth:`for_sums` sizing rules it out.
        """
        out = np.empty((len(packed), self.slots), dtype=np.int64)
        for row, value in enumerate(packed):
            rest = int(value)
            for k, width in enumerate(self.slot_bits):
                half = 1 << (width - 1)
                digit = ((rest + half) & ((1 << width) - 1)) - half
                out[row, k] = digit
                rest = (rest - digit) >> width
            if rest:
                raise CryptoError(
                    f"unpack: packed value {row} overflows its {self.total_bits}-bit layout; "
                    "more terms were summed than the packing was sized for"
                )
        return out
