"""Every message of every lianmo protocol, declared once: the registry of protocol steps.

Each constant below is one :class:`~lianmo.wire.step.Step`: its tag (the envelope's
``tag``), who sends it to whom (by role), what it carries and the check its receiver
runs (the codec: payload type, counts, key fingerprint, fixed-point exponent, bounds).
How a message lives, for any step, e.g. ``LR_MASKED_GRADIENT``:

- **defined** here; the protocol module named in the section comment says when it is
  sent (its docstring numbers the steps);
- **sent** with ``ctx.send(LR_MASKED_GRADIENT, arbiter, masked, round=step)``
  (:class:`~lianmo.protocols.context.RoleContext`): the sender's and receiver's roles
  must be the step's, and the codec encodes the value;
- **received** with ``ctx.recv(LR_MASKED_GRADIENT, party, round=step, key=key)``: the
  codec checks the payload and returns the value. Before that, the receiving node's inbox
  screens the envelope (:meth:`Registry.screen`): an unknown tag, a wrong direction or a
  wrong payload type is refused before the payload is kept;
- **logged** by the channel's observers: one signed ``message`` record per message in the
  party's audit log with the tag, round, size and sha256 (:mod:`lianmo.audit.log`);
- **replayed** by :mod:`lianmo.node.replay`: the party's role runs again against the
  logged inbound messages and every outbound message must be byte-identical; verify
  and the report name each record by its step (:func:`describe`).

The message table in ``docs/protocols.md`` is generated from this registry
(:func:`markdown_table`); a test keeps the two equal.
"""

from __future__ import annotations

import typing as t

from lianmo.wire.step import (
    ANY,
    BigInts,
    Bits,
    Choice,
    Ciphertexts,
    Count,
    Floats,
    Hex32,
    Indices,
    Layout,
    PaillierKey,
    Points,
    Registry,
    Shape,
    Step,
)

# Fixed-point exponents of coordinated hetero LR (base 16; see protocols/hetero_lr.py):
# u and d at 16**-6, loss weights at 16**-3, so the loss and cross terms at 16**-9.
LR_U_EXP = -6
LR_X_EXP = -3
LR_G_EXP = LR_U_EXP + LR_X_EXP
STOP_OR_CONTINUE = ("stop", "continue")
# Two-party LR (protocols/two_party_lr.py): partial predictions and residuals at 16**-5;
# packed feature rows carry no exponent of their own (0).
LR2_V_EXP = -5

# ---- every job (protocols/signing_keys.py, protocols/same_spec.py, protocols/commit.py) -----

AUDIT_SIGNING_KEY = Step(
    "audit.signing_key",
    ANY,
    ANY,
    Hex32("ed25519", "an Ed25519 public key"),
    "the sender's Ed25519 audit signing key",
)
JOB_SPEC_DIGEST = Step(
    "job.spec_digest",
    ANY,
    ANY,
    Hex32("sha256", "a sha256 digest"),
    "sha256 of the job spec the sender holds",
)
JOB_COMMIT = Step(
    "job.commit",
    ("guest",),
    ("host", "arbiter"),
    Choice("commit", ("ok",)),
    "the job succeeded: keep outputs",
)

# ---- alignment: ECDH PSI (protocols/psi.py) ---------------------------------------------------

PSI_GUEST_SIZE = Step(
    "psi.guest_size", ("guest",), ("host",), Count("set_size"), "how many ids the guest aligns"
)
PSI_HOST_SIZE = Step(
    "psi.host_size", ("host",), ("guest",), Count("set_size"), "how many ids the host aligns"
)
PSI_GUEST_SET = Step(
    "psi.guest_set", ("guest",), ("host",), Points(), "a·H(x), guest ids blinded", "chunk"
)
PSI_HOST_SET = Step(
    "psi.host_set", ("host",), ("guest",), Points(), "b·H(y), host ids blinded, shuffled", "chunk"
)
PSI_GUEST_SET_DOUBLE = Step(
    "psi.guest_set_double", ("host",), ("guest",), Points(), "b·a·H(x), chunk for chunk", "chunk"
)
PSI_SIZE = Step("psi.size", ("guest",), ("host",), Count("intersection_size"), "intersection size")
PSI_POSITIONS = Step(
    "psi.positions",
    ("guest",),
    ("host",),
    Indices(unique=True),
    "positions of the intersection in the host's shuffled set",
)

