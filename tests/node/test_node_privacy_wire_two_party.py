"""Privacy on the wire, two-party LR: nothing secret crosses, and each product decrypts to
exactly what the protocol says its receiver learns.

How the check works
-------------------
A two-party hetero LR job (guest ``broker`` with the breast labels, host ``platform``, no
arbiter; real 2048-bit keys, as every job spec insists) runs through two in-process
:class:`NodeService` nodes with pinned DRBG seeds and a recorder on both channels, as in
``test_node_privacy_wire`` (coordinated LR), whose detectors this module imports: its
docstring says what a byte search catches and what it cannot prove. The tests then

* pin the payload types between the two parties and, per type, the steps that use it:
  public keys, signals (layouts, epoch ends, job bookkeeping), ciphertexts (each party's
  features once, one product per batch each way), one integer per epoch (the host's
  ``Σ u_H²``, checked against its true value) and floats only for the host's validation
  partial scores (``predict.validation``, which the guest may learn);
* decrypt what each receiver decrypts: each party's key is generated again from the seed
  its node kept (and must be the key it sent). ``lr2.features`` hold exactly the sender's
  packed quantised rows; each ``lr2.product`` holds, in its low ``T`` bits, exactly
  ``X̃_pᵀ v`` recomputed in plaintext, and above them a top mask ``R`` that is non-zero,
  in its range, full-size and fresh every round: that is all its receiver learns;
* replay training in plaintext from the data and those decrypted slots: it reproduces
  both parties' final weights bit for bit, and so gives every round's partial
  predictions (``u_H``, ``u_A``), the guest's residual share ``s = u_A + 2 − 4y``, both
  gradients and all intermediate weights; none of them crosses as float64, as float32
  pairs, as ``V_EXP`` fixed-point integer pairs (int32/int64, in batch order) or, for the
  gradients' exact integers, as int64 or minimal big-endian bytes;
* search features (raw cells, standardised, quantised at the exponent each party's
  protocol picks, CSV text), label vectors in every order and final weights, as the
  coordinated test does.

Four epochs, not two: the 455 training rows make one batch per epoch (the host's 20
columns need batches of 320), and in round 0 every weight is zero, so ``u_H = 0``; four
rounds give three with partial predictions worth searching for and four top masks per
direction. The job takes about 4 s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.drbg import Drbg
from lianmo.crypto.fixedpoint import choose_exponent, quantise
from lianmo.crypto.paillier import PrivateKey, generate_keypair
from lianmo.models.logistic import learning_rate
from lianmo.node.job_secrets import seed_path
from lianmo.node.lr_job import lr_params
from lianmo.protocols.hetero_lr import LrParams, rounds
from lianmo.protocols.two_party_lr import V_BITS, V_EXP, Layout, max_batch, top_range
from lianmo.transport import serde
from lianmo.transport.envelope import Envelope
from lianmo.transport.messages import EncryptedVector, IntVector, PublicKeyMsg, Signal
from lianmo.wire.convert import cipher_from_msg
from tests.node.inprocess_nodes import (
    GUEST,
    HOST,
    WireRecorder,
    fixed_seeds,
    make_nodes,
    run_in_process,
    two_party_configs,
    two_party_spec,
)
from tests.node.test_node_privacy_wire import (
    Hit,
    Plain,
    Recorded,
    _label_orders,
    _plain,
    _weights,
    find_bit_vectors,
    find_bytes,
    find_fixed,
    find_text,
    float_needles,
    informative,
    label_needles,
    nontrivial_raw,
    nontrivial_std,
    packed,
    search_floats,
    search_quantised,
)

SPEC = two_party_spec("breast-privacy-2p", epochs=4, tol=0.0)
KEY_BITS = 2048
_V_LIMIT = (1 << V_BITS) - 1


def _t(short: str) -> str:
    return f"lianmo.v1.{short}"


def _decode(env: Envelope) -> object:
    return serde.decode_payload(env.payload_type, env.payload)


# ---- the recorded job and the keys its parties held -------------------------------------------


@dataclass(frozen=True)
class Run:
    recorded: Recorded
    keys: dict[str, PrivateKey]  # each party's own key, generated again from its seed

    def one(self, tag: str, sender: str, round: int = 0) -> Envelope:
        found = [
            e
            for e in self.recorded.sent
            if e.tag == tag and e.sender == sender and e.round == round
        ]
        assert len(found) == 1, (tag, sender, round, len(found))
        return found[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Run:
    tmp = tmp_path_factory.mktemp("privacy-wire-2p")
    recorder = WireRecorder()
    configs = two_party_configs(tmp, shared_data)
    nodes = make_nodes(tmp, shared_data, [recorder], configs=configs, seed_for=fixed_seeds)
    report = run_in_process(nodes, SPEC)
    assert report.guest_result["validation"]["auc"] > 0.95  # a real, working job
    recorded = Recorded(
        spec=SPEC,
        sent=list(recorder.sent),
        received=list(recorder.received),
        job_dirs={p: tmp / p / "jobs" / SPEC.job_id for p in (GUEST, HOST)},
    )
    keys = {}
    for party, config in configs.items():
        seed = seed_path(config, SPEC.job_id).read_bytes()
        _, keys[party] = generate_keypair(KEY_BITS, Drbg(seed))
    return Run(recorded, keys)


@pytest.fixture(scope="module")
def plain(shared_data: Path) -> Plain:
    return _plain(shared_data, SPEC)


def _params() -> LrParams:
    params = lr_params(SPEC.model, SPEC.seed)
    assert params.label_noise == 0.0  # s = u_A + 2 − 4y exactly, as the replay computes it
    return params


# ---- what each party packs, and the plaintext replay --------------------------------------------


@dataclass(frozen=True)
class Packed:
    """A party's rows as its protocol quantises and packs them."""

    X: np.ndarray  # what the party trains on (guest: standardised, bias)
    packed_X: np.ndarray  # what it encrypts (guest: plus the label column)
    exponent: int
    q: np.ndarray  # quantise(packed_X, exponent)
    layout: Layout


