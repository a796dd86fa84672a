"""Privacy on the wire: a full train job leaks no features, labels, weights or gradients.

How the check works
-------------------
A two-epoch coordinated hetero LR job (guest ``broker`` with the breast labels ``y``,
host ``platform``, ``arbiter``; small test keys) runs through three in-process
:class:`NodeService` nodes. A recorder observes every party's channel and keeps every
envelope sent. The in-memory channel serialises payloads with the same
``transport.serde`` the gRPC channel uses, so ``envelope.payload`` is exactly the byte
string that would cross the network. The tests then reproduce, with lianmo's own
functions and bit for bit (checked against the scaler in each ``model.json``), what each
party holds in plaintext and search all payload bytes for it:

* features (host and guest): every raw cell, every value standardised on the full
  table and with the job's train-fitted scaler, as float64 (little and big endian, at
  every byte offset); as float32 wherever two such values stand back to back (a leaked
  vector); as CSV-style text; and the fixed-point integers ``quantise(X_std, X_EXP)``
  the protocol multiplies ciphertexts with, as neighbouring pairs (row- and
  column-major, train and mini-batch order) in int32 and int64;
* labels: the label vector in every order a party holds it (file, aligned, train,
  validation, every mini-batch) as float64, uint8, int32 and '0'/'1' text; plus
  order-free detectors for any run of 0/1 bytes, 0/1 characters or 0.0/1.0 doubles;
* weights: every final weight and intercept from both ``model.json`` files as float64,
  float32 (pairs anywhere; singles in the plaintext-typed payloads FloatVector, Signal
  and IndexList, where no random bytes can match by chance) and text;
* gradients: a plaintext fixed-point replay of the training (exact integers, checked
  against the final weights) gives the true gradient integers of every round; each
  value the arbiter returned must be the true gradient plus a mask below 2**256, at
  least 2**150 in magnitude, and the true gradients must not appear anywhere.

It also pins which payload types flow between each pair of parties: nothing the guest
sends is a plaintext vector, and the only plaintext floats are the host's partial
validation scores, which the guest may learn (see ``protocols.predict``).

Limits
------
A byte search cannot prove that no encoding of a secret exists (a value could be
scaled, rounded, XORed, compressed or spread across messages); absence of a needle
proves only absence of that encoding. What it reliably catches are the realistic
accidents: a plaintext float vector where a ciphertext belongs, a raw copy of a column
or of the labels, unmasked or unencrypted gradients, a debug string with numbers. Short
needles are avoided on purpose, because the payloads are about a megabyte of
uniformly random ciphertext and point bytes: a given 4-byte string occurs there with
probability about 2**-12, a 3-byte string about 7 %. Hence float32 values count only as
pairs (8 bytes); trivially common values (0.0, ±1.0, small integers, whose encodings
are mostly zero bytes and match every zero-padded big integer) are skipped, and so is
any single 4- or 8-byte needle that is mostly 0x00/0xFF bytes (see ``informative``).
Quantised integers are searched only as neighbouring pairs with ``|q| >= 2**12``: one
small int32 is indistinguishable from the row indices and counts that legitimately
travel. (Searching single quantised ints ``|q| >= 2**16`` by their minimal big-endian
bytes was considered: with X_EXP = -3 no standardised breast value reaches 16, so there
are no such ints, and 3-byte needles would match random ciphertext bytes anyway.)
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lianmo.config import JobSpec, LrSpec
from lianmo.crypto.fixedpoint import quantise
from lianmo.data.split import batch_schedule, validation_mask
from lianmo.data.table import Table, load_table
from lianmo.models.logistic import learning_rate
from lianmo.models.scaler import QuantileClipper, Standardizer
from lianmo.protocols.hetero_lr import G_EXP, MASK_BITS, U_EXP, X_EXP
from lianmo.transport import serde
from lianmo.transport.envelope import Envelope
from lianmo.transport.messages import FloatVector, IntVector, PublicKeyMsg, Signal
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    GUEST_FILE,
    HOST,
    HOST_FILE,
    WireRecorder,
    make_nodes,
    run_in_process,
    train_spec,
)

# six rounds: one batch of the 445 training rows per epoch (the host's 20 columns need
# batches of 320 rows, and the remainder joins the last batch)
SPEC = train_spec("breast-privacy", epochs=6)
MASK_FLOOR = 2**150
TRUE_GRADIENT_CEILING = 2**62


def _t(short: str) -> str:
    return f"lianmo.v1.{short}"


# ---- the search --------------------------------------------------------------------------


Hit = tuple[int, int]  # (payload index, byte offset)


def informative(needle: bytes) -> bool:
    """More than half of the bytes are neither 0x00 nor 0xFF.

    A needle such as float64 -24.0 (c0 38 00 00 00 00 00 00) or int64 3 * 2**37 is
    mostly padding: it matches wherever a random byte or two meets the zero padding of
    a fixed-width big integer, so finding it means nothing. (Round values like these do
    occur: in round 0 every weight is zero and the bias gradient is 2**37 times a count.)
    """
    return 2 * sum(b not in (0, 0xFF) for b in needle) > len(needle)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _window_keys(data: bytes, width: int, off: int) -> np.ndarray:
    """A uint64 key for each consecutive ``width``-byte window of ``data`` from ``off``:
    the window itself for 4 and 8 bytes, a mix of its 8-byte words for 16."""
    count = (len(data) - off) // width
    if count <= 0:
        return np.zeros(0, np.uint64)
    if width == 4:
        return np.frombuffer(data, "<u4", count=count, offset=off).astype(np.uint64)
    words = np.frombuffer(data, "<u8", count=count * (width // 8), offset=off)
    words = words.reshape(count, width // 8)
    key = np.zeros(count, np.uint64)
    for column in words.T:
        key = key * _MIX + column  # wraps modulo 2**64; candidates are verified below
    return key


def find_fixed(
    payloads: Sequence[bytes],
    needles: Iterable[bytes],
    *,
    run: int = 1,
    skip_padding: bool = True,
) -> list[Hit]:
    """Where ``run`` needles (all of one width: 4, 8 or 16 bytes) stand back to back.

    Every byte offset is tried: the payload is cut into windows of the needle width
    starting at offsets 0 .. width-1, which together cover every position. Single
    needles (``run=1``) that are not :func:`informative` are skipped unless
    ``skip_padding`` is off; a run of two is specific enough as it is.
    """
    wanted = {n for n in needles if run > 1 or not skip_padding or informative(n)}
    if not wanted:
        return []
    width = len(next(iter(wanted)))
    assert width in (4, 8, 16) and all(len(n) == width for n in wanted)
    keys = np.unique(_window_keys(b"".join(sorted(wanted)), width, 0))
    hits: list[Hit] = []
    for i, payload in enumerate(payloads):
        for off in range(width):
            windows = _window_keys(payload, width, off)
            if len(windows) < run:
                continue
            found = keys[np.minimum(np.searchsorted(keys, windows), len(keys) - 1)] == windows
            for k in np.flatnonzero(found):
                at = off + width * int(k)
                found[k] = payload[at : at + width] in wanted
            if run > 1:
                found = np.convolve(found.astype(np.int64), np.ones(run, np.int64), "valid") == run
            hits += [(i, off + width * int(k)) for k in np.flatnonzero(found)]
    return hits


def find_bytes(payloads: Sequence[bytes], needles: Iterable[bytes]) -> list[Hit]:
    """Where any of a few longer needles occurs."""
    hits: list[Hit] = []
    for needle in needles:
        for i, payload in enumerate(payloads):
            at = payload.find(needle)
            if at >= 0:
                hits.append((i, at))
    return hits


_NUMBER_TEXT = re.compile(rb"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?")


def find_text(payloads: Sequence[bytes], texts: set[str]) -> list[Hit]:
    """Where a decimal number written as text contains one of ``texts``."""
    hits: list[Hit] = []
    for i, payload in enumerate(payloads):
        for m in _NUMBER_TEXT.finditer(payload):
            token = m.group().decode("ascii")
            if any(t in token for t in texts if len(t) <= len(token)):
                hits.append((i, m.start()))
    return hits


_BIT_BYTES = re.compile(rb"[\x00\x01]{32,}")
_BIT_TEXT = re.compile(rb"[01]{32,}")
_ZERO_ONE_F8 = rb"\x00{8}|\x00{6}\xf0\x3f|\x3f\xf0\x00{6}"
_BIT_DOUBLES = re.compile(rb"(?:" + _ZERO_ONE_F8 + rb"){16,}")


def find_bit_vectors(payloads: Sequence[bytes]) -> list[Hit]:
    """Order-free: any run that looks like a 0/1 label vector (bytes, int32, text, doubles).

    A run must hold at least 8 of each symbol (4 for doubles), so zero padding alone
    (the leading zero bytes of fixed-width big integers) never counts.
    """
    hits: list[Hit] = []
    for i, payload in enumerate(payloads):
        for pattern, one, zero, least in (
            (_BIT_BYTES, b"\x01", b"\x00", 8),
            (_BIT_TEXT, b"1", b"0", 8),
        ):
            for m in pattern.finditer(payload):
                run = m.group()
                if run.count(one) >= least and run.count(zero) >= least:
                    hits.append((i, m.start()))
        for m in _BIT_DOUBLES.finditer(payload):
            run = m.group()
            ones = run.count(b"\xf0\x3f") + run.count(b"\x3f\xf0")
            if ones >= 4 and len(run) // 8 - ones >= 4:
                hits.append((i, m.start()))
    return hits


def packed(values: Iterable[float | int], dtype: str) -> list[bytes]:
    """Each value encoded alone as ``dtype`` (byte order included: numpy scalars drop it)."""
    data = np.asarray(list(values)).astype(dtype).tobytes()
    width = np.dtype(dtype).itemsize
    return [data[k : k + width] for k in range(0, len(data), width)]


def float_needles(values: Iterable[float]) -> dict[str, list[bytes]]:
    arr = np.asarray(list(values), dtype=np.float64)
    return {
        "f8": packed(arr, "<f8") + packed(arr, ">f8"),
        "f4": packed(arr, "<f4") + packed(arr, ">f4"),
    }


def search_floats(payloads: Sequence[bytes], values: Iterable[float]) -> list[Hit]:
    """float64 singles (LE/BE) anywhere, float32 (LE/BE) wherever two stand together."""
    needles = float_needles(values)
    return find_fixed(payloads, needles["f8"]) + find_fixed(payloads, needles["f4"], run=2)


def quantised_pairs(q: np.ndarray, spec: JobSpec = SPEC) -> np.ndarray:
    """Neighbouring values (a, b) of a party's fixed-point matrix in every order a leak
    would hold them: row- and column-major, in train order and in each mini-batch's
    order (of ``spec``). Only pairs with both ``|a|, |b| >= 2**12`` are kept: smaller
    ints look like the row indices (IndexList) that legitimately travel, byte-swapped
    or not."""
    sequences = [q.ravel(), q.T.ravel()]
    for epoch in range(spec.model.epochs):
        for batch in batch_schedule(len(q), spec.model.batch_size, epoch, spec.seed):
            sequences += [q[batch].ravel(), q[batch].T.ravel()]
    pairs = np.concatenate([np.stack([s[:-1], s[1:]], axis=1) for s in sequences])
    return np.unique(pairs[(np.abs(pairs) >= 2**12).all(axis=1)], axis=0)


def search_quantised(payloads: Sequence[bytes], q: np.ndarray, spec: JobSpec = SPEC) -> list[Hit]:
    """Neighbouring fixed-point ints (:func:`quantised_pairs`) as int32/int64, LE/BE."""
    pairs = quantised_pairs(q, spec)
    hits: list[Hit] = []
    for dtype in ("<i4", ">i4", "<i8", ">i8"):
        needles = [pair.astype(dtype).tobytes() for pair in pairs]
        hits += find_fixed(payloads, needles, skip_padding=False)
    return hits


def unmasked(values: Iterable[int], n: int) -> list[int]:
    """Values that, read as signed residues mod n, are below the mask floor in magnitude."""
    return [v for v in values if abs(v - n if v > n // 2 else v) < MASK_FLOOR]


def nontrivial_raw(values: np.ndarray) -> np.ndarray:
    """Drop 0.0, ±1.0 and integers below 256: their float encodings are mostly zero bytes
    (2.0 is 00 00 00 00 00 00 00 40) and would match any zero-padded big integer followed
    by one chance byte, so finding them says nothing about the host's data."""
    v = values.ravel()
    return np.unique(v[~((v == np.round(v)) & (np.abs(v) < 256))])


