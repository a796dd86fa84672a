"""Privacy on the wire, multi-class SecureBoost over real gRPC with mutual TLS.

How the check works
-------------------
A 4-class SecureBoost job (two boosting rounds, depth 2, 8 bins: 8 trees) on the vehicle
data (guest ``broker`` with the labels ``y`` in 0..3 and 9 columns, host ``platform``
with 9) runs on two in-process nodes wired as ``lianmo party serve`` wires them
(:func:`lianmo.cli.wiring.start_party_node`: gRPC, mutual TLS on loopback, 2048-bit
Paillier keys), with a recorder on both nodes' channels: every envelope as serialised
for the wire. The guest's private key is generated again from the job seed its node
kept (and must be the key it sent). The tests then

* pin the steps that cross, by direction: only the SecureBoost, alignment and job
  bookkeeping steps, and no plaintext float vector at all;
* decrypt every ``sb.gh`` message: per row exactly one packed (g, h) of the tree's
  class. In round 0 every row's score is the start score (log class priors), so the
  slots must equal, integer for integer, ``quantise_gh(p_k - [y = k], p_k (1 - p_k))``
  of the tree's class ``k`` over the guest's training rows; in every round g is negative
  exactly at the rows of the tree's class (``p - 1``) and h is non-negative;
* decrypt the host's ``sb.histograms`` at each tree's root: under the masks, the
  candidates' left sums are exactly, as a multiset (the host shuffles them), the
  cumulative (g, h) sums over the host's own bins (fitted on its training rows) of each
  column, one per non-empty bin with rows above it;
* search every payload for what must not cross: the labels in every order as bytes,
  int32, doubles or text (and any 0..3 label-shaped run), the host's raw and binned
  feature values, its bin thresholds (float64 and float32 pairs) and the plaintext
  gradients (float64).

A byte search proves only that those encodings are absent (see
``tests/node/test_node_privacy_wire.py`` for what it catches and what it cannot prove).
The module takes about 40 seconds (behind ``-m slow``).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lianmo.cli.wiring import load_identity, start_party_node, write_identities
from lianmo.config import JobSpec, PartyConfig
from lianmo.coordinator.run import JobReport, run_job
from lianmo.crypto.drbg import Drbg
from lianmo.crypto.packing import Packing
from lianmo.crypto.paillier import PrivateKey, generate_keypair
from lianmo.data.split import validation_mask
from lianmo.data.table import Table, load_table
from lianmo.models.binning import QuantileBins
from lianmo.models.objectives import Objective
from lianmo.models.tree import quantise_gh
from lianmo.node.job_secrets import seed_path
from lianmo.transport import serde
from lianmo.transport.envelope import Envelope
from lianmo.transport.grpc_channel import ControlClient
from lianmo.transport.messages import PublicKeyMsg
from lianmo.transport.tls import TlsIdentity
from lianmo.wire.convert import cipher_from_msg, count_from_msg
from tests.node.inprocess_nodes import WireRecorder
from tests.node.test_node_privacy_wire import find_bytes, find_fixed, float_needles, search_floats

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # about 40 s on 2 cores

GUEST, HOST = "broker", "platform"
JOB = "wire-multiclass"
K, ROUNDS, DEPTH, BINS = 4, 2, 2, 8
KEY_BITS = 2048


def _t(short: str) -> str:
    return f"lianmo.v1.{short}"


@dataclass(frozen=True)
class Wire:
    sent: list[Envelope]
    key: PrivateKey
    report: JobReport
    guest: Table  # aligned training rows, in the guest's order
    host: Table

    def steps(self, tag: str) -> list[Envelope]:
        return sorted((e for e in self.sent if e.tag == tag), key=lambda e: (e.round, e.seq))

    def decode(self, env: Envelope) -> object:
        return serde.decode_payload(env.payload_type, env.payload)


def _party(tmp: Path, certs: Path, name: str, dataset: dict[str, str]) -> PartyConfig:
    return PartyConfig.from_dict(
        {
            "name": name,
            "listen": "127.0.0.1:0",
            "state_dir": f"{name}-state",
            "tls": {
                "cert": str(certs / f"{name}.pem"),
                "key": str(certs / f"{name}.key"),
                "ca": str(certs / "ca.pem"),
            },
            "audit": {"signing_key": str(certs / f"{name}.signing.key")},
            "datasets": {"vehicle": dataset},
            "recv_timeout_s": 120,
        },
        base=tmp,
    )


def _spec(addresses: dict[str, str]) -> JobSpec:
    return JobSpec.from_dict(
        {
            "job_id": JOB,
            "seed": 11,
            "parties": [
                {"name": GUEST, "role": "guest", "address": addresses[GUEST], "dataset": "vehicle"},
                {"name": HOST, "role": "host", "address": addresses[HOST], "dataset": "vehicle"},
            ],
            "alignment": {"min_intersection": 100},
            "validation": {"share": 0.2, "stratify": False},
            "model": {
                "type": "secureboost",
                "objective": "multiclass",
                "trees": ROUNDS,
                "depth": DEPTH,
                "max_bins": BINS,
                "key_bits": KEY_BITS,
            },
        }
    )


def _training_rows(path: Path, label: str | None, spec: JobSpec) -> Table:
    """The party's training rows in the order its job uses them (ids sorted as text)."""
    table = load_table(path, id_column="id", label_column=label)
    aligned = table.select(np.argsort(np.array(table.ids, dtype=object), kind="stable"))
    val = validation_mask(aligned.ids, spec.validation.share, spec.seed)
    return aligned.select(np.flatnonzero(~val))


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Wire:
    tmp = tmp_path_factory.mktemp("wire-multiclass")
    certs = tmp / "certs"
    write_identities(certs, [GUEST, HOST, "coordinator"])
    files = {
        GUEST: ("vehicle_scale_hetero_guest.csv", "y"),
        HOST: ("vehicle_scale_hetero_host.csv", None),
    }
    configs = {
        name: _party(
            tmp,
            certs,
            name,
            {"path": str(shared_data / f), "id_column": "id", **({"label_column": y} if y else {})},
        )
        for name, (f, y) in files.items()
    }
    recorder = WireRecorder()
    with contextlib.ExitStack() as stack:
        addresses = {}
        for name, config in configs.items():
            node, server, port = start_party_node(
                config, load_identity(config), wire_observers=[recorder]
            )
            stack.callback(node.close)
            stack.callback(lambda s=server: s.stop(0).wait())
            addresses[name] = f"127.0.0.1:{port}"
        spec = _spec(addresses)
        identity = TlsIdentity.load(
            certs / "coordinator.pem", certs / "coordinator.key", certs / "ca.pem"
        )
        controls = {n: ControlClient(a, n, identity) for n, a in addresses.items()}
        for client in controls.values():
            stack.callback(client.close)
            client.wait_healthy(timeout_s=10)
        report = run_job(spec, controls, poll_interval=0.1)
    seed = seed_path(configs[GUEST], JOB).read_bytes()
    _, private = generate_keypair(KEY_BITS, Drbg(seed))
    return Wire(
        list(recorder.sent),
        private,
        report,
        _training_rows(shared_data / files[GUEST][0], "y", spec),
        _training_rows(shared_data / files[HOST][0], None, spec),
    )


