"""Federated WOE/IV of host columns: encrypted labels in, per-bin counts out, WOE back.

The guest holds the labels (1 = event, 0 = non-event) and the Paillier key; each host
bins its own columns on its own training rows (:class:`~lianmo.models.binning.QuantileBins`:
value bins, categories with an "other" bin, a missing bin) and never sends an edge, a
category or a row. Rows are the aligned training rows, in the agreed order.

1. guest -> host_k : ``woe.public_key``, then ``woe.labels``: [[y_i]] per training row
                     (one encryption per row, by CRT with the private key)
2. host_k          : bins its columns; per anonymous column (its own order) and bin, the
                     row count and the encrypted event sum ``[[Σ y_i]]`` (one histogram
                     pass, :meth:`~lianmo.crypto.vector.CipherVector.histogram`)
   host_k -> guest : ``woe.bins``: per column its bin count and whether it is categorical
                     and has a missing bin (a later merge plan needs them), then the rows
                     per bin; ``woe.bin_sums``: the event sums of the non-empty bins,
                     packed and masked in a layout the host sizes from the counts alone
                     (:func:`sum_groups`), re-randomised
3. guest           : decrypts the event and non-event count per host bin, pools bins by
                     a merge plan computed from those counts alone
                     (:func:`~lianmo.models.bin_merge.column_plan`: a minimum share of
                     rows per bin, optionally a monotonic event rate), and computes WOE
                     and IV per merged bin and column (optbinning's convention; a missing
                     bin under the minimum share gets WOE 0:
                     :func:`~lianmo.models.woe.scorecard_woe`)
   guest -> host_k : ``woe.merge``: the plan of each of host_k's columns (groups of its
                     bins; the host checks it is a valid merge that leaves no value bin
                     under the minimum share, and refuses it otherwise);
                     ``woe.values``: the WOE of each merged bin, so host_k can
                     WOE-transform its own columns; ``woe.iv``: the IV of each of its columns.
                     The guest keeps IV per (host, column index) for selection.

What a dishonest guest reads. The host cannot see what was encrypted, so it bounds each
bin's slot by the bin's own row count ``c``: an honest event sum lies in ``[0, c]``, so
below ``2**w`` with ``w = max(2, c.bit_length())`` (:func:`slot_bits`). The host sends
``Σ y_i - 2**(w-1)``, a signed ``w``-bit balanced digit, in a slot of exactly ``w`` bits,
with a fresh random mask slot above it that takes the plaintext's spare room
(:meth:`~lianmo.crypto.paillier.Packing.masked`, :meth:`~lianmo.crypto.paillier.Packing.draw_masks`,
as SecureBoost does). Bins of one width share a layout; groups go in increasing width.
Whatever the guest encrypted (``2**i`` for row ``i``, say), a decryption then shows per
bin at most its layout's :meth:`~lianmo.crypto.paillier.Packing.exposed_bits`: the ``w``
bits of the slot plus less than one bit of the plaintext's unmasked top, shared out. An
honest guest learns the event count, ``log2(c + 1)`` bits, i.e. ``w`` bits rounded up.
"""

from __future__ import annotations

import typing as t
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from lianmo.crypto.paillier import CipherVector, Packing, generate_keypair
from lianmo.errors import ConfigError, ProtocolError
from lianmo.models.bin_merge import MergePlan, column_plan, value_groups_below
from lianmo.models.binning import MAX_BINS, QuantileBins
from lianmo.models.woe import scorecard_woe
from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import (
    WOE_BIN_SUMS,
    WOE_BINS,
    WOE_IV,
    WOE_LABELS,
    WOE_MERGE,
    WOE_PUBLIC_KEY,
    WOE_VALUES,
)

#: the phase progress reports name
PHASE = "woe"

__all__ = [
    "ColumnWoe",
    "GuestWoe",
    "HostWoe",
    "SumGroup",
    "WoeParams",
    "guest_woe",
    "host_woe",
    "plans_message",
    "slot_bits",
    "sum_groups",
]


@dataclass(frozen=True, slots=True)
class WoeParams:
    """What every party of the job shares (from the job spec)."""

    max_bins: int = 10
    min_bin_share: float = 0.0
    monotonic: bool = False
    key_bits: int = 2048
    insecure_test_key: bool = False  # unit tests only: allows keys below 2048 bits