def nontrivial_std(values: np.ndarray) -> np.ndarray:
    """Drop 0.0 and ±1.0 (a constant column standardises to 0.0; see nontrivial_raw)."""
    v = values.ravel()
    return np.unique(v[~np.isin(v, (0.0, 1.0, -1.0))])


# ---- what each party holds -----------------------------------------------------------------


@dataclass(frozen=True)
class PartyPlain:
    """One data party's plaintexts, reproduced exactly as ``node.job`` computes them."""

    raw: np.ndarray  # file order
    cell_text: set[str]  # the CSV cells as written, for text leaks
    std_full: np.ndarray  # standardised on the whole file
    clip: QuantileClipper  # fitted on the job's training rows (model.clip), as the party does
    scaler: Standardizer  # fitted on the clipped training rows, as the party does
    std_job: np.ndarray  # aligned rows clipped and standardised with those
    train_std: np.ndarray  # training rows the protocol sees (guest: plus bias)
    quantised: np.ndarray  # quantise(train features, X_EXP), without the bias


@dataclass(frozen=True)
class Plain:
    host: PartyPlain
    guest: PartyPlain
    y_file: np.ndarray
    y_aligned: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray


def _cells(path: Path, skip: Sequence[str]) -> set[str]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {v for r in rows for k, v in r.items() if k not in skip and len(v.lstrip("-")) >= 6}