def _packed(run: Run, plain: Plain) -> dict[str, Packed]:
    n = len(plain.y_train)
    top = max_batch(_params(), n)
    out = {}
    for party, X, extra in (
        (GUEST, plain.guest.train_std, [plain.y_train.reshape(-1, 1)]),
        (HOST, plain.host.train_std, []),
    ):
        full = np.hstack([X, *extra])
        e = choose_exponent(full)
        q = quantise(full, e)
        bits = max(1, int(np.abs(q).max()).bit_length())
        layout = Layout(q.shape[1], bits, top, int(run.keys[party].public_key.n))
        out[party] = Packed(X, full, e, q, layout)
    return out


@dataclass(frozen=True)
class Product:
    """One decrypted ``lr2.product``: its honest slots and the top mask above them."""

    slots: np.ndarray  # int64, the receiver's X̃ᵀ v
    masks: tuple[int, ...]  # R per group
    tops: tuple[int, ...]  # the largest R the protocol draws, per group


@dataclass(frozen=True)
class Round:
    step: int
    batch: np.ndarray
    w: dict[str, np.ndarray]  # weights before the round
    u_a: np.ndarray
    s: np.ndarray  # the guest's residual share u_A + 2 − 4y
    u_h: np.ndarray
    vq: dict[str, np.ndarray]  # what each party multiplies the peer's rows by (s, u_H)
    to: dict[str, Product]  # the product each party received and decrypted
    gradient: dict[str, np.ndarray]  # X_pᵀ 4d, as the party forms it
    step_gradient: dict[str, np.ndarray]  # 0.25·X_pᵀ 4d / rows + l2·w


def split_plaintext(value: int, T: int) -> tuple[int, int]:
    """A product's plaintext as (signed low ``T`` bits, what stands above them)."""
    low = value & ((1 << T) - 1)
    signed = low - (1 << T) if low >> (T - 1) else low
    return signed, (value - signed) >> T


def _open_product(env: Envelope, key: PrivateKey, layout: Layout) -> Product:
    msg = _decode(env)
    assert isinstance(msg, EncryptedVector) and msg.exponent == V_EXP
    cv = cipher_from_msg(msg, key.public_key, env.sender, env.tag, count=layout.groups)
    slots, masks, tops = [], [], []
    for g, value in enumerate(key.decrypt_raw(cv)):
        packing = layout.group_packing(g)
        T = packing.total_bits
        low, mask = split_plaintext(int(value), T)
        slots.append(packing.unpack([low])[0])
        masks.append(mask)
        tops.append(top_range(int(key.public_key.n), T))
    return Product(np.concatenate(slots), tuple(masks), tuple(tops))


def _update(w: np.ndarray, g: np.ndarray, rows: int, params: LrParams, step: int) -> np.ndarray:
    grad = 0.25 * g / rows + params.l2 * w
    return np.asarray(w - learning_rate(params.learning_rate, params.lr_decay, step) * grad)