@dataclass(frozen=True)
class ColumnWoe:
    """One anonymous host column as the guest sees it: counts, WOE and IV per merged bin.

    Merged bins (groups of ``plan``) in the host's order: value bins (or kept categories,
    then "other"), then the missing bin when ``missing``.
    """

    categorical: bool
    missing: bool
    events: np.ndarray
    nonevents: np.ndarray
    woe: np.ndarray
    iv: float
    plan: MergePlan

    def to_records(self) -> list[dict[str, t.Any]]:
        """One dict per bin: bin, missing, events, non-events, WOE."""
        last = len(self.woe) - 1
        return [
            {
                "bin": b,
                "missing": self.missing and b == last,
                "events": int(self.events[b]),
                "nonevents": int(self.nonevents[b]),
                "woe": float(self.woe[b]),
            }
            for b in range(len(self.woe))
        ]


@dataclass(frozen=True)
class GuestWoe:
    """The guest's result: per host, its columns in the host's (anonymous) order."""

    hosts: dict[str, tuple[ColumnWoe, ...]]

    def iv(self) -> dict[tuple[str, int], float]:
        """IV per (host, column index): what selection ranks host columns by."""
        return {(h, j): c.iv for h, cols in self.hosts.items() for j, c in enumerate(cols)}

    def to_records(self) -> list[dict[str, t.Any]]:
        """One dict per (host, column, bin), with the column's IV."""
        return [
            {"host": h, "column": j, "iv": c.iv} | record
            for h, cols in self.hosts.items()
            for j, c in enumerate(cols)
            for record in c.to_records()
        ]


