"""Issue 22's acceptance run: purpose, minimum necessary and consent through real nodes.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/consent_check.py [--data ../shared/data] [--output consent-check-output]
                                    [--json OUT.json] [--check]

As an institution would run it: ``lianmo party serve`` processes for the broker (guest)
and the platform (host) over mutual TLS with 2048-bit keys, on the **raw** credit files
(text categories, missing cells), each with a catalogue that allows the purpose
``credit_scoring`` (the platform's only for its repayment columns: minimum necessary) and
a consent register made here with grants, expiries, withdrawals, grants for another
purpose and grants that start in the future. Then, through the CLI's own code:

1. a two-party LR training job (no arbiter) for ``credit_scoring``: its validation rows
   must all be customers with consent valid at both parties (computed here from the
   registers, independently of lianmo's code), and the platform's model share may name
   only the columns its purpose allows;
2. a job for purpose ``marketing`` must be refused, naming the party and the purpose;
3. 25 used customers withdraw at the platform; a scoring job must score exactly the
   consented customers without them;
4. ``lianmo audit verify`` of both jobs, ``lianmo audit replay`` of the broker's
   training job, and ``lianmo audit subject`` (each party's data-subject answer) for a
   used, a never-consented, a withdrawn and an unknown customer; a regulator's
   ``lianmo audit subject-check`` of one answer with the salt the broker disclosed.

``--check`` exits 1 if any of these fails. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
import typing as t
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

GUEST_FILE, HOST_FILE = "credit_broker_raw.csv", "credit_platform_raw.csv"
ID, LABEL = "client_id", "default_next_month"
GUEST_CATEGORICAL = ["sex", "education", "marriage"]
HOST_CATEGORICAL = [f"pay_{k}" for k in range(1, 7)]
HOST_ALLOWED = [*HOST_CATEGORICAL, *(f"pay_amt{k}" for k in range(1, 7))]  # no bill_amt*
PURPOSE = "credit_scoring"
MODEL = {"type": "hetero_lr", "epochs": 2, "batch_size": 1024, "key_bits": 2048}
NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=400)


def _ids(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row[ID] for row in csv.DictReader(fh)]


def _record(customer: str, purpose: str = PURPOSE, **times: datetime | None) -> dict[str, str]:
    granted = times.get("granted", LONG_AGO)
    text = {k: "" if v is None else v.isoformat() for k, v in times.items()}
    return {
        "id": customer,
        "purpose": purpose,
        "granted_at": "" if granted is None else granted.isoformat(),
        "expires_at": text.get("expires", ""),
        "revoked_at": text.get("revoked", ""),
    }


def make_register(ids: list[str], seed: int, path: Path) -> set[str]:
    """Write a register with every kind of record; the ids valid now (by the rule itself)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(6, size=len(ids), p=[0.94, 0.02, 0.015, 0.01, 0.01, 0.005])
    rows, valid = [], set()
    for customer, k in zip(ids, kind, strict=True):
        if k == 0:  # granted, open-ended
            rows.append(_record(customer))
            valid.add(customer)
        elif k == 1:  # expired
            rows.append(_record(customer, expires=NOW - timedelta(days=10)))
        elif k == 2:  # withdrawn
            rows.append(_record(customer, revoked=NOW - timedelta(days=3)))
        elif k == 3:  # another purpose only
            rows.append(_record(customer, purpose="marketing"))
        elif k == 4:  # withdrawn, then given again (valid)
            rows.append(_record(customer, revoked=NOW - timedelta(days=90)))
            rows.append(_record(customer, granted=NOW - timedelta(days=60)))
            valid.add(customer)
        else:  # granted from next month on
            rows.append(_record(customer, granted=NOW + timedelta(days=30)))
    _write(path, rows)
    return valid


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _read_ids(path: Path) -> set[str]:
    return {line.split(",")[0] for line in path.read_text().splitlines()[1:]}