def _party_plain(
    table: Table, path: Path, skip: Sequence[str], bias: bool, spec: JobSpec
) -> PartyPlain:
    aligned = table.select(np.argsort(np.array(table.ids, dtype=object), kind="stable"))
    is_val = validation_mask(aligned.ids, spec.validation.share, spec.seed)
    train = aligned.select(np.flatnonzero(~is_val))
    assert isinstance(SPEC.model, LrSpec)
    clip = QuantileClipper.fit(train.X, SPEC.model.clip)
    scaler = Standardizer.fit(clip.transform(train.X))
    train_std = scaler.transform(clip.transform(train.X))
    return PartyPlain(
        raw=table.X,
        cell_text=_cells(path, skip),
        std_full=Standardizer.fit(table.X).transform(table.X),
        clip=clip,
        scaler=scaler,
        std_job=scaler.transform(clip.transform(aligned.X)),
        train_std=np.hstack([train_std, np.ones((len(train), 1))]) if bias else train_std,
        quantised=quantise(train_std, X_EXP),
    )


def _plain(shared_data: Path, spec: JobSpec = SPEC) -> Plain:
    """What the broker and the platform hold, as a job ``spec`` splits it (its seed and
    validation share decide the training rows)."""
    host = load_table(shared_data / HOST_FILE, id_column="id", party=HOST)
    guest = load_table(shared_data / GUEST_FILE, id_column="id", label_column="y", party=GUEST)
    assert sorted(host.ids) == sorted(guest.ids)  # the whole file is the intersection
    assert guest.y is not None
    aligned = guest.select(np.argsort(np.array(guest.ids, dtype=object), kind="stable"))
    assert aligned.y is not None
    is_val = validation_mask(aligned.ids, spec.validation.share, spec.seed)
    return Plain(
        host=_party_plain(host, shared_data / HOST_FILE, ("id",), bias=False, spec=spec),
        guest=_party_plain(guest, shared_data / GUEST_FILE, ("id", "y"), bias=True, spec=spec),
        y_file=guest.y,
        y_aligned=aligned.y,
        y_train=aligned.y[~is_val],
        y_val=aligned.y[is_val],
    )


