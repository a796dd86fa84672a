"""The Python API as a notebook uses it: submit a job, look at it while it runs, read
its typed metrics. Each numbered function is one notebook cell (docs/api.md).

    python examples/api_quickstart.py JOB_YAML --certs CERTS_DIR [--output-root jobs]

CERTS_DIR holds ca.pem, coordinator.pem and coordinator.key (``lianmo certs init``); the
parties' nodes named in JOB_YAML must be running. Exits 1 if the job fails.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lianmo


def cell_1_client(certs: Path, output_root: Path) -> lianmo.Client:
    """The coordinator's identity, and where job output folders go."""
    client = lianmo.Client(
        ca=certs / "ca.pem",
        cert=certs / "coordinator.pem",
        key=certs / "coordinator.key",
        output_root=output_root,
    )
    print(f"lianmo {lianmo.__version__}: {client}")
    return client


def cell_2_submit(client: lianmo.Client, spec: Path) -> lianmo.Job:
    """Submit: returns at once; the job runs in a background thread."""
    job = client.submit(spec)  # a JobSpec or a dict with job.yaml's fields work too
    print(f"submitted job '{job.job_id}', output in {job.output}")
    return job


def cell_3_look(job: lianmo.Job) -> None:
    """Where each party is (in a notebook: re-run the cell, or pass on_progress=...)."""
    while not job.done():
        status = job.status()
        parties = ", ".join(
            f"{name} {p.phase or p.state} {p.step}/{p.total_steps}"
            for name, p in status.parties.items()
        )
        print(f"  {status.state}: {parties or 'reaching the parties'}")
        time.sleep(2.0)


def cell_4_result(job: lianmo.Job) -> int:
    """Typed metrics: the same as the output folder's metrics.json."""
    try:
        result = job.wait()
    except lianmo.JobFailedError as exc:
        print(f"job failed at party '{exc.party}': {exc.reason}")
        return 1
    metrics = result.metrics
    val = metrics.validation
    if isinstance(val, lianmo.BinaryMetrics):
        print(f"validation AUC {val.auc:.4f}  KS {val.ks:.4f}  ({val.rows} rows)")
    elif val is not None:
        print(f"validation {val}")
    if metrics.loss:
        print("training loss: " + ", ".join(f"{v:.5f}" for v in metrics.loss))
    for name, party in metrics.parties.items():
        print(f"  {name:<10} {party.role:<8} sent {party.messages_sent} messages")
    print(f"metrics: {result.metrics_path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one job through the lianmo Python API.")
    parser.add_argument("spec", type=Path, help="the job spec (job.yaml)")
    parser.add_argument("--certs", type=Path, required=True, help="the coordinator's TLS files")
    parser.add_argument("--output-root", type=Path, default=Path("jobs"))
    args = parser.parse_args()
    client = cell_1_client(args.certs, args.output_root)
    job = cell_2_submit(client, args.spec)
    cell_3_look(job)
    return cell_4_result(job)


if __name__ == "__main__":
    raise SystemExit(main())