def _lianmo(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("lianmo")), *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one acceptance run, in order
    from lianmo.cli.demo import party_processes, write_party_config
    from lianmo.cli.main import run_and_report
    from lianmo.cli.wiring import write_identities
    from lianmo.config import JobSpec
    from lianmo.errors import LianmoError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    parser.add_argument("--output", type=Path, default=Path("consent-check-output"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    shutil.rmtree(args.output, ignore_errors=True)
    out, secrets = args.output / "output", args.output / "secrets"
    registers = args.output / "registers"
    registers.mkdir(parents=True)
    broker_ids, platform_ids = _ids(args.data / GUEST_FILE), _ids(args.data / HOST_FILE)
    broker_ok = make_register(broker_ids, 1, registers / "broker.csv")
    platform_ok = make_register(platform_ids, 2, registers / "platform.csv")
    expected = broker_ok & platform_ok
    certs = secrets / "certs"
    write_identities(
        certs, ["broker", "platform", "coordinator"], force=True, ca_dir=secrets / "ca"
    )
    catalogue = {
        "broker": (GUEST_FILE, LABEL, GUEST_CATEGORICAL, "*"),
        "platform": (HOST_FILE, None, HOST_CATEGORICAL, HOST_ALLOWED),
    }
    configs = {
        name: write_party_config(
            out / "parties" / name,
            name,
            certs,
            {"credit": (args.data / file, ID, label)},
            secrets_dir=secrets / "parties" / name,
            dataset_keys={
                "credit": {
                    "categorical": categorical,
                    "consent": str((registers / f"{name}.csv").resolve()),
                    "purposes": {PURPOSE: allowed, "research": [categorical[0]]},
                }
            },
        )
        for name, (file, label, categorical, allowed) in catalogue.items()
    }
    failures: list[str] = []
    results: dict[str, t.Any] = {"expected_consented_common": len(expected)}

    def expect(ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            failures.append(what)

    def spec(job_id: str, purpose: str, addresses: dict[str, str], **extra: t.Any) -> JobSpec:
        return JobSpec.from_dict(
            {
                "job_id": job_id,
                "purpose": purpose,
                "parties": [
                    {"name": p, "role": role, "address": addresses[p], "dataset": "credit"}
                    for p, role in (("broker", "guest"), ("platform", "host"))
                ],
                "alignment": {"min_intersection": 1000},
                **extra,
            }
        )

    tls = {"ca": certs / "ca.pem", "cert": certs / "coordinator.pem"}
    tls["key"] = certs / "coordinator.key"
    with party_processes(configs) as addresses:
        # 1. training, two-party LR on the raw tables
        train = spec("consent-train", PURPOSE, addresses, validation={"share": 0.2}, model=MODEL)
        metrics = run_and_report(train, args.output / "jobs" / "train", **tls)
        broker_job = out / "parties" / "broker" / "jobs" / "consent-train"
        platform_job = out / "parties" / "platform" / "jobs" / "consent-train"
        validated = _read_ids(broker_job / "validation_scores.csv")
        results["train"] = {
            "aligned": metrics.get("aligned"),
            "validation_auc": metrics.get("validation", {}).get("auc"),
        }
        expect(metrics.get("aligned") == len(expected), f"aligned {metrics.get('aligned')} "
               f"= customers with consent at both parties ({len(expected)})")  # fmt: skip
        expect(validated <= expected, f"all {len(validated)} validation rows have consent")
        share = json.loads((platform_job / "model.json").read_text())
        used = set(share["feature_names"])
        expect(
            bool(used) and used <= set(HOST_ALLOWED),
            f"the platform's share names only allowed columns ({len(used)} of {len(HOST_ALLOWED)})",
        )
        # 2. a purpose neither catalogue allows
        try:
            run_and_report(spec("consent-marketing", "marketing", addresses, model=MODEL),
                           args.output / "jobs" / "marketing", **tls)  # fmt: skip
            expect(False, "a job for purpose 'marketing' is refused")
        except LianmoError as exc:
            text = str(exc)
            expect(
                "may not be used for purpose 'marketing'" in text and "party '" in text,
                f"a job for purpose 'marketing' is refused: {text[:160]}",
            )
        # 3. 25 used customers withdraw at the platform, then a scoring job
        withdrawn = sorted(validated)[:25]
        with (registers / "platform.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            if row["id"] in withdrawn:
                row["revoked_at"] = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        _write(registers / "platform.csv", rows)
        score = spec("consent-score", PURPOSE, addresses, task="predict", model_job="consent-train")
        run_and_report(score, args.output / "jobs" / "score", **tls)
        scored = _read_ids(out / "parties" / "broker" / "jobs" / "consent-score" / "scores.csv")
        results["score"] = {"scored": len(scored), "withdrawn": len(withdrawn)}
        expect(
            scored == expected - set(withdrawn),
            f"scored {len(scored)} = consented customers minus the {len(withdrawn)} withdrawn",
        )
    # 4. the auditors' and the customers' questions
    verified = _lianmo("audit", "verify", out / "parties" / "broker" / "jobs",
                       out / "parties" / "platform" / "jobs")  # fmt: skip
    expect(verified.returncode == 0, "audit verify passes for both jobs")
    expect("without valid consent" in verified.stdout, "verify shows the consent summary")
    replayed = _lianmo("audit", "replay", "--config", configs["broker"], "consent-train")
    expect(replayed.returncode == 0, f"the broker's replay passes: {replayed.stdout.strip()[:120]}")

    def answer(party: str, customer: str) -> dict[str, str]:
        found = _lianmo("audit", "subject", "--config", configs[party], "--id", customer, "--json")
        jobs = json.loads(found.stdout)["jobs"] if found.returncode == 0 else []
        return {j["job_id"]: j["status"] + ("" if j["proven"] else "?") for j in jobs}

    never = sorted(set(broker_ids) - broker_ok)[0]
    cases = [
        ("broker", sorted(expected - set(withdrawn))[0], {"consent-train": "used",
                                                          "consent-score": "used"}),
        ("broker", never, {"consent-train": "no_consent", "consent-score": "no_consent"}),
        ("platform", withdrawn[0], {"consent-train": "used", "consent-score": "no_consent"}),
        ("broker", withdrawn[0], {"consent-train": "used", "consent-score": "not_matched"}),
        ("broker", "no-such-customer", {"consent-train": "absent", "consent-score": "absent"}),
    ]  # fmt: skip
    for party, customer, want in cases:
        got = answer(party, customer)
        expect(got == want, f"{party} answers for customer {customer}: {got}")
    # a regulator checks the broker's answer from the job folder and the disclosed salt
    customer = sorted(expected - set(withdrawn))[0]
    disclosed = _lianmo("audit", "subject", "--config", configs["broker"], "--id", customer,
                        "--disclose-salt", "--json", "consent-train")  # fmt: skip
    salt = json.loads(disclosed.stdout)["jobs"][0].get("salt", "") if disclosed.stdout else ""
    checked = _lianmo("audit", "subject-check", "--id", customer, "--salt", salt,
                      out / "parties" / "broker" / "jobs" / "consent-train")  # fmt: skip
    expect(
        checked.returncode == 0 and ": used:" in checked.stdout,
        f"a regulator's subject-check with the disclosed salt: {checked.stdout.strip()[:100]}",
    )
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["failures"] = failures
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
