"""A bad guest table in a job run through the ``lianmo`` command (a guest and a host as
``lianmo party serve`` processes, ``lianmo job run`` as the coordinator): the coordinator
learns the party, the data set's name, the column and the row, never the file, the id or
the cell's value; the failing node's own log and status file keep the full text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_integration_cli import NodeProcess, _explain
from .two_nodes import GUEST, HOST, make_certs, run_boost_job, running_pair

pytestmark = pytest.mark.timeout(300)

DUPLICATE_ID = "C7731-28509"  # ids of the planted guest table look like customer numbers
TEXT_CELL = "unknown-4417"
TOO_MANY = "note-1000"  # the 1001st distinct text of the categorical column
BAD = {
    # data set: (column, data row, what the coordinator reads, what only the node keeps)
    "student_dup": ("id", 16, "the id already appears in data row 10", f"id '{DUPLICATE_ID}'"),
    "student_text": ("x1", 21, "the cell holds text but a number was expected", TEXT_CELL),
    # an empty feature cell is a missing value (issue 19); an empty label stays an error
    "student_empty": ("y", 31, "the cell is empty but a number was expected", "(line 32)"),
    "student_noid": ("id", 41, "the id is empty; every row needs an id", "(line 42)"),
    # x1 declared categorical, a distinct text per row: an id or free text in disguise
    "student_many": ("x1", 1001, "the column has more than 1000 distinct values", TOO_MANY),
}
CATEGORICAL = {"student_many": ["x1"]}


def _bad_student_tables(directory: Path, shared_data: Path) -> dict[str, Path]:
    """The student guest table with customer-number ids, spoiled five ways (BAD)."""
    lines = (shared_data / "student_hetero_guest.csv").read_text().splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    assert header.split(",")[:4] == ["id", "y", "x0", "x1"]
    for i, row in enumerate(rows):
        row[0] = f"C7731-{28500 + i}"
    assert rows[9][0] == DUPLICATE_ID
    spoil = {
        "student_dup": (15, 0, DUPLICATE_ID),  # data row 16 repeats data row 10's id
        "student_text": (20, 3, TEXT_CELL),  # x1, data row 21
        "student_empty": (30, 1, ""),  # y, data row 31
        "student_noid": (40, 0, ""),  # id, data row 41
    }
    paths = {}
    # the rows three times over (new ids), x1 a distinct note per row
    many = [[f"C8800-{i}", *rows[i % len(rows)][1:]] for i in range(3 * len(rows))]
    for i, row in enumerate(many):
        row[3] = f"note-{i}"
    assert many[1000][3] == TOO_MANY
    paths["student_many"] = directory / "secret_student_many.csv"
    paths["student_many"].write_text("\n".join([header, *(",".join(r) for r in many)]) + "\n")
    for name, (row, column, value) in spoil.items():
        copy = [list(r) for r in rows]
        copy[row][column] = value
        paths[name] = directory / f"secret_{name}.csv"
        paths[name].write_text("\n".join([header, *(",".join(r) for r in copy)]) + "\n")
    return paths


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-privacy")


@pytest.fixture(scope="module")
def bad_tables(workdir: Path, shared_data: Path) -> dict[str, Path]:
    directory = workdir / "guest-data"
    directory.mkdir()
    return _bad_student_tables(directory, shared_data)


@pytest.fixture(scope="module")
def coordinator_args(workdir: Path) -> tuple[str, ...]:
    return make_certs(workdir)


@pytest.fixture(scope="module")
def nodes(
    workdir: Path, coordinator_args: tuple[str, ...], shared_data: Path, bad_tables: dict[str, Path]
) -> Iterator[dict[str, NodeProcess]]:
    catalogues = {
        GUEST: {name: (path, "id", "y") for name, path in bad_tables.items()},
        HOST: {"student_host": (shared_data / "student_hetero_host.csv", "id", None)},
    }
    keys = {GUEST: {name: {"categorical": cats} for name, cats in CATEGORICAL.items()}}
    with running_pair(workdir, catalogues, keys) as running:
        yield running


@pytest.mark.parametrize("dataset", sorted(BAD))
def test_a_bad_guest_table_is_reported_without_its_path_ids_or_values(
    dataset: str,
    workdir: Path,
    nodes: dict[str, NodeProcess],
    coordinator_args: tuple[str, ...],
    bad_tables: dict[str, Path],
) -> None:
    column, row, problem, secret = BAD[dataset]
    job_id = f"sb-{dataset.replace('_', '-')}"
    proc = run_boost_job(
        workdir,
        nodes,
        coordinator_args,
        job_id,
        (dataset, "student_host"),
        {"objective": "regression", "trees": 1, "depth": 1},
    )
    assert proc.returncode == 8, _explain(proc)  # JobFailedError
    assert "Traceback" not in proc.stderr
    state = (workdir / "out" / job_id / "coordinator.json").read_text()
    told = json.loads(state)
    assert told["state"] == "failed" and told["failed_party"] == GUEST
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lianmo: job failed at party '{GUEST}': ")
    where = f"party '{GUEST}', data set '{dataset}', column '{column}', data row {row}: "
    for text in (last, told["error"], told["parties"][GUEST]["error"]):
        assert where + problem in text
    path = bad_tables[dataset]
    for text in (proc.stdout, proc.stderr, state):
        for hidden in (str(path), path.name, str(path.parent), DUPLICATE_ID, TEXT_CELL):
            assert hidden not in text, hidden
    # the full text stays with the party: its node log and its own status file
    log = nodes[GUEST].log_text()
    full = f"party '{GUEST}', file '{path}', column '{column}', data row {row} (line {row + 1})"
    failed = f"job {job_id} failed (DataError): "
    assert failed + full in log
    assert secret in log.split(failed, 1)[1].splitlines()[0]
    assert f"job {job_id} prepared for coordinator: role guest, data set {dataset}" in log
    assert f"job {job_id} started by coordinator" in log
    assert f"job {job_id} cancelled by coordinator" in nodes[HOST].log_text()
    job_dir = nodes[GUEST].state_dir / "jobs" / job_id
    status = json.loads((job_dir / "status.json").read_text())
    assert status["error_local"].startswith(full) and secret in status["error_local"]
    assert status["error"] == told["parties"][GUEST]["error"]
    # the audit log, which auditors outside the party read, holds the public text only
    audit = (job_dir / "audit.jsonl").read_text()
    assert where + problem in audit and str(path) not in audit and DUPLICATE_ID not in audit
