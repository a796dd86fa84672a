"""Hypothesis strategies shared by the config fuzz tests: odd values and mutated mappings."""

from __future__ import annotations

import copy
import math
import typing as t
from pathlib import Path

from hypothesis import strategies as st

HUGE = 16**4000  # over 4300 decimal digits: repr() and str() raise ValueError

FIELD_NAMES = [
    "job_id", "seed", "task", "parties", "alignment", "validation", "model", "model_job",
    "name", "role", "address", "dataset", "min_intersection", "share", "stratify", "type",
    "epochs", "batch_size", "learning_rate", "lr_decay", "l2", "tol", "key_bits", "trees",
    "depth", "max_bins", "min_child_weight", "gamma", "subsample", "colsample",
    "early_stopping_rounds", "objective", "class_weights", "listen", "state_dir", "tls",
    "cert", "key", "ca", "datasets", "path", "id_column", "label_column", "coordinators",
    "max_message_mb", "max_job_mb", "recv_timeout_s", "send_deadline_s", "peer_retries",
    "peer_backoff_s", "compute", "backend", "workers", "audit", "signing_key", "level",
    "optimizer", "clip",
]  # fmt: skip
INTERESTING = [
    0, 1, -1, 2, 3072, 2**63 - 1, 2**63, 2**64, 0.0, 0.5, 1e308,
    math.nan, math.inf, -math.inf, "", "j1\n", "a" * 64, "secureboost", "hetero_lr",
    "guest", "host", "arbiter", "train", "predict", "balanced", "binary", "multiclass",
    "regression", "local", "serial", "full", "chain", "sgd", "adam", 0.02, True, False,
    None, [], {},
]  # fmt: skip
scalars = st.one_of(
    # a copy: the edits in mutated() append to lists and dicts, and a shared [] or {}
    # would carry one test case's edits into the next (and can come to contain itself)
    st.sampled_from(INTERESTING).map(copy.deepcopy),
    st.sampled_from([1, -1]).map(lambda sign: sign * HUGE),  # a repr() would raise
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=6,
)


def _keys(node: dict[t.Any, t.Any] | list[t.Any]) -> list[t.Any]:
    return list(node) if isinstance(node, dict) else list(range(len(node)))


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, t.Any]) -> dict[str, t.Any]:
    """``base`` with 1 to 3 random edits, each at a random depth."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        node: t.Any = data
        while True:
            inner = [k for k in _keys(node) if isinstance(node[k], dict | list)]
            if not inner or draw(st.booleans()):
                break
            node = node[draw(st.sampled_from(inner))]
        keys = _keys(node)
        op = draw(st.sampled_from(["drop", "add", "replace"] if keys else ["add"]))
        if op == "drop":
            del node[draw(st.sampled_from(keys))]
        elif op == "replace":
            node[draw(st.sampled_from(keys))] = draw(values)
        elif isinstance(node, dict):
            node[draw(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)))] = draw(values)
        else:
            node.append(draw(values))
    return data


def write(path: Path, text: str | bytes) -> Path:
    """Write ``text`` (UTF-8) or raw bytes to ``path``."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