# ---- stratified validation rows (protocols/split.py) ------------------------------------------

SPLIT_VALIDATION_ROWS = Step(
    "split.validation_rows",
    ("guest",),
    ("host",),
    Indices(unique=True),
    "aligned positions of the validation rows",
)

# ---- coordinated hetero LR (protocols/hetero_lr.py); round = global batch number ----------

LR_PUBLIC_KEY = Step(
    "lr.public_key", ("arbiter",), ("guest", "host"), PaillierKey(), "the job's Paillier key"
)
LR_MODELS = Step(
    "lr.models",
    ("guest",),
    ("host", "arbiter"),
    Count("outputs", 2, 256),
    "one-vs-rest: the number of classes, each trained in turn as its own binary model",
)
LR_PLAN = Step("lr.plan", ("guest",), ("arbiter",), Count("n_train", low=1), "training rows")
LR_SHAPE = Step(
    "lr.gradient_shape",
    ("guest", "host"),
    ("arbiter",),
    Shape("gradient"),
    "length and exponent of the sender's gradient, all the arbiter decrypts for it",
)
LR_HOST_FORWARD = Step(
    "lr.host_forward",
    ("host",),
    ("guest",),
    Ciphertexts(LR_U_EXP),
    "[[u_k]] = [[X_k w_k]]",
    "batch",
)
LR_HOST_SQUARE_SUM = Step(
    "lr.host_square_sum", ("host",), ("guest",), Ciphertexts(LR_G_EXP), "[[Σ u_k²]]", "batch"
)
LR_RESIDUAL = Step(
    "lr.residual",
    ("guest",),
    ("host",),
    Ciphertexts(LR_U_EXP),
    "[[4d]], d the Taylor residual",
    "batch",
)
LR_CROSS_IN = Step(
    "lr.cross_in",
    ("guest",),
    ("host",),
    Ciphertexts(LR_U_EXP),
    "[[Σ_{j<k} u_j]] (k ≥ 2)",
    "batch",
)
LR_CROSS_OUT = Step(
    "lr.cross_out", ("host",), ("guest",), Ciphertexts(LR_G_EXP), "[[Σ_i S_<k,i u_k,i]]", "batch"
)
LR_LOSS = Step("lr.loss", ("guest",), ("arbiter",), Ciphertexts(LR_G_EXP), "[[8 L]]", "batch")
LR_MASKED_GRADIENT = Step(
    "lr.masked_gradient",
    ("guest", "host"),
    ("arbiter",),
    Ciphertexts(),
    "[[X_pᵀ 4d + r_p]], masked",
    "batch",
)
LR_GRADIENT = Step(
    "lr.gradient", ("arbiter",), ("guest", "host"), BigInts(), "X_pᵀ 4d + r_p, decrypted", "batch"
)
LR_EPOCH_END = Step(
    "lr.epoch_end",
    ("arbiter",),
    ("guest", "host"),
    Choice("epoch_end", STOP_OR_CONTINUE),
    "after an epoch's last batch: stop or continue",
    "batch",
)

# ---- two-party hetero LR (protocols/two_party_lr.py); round = global batch number --------

LR2_PLAN = Step(
    "lr2.plan",
    ("guest",),
    ("host",),
    Count("outputs", 1, 256),
    "models trained side by side: 1, or one per class (one-vs-rest)",
)
LR2_PUBLIC_KEY = Step(
    "lr2.public_key", ("guest", "host"), ("guest", "host"), PaillierKey(), "the sender's own key"
)
LR2_LAYOUT = Step(
    "lr2.layout",
    ("guest", "host"),
    ("guest", "host"),
    Layout("features"),
    "the sender's feature coordinates m_p and bits b_p: what the receiver's product holds",
)
LR2_FEATURES = Step(
    "lr2.features",
    ("guest", "host"),
    ("guest", "host"),
    Ciphertexts(0),
    "[[X̃_p]]_p: the sender's quantised training rows, packed, under its own key (once)",
)
LR2_PRODUCT = Step(
    "lr2.product",
    ("guest", "host"),
    ("guest", "host"),
    Ciphertexts(LR2_V_EXP),
    "[[X̃_q[b]ᵀ v_p + R·2^T]]_q, under the receiver's key (v: u_H or s)",
    "batch",
)
LR2_SQUARE_SUM = Step(
    "lr2.square_sum",
    ("host",),
    ("guest",),
    BigInts(),
    "Σ u_H² over the epoch, per model",
    "batch",
)
LR2_EPOCH_END = Step(
    "lr2.epoch_end",
    ("guest",),
    ("host",),
    Choice("epoch_end", STOP_OR_CONTINUE),
    "after an epoch's last batch: stop or continue",
    "batch",
)