def replay_gradients(
    plain: Plain, spec: JobSpec
) -> tuple[dict[tuple[str, int], list[int]], dict[str, np.ndarray]]:
    """The true gradient integers (at G_EXP) of every party and round, and final weights.

    Mirrors ``hetero_lr`` in plaintext with the same fixed-point steps: the Paillier
    arithmetic is exact on these integers, so the masks cancel and the weights agree.
    """
    m = spec.model
    parts = {GUEST: plain.guest.train_std, HOST: plain.host.train_std}
    xq = {p: quantise(X, X_EXP).astype(object) for p, X in parts.items()}
    w = {p: np.zeros(X.shape[1]) for p, X in parts.items()}
    y, grads, step = plain.y_train, {}, 0
    for epoch in range(m.epochs):
        for batch in batch_schedule(len(y), m.batch_size, epoch, spec.seed):
            u_a = parts[GUEST][batch] @ w[GUEST]
            u_b = parts[HOST][batch] @ w[HOST]
            d4 = np.rint(u_b * 16.0**-U_EXP) + np.rint((u_a + 2.0 - 4.0 * y[batch]) * 16.0**-U_EXP)
            d4_int = d4.astype(np.int64).astype(object)
            lr = learning_rate(m.learning_rate, m.lr_decay, step)
            for p in parts:
                g_int = [int(v) for v in xq[p][batch].T.dot(d4_int)]
                grads[(p, step)] = g_int
                g = np.array([float(v) for v in g_int]) * 16.0**G_EXP
                w[p] = w[p] - lr * (0.25 * g / len(batch) + m.l2 * w[p])
            step += 1
    return grads, w