@dataclass(frozen=True)
class Replay:
    rounds: list[Round]
    final: dict[str, np.ndarray]  # each party's weights after the last round


def _replay(run: Run, plain: Plain) -> Replay:
    """Training as both parties ran it, from the data and the products they decrypted."""
    params, packs, y = _params(), _packed(run, plain), plain.y_train
    n, peer = len(y), {GUEST: HOST, HOST: GUEST}
    w = {p: np.zeros(packs[p].X.shape[1]) for p in (GUEST, HOST)}
    out = []
    for epoch, step, _ in rounds(params, n, 0, False):
        batch = params.schedule(n, epoch)[step - params.first_round(n, epoch)]
        u_a = packs[GUEST].X[batch] @ w[GUEST]
        s = u_a + 2.0 - 4.0 * y[batch]
        u_h = packs[HOST].X[batch] @ w[HOST]
        vq = {
            p: np.clip(quantise(v, V_EXP), -_V_LIMIT, _V_LIMIT)
            for p, v in ((GUEST, s), (HOST, u_h))
        }
        to = {
            p: _open_product(run.one("lr2.product", peer[p], step), run.keys[p], packs[p].layout)
            for p in (GUEST, HOST)
        }
        read = {p: to[p].slots.astype(np.float64) * 16.0 ** (V_EXP + packs[p].exponent) for p in to}
        m = packs[GUEST].X.shape[1]
        gradient = {
            GUEST: packs[GUEST].X[batch].T @ s + read[GUEST][:m],
            HOST: read[HOST] + packs[HOST].X[batch].T @ u_h,
        }
        step_gradient = {p: 0.25 * gradient[p] / len(batch) + params.l2 * w[p] for p in w}
        out.append(Round(step, batch, dict(w), u_a, s, u_h, vq, to, gradient, step_gradient))
        w = {p: _update(w[p], gradient[p], len(batch), params, step) for p in w}
    return Replay(out, w)


@pytest.fixture(scope="module")
def replayed(run: Run, plain: Plain) -> Replay:
    return _replay(run, plain)


@pytest.fixture(scope="module")
def packs(run: Run, plain: Plain) -> dict[str, Packed]:
    return _packed(run, plain)


# ---- the keys, the replay and the recording are the real ones -----------------------------------


def test_regenerated_keys_are_the_keys_each_party_sent(run: Run) -> None:
    for party, key in run.keys.items():
        msg = _decode(run.one("lr2.public_key", party))
        assert isinstance(msg, PublicKeyMsg)
        assert int.from_bytes(msg.n, "big") == int(key.public_key.n)
        assert int(key.public_key.n).bit_length() == KEY_BITS
    assert run.keys[GUEST].public_key != run.keys[HOST].public_key


def test_replayed_training_gives_both_parties_final_weights_exactly(
    run: Run, replayed: Replay
) -> None:
    final = replayed.final
    weights = _weights(run.recorded)
    for party in (GUEST, HOST):
        np.testing.assert_array_equal(final[party], weights[party])
    assert len(replayed.rounds) == SPEC.model.epochs


def test_each_round_trains_on_every_training_row_once(replayed: Replay, plain: Plain) -> None:
    for r in replayed.rounds:
        assert sorted(r.batch.tolist()) == list(range(len(plain.y_train)))


# ---- payload types ----------------------------------------------------------------------------

SIGNAL_TAGS = {"audit.signing_key", "job.spec_digest", "job.commit"}
ALLOWED: dict[tuple[str, str], dict[str, set[str]]] = {
    (GUEST, HOST): {
        "Signal": SIGNAL_TAGS
        | {"psi.guest_size", "psi.size", "lr2.plan", "lr2.layout", "lr2.epoch_end"},
        "PointList": {"psi.guest_set"},
        "IndexList": {"psi.positions"},
        "PublicKey": {"lr2.public_key"},
        "EncryptedVector": {"lr2.features", "lr2.product"},
    },
    (HOST, GUEST): {
        "Signal": SIGNAL_TAGS - {"job.commit"} | {"psi.host_size", "lr2.layout"},
        "PointList": {"psi.host_set", "psi.guest_set_double"},
        "PublicKey": {"lr2.public_key"},
        "EncryptedVector": {"lr2.features", "lr2.product"},
        "IntVector": {"lr2.square_sum"},
        "FloatVector": {"predict.validation"},
    },
}


