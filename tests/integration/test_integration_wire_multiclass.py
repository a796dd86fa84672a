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
  class, integer for integer ``quantise_gh(p_k - [y = k], p_k (1 - p_k))`` of the
  guest's training rows, with ``p`` from the start score (log class priors) plus the
  trees of the earlier rounds, routed with both parties' rules from their shares;
* follow every level of every tree: the guest's ``sb.positions`` put each row at the
  node the trained trees route it to, and the host's ``sb.partitions`` hold, per split
  it won, exactly the rows of that node going left under its own rule (no bit about a
  row outside the node);
* decrypt the host's ``sb.histograms`` at every node: under the masks, the candidates'
  left sums are exactly, as a multiset (the host shuffles them), the cumulative (g, h)
  sums over the host's own bins (fitted on its training rows) of each column, over the
  node's rows, one per non-empty bin with rows above it;
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
from lianmo.models.tree import Tree, quantise_gh
from lianmo.node.boost_share import BoostShare
from lianmo.node.job_secrets import seed_path
from lianmo.node.share import SHARE_FILE
from lianmo.protocols.online_score import SplitTable
from lianmo.transport import serde
from lianmo.transport.envelope import Envelope
from lianmo.transport.grpc_channel import ControlClient
from lianmo.transport.messages import PublicKeyMsg
from lianmo.transport.tls import TlsIdentity
from lianmo.wire.convert import (
    NO_INDEX,
    bits_from_msg,
    cipher_from_msg,
    count_from_msg,
    indices_from_msg,
)
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
    guest_share: BoostShare  # the trees and the guest's split rules, as trained
    host_share: BoostShare  # the host's split rules

    def levels(self, t: int) -> list[dict[str, Envelope]]:
        """Tree ``t``'s levels, each the messages of one level by step tag."""
        tags = ("sb.nodes", "sb.positions", "sb.candidates", "sb.histograms")
        tags += ("sb.split_ids", "sb.partitions")
        per_tag = {tag: [e for e in self.steps(tag) if e.round == t] for tag in tags}
        opened = [e for e in per_tag["sb.nodes"] if len(self.decode(e).data)]  # type: ignore[attr-defined]
        return [{tag: per_tag[tag][d] for tag in tags} for d in range(len(opened))]

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
    shares = {
        name: BoostShare.load(config.state_dir / "jobs" / JOB / SHARE_FILE, party=name, role=role)
        for (name, config), role in zip(configs.items(), ("guest", "host"), strict=True)
    }
    return Wire(
        list(recorder.sent),
        private,
        report,
        _training_rows(shared_data / files[GUEST][0], "y", spec),
        _training_rows(shared_data / files[HOST][0], None, spec),
        shares[GUEST],
        shares[HOST],
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


def _sides(wire: Wire) -> dict[tuple[str, int], np.ndarray]:
    """Per (owner, split id): which training rows go left, from each party's own rules
    in its share, applied to its raw training rows."""
    out = {}
    for party, share, rows in (
        (GUEST, wire.guest_share, wire.guest),
        (HOST, wire.host_share, wire.host),
    ):
        table = SplitTable.of(share.rules)
        sides = table.sides(rows.X)
        out.update({(party, int(i)): sides[:, j] for j, i in enumerate(table.ids)})
    return out


def _paths(tree: Tree, sides: dict[tuple[str, int], np.ndarray], n: int) -> list[np.ndarray]:
    """The node of every training row at each depth of ``tree`` (its last: the leaf)."""
    at = np.zeros(n, dtype=np.intp)
    paths = [at]
    for _ in range(DEPTH):
        nxt = at.copy()
        for i, node in enumerate(tree.nodes):
            if node.split is not None:
                here, left = at == i, sides[(node.split.owner, node.split.split_id)]
                nxt[here & left], nxt[here & ~left] = node.left, node.right
        at = nxt
        paths.append(at)
    return paths


def _expected_gh(wire: Wire) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Per tree: the quantised (g, h) of its class from the scores after the rounds
    before it, as the model's own trees (routed with both parties' rules) give them."""
    y = wire.guest.y
    assert y is not None
    n = len(y)
    model = wire.guest_share.guest_model()
    sides = _sides(wire)
    F = np.tile(model.init_score, (n, 1))
    out = {}
    for r in range(ROUNDS):
        g, h = model.objective.grad_hess(y, F)
        for k in range(K):
            q = quantise_gh(g[:, k], h[:, k], n)
            out[r * K + k] = (q.g, q.h, q.value_bits)
        for tree in model.trees[r * K : (r + 1) * K]:  # as training adds them
            F[:, tree.output] += tree.values(_paths(tree, sides, n)[-1])
    return out


def test_every_tree_gets_exactly_the_packed_g_h_of_its_class_for_every_row(wire: Wire) -> None:
    gh = _gh(wire)
    assert sorted(gh) == list(range(ROUNDS * K))
    assert len(wire.guest_share.trees) == ROUNDS * K
    expected = _expected_gh(wire)
    y = wire.guest.y
    assert y is not None
    for t, (g, h, bits) in gh.items():
        want_g, want_h, want_bits = expected[t]
        assert bits == want_bits, f"tree {t}"
        np.testing.assert_array_equal(g, want_g, err_msg=f"tree {t}")
        np.testing.assert_array_equal(h, want_h, err_msg=f"tree {t}")
        k = t % K  # g = p - [y = k] is negative exactly at the rows of the tree's class
        assert (g[y == k] < 0).all() and (g[y != k] >= 0).all(), f"tree {t}"
    assert not np.array_equal(gh[K][0], gh[0][0])  # round 1 starts from round 0's trees


def test_positions_and_host_partitions_follow_the_trees_and_say_nothing_more(
    wire: Wire,
) -> None:
    """At every level the guest names each row's node (or none) and the host answers, per
    split it won, exactly the rows of that node going left under its own rule: never a
    bit about a row outside the node."""
    sides, n = _sides(wire), len(wire.guest.ids)
    host_splits = 0
    for t, tree in enumerate(wire.guest_share.trees):
        paths = _paths(tree, sides, n)
        levels = wire.levels(t)
        assert 1 <= len(levels) <= DEPTH
        for d, level in enumerate(levels):
            pairs = np.frombuffer(wire.decode(level["sb.nodes"]).data, "<u4")  # type: ignore[attr-defined]
            node_ids = pairs[0::2].astype(np.intp)
            local = np.frombuffer(wire.decode(level["sb.positions"]).data, "<u4").astype(np.int64)  # type: ignore[attr-defined]
            local[local == NO_INDEX] = -1
            where = {int(node): j for j, node in enumerate(node_ids)}
            want = np.array([where.get(int(node), -1) for node in paths[d]])
            np.testing.assert_array_equal(local, want, err_msg=f"tree {t} level {d}")
            ids = indices_from_msg(wire.decode(level["sb.split_ids"]), HOST, "sb.split_ids")
            bits = bits_from_msg(
                wire.decode(level["sb.partitions"]), HOST, "sb.partitions", len(ids), n
            )
            won = {
                node.split.split_id: i
                for i, node in enumerate(tree.nodes)
                if node.split is not None and node.split.owner == HOST and i in where
            }
            assert sorted(int(i) for i in ids) == sorted(won), f"tree {t} level {d}"
            for split_id, left in zip(ids, bits, strict=True):
                at_node = local == where[won[int(split_id)]]
                np.testing.assert_array_equal(left, at_node & sides[(HOST, int(split_id))])
                assert not left[~at_node].any()
                host_splits += 1
    assert host_splits >= 4  # the host won splits (the check above ran)


def test_host_histograms_hold_exactly_the_left_sums_of_its_bins_at_every_node(
    wire: Wire,
) -> None:
    gh = _gh(wire)
    bins = QuantileBins.fit(wire.host.X, BINS)
    binned = bins.transform(wire.host.X)
    n = len(binned)
    checked = 0
    for t in range(ROUNDS * K):
        g, h, bits = gh[t]
        packing = Packing.for_sums((bits, bits), n).masked(wire.key.public_key.n)
        for d, level in enumerate(wire.levels(t)):
            m = len(wire.decode(level["sb.nodes"]).data) // 8  # type: ignore[attr-defined]
            local = np.frombuffer(wire.decode(level["sb.positions"]).data, "<u4")  # type: ignore[attr-defined]
            counts = np.frombuffer(wire.decode(level["sb.candidates"]).data, "<u4")  # type: ignore[attr-defined]
            assert len(counts) == m  # numeric columns only: one count per node
            env = level["sb.histograms"]
            cv = cipher_from_msg(wire.decode(env), wire.key.public_key, env.sender, env.tag)  # type: ignore[arg-type]
            sums = wire.key.decrypt_packed(cv, packing, int(counts.sum()))
            assert len(set(sums[:, 2].tolist())) > 1  # the mask slot varies: not a constant
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
            for j in range(m):
                rows = local == j
                expected: Counter[tuple[int, int]] = Counter()
                for f in range(binned.shape[1]):
                    column, nb = binned[rows, f], bins.n_bins(f)
                    count = np.bincount(column, minlength=nb)
                    G = np.array([int(g[rows][column == b].sum()) for b in range(nb)])
                    H = np.array([int(h[rows][column == b].sum()) for b in range(nb)])
                    above = np.concatenate([np.cumsum(count[::-1])[::-1][1:], [0]])
                    for b in np.flatnonzero((count > 0) & (above > 0)):
                        expected[(int(G[: b + 1].sum()), int(H[: b + 1].sum()))] += 1
                node = sums[offsets[j] : offsets[j + 1], :2]
                got = Counter((int(a), int(b)) for a, b in node)
                assert got == expected, f"tree {t} level {d} node {j}"
                checked += 1
    assert checked > ROUNDS * K  # nodes below the roots were checked too


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