# ---- the recorded job ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    spec: JobSpec
    sent: list[Envelope]
    received: list[Envelope]
    job_dirs: dict[str, Path]

    @property
    def payloads(self) -> list[bytes]:
        return [e.payload for e in self.sent]

    def where(self, hits: Sequence[Hit]) -> str:
        return "; ".join(
            f"{self.sent[i].sender}->{self.sent[i].receiver} '{self.sent[i].tag}' "
            f"round {self.sent[i].round} ({self.sent[i].payload_type}) at byte {off}"
            for i, off in hits[:10]
        )

    def from_sender(self, *senders: str) -> list[Envelope]:
        return [e for e in self.sent if e.sender in senders]

    def model(self, party: str) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.job_dirs[party] / "model.json").read_text())
        return data


@pytest.fixture(scope="module")
def plain(shared_data: Path) -> Plain:
    return _plain(shared_data)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Recorded:
    tmp = tmp_path_factory.mktemp("privacy-wire")
    recorder = WireRecorder()
    spec = SPEC
    report = run_in_process(make_nodes(tmp, shared_data, [recorder]), spec)
    assert report.guest_result["validation"]["auc"] > 0.95  # a real, working job
    return Recorded(
        spec=spec,
        sent=list(recorder.sent),
        received=list(recorder.received),
        job_dirs={p: tmp / p / "jobs" / spec.job_id for p in (GUEST, HOST, ARBITER)},
    )


def _modulus(recorded: Recorded) -> int:
    keys = {
        serde.decode_payload(e.payload_type, e.payload)
        for e in recorded.sent
        if e.payload_type == _t("PublicKey")
    }
    assert len(keys) == 1
    key = next(iter(keys))
    assert isinstance(key, PublicKeyMsg)
    return int.from_bytes(key.n, "big")


# ---- the recording is the wire ----------------------------------------------------------------


def test_recording_holds_every_message_as_serialised_for_the_wire(recorded: Recorded) -> None:
    ident = lambda e: (e.sender, e.receiver, e.seq, e.sha256)  # noqa: E731
    assert sorted(map(ident, recorded.sent)) == sorted(map(ident, recorded.received))
    assert len(recorded.sent) > 50
    for env in recorded.sent:
        assert env.job_id == recorded.spec.job_id
        payload = serde.decode_payload(env.payload_type, env.payload)
        assert serde.encode_payload(payload) == (env.payload_type, env.payload)
        assert (
            Envelope.build(
                job_id=env.job_id,
                round=env.round,
                tag=env.tag,
                sender=env.sender,
                receiver=env.receiver,
                seq=env.seq,
                payload_type=env.payload_type,
                payload=env.payload,
            ).sha256
            == env.sha256
        )