@dataclass(frozen=True)
class HostWoe:
    """A host's result: its bins, their merge plans, and per merged bin the training rows
    and the WOE; the IV of each column."""

    bins: QuantileBins
    plans: tuple[MergePlan, ...]
    counts: tuple[np.ndarray, ...]
    woe: tuple[np.ndarray, ...]
    iv: np.ndarray

    def codes(self, X: np.ndarray) -> np.ndarray:
        """The merged bin of every cell of ``X`` (this host's columns)."""
        binned = self.bins.transform(X).astype(np.int64)
        for f, plan in enumerate(self.plans):
            binned[:, f] = plan.mapping()[binned[:, f]]
        return binned

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The WOE of every cell of ``X`` (this host's columns), through its own bins."""
        codes = self.codes(X)
        out = np.empty(codes.shape, dtype=np.float64)
        for f, values in enumerate(self.woe):
            out[:, f] = values[codes[:, f]]
        return out

    def to_records(self) -> list[dict[str, t.Any]]:
        """One dict per (column, bin): column, bin, WOE, the column's IV."""
        return [
            {"column": f, "bin": b, "woe": float(w), "iv": float(self.iv[f])}
            for f, values in enumerate(self.woe)
            for b, w in enumerate(values)
        ]


# ---- the packed layout of bin sums: both sides compute it from the counts alone ----------


def slot_bits(count: int) -> int:
    """Width of the slot of a bin of ``count`` rows: its honest event sum is below ``2**w``."""
    return max(2, int(count).bit_length())


@dataclass(frozen=True)
class SumGroup:
    """The non-empty bins (flat positions over all columns) of one slot width, and their
    masked layout: a ``width``-bit slot, then the mask."""

    width: int
    bins: np.ndarray
    layout: Packing

    def ciphertexts(self, n: int) -> int:
        """Packed ciphertexts this group takes under modulus ``n``."""
        return -(-len(self.bins) // self.layout.per_plaintext(n))


def sum_groups(counts: np.ndarray, n: int) -> list[SumGroup]:
    """The non-empty bins grouped by :func:`slot_bits`, in increasing width, under ``n``."""
    counts = np.asarray(counts, dtype=np.int64)
    widths = np.array([slot_bits(c) for c in counts], dtype=np.int64)
    out = []
    for w in sorted({int(w) for w in widths[counts > 0]}):
        at = np.flatnonzero((counts > 0) & (widths == w))
        out.append(SumGroup(w, at, Packing((w,), (w - 1,)).masked(n)))
    return out


# ---- the host ------------------------------------------------------------------------------


def host_woe(
    ctx: RoleContext,
    X: np.ndarray,
    params: WoeParams,
    *,
    categories: Sequence[int | None] | None = None,
) -> HostWoe:
    """Host side: bin ``X`` (training rows x own columns), return encrypted event sums.

    ``categories[f]``: the training category count of a categorical column, None for a
    numeric one (all numeric if omitted); NaN cells are missing.
    """
    key = ctx.job_key(
        WOE_PUBLIC_KEY,
        ctx.guest,
        None,
        key_bits=params.key_bits,
        insecure_test_key=params.insecure_test_key,
    )
    labels = ctx.recv(WOE_LABELS, ctx.guest, key=key, count=len(X))  # 1.
    ctx.progress(PHASE, 0, 2, f"{len(X)} encrypted labels received; summing per bin")
    bins = QuantileBins.fit(X, params.max_bins, categories)
    binned = bins.transform(X)
    F, nb = bins.n_features, bins.width
    counts = [np.bincount(binned[:, f], minlength=bins.n_cells(f)) for f in range(F)]
    header = [F] + [v for f in range(F) for v in _column_header(bins, f)]
    ctx.send(WOE_BINS, ctx.guest, header + [int(c) for col in counts for c in col])  # 2.
    sums = labels.histogram(binned, nb, backend=ctx.compute)  # element f * nb + b
    cells = np.array([f * nb + b for f in range(F) for b in range(bins.n_cells(f))])
    parts = []
    for group in sum_groups(np.concatenate(counts), key.n):
        chosen = sums.select(cells[group.bins])
        centred = chosen.add_plain_ints([-(1 << (group.width - 1))] * len(chosen))
        rng = ctx.rng.child(f"woe/mask/{group.width}")
        masks = group.layout.draw_masks(len(chosen), key.n, rng)
        parts.append(centred.pack(group.layout, ctx.compute).add_plain_ints(masks))
    packed = CipherVector.concat(parts) if parts else CipherVector(key, 0, [])
    ctx.send(WOE_BIN_SUMS, ctx.guest, packed.obfuscate(ctx.rng, ctx.compute))
    ctx.progress(PHASE, 1, 2, f"event sums of {len(cells)} bins sent")
    plans = _parse_plans(ctx.recv(WOE_MERGE, ctx.guest), bins, counts, params, ctx.guest)  # 3.
    merged = tuple(plan.apply(c) for plan, c in zip(plans, counts, strict=True))
    woe = ctx.recv(WOE_VALUES, ctx.guest, count=sum(len(m) for m in merged))
    iv = ctx.recv(WOE_IV, ctx.guest, count=F)
    bounds = np.cumsum([0] + [len(m) for m in merged])
    values = tuple(woe[bounds[f] : bounds[f + 1]] for f in range(F))
    ctx.progress(PHASE, 2, 2, f"WOE of {F} columns received")
    return HostWoe(bins, plans, merged, values, iv)


def _parse_plans(
    values: np.ndarray,
    bins: QuantileBins,
    counts: list[np.ndarray],
    params: WoeParams,
    guest: str,
) -> tuple[MergePlan, ...]:
    """``woe.merge`` checked: a valid merge of each column's bins, no value group too small."""

    def bad(why: str) -> ProtocolError:
        return ProtocolError(f"guest '{guest}' sent a refused '{WOE_MERGE.tag}': {why}")

    data = [int(v) for v in values]
    plans, at = [], 0
    for f in range(bins.n_features):
        groups = []
        try:
            n_groups = data[at]
            at += 1
            for _ in range(n_groups):
                size = data[at]
                groups.append(data[at + 1 : at + 1 + size])
                if len(groups[-1]) != size:
                    raise IndexError
                at += 1 + size
        except IndexError:
            raise bad("shorter than its groups say") from None
        plan = MergePlan.from_data(groups)
        try:
            plan.check(bins.n_bins(f), bins.n_cells(f), bins.is_categorical(f))
        except ConfigError as exc:
            raise bad(f"column {f}: {exc}") from None
        if value_groups_below(plan, counts[f], bins.n_bins(f), params.min_bin_share):
            raise bad(
                f"column {f}: a merged bin holds fewer than {params.min_bin_share:.1%} of the "
                "rows, the job's min_bin_share; its WOE would tell a small group's event rate"
            )
        plans.append(plan)
    if at != len(data):
        raise bad("longer than the host's columns")
    return tuple(plans)


def plans_message(plans: Sequence[MergePlan]) -> list[int]:
    """``woe.merge``: per column the group count, then per group its size and bins."""
    out: list[int] = []
    for plan in plans:
        out.append(len(plan.groups))
        for group in plan.groups:
            out += [len(group), *group]
    return out


def _column_header(bins: QuantileBins, f: int) -> tuple[int, int, int]:
    return bins.n_cells(f), int(bins.is_categorical(f)), int(bins.missing[f])


# ---- the guest -----------------------------------------------------------------------------


def guest_woe(ctx: RoleContext, y: np.ndarray, params: WoeParams) -> GuestWoe:
    """Guest side: send encrypted labels, return WOE and IV of every host column."""
    labels = _check_labels(y, ctx.party)
    public, private = generate_keypair(
        params.key_bits, ctx.rng, insecure_test_size=params.insecure_test_key
    )
    ctx.broadcast(WOE_PUBLIC_KEY, ctx.hosts, public)
    encrypted = private.encrypt_ints(labels, 0, ctx.rng, ctx.compute)
    ctx.broadcast(WOE_LABELS, ctx.hosts, encrypted)  # 1.
    ctx.progress(PHASE, 0, len(ctx.hosts), f"{len(labels)} encrypted labels sent")
    out: dict[str, tuple[ColumnWoe, ...]] = {}
    for host in ctx.hosts:
        kinds, counts = _parse_bins(ctx.recv(WOE_BINS, host), host, len(labels))
        flat = np.concatenate(counts)
        groups = sum_groups(flat, public.n)
        expected = sum(g.ciphertexts(public.n) for g in groups)
        packed = ctx.recv(WOE_BIN_SUMS, host, key=public, count=expected)  # 2.
        events = np.zeros(len(flat), dtype=np.int64)
        start = 0
        for g in groups:
            k = g.ciphertexts(public.n)
            part = packed.select(range(start, start + k))
            slots = private.decrypt_packed(part, g.layout, len(g.bins), ctx.compute)
            events[g.bins] = slots[:, 0] + (1 << (g.width - 1))
            start += k
        if (events < 0).any() or (events > flat).any():
            raise ProtocolError(
                f"host '{host}' sent '{WOE_BIN_SUMS.tag}' with a bin's event count outside "
                "[0, its row count]: it does not follow the protocol; the job stops"
            )
        bounds = np.cumsum([0] + [len(c) for c in counts])
        if any(int(events[a:b].sum()) != int(labels.sum()) for a, b in pairwise(bounds)):
            raise ProtocolError(
                f"host '{host}' sent '{WOE_BIN_SUMS.tag}' whose event counts of a column do "
                "not add up to the training events: it does not follow the protocol; the "
                "job stops"
            )
        columns = _columns(kinds, counts, events, params)
        ctx.send(WOE_MERGE, host, plans_message([c.plan for c in columns]))  # 3.
        ctx.send(WOE_VALUES, host, np.concatenate([c.woe for c in columns]))
        ctx.send(WOE_IV, host, np.array([c.iv for c in columns], dtype=np.float64))
        out[host] = columns
        ctx.progress(PHASE, len(out), len(ctx.hosts), f"WOE and IV of {host}'s columns")
    return GuestWoe(out)


def _check_labels(y: np.ndarray, party: str) -> np.ndarray:
    labels = np.asarray(y, dtype=np.float64).ravel()
    if len(labels) == 0 or not np.isin(labels, (0.0, 1.0)).all():
        raise ConfigError(
            f"party '{party}': WOE needs binary labels (1 = event, 0 = non-event) on every "
            "training row; recode the label column to 0/1"
        )
    if labels.min() == labels.max():
        raise ConfigError(
            f"party '{party}': the training rows hold only label {int(labels[0])}; WOE needs "
            "both events and non-events: choose other training rows"
        )
    return labels.astype(np.int64)


def _parse_bins(
    values: np.ndarray, host: str, rows: int
) -> tuple[list[tuple[bool, bool]], list[np.ndarray]]:
    """``woe.bins`` checked: the (categorical, missing) flags and row counts per column."""

    def bad(why: str) -> ProtocolError:
        return ProtocolError(f"host '{host}' sent a malformed '{WOE_BINS.tag}': {why}")

    if len(values) < 1 or len(values) < 1 + 3 * int(values[0]):
        raise bad("shorter than its column count says")
    F = int(values[0])
    header = values[1 : 1 + 3 * F].reshape(F, 3)
    cells, flags = header[:, 0], header[:, 1:]
    if ((cells < 1) | (cells > MAX_BINS)).any() or (flags > 1).any():
        raise bad(f"a column with no bins, more than {MAX_BINS}, or a flag not 0/1")
    if (cells < 1 + flags[:, 1]).any() or len(values) != 1 + 3 * F + int(cells.sum()):
        raise bad("the bin counts and the number of row counts differ")
    bounds = 1 + 3 * F + np.cumsum(np.concatenate([[0], cells]))
    counts = [values[bounds[f] : bounds[f + 1]] for f in range(F)]
    if any(int(c.sum()) != rows for c in counts):
        raise bad(f"a column's bins do not hold the {rows} training rows")
    return [(bool(a), bool(b)) for a, b in flags], counts


def _columns(
    kinds: list[tuple[bool, bool]], counts: list[np.ndarray], events: np.ndarray, params: WoeParams
) -> tuple[ColumnWoe, ...]:
    out, start = [], 0
    for (categorical, missing), count in zip(kinds, counts, strict=True):
        e = events[start : start + len(count)]
        ne = count - e
        plan = column_plan(
            e,
            ne,
            len(count) - int(missing),
            categorical=categorical,
            min_share=params.min_bin_share,
            monotonic=params.monotonic,
        )
        e, ne = plan.apply(e), plan.apply(ne)
        woe, iv = scorecard_woe(e, ne, len(e) - 1 if missing else None, params.min_bin_share)
        out.append(ColumnWoe(categorical, missing, e, ne, woe, iv, plan))
        start += len(count)
    return tuple(out)