# ---- what crosses ------------------------------------------------------------------------


def test_the_job_ran_and_the_regenerated_key_is_the_one_sent(wire: Wire) -> None:
    assert wire.report.guest_result["trees"] == ROUNDS * K
    assert wire.report.guest_result["validation"]["accuracy"] > 0.4
    (env,) = wire.steps("sb.public_key")
    key = wire.decode(env)
    assert isinstance(key, PublicKeyMsg)
    assert int.from_bytes(key.n, "big") == wire.key.public_key.n
    (plan,) = wire.steps("sb.plan")
    assert json.dumps(str(wire.decode(plan))).count(str(K)) >= 1


def test_only_secureboost_alignment_and_job_steps_cross(wire: Wire) -> None:
    tags: dict[tuple[str, str], set[str]] = defaultdict(set)
    for env in wire.sent:
        tags[(env.sender, env.receiver)].add(env.tag.split(".")[0])
        assert env.payload_type != _t("FloatVector"), f"plaintext floats in '{env.tag}'"
    assert set(tags) == {(GUEST, HOST), (HOST, GUEST)}
    assert tags[(GUEST, HOST)] <= {"audit", "job", "psi", "sb"}
    assert tags[(HOST, GUEST)] <= {"audit", "job", "psi", "sb"}
    sent_by_host = {e.tag for e in wire.sent if e.sender == HOST and e.tag.startswith("sb.")}
    assert sent_by_host == {
        "sb.candidates",
        "sb.histograms",
        "sb.split_ids",
        "sb.partitions",
        "sb.route.left",
    }


# ---- what the ciphertexts hold ----------------------------------------------------------


def _count(wire: Wire, env: Envelope) -> int:
    return count_from_msg(wire.decode(env), env.sender, env.tag)  # type: ignore[arg-type]