def test_payload_types_between_each_pair_of_parties(recorded: Recorded) -> None:
    used: dict[tuple[str, str], set[str]] = defaultdict(set)
    float_tags: set[str] = set()
    key_pairs, digest_pairs = set(), set()
    for env in recorded.sent:
        if env.tag == "audit.signing_key":  # every pair: a public signing key, nothing else
            signal = serde.decode_payload(env.payload_type, env.payload)
            assert isinstance(signal, Signal) and len(bytes.fromhex(signal.value)) == 32
            key_pairs.add((env.sender, env.receiver))
            continue
        if env.tag == "job.spec_digest":  # every pair: the digest of the spec, nothing else
            signal = serde.decode_payload(env.payload_type, env.payload)
            assert isinstance(signal, Signal) and signal.value == recorded.spec.digest()
            digest_pairs.add((env.sender, env.receiver))
            continue
        used[(env.sender, env.receiver)].add(env.payload_type.removeprefix("lianmo.v1."))
        if env.payload_type == _t("FloatVector"):
            float_tags.add(f"{env.sender}->{env.receiver}:{env.tag}")
    table = "\n".join(f"  {s}->{r}: {sorted(ts)}" for (s, r), ts in sorted(used.items()))
    allowed = {
        (GUEST, HOST): {"PointList", "IndexList", "Signal", "EncryptedVector"},
        (GUEST, ARBITER): {"Signal", "EncryptedVector"},
        (HOST, ARBITER): {"Signal", "EncryptedVector"},  # lr.gradient_shape; gradients
        (ARBITER, GUEST): {"PublicKey", "IntVector", "Signal"},
        (ARBITER, HOST): {"PublicKey", "IntVector", "Signal"},
        (HOST, GUEST): {"Signal", "PointList", "EncryptedVector", "FloatVector"},
    }
    assert set(used) == set(allowed), f"unexpected party pairs:\n{table}"
    assert key_pairs == digest_pairs == set(allowed)
    for pair, types in used.items():
        assert types <= allowed[pair], (
            f"{pair[0]}->{pair[1]} used {types - allowed[pair]}:\n{table}"
        )
    assert "EncryptedVector" in used[(HOST, GUEST)] and "IntVector" in used[(ARBITER, HOST)]
    assert float_tags == {f"{HOST}->{GUEST}:predict.validation"}, table
    guest_plain = [
        e
        for e in recorded.from_sender(GUEST)
        if e.payload_type in (_t("FloatVector"), _t("IntVector"))
    ]
    assert not guest_plain, recorded.where([(recorded.sent.index(e), 0) for e in guest_plain])


# ---- (a) features -------------------------------------------------------------------------


def test_reproduced_scalers_are_the_parties_own(recorded: Recorded, plain: Plain) -> None:
    """The byte search is only as good as the reproduction: it must be bit-exact."""
    for party, pp in ((HOST, plain.host), (GUEST, plain.guest)):
        model = recorded.model(party)
        assert {"mean": model["mean"], "scale": model["scale"]} == pp.scaler.to_dict()
        assert model["clip"] == pp.clip.to_dict()


@pytest.mark.parametrize("party", [HOST, GUEST])
def test_no_feature_value_crosses_the_wire(recorded: Recorded, plain: Plain, party: str) -> None:
    pp = plain.host if party == HOST else plain.guest
    others = [e.payload for e in recorded.sent if e.sender != party]
    mine = [e for e in recorded.sent if e.sender == party]
    payloads = [e.payload for e in mine]
    raw, std = nontrivial_raw(pp.raw), nontrivial_std(np.concatenate([pp.std_full, pp.std_job]))
    assert len(raw) > 0.9 * len(np.unique(pp.raw)) and len(std) > 0.9 * pp.raw.size
    view = Recorded(recorded.spec, mine, [], recorded.job_dirs)
    for what, hits in (
        ("a raw value", search_floats(payloads, raw)),
        ("a standardised value", search_floats(payloads, std)),
        ("a quantised value", search_quantised(payloads, pp.quantised)),
        ("a CSV cell as text", find_text(payloads, pp.cell_text)),
    ):
        assert not hits, f"{party} sent {what}: {view.where(hits)}"
    # Messages of other parties cannot hold them either (they never had them).
    assert not search_floats(others, raw)


# ---- (b) labels ---------------------------------------------------------------------------


def _label_orders(plain: Plain, spec: JobSpec) -> dict[str, np.ndarray]:
    orders = {
        "file": plain.y_file,
        "aligned": plain.y_aligned,
        "train": plain.y_train,
        "validation": plain.y_val,
    }
    for epoch in range(spec.model.epochs):
        for k, batch in enumerate(
            batch_schedule(len(plain.y_train), spec.model.batch_size, epoch, spec.seed)
        ):
            orders[f"epoch {epoch} batch {k}"] = plain.y_train[batch]
    return orders