def test_payload_types_and_steps_between_the_two_parties(run: Run) -> None:
    used: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for env in run.recorded.sent:
        used[(env.sender, env.receiver)][env.payload_type.removeprefix("lianmo.v1.")].add(env.tag)
    table = "\n".join(
        f"  {s}->{r}: {dict(sorted(types.items()))}" for (s, r), types in sorted(used.items())
    )
    assert {pair: dict(types) for pair, types in used.items()} == ALLOWED, table


def test_ciphertext_steps_are_sent_once_per_job_or_round(
    run: Run, packs: dict[str, Packed], plain: Plain
) -> None:
    n_train = len(plain.y_train)
    for sender in (GUEST, HOST):
        sent = [e for e in run.recorded.from_sender(sender) if e.tag.startswith("lr2.")]
        features = [e for e in sent if e.tag == "lr2.features"]
        products = [e for e in sent if e.tag == "lr2.product"]
        assert len(features) == 1 and [e.round for e in products] == list(range(SPEC.model.epochs))
        msg = _decode(features[0])
        assert isinstance(msg, EncryptedVector)
        assert msg.count == n_train * packs[sender].layout.groups
        # under the sender's own key, as the features; the product under the receiver's
        assert msg.key_id == run.keys[sender].public_key.fingerprint
        receiver = GUEST if sender == HOST else HOST
        for env in products:
            product = _decode(env)
            assert isinstance(product, EncryptedVector)
            assert product.key_id == run.keys[receiver].public_key.fingerprint
            assert product.count == packs[receiver].layout.groups


def test_layouts_on_the_wire_are_what_each_party_packs(run: Run, packs: dict[str, Packed]) -> None:
    for party, pack in packs.items():
        msg = _decode(run.one("lr2.layout", party))
        assert isinstance(msg, Signal)
        assert msg.value == f"{pack.layout.count} {pack.layout.bits}"
    assert packs[GUEST].layout.count == 10 + 2  # columns, bias, label
    assert packs[HOST].layout.count == 20


def test_the_one_plaintext_integer_is_the_epochs_square_sum(run: Run, replayed: Replay) -> None:
    ints = [e for e in run.recorded.sent if e.payload_type == _t("IntVector")]
    assert [e.round for e in ints] == [r.step for r in replayed.rounds]  # one batch/epoch
    for env, r in zip(ints, replayed.rounds, strict=True):
        msg = _decode(env)
        assert isinstance(msg, IntVector) and msg.count == 1
        expected = sum(int(v) * int(v) for v in r.vq[HOST])
        assert int.from_bytes(msg.data, "big") == expected


def test_signals_say_only_what_the_protocol_says(run: Run) -> None:
    ends = [_decode(e) for e in run.recorded.sent if e.tag == "lr2.epoch_end"]
    assert [s.value for s in ends if isinstance(s, Signal)] == ["continue"] * 3 + ["stop"]
    floats = [e for e in run.recorded.sent if e.payload_type == _t("FloatVector")]
    assert len(floats) == 1 and floats[0].sender == HOST


# ---- what each receiver decrypts ----------------------------------------------------------------


@pytest.mark.parametrize("sender", [GUEST, HOST])
def test_features_decrypt_to_the_senders_packed_rows_and_nothing_else(
    run: Run, packs: dict[str, Packed], sender: str
) -> None:
    """Only the sender can decrypt them; this is what they hold."""
    pack, key = packs[sender], run.keys[sender]
    env = run.one("lr2.features", sender)
    msg = _decode(env)
    assert isinstance(msg, EncryptedVector) and msg.exponent == 0
    cv = cipher_from_msg(msg, key.public_key, sender, env.tag)
    plain_rows = [int(v) for v in key.decrypt_raw(cv)]
    n = int(key.public_key.n)
    expected = []
    for row in range(len(pack.q)):
        for g in range(pack.layout.groups):
            columns = list(pack.layout.group_columns(g))
            expected.append(
                pack.layout.group_packing(g).pack(pack.q[row : row + 1, columns])[0] % n
            )
    assert plain_rows == expected