# ---- hetero LR scoring (protocols/predict.py) -------------------------------------------------

PREDICT_VALIDATION = Step(
    "predict.validation", ("host",), ("guest",), Floats(), "u_k of the validation rows"
)
PREDICT_PARTIAL = Step("predict.partial", ("host",), ("guest",), Floats(), "u_k of scored rows")

# ---- SecureBoost (protocols/secureboost.py); round = tree number, or boosting round ----------

SB_PUBLIC_KEY = Step("sb.public_key", ("guest",), ("host",), PaillierKey(), "the guest's key")
SB_PLAN = Step(
    "sb.plan", ("guest",), ("host",), Count("outputs", 1, 256), "trees per boosting round"
)
SB_SAMPLE = Step(
    "sb.sample", ("guest",), ("host",), Indices(unique=True), "rows sampled for the tree", "tree"
)
SB_GH_LAYOUT = Step(
    "sb.gh_layout",
    ("guest",),
    ("host",),
    Count("value_bits", 1, 62),
    "bits per packed g or h",
    "tree",
)
SB_GH = Step(
    "sb.gh", ("guest",), ("host",), Ciphertexts(0), "[[g_i + h_i·2^s]] per sampled row", "tree"
)
SB_NODES = Step(
    "sb.nodes", ("guest",), ("host",), Indices(), "open nodes (id, parent id) of a level", "tree"
)
SB_POSITIONS = Step(
    "sb.positions",
    ("guest",),
    ("host",),
    Indices(allow_none=True),
    "each row's open node",
    "tree",
)
SB_CANDIDATES = Step(
    "sb.candidates",
    ("host",),
    ("guest",),
    Indices(),
    "numeric candidates per node; with categorical columns then per node the group count "
    "and each group's category count and missing flag (secureboost/offers.py)",
    "tree",
)
SB_HISTOGRAMS = Step(
    "sb.histograms",
    ("host",),
    ("guest",),
    Ciphertexts(),
    "packed left sums of the shuffled candidates, then each category group's sums",
    "tree",
)
SB_SPLITS = Step(
    "sb.splits",
    ("guest",),
    ("host",),
    Indices(),
    "(node, tied candidates or category partitions) the host won",
    "tree",
)
SB_SPLIT_IDS = Step(
    "sb.split_ids", ("host",), ("guest",), Indices(), "a fresh random id per split made", "tree"
)
SB_PARTITIONS = Step(
    "sb.partitions", ("host",), ("guest",), Bits(), "rows going left per won node", "tree"
)
SB_ROUND_END = Step(
    "sb.round_end",
    ("guest",),
    ("host",),
    Choice("round_end", STOP_OR_CONTINUE),
    "after a boosting round: stop or continue",
    "round",
)
SB_FINAL = Step("sb.final", ("guest",), ("host",), Count("trees"), "trees the model keeps")


# ---- federated WOE/IV of host columns (protocols/woe.py) -------------------------------------

WOE_PUBLIC_KEY = Step("woe.public_key", ("guest",), ("host",), PaillierKey(), "the guest's key")
WOE_LABELS = Step(
    "woe.labels", ("guest",), ("host",), Ciphertexts(0), "[[y_i]] per aligned training row"
)
WOE_BINS = Step(
    "woe.bins",
    ("host",),
    ("guest",),
    Indices(),
    "column count; per anonymous column its bin count, categorical and missing-bin flags; "
    "then the training rows per bin",
)
WOE_BIN_SUMS = Step(
    "woe.bin_sums",
    ("host",),
    ("guest",),
    Ciphertexts(0),
    "[[Σ y_i − 2^(w−1)]] per non-empty bin, packed by slot width w, masked above each slot",
)
WOE_MERGE = Step(
    "woe.merge",
    ("guest",),
    ("host",),
    Indices(),
    "per column its merge plan: the group count, then per group its size and bin indices",
)
WOE_VALUES = Step(
    "woe.values", ("guest",), ("host",), Floats(), "the WOE of each of the host's merged bins"
)
WOE_IV = Step("woe.iv", ("guest",), ("host",), Floats(), "the IV of each of the host's columns")
SCORECARD_KEEP = Step(
    "scorecard.keep",
    ("guest",),
    ("host",),
    Indices(unique=True),
    "the host's columns (its own indices) that pass the IV selection",
)


