"""What a scoring guest and the coordinator learn, shown on a real train and predict job.

Three in-process nodes train a hetero LR model on the breast data and then score with it,
through the coordinator's ``run_job``. The ids are rewritten to distinctive strings
(``client-00133``) so that a search for them can mean something. A wire recorder keeps
every envelope; a recording control keeps every status the coordinator received.

* LR scoring (docs/protocols.md, "Scoring"): the only plaintext a host sends the guest is
  ``predict.partial``, and it is exactly the host's ``u_k = X_k w_k`` per aligned row,
  the value the guest can also derive from its score and its own ``u_A``; the guest sends
  the host nothing that depends on scores.
* The coordinator ("What the coordinator learns"): across every status and the job's
  metrics, no id, no file path, no feature value, no model weight and no label vector.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from lianmo.config import JobSpec
from lianmo.coordinator.run import run_job
from lianmo.node.model_share import LrShare
from lianmo.node.service import NodeService
from lianmo.transport import serde
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.messages import FloatVector

from .inprocess_nodes import (
    GUEST,
    GUEST_FILE,
    HOST,
    HOST_FILE,
    DirectControl,
    WireRecorder,
    make_nodes,
    train_spec,
)

TRAIN, PREDICT = "breast-learns", "breast-learns-scores"


def _client(raw_id: str) -> str:
    return f"client-{int(raw_id):05d}"


def _copy_with_client_ids(src: Path, dst: Path) -> None:
    with src.open(newline="") as fin, dst.open("w", newline="") as fout:
        rows = csv.reader(fin)
        out = csv.writer(fout)
        out.writerow(next(rows))
        for row in rows:
            out.writerow([_client(row[0]), *row[1:]])


def _read(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [r[0] for r in rows[1:]], [r[1:] for r in rows[1:]]


class RecordingControl(DirectControl):
    """A coordinator's handle that keeps every status the node answered with."""

    def __init__(self, node: NodeService, seen: list[JobStatusInfo]) -> None:
        super().__init__(node)
        self._seen = seen

    def _keep(self, status: JobStatusInfo) -> JobStatusInfo:
        self._seen.append(status)
        return status

    def prepare(self, job_id: str, spec_json: bytes) -> JobStatusInfo:
        return self._keep(super().prepare(job_id, spec_json))

    def start(self, job_id: str) -> JobStatusInfo:
        return self._keep(super().start(job_id))

    def status(self, job_id: str) -> JobStatusInfo:
        return self._keep(super().status(job_id))

    def cancel(self, job_id: str) -> JobStatusInfo:
        return self._keep(super().cancel(job_id))


@dataclass
class Run:
    tmp: Path
    data: Path
    wire: WireRecorder
    statuses: list[JobStatusInfo] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Run:
    tmp = tmp_path_factory.mktemp("learns")
    data = tmp / "data"
    data.mkdir()
    for name in (GUEST_FILE, HOST_FILE):
        _copy_with_client_ids(shared_data / name, data / name)
    wire = WireRecorder()
    result = Run(tmp, data, wire)
    nodes = make_nodes(tmp, data, [wire])
    controls = {n: RecordingControl(node, result.statuses) for n, node in nodes.items()}
    train = train_spec(TRAIN)
    predict = JobSpec.from_dict(
        {**json.loads(train_spec(PREDICT).to_json()), "task": "predict", "model_job": TRAIN}
    )
    for spec in (train, predict):
        report = run_job(spec, controls, poll_interval=0.05)
        result.metrics.append(json.dumps(report.metrics()))
        for node in nodes.values():
            node.wait(spec.job_id, timeout=60)
    assert len(result.statuses) > 10
    return result


def _share(run: Run, party: str, role: str) -> LrShare:
    return LrShare.load(run.tmp / party / "jobs" / TRAIN / "model.json", party=party, role=role)


def _aligned_partial_scores(run: Run, party: str, role: str, file: str) -> dict[str, float]:
    header, ids, rows = _read(run.data / file)
    share = _share(run, party, role)
    columns = [header[1:].index(name) for name in share.feature_names]
    X = np.array([[float(row[c]) for c in columns] for row in rows])
    return dict(zip(ids, share.partial_scores(X).tolist(), strict=True))