@pytest.mark.parametrize("receiver", [GUEST, HOST])
def test_each_product_decrypts_to_the_honest_slots_under_a_fresh_top_mask(
    replayed: Replay, packs: dict[str, Packed], receiver: str
) -> None:
    """The receiver learns X̃ᵀ v (its own rows times the peer's v) and R, nothing else.

    Guest: X̃_Aᵀ u_H, i.e. X_Aᵀ u_H for its columns and bias and Σ_{y=1} u_H from its
    label column; host: X̃_Hᵀ s. R is uniform in [1, top]: never zero, full-size (its
    top 40 bits are not all zero but with probability 2**-40), fresh each round.
    """
    q = packs[receiver].q.astype(object)
    masks = []
    for r in replayed.rounds:
        product = r.to[receiver]
        v = r.vq[HOST if receiver == GUEST else GUEST].astype(object)
        assert product.slots.tolist() == list(q[r.batch].T.dot(v))
        for mask, top in zip(product.masks, product.tops, strict=True):
            assert 1 <= mask <= top and mask.bit_length() > top.bit_length() - 40
        masks += product.masks
    assert len(set(masks)) == len(masks) == SPEC.model.epochs


def test_the_host_learns_a_gradient_share_the_guest_learns_a_cross_product(
    replayed: Replay, packs: dict[str, Packed]
) -> None:
    """The honest slots in float, as each party reads them: the host's ``X_Hᵀ s`` (with
    its own ``X_Hᵀ u_H`` that is its Taylor gradient ``X_Hᵀ 4d``), the guest's
    ``X_Aᵀ u_H`` (which completes its gradient) within the fixed-point error."""
    for r in replayed.rounds[1:]:
        e_h, e_a = packs[HOST].exponent, packs[GUEST].exponent
        host_read = r.to[HOST].slots * 16.0 ** (V_EXP + e_h)
        np.testing.assert_allclose(host_read, packs[HOST].X[r.batch].T @ r.s, atol=0.1)
        guest_read = r.to[GUEST].slots * 16.0 ** (V_EXP + e_a)
        expected = packs[GUEST].packed_X[r.batch].T @ r.u_h
        np.testing.assert_allclose(guest_read, expected, atol=0.1)
        assert np.abs(expected).max() > 10  # not trivially zero


# ---- partial predictions, residuals, gradients, weights ----------------------------------------


def _int_pair_hits(payloads: Sequence[bytes], sequences: Sequence[np.ndarray]) -> list[Hit]:
    """Neighbouring fixed-point ints (both ``|q| >= 2**12``) of any sequence, as int32 or
    int64, either byte order (singles are too short a needle: see the coordinated test)."""
    pairs = np.concatenate([np.stack([s[:-1], s[1:]], axis=1) for s in sequences])
    pairs = np.unique(pairs[(np.abs(pairs) >= 2**12).all(axis=1)], axis=0)
    assert len(pairs) > 100
    hits: list[Hit] = []
    for dtype in ("<i4", ">i4", "<i8", ">i8"):
        needles = [pair.astype(dtype).tobytes() for pair in pairs]
        hits += find_fixed(payloads, needles, skip_padding=False)
    return hits


@pytest.mark.parametrize("what", ["u_H", "u_A", "s"])
def test_no_partial_prediction_or_residual_crosses(run: Run, replayed: Replay, what: str) -> None:
    rounds_ = replayed.rounds
    assert not rounds_[0].u_h.any() and all(r.u_h.any() for r in rounds_[1:])
    values = [{"u_H": r.u_h, "u_A": r.u_a, "s": r.s}[what] for r in rounds_]
    hits = search_floats(run.recorded.payloads, nontrivial_std(np.concatenate(values)))
    assert not hits, f"{what} as floats: {run.recorded.where(hits)}"
    ints = [np.clip(quantise(v, V_EXP), -_V_LIMIT, _V_LIMIT) for v in values]
    hits = _int_pair_hits(run.recorded.payloads, ints)
    assert not hits, f"{what} at V_EXP: {run.recorded.where(hits)}"