class RouteSteps(t.NamedTuple):
    """The three steps of routing rows through trees (protocols/tree_route.py)."""

    splits: Step[t.Any, t.Any]
    rows: Step[t.Any, t.Any]
    left: Step[t.Any, t.Any]


def _route(prefix: str, what: str, rounds: str) -> RouteSteps:
    return RouteSteps(
        Step(
            f"{prefix}.splits",
            ("guest",),
            ("host",),
            Indices(),
            f"{what}: host split ids holding rows",
            rounds,
        ),
        Step(
            f"{prefix}.rows", ("guest",), ("host",), Bits(), f"{what}: rows at each split", rounds
        ),
        Step(f"{prefix}.left", ("host",), ("guest",), Bits(), f"{what}: rows going left", rounds),
    )


SB_ROUTE = _route("sb.route", "validation rows through a new tree", "tree")
PREDICT_SB = _route("predict.sb", "scored rows through the model", "block")

REGISTRY = Registry(
    [
        AUDIT_SIGNING_KEY,
        JOB_SPEC_DIGEST,
        JOB_COMMIT,
        PSI_GUEST_SIZE,
        PSI_HOST_SIZE,
        PSI_GUEST_SET,
        PSI_HOST_SET,
        PSI_GUEST_SET_DOUBLE,
        PSI_SIZE,
        PSI_POSITIONS,
        SPLIT_VALIDATION_ROWS,
        LR_PUBLIC_KEY,
        LR_MODELS,
        LR_PLAN,
        LR_SHAPE,
        LR_HOST_FORWARD,
        LR_HOST_SQUARE_SUM,
        LR_RESIDUAL,
        LR_CROSS_IN,
        LR_CROSS_OUT,
        LR_LOSS,
        LR_MASKED_GRADIENT,
        LR_GRADIENT,
        LR_EPOCH_END,
        LR2_PLAN,
        LR2_PUBLIC_KEY,
        LR2_LAYOUT,
        LR2_FEATURES,
        LR2_PRODUCT,
        LR2_SQUARE_SUM,
        LR2_EPOCH_END,
        PREDICT_VALIDATION,
        PREDICT_PARTIAL,
        SB_PUBLIC_KEY,
        SB_PLAN,
        SB_SAMPLE,
        SB_GH_LAYOUT,
        SB_GH,
        SB_NODES,
        SB_POSITIONS,
        SB_CANDIDATES,
        SB_HISTOGRAMS,
        SB_SPLITS,
        SB_SPLIT_IDS,
        SB_PARTITIONS,
        SB_ROUND_END,
        SB_FINAL,
        *SB_ROUTE,
        *PREDICT_SB,
        WOE_PUBLIC_KEY,
        WOE_LABELS,
        WOE_BINS,
        WOE_BIN_SUMS,
        WOE_MERGE,
        WOE_VALUES,
        WOE_IV,
        SCORECARD_KEEP,
    ]
)


def describe(tag: str) -> str:
    """A tag as a person reads it in a report: ``'lr.residual' (guest -> host: [[4d]] ...)``."""
    step = REGISTRY.get(tag)
    if step is None:
        return f"'{tag}' (not a step of this lianmo version)"
    return f"'{tag}' ({step.direction()}: {step.carries})"


def markdown_table() -> str:
    """The message table of docs/protocols.md, one row per step."""
    rows = [
        "| tag | from → to | payload | carries | round | checked on receipt |",
        "|---|---|---|---|---|---|",
    ]
    for step in REGISTRY:
        rows.append(
            f"| `{step.tag}` | {' / '.join(step.senders)} → {' / '.join(step.receivers)} "
            f"| {step.payload_type.rsplit('.', 1)[-1]} | {step.carries} | {step.rounds} "
            f"| {step.codec.describe()} |"
        )
    return "\n".join(rows) + "\n"