def label_needles(y: np.ndarray) -> dict[str, bytes]:
    return {
        "float64": y.astype("<f8").tobytes(),
        "float64 BE": y.astype(">f8").tobytes(),
        "uint8": y.astype(np.uint8).tobytes(),
        "int32": y.astype("<i4").tobytes(),
        "int32 BE": y.astype(">i4").tobytes(),
        "text": "".join(str(int(v)) for v in y).encode(),
    }


def test_no_label_vector_crosses_the_wire(recorded: Recorded, plain: Plain) -> None:
    orders = _label_orders(plain, recorded.spec)
    assert min(len(y) for y in orders.values()) >= 64 and len(orders) == 4 + 6
    for name, y in orders.items():
        assert 0 < y.sum() < len(y)
        for enc, needle in label_needles(y).items():
            hits = find_bytes(recorded.payloads, [needle])
            assert not hits, f"labels ({name} order, {enc}) on the wire: {recorded.where(hits)}"
    hits = find_bit_vectors(recorded.payloads)
    assert not hits, f"something shaped like a label vector: {recorded.where(hits)}"


# ---- (c) weights and gradients ---------------------------------------------------------------


def _weights(recorded: Recorded) -> dict[str, np.ndarray]:
    out = {}
    for party in (GUEST, HOST):
        share = recorded.model(party)
        w = list(share["weights"])  # type: ignore[call-overload]
        if share["intercept"] is not None:
            w.append(share["intercept"])
        out[party] = np.array(w, dtype=np.float64)
    return out


def test_no_final_weight_crosses_the_wire(recorded: Recorded) -> None:
    weights = np.concatenate(list(_weights(recorded).values()))
    assert len(weights) == 31 and np.all(weights != 0)
    hits = search_floats(recorded.payloads, weights)
    assert not hits, f"a final weight on the wire: {recorded.where(hits)}"
    # float32 singles: only where no random ciphertext bytes could match by chance.
    plaintext_typed = [
        e.payload
        for e in recorded.sent
        if e.payload_type in (_t("FloatVector"), _t("Signal"), _t("IndexList"))
    ]
    assert not find_fixed(plaintext_typed, float_needles(weights)["f4"])
    texts = {f"{v:.6f}".lstrip("-") for v in weights} | {repr(abs(v)) for v in weights}
    assert not find_text(recorded.payloads, texts)


def test_replayed_training_matches_the_parties_final_weights(
    recorded: Recorded, plain: Plain
) -> None:
    _, final = replay_gradients(plain, recorded.spec)
    weights = _weights(recorded)
    for party in (GUEST, HOST):
        np.testing.assert_allclose(final[party], weights[party], rtol=1e-12, atol=1e-15)