def test_a_scoring_guest_gets_each_hosts_partial_score_per_row_and_nothing_more(run: Run) -> None:
    sent = [e for e in run.wire.sent if e.job_id == PREDICT]
    to_guest = [e for e in sent if e.sender == HOST and e.receiver == GUEST]
    plain = [e for e in to_guest if e.payload_type == "lianmo.v1.FloatVector"]
    assert [e.tag for e in plain] == ["predict.partial"]
    assert {e.tag.split(".")[0] for e in to_guest} == {"audit", "job", "psi", "predict"}
    # What reaches the host from the guest depends on no score: keys, spec, PSI only.
    to_host = {e.tag.split(".")[0] for e in sent if e.sender == GUEST and e.receiver == HOST}
    assert to_host == {"audit", "job", "psi"}

    payload = serde.decode_payload(plain[0].payload_type, plain[0].payload)
    assert isinstance(payload, FloatVector)
    received = np.frombuffer(payload.data, dtype="<f8")
    u_host = _aligned_partial_scores(run, HOST, "host", HOST_FILE)
    u_guest = _aligned_partial_scores(run, GUEST, "guest", GUEST_FILE)
    aligned = sorted(set(u_host) & set(u_guest), key=str.encode)
    assert len(received) == len(aligned) == 569
    # Exactly the host's u_k = X_k w_k per aligned row, in aligned order ...
    np.testing.assert_allclose(received, [u_host[i] for i in aligned], rtol=0, atol=1e-12)
    # ... which the guest's score and its own u_A already determine: logit(s) - u_A.
    _, ids, rows = _read(run.tmp / GUEST / "jobs" / PREDICT / "scores.csv")
    scores = dict(zip(ids, (float(r[0]) for r in rows), strict=True))
    derived = [math.log(scores[i] / (1 - scores[i])) - u_guest[i] for i in aligned]
    np.testing.assert_allclose(derived, received, rtol=0, atol=1e-6)


# ---- the coordinator ----------------------------------------------------------------------


def _texts(run: Run) -> Iterator[str]:
    for status in run.statuses:
        yield status.phase
        yield status.detail
        yield status.error
        yield status.result_json.decode()
    yield from run.metrics


_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Secrets:
    ids: frozenset[str]
    paths: frozenset[str]
    cells: frozenset[str]  # feature cells as written in the files
    weights: frozenset[float]
    labels: str  # the label column as '0'/'1' text, for runs of it


def _secrets(run: Run) -> Secrets:
    ids: set[str] = set()
    cells: set[str] = set()
    labels = ""
    for file in (GUEST_FILE, HOST_FILE):
        header, file_ids, rows = _read(run.data / file)
        ids.update(file_ids)
        skip = {header[1:].index("y")} if "y" in header else set()
        cells.update(v for row in rows for c, v in enumerate(row) if c not in skip)
        if skip:
            labels = "".join(row[min(skip)] for row in rows)
    weights = {  # 0.0 (a host has no intercept) is no secret and is everywhere
        float(w)
        for party, role in ((GUEST, "guest"), (HOST, "host"))
        for w in (*_share(run, party, role).weights, _share(run, party, role).intercept or 0.0)
        if w != 0.0
    }
    paths = {str(run.tmp), str(run.data), GUEST_FILE, HOST_FILE}
    return Secrets(frozenset(ids), frozenset(paths), frozenset(cells), frozenset(weights), labels)


def leaks(texts: Iterable[str], secrets: Secrets) -> list[str]:
    """Every id, path, feature cell, weight or run of labels found in ``texts``."""
    found = []
    for text in texts:
        found += [f"id {i}" for i in secrets.ids if i in text]
        found += [f"path {p}" for p in secrets.paths if p in text]
        for number in _NUMBER.findall(text):
            if number in secrets.cells:
                found.append(f"feature cell {number}")
            if float(number) in secrets.weights:
                found.append(f"weight {number}")
        digits = re.sub(r"[^01]", "", text)  # label bits however they were separated
        found += [f"labels {run}" for run in _label_runs(digits, secrets.labels)]
    return found


def _label_runs(digits: str, labels: str, width: int = 32) -> list[str]:
    runs = (labels[i : i + width] for i in range(0, len(labels) - width + 1, width))
    return [run for run in runs if run in digits]


def test_the_coordinator_never_sees_ids_paths_features_weights_or_labels(run: Run) -> None:
    secrets = _secrets(run)
    assert len(secrets.ids) == 569 and len(secrets.weights) > 20
    texts = list(_texts(run))
    assert any('"auc"' in t for t in texts)  # the metrics it may see did reach it
    assert leaks(texts, secrets) == []


def test_the_coordinator_search_finds_what_is_planted(run: Run) -> None:
    secrets = _secrets(run)
    weight = next(w for w in sorted(secrets.weights) if w != 0.0)
    cell = next(c for c in sorted(secrets.cells) if "." in c)
    planted = [
        json.dumps({"detail": f"row {sorted(secrets.ids)[7]} failed"}),
        json.dumps({"weights": [weight]}),
        json.dumps({"x": float(cell)}) if repr(float(cell)) == cell else f"value {cell}",
        json.dumps({"y": [int(b) for b in secrets.labels[:64]]}),
        f"reading {run.data / GUEST_FILE}",
    ]
    assert [len(leaks([t], secrets)) > 0 for t in planted] == [True] * len(planted)