def _gh(wire: Wire) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Per tree: the decrypted (g, h) slot integers of every row, and the value bits."""
    n = len(wire.guest.ids)
    layouts = {e.round: _count(wire, e) for e in wire.steps("sb.gh_layout")}
    out = {}
    for env in wire.steps("sb.gh"):
        cv = cipher_from_msg(wire.decode(env), wire.key.public_key, env.sender, env.tag)  # type: ignore[arg-type]
        assert len(cv) == n  # one ciphertext per row: no subsampling in this job
        packing = Packing.for_sums((layouts[env.round],) * 2, n)
        slots = packing.unpack(wire.key.decrypt_ints(cv))
        out[env.round] = (slots[:, 0], slots[:, 1], layouts[env.round])
    return out


def test_every_tree_gets_one_packed_g_h_per_row_of_its_class(wire: Wire) -> None:
    gh = _gh(wire)
    assert sorted(gh) == list(range(ROUNDS * K))
    y = wire.guest.y
    assert y is not None
    n = len(y)
    objective = Objective("multiclass", K)
    start = objective.init_score(y, np.ones(n))
    g0, h0 = objective.grad_hess(y, np.tile(start, (n, 1)))
    for t, (g, h, bits) in gh.items():
        k = t % K
        if t < K:  # round 0: every score is the start score, so g and h are known exactly
            q = quantise_gh(g0[:, k], h0[:, k], n)
            assert q.value_bits == bits
            np.testing.assert_array_equal(g, q.g, err_msg=f"tree {t}")
            np.testing.assert_array_equal(h, q.h, err_msg=f"tree {t}")
    for t, (g, h, _) in gh.items():  # every round: g = p - [y = k] < 0 only at the label
        k = t % K
        assert (g[y == k] < 0).all() and (g[y != k] >= 0).all(), f"tree {t}"
        assert (h >= 0).all() and (h > 0).any()
    assert not np.array_equal(gh[K][0], gh[0][0])  # round 1 starts from round 0's trees


def test_host_histograms_hold_exactly_the_left_sums_of_its_bins(wire: Wire) -> None:
    gh = _gh(wire)
    bins = QuantileBins.fit(wire.host.X, BINS)
    binned = bins.transform(wire.host.X)
    n = len(binned)
    candidates: dict[int, Envelope] = {}
    for e in wire.steps("sb.candidates"):
        candidates.setdefault(e.round, e)  # the root level's: the first of its tree
    for env in wire.steps("sb.histograms"):
        t = env.round
        if env.seq != min(e.seq for e in wire.steps("sb.histograms") if e.round == t):
            continue  # the root level only: every row at one node
        g, h, bits = gh[t]
        expected = Counter()
        for f in range(binned.shape[1]):
            nb = bins.n_bins(f)
            gs = np.bincount(binned[:, f], weights=None, minlength=nb)
            G = np.array([int(g[binned[:, f] == b].sum()) for b in range(nb)])
            H = np.array([int(h[binned[:, f] == b].sum()) for b in range(nb)])
            above = np.concatenate([np.cumsum(gs[::-1])[::-1][1:], [0]])
            for b in np.flatnonzero((gs > 0) & (above > 0)):
                expected[(int(G[: b + 1].sum()), int(H[: b + 1].sum()))] += 1
        data = wire.decode(candidates[t]).data  # type: ignore[attr-defined]
        total = int(np.frombuffer(data, "<u4")[0])  # the root's candidate count
        packing = Packing.for_sums((bits, bits), n).masked(wire.key.public_key.n)
        cv = cipher_from_msg(wire.decode(env), wire.key.public_key, env.sender, env.tag)  # type: ignore[arg-type]
        sums = wire.key.decrypt_packed(cv, packing, total)
        got = Counter((int(a), int(b)) for a, b in sums[:, :2])
        assert got == expected, f"tree {t}"
        assert len(set(sums[:, 2].tolist())) > 1  # the mask slot varies: not a constant


# ---- what must not cross ------------------------------------------------------------------


def test_no_label_feature_threshold_or_plain_gradient_crosses(wire: Wire) -> None:
    payloads = [e.payload for e in wire.sent]
    y = wire.guest.y
    assert y is not None
    assert len(set(y[:32].tolist())) == K  # the training order mixes every class early
    for enc in ("<f8", ">f8", "u1", "<i4", ">i4"):  # (a sorted order would be zero padding)
        assert not find_bytes(payloads, [y.astype(enc).tobytes()[:256]]), enc
    assert not find_bytes(payloads, ["".join(str(int(v)) for v in y[:64]).encode()])
    host_values = np.unique(wire.host.X[np.abs(wire.host.X) > 1e-3])
    assert not search_floats(payloads, host_values), "a host feature value crossed"
    bins = QuantileBins.fit(wire.host.X, BINS)
    edges = np.unique(np.concatenate([e[np.abs(e) > 1e-3] for e in bins.edges]))
    assert len(edges) > 20
    assert not search_floats(payloads, edges), "a host bin threshold crossed"
    objective = Objective("multiclass", K)
    start = objective.init_score(y, np.ones(len(y)))
    g0, h0 = objective.grad_hess(y, np.tile(start, (len(y), 1)))
    gradients = np.unique(np.concatenate([g0.ravel(), h0.ravel()]))
    assert not find_fixed(payloads, float_needles(gradients)["f8"]), "a plain g or h crossed"