def test_arbiter_only_ever_returns_masked_gradients(recorded: Recorded, plain: Plain) -> None:
    n = _modulus(recorded)
    width = (n.bit_length() + 7) // 8
    true, _ = replay_gradients(plain, recorded.spec)
    assert max(abs(g) for gs in true.values() for g in gs) < TRUE_GRADIENT_CEILING
    returned = [e for e in recorded.sent if e.payload_type == _t("IntVector")]
    assert len(returned) == len(true)  # one per data party and round
    for env in returned:
        assert env.sender == ARBITER and env.tag == "lr.gradient"
        msg = serde.decode_payload(env.payload_type, env.payload)
        assert isinstance(msg, IntVector) and msg.width == width
        values = [
            int.from_bytes(msg.data[i * width : (i + 1) * width], "big") for i in range(msg.count)
        ]
        where = f"'{env.tag}' round {env.round} to {env.receiver}"
        assert not unmasked(values, n), f"arbiter returned unmasked values in {where}"
        g = true[(env.receiver, env.round)]
        masks = [(v - t) % n for v, t in zip(values, g, strict=True)]
        # The arbiter decrypted exactly gradient + a fresh mask below 2**MASK_BITS.
        assert all(MASK_FLOOR <= r < 2**MASK_BITS for r in masks), where
    # The true gradients themselves never travel, in any of their likely encodings.
    ints = sorted({g for gs in true.values() for g in gs if abs(g) >= 2**32})
    assert sum(informative(b) for b in packed(ints, ">i8")) > 100
    needles = [(g % n).to_bytes(width, "big") for g in ints]
    minimal = [abs(g).to_bytes((abs(g).bit_length() + 7) // 8, "big") for g in ints]
    needles += [b for b in minimal if informative(b)]
    hits = find_bytes(recorded.payloads, needles)
    hits += find_fixed(recorded.payloads, packed(ints, "<i8") + packed(ints, ">i8"))
    floats = [g * 16.0**G_EXP for g in ints]
    hits += find_fixed(recorded.payloads, float_needles(floats)["f8"])
    assert not hits, f"a plaintext gradient on the wire: {recorded.where(hits)}"


# ---- the search can fail ------------------------------------------------------------------------


def _noise(size: int, seed: int = 7) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def test_search_finds_a_planted_host_value(plain: Plain) -> None:
    value = float(nontrivial_raw(plain.host.raw)[17])
    for dtype in ("<f8", ">f8"):
        fake = _noise(1000) + np.array([value], dtype=dtype).tobytes() + _noise(333, 8)
        assert search_floats([b"", fake], [value]) == [(1, 1000)]
    assert search_floats([_noise(5000)], nontrivial_raw(plain.host.raw)) == []


def test_search_finds_a_leaked_host_column_in_a_real_payload(plain: Plain) -> None:
    column = plain.host.std_job[:, 3]
    needles = nontrivial_std(plain.host.std_job)
    _, as_floats = serde.encode_payload(FloatVector(column.astype("<f8").tobytes()))
    assert len(search_floats([as_floats], needles)) >= len(column)
    as_float32 = _noise(64) + column.astype(">f4").tobytes()
    assert len(search_floats([as_float32], needles)) >= len(column) - 1
    q = plain.host.quantised[:, 5]
    ints = IntVector(count=len(q), width=8, data=q.astype(">i8").tobytes())
    assert search_quantised([serde.encode_payload(ints)[1]], plain.host.quantised)
    cell = next(iter(plain.host.cell_text))
    assert find_text([_noise(40) + b"debug x=" + cell.encode()], plain.host.cell_text)


def test_search_limits_a_lone_float32_is_not_reported(plain: Plain) -> None:
    """Documents the limit: one float32 among random bytes is too short a needle."""
    value = nontrivial_raw(plain.host.raw)[:2]
    lone = _noise(100) + value[:1].astype("<f4").tobytes() + _noise(100, 9)
    pair = _noise(100) + value.astype("<f4").tobytes() + _noise(100, 9)
    assert search_floats([lone], value) == []
    assert search_floats([pair], value) == [(0, 100)]


def test_search_finds_planted_labels(plain: Plain) -> None:
    y = plain.y_train[:200]
    for enc, needle in label_needles(y).items():
        fake = _noise(300) + needle + _noise(300, 3)
        assert find_bytes([fake], [needle]) == [(0, 300)], enc
        assert find_bit_vectors([fake]), enc  # also without knowing the order
    shuffled = np.random.default_rng(1).permutation(y)
    assert find_bit_vectors([_noise(50) + shuffled.astype(np.uint8).tobytes()])
    # Zero padding of big integers is not a label vector.
    padded = b"".join(b"\x00" * 223 + _noise(33, s) for s in range(20))
    assert find_bit_vectors([padded]) == []


def test_padding_like_needles_are_not_searched_alone() -> None:
    boundary = _noise(30) + bytes(223)  # the end of one big integer, the next one's padding
    round_value = np.array([-24.0], ">f8").tobytes()
    assert not informative(round_value) and informative(np.array([-24.1], ">f8").tobytes())
    assert find_fixed([boundary[:28] + round_value[:2] + boundary[30:]], [round_value]) == []


def test_mask_check_flags_an_unmasked_gradient() -> None:
    n = (2**1024 + 643) * (2**1024 + 1597)  # any odd n of the right size will do
    masked = [g + (2**255 + 12345 * k) for k, g in enumerate((5, -7, 2**40))]
    assert unmasked([v % n for v in masked], n) == []
    assert unmasked([5, n - 7, 2**40], n) == [5, n - 7, 2**40]
