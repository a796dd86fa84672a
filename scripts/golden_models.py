"""Train the demo's LR job and a SecureBoost job with fixed seeds; print model digests and metrics.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/golden_models.py --json OUT.json [--check scripts/golden_models.json]

A guard for refactors that must not change what lianmo computes: the same seeds, data and
settings must give byte-identical model shares (their sha256) and the same validation
metrics at every party. Runs real party processes over mutual TLS with 2048-bit keys:

- ``lr``: the demo job (``lianmo demo``'s spec: broker, platform, arbiter, 5 epochs);
- ``secureboost``: guest + host on ``default_credit_hetero`` from ``../shared/data``,
  5 trees of depth 3, 32 bins, validation share 0.2 (not stratified), seed 42.

Masks and Paillier randomness differ from run to run (fresh DRBG seeds), but they cancel
exactly, so the models do not; only the random ids a SecureBoost host gives its splits
(and the guest's trees use) are drawn afresh, and :func:`stable_digest` renumbers them.
With ``--check`` the run fails when any digest or metric differs from the file's. About
3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
import typing as t
from pathlib import Path

from lianmo.cli.demo import DEMO_PARTIES, demo_spec, party_processes, write_party_config
from lianmo.cli.main import run_and_report
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec
from lianmo.demo_data import demo_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def stable_digest(share: Path) -> str:
    """sha256 of a model share, with a host's seed-dependent split ids renumbered.

    A SecureBoost host names its splits by random ids it draws from its job DRBG (fresh
    every run), and the guest's trees name host splits by those ids. Both are replaced by
    their order of first appearance (the host's rules in the order made, the guest's
    trees node by node), the same for every honest run. Other shares: their file's sha256.
    """
    raw = json.loads(share.read_bytes())
    if not str(raw.get("format", "")).startswith("lianmo.secureboost"):
        return hashlib.sha256(share.read_bytes()).hexdigest()
    order: dict[tuple[str, int], int] = {}

    def renumber(owner: str, split_id: int) -> int:
        return order.setdefault((owner, split_id), len(order))

    if raw["role"] != "guest":
        for rule in raw["rules"]:
            rule["id"] = renumber(raw["party"], rule["id"])
    for tree in raw["trees"]:
        for node in tree["nodes"]:
            if "owner" in node and node["owner"] != raw["party"]:
                node["split"] = renumber(node["owner"], node["split"])
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _digests(out: Path, job_id: str, metrics: dict[str, t.Any]) -> dict[str, str]:
    return {
        name: stable_digest(out / "parties" / name / "jobs" / job_id / "model.json")
        for name, party in sorted(metrics["parties"].items())
        if party.get("model_digest")
    }


def _run(
    out: Path,
    parties: dict[str, tuple[str, dict[str, tuple[Path, str, str | None]]]],
    spec_for: t.Callable[[dict[str, str]], dict[str, t.Any]],
) -> dict[str, t.Any]:
    certs = out / "certs"
    write_identities(certs, [*parties, "coordinator"], force=True)
    configs = {
        name: write_party_config(out / "parties" / name, name, certs, datasets)
        for name, (_role, datasets) in parties.items()
    }
    with party_processes(configs) as addresses:
        spec = JobSpec.from_dict(spec_for(addresses))
        metrics = run_and_report(
            spec,
            out / "job",
            ca=certs / "ca.pem",
            cert=certs / "coordinator.pem",
            key=certs / "coordinator.key",
        )
    return {"models": _digests(out, spec.job_id, metrics), "validation": metrics["validation"]}


def lr_job(out: Path) -> dict[str, t.Any]:
    parties = {
        name: (
            role,
            {} if ds is None else {ds: (demo_file(str(file)), "client_id", label)},
        )
        for name, (role, ds, file, label) in DEMO_PARTIES.items()
    }
    return _run(out, parties, lambda addresses: demo_spec(addresses, epochs=5, key_bits=2048))


def secureboost_job(out: Path, data: Path) -> dict[str, t.Any]:
    parties = {
        "guest": ("guest", {"data": (data / "default_credit_hetero_guest.csv", "id", "y")}),
        "host": ("host", {"data": (data / "default_credit_hetero_host.csv", "id", None)}),
    }

    def spec(addresses: dict[str, str]) -> dict[str, t.Any]:
        return {
            "job_id": "golden-secureboost",
            "seed": 42,
            "parties": [
                {"name": n, "role": n, "address": addresses[n], "dataset": "data"}
                for n in ("guest", "host")
            ],
            "alignment": {"min_intersection": 100},
            # not stratified: the stratified split is drawn from the guest's fresh DRBG seed
            # (so that a host cannot invert it), which differs from run to run
            "validation": {"share": 0.2, "stratify": False},
            "model": {
                "type": "secureboost",
                "trees": 5,
                "depth": 3,
                "max_bins": 32,
                "learning_rate": 0.3,
                "key_bits": 2048,
            },
        }

    return _run(out, parties, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--check", type=Path, help="fail unless the result equals this file's")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--output", type=Path, default=Path("golden-models-output"))
    args = parser.parse_args()
    out = args.output.resolve()
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = {
        "lr": lr_job(out / "lr"),
        "secureboost": secureboost_job(out / "secureboost", args.data),
    }
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    print(text)
    print(f"golden models: {time.perf_counter() - started:.0f}s", file=sys.stderr)
    if args.json:
        args.json.write_text(text)
    if args.check:
        expected = json.loads(args.check.read_text())
        if expected != result:
            print(f"DIFFERENT from {args.check}", file=sys.stderr)
            return 1
        print(f"same models and metrics as {args.check}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