def test_no_gradient_crosses(run: Run, replayed: Replay) -> None:
    rounds_ = replayed.rounds
    floats = np.concatenate(
        [g for r in rounds_ for g in (*r.gradient.values(), *r.step_gradient.values())]
    )
    hits = search_floats(run.recorded.payloads, nontrivial_std(floats))
    assert not hits, f"a gradient as floats: {run.recorded.where(hits)}"
    # the exact integers each receiver decrypts: never in plaintext
    ints = sorted(
        {int(v) for r in rounds_ for p in r.to.values() for v in p.slots if abs(v) >= 2**32}
    )
    assert sum(informative(b) for b in packed(ints, ">i8")) > 20
    minimal = [abs(g).to_bytes((abs(g).bit_length() + 7) // 8, "big") for g in ints]
    hits = find_bytes(run.recorded.payloads, [b for b in minimal if informative(b)])
    hits += find_fixed(run.recorded.payloads, packed(ints, "<i8") + packed(ints, ">i8"))
    assert not hits, f"a gradient's integers: {run.recorded.where(hits)}"


def test_no_weight_crosses_final_or_intermediate(run: Run, replayed: Replay) -> None:
    final = np.concatenate(list(_weights(run.recorded).values()))
    assert len(final) == 31 and np.all(final != 0)
    during = [r.w[p] for r in replayed.rounds[1:] for p in (GUEST, HOST)]
    every = np.concatenate([*during, *replayed.final.values()])
    hits = search_floats(run.recorded.payloads, nontrivial_std(every))
    assert not hits, f"a weight on the wire: {run.recorded.where(hits)}"
    plaintext_typed = [
        e.payload
        for e in run.recorded.sent
        if e.payload_type in (_t("FloatVector"), _t("Signal"), _t("IndexList"), _t("IntVector"))
    ]
    assert not find_fixed(plaintext_typed, float_needles(final)["f4"])
    texts = {f"{v:.6f}".lstrip("-") for v in final} | {repr(abs(v)) for v in final}
    assert not find_text(run.recorded.payloads, texts)


# ---- features and labels -------------------------------------------------------------------------


def test_reproduced_scalers_are_the_parties_own(run: Run, plain: Plain) -> None:
    for party, pp in ((HOST, plain.host), (GUEST, plain.guest)):
        model = run.recorded.model(party)
        assert {"mean": model["mean"], "scale": model["scale"]} == pp.scaler.to_dict()


@pytest.mark.parametrize("party", [HOST, GUEST])
def test_no_feature_value_crosses(
    run: Run, plain: Plain, packs: dict[str, Packed], party: str
) -> None:
    pp = plain.host if party == HOST else plain.guest
    recorded = run.recorded
    payloads = [e.payload for e in recorded.sent]
    raw, std = nontrivial_raw(pp.raw), nontrivial_std(np.concatenate([pp.std_full, pp.std_job]))
    assert len(raw) > 0.9 * len(np.unique(pp.raw)) and len(std) > 0.9 * pp.raw.size
    columns = pp.raw.shape[1]  # the guest's bias and label columns are searched elsewhere
    quantised = packs[party].q[:, :columns]
    assert packs[party].exponent == choose_exponent(packs[party].packed_X)
    for what, hits in (
        ("a raw value", search_floats(payloads, raw)),
        ("a standardised value", search_floats(payloads, std)),
        ("a quantised value", search_quantised(payloads, quantised, SPEC)),
        ("a CSV cell as text", find_text(payloads, pp.cell_text)),
    ):
        assert not hits, f"{what} of {party} on the wire: {recorded.where(hits)}"


def test_no_label_vector_crosses(run: Run, plain: Plain) -> None:
    orders = _label_orders(plain, SPEC)
    assert min(len(y) for y in orders.values()) >= 100 and len(orders) == 4 + SPEC.model.epochs
    for name, y in orders.items():
        assert 0 < y.sum() < len(y)
        for enc, needle in label_needles(y).items():
            hits = find_bytes(run.recorded.payloads, [needle])
            assert not hits, f"labels ({name} order, {enc}): {run.recorded.where(hits)}"
    hits = find_bit_vectors(run.recorded.payloads)
    assert not hits, f"something shaped like a label vector: {run.recorded.where(hits)}"


def test_the_top_mask_check_flags_an_unmasked_product() -> None:
    """The split the tests rely on tells a masked product from a bare one."""
    T = 300
    assert split_plaintext((1 << 2000) - 12345, T) == (-12345, 1 << (2000 - T))
    assert split_plaintext((7 << T) - 5, T) == (-5, 7)
    assert split_plaintext(42, T) == (42, 0)  # no mask: R = 0, which the tests refuse


def test_search_finds_planted_partial_predictions(replayed: Replay) -> None:
    """The u_H searches can fail: a round's u_H planted as floats or V_EXP ints is found."""
    r = replayed.rounds[2]
    noise = np.random.default_rng(3).integers(0, 256, 777, dtype=np.uint8).tobytes()
    as_floats = noise + r.u_h.astype(">f8").tobytes()
    assert len(search_floats([as_floats], nontrivial_std(r.u_h))) >= len(r.u_h) - 1
    q = np.clip(quantise(r.u_h, V_EXP), -_V_LIMIT, _V_LIMIT)
    ints = IntVector(count=len(q), width=8, data=q.astype(">i8").tobytes())
    hits = _int_pair_hits([serde.encode_payload(ints)[1]], [q])
    assert len(hits) >= 0.9 * (len(q) - 1)
