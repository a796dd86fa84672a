"""``lianmo audit verify``: check a job's logs without any data or private key.

Refuses folders that hold a party's secrets (:mod:`lianmo.audit.handover`). For every
party's log: the hash chain (timestamps included, never moving backwards), the Ed25519
signature of every record under the key the log's ``job_start`` names, that every
message payload and the job spec are in the store and unaltered, and that the log ends
with ``job_end`` (and at the head its ``result.json`` published). Across the parties of
a job: a log from every party the spec (the one whose sha256 every log records) lists
and from every peer any log exchanged messages with; the same job spec and lianmo
version; each party's signing key as every peer received it; for every pair A, B that
the messages A logged as sent to B are, in the same order and with the same digests,
the messages B logged as received from A; and that the audit head each message carried
is a record of A's log before the send (:mod:`lianmo.audit.anchors`). Problems name the
party, the record's sequence number and what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lianmo.audit.anchors import unanchored
from lianmo.audit.handover import refuse_secrets
from lianmo.audit.log import FORMAT, GENESIS, chain_problem, read_records, signed_bytes
from lianmo.audit.signing import UNSIGNED_KEY, signature_ok
from lianmo.audit.store import PayloadStore
from lianmo.errors import LianmoError
from lianmo.wire.steps import describe

LOG_NAME = "audit.jsonl"
STORE_NAME = "payloads"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a log: which party, which record (None: the log as a whole)."""

    party: str
    seq: int | None
    path: Path
    text: str

    def __str__(self) -> str:
        where = "" if self.seq is None else f" record {self.seq}"
        return f"party '{self.party}'{where}: {self.text} ({self.path})"


@dataclass
class PartyLog:
    """One party's log of one job, as read from disk (records in file order)."""

    path: Path
    records: list[dict[str, object]]
    party: str
    job_id: str

    @property
    def store(self) -> PayloadStore:
        return PayloadStore(self.path.parent / STORE_NAME)

    @property
    def start(self) -> dict[str, object]:
        """The ``job_start`` record (empty if the log does not begin with one)."""
        first = self.records[0] if self.records else {}
        return first if first.get("kind") == "job_start" else {}

    @property
    def role(self) -> str:
        return str(self.start.get("role", "?"))

    def messages(self, direction: str, peer: str) -> list[dict[str, object]]:
        return [
            r
            for r in self.records
            if r.get("kind") == "message"
            and r.get("direction") == direction
            and r.get("peer") == peer
        ]


@dataclass
class JobVerdict:
    """Everything ``verify`` found about one job."""

    job_id: str
    logs: dict[str, PartyLog] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    expected_parties: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def spec(self) -> dict[str, object] | None:
        """The job spec whose sha256 the logs record, from any party's store (None if none
        holds it intact)."""
        for log in self.logs.values():
            digest = log.start.get("spec_sha256")
            if isinstance(digest, str) and log.start.get("spec_payload") == digest:
                if log.store.check(digest) is None:
                    try:
                        return dict(json.loads(log.store.get(digest)))
                    except (LianmoError, ValueError, TypeError):
                        continue
        return None


def find_logs(paths: Iterable[Path]) -> list[Path]:
    """Every ``audit.jsonl`` at or under the given files or folders, sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(p for p in path.rglob(LOG_NAME) if STORE_NAME not in p.parts)
        else:
            raise LianmoError(f"{path} does not exist; pass a job folder or an audit log")
    if not found:
        raise LianmoError(
            f"no {LOG_NAME} under {', '.join(map(str, paths))}; pass the folders holding the "
            "parties' job folders (state_dir/jobs/JOB_ID)"
        )
    return sorted(found)


def verify(paths: Sequence[Path]) -> list[JobVerdict]:
    """Verify every log found under ``paths``, grouped by job.

    AuditError, before anything is read, if ``paths`` hold a seed or a private key.
    """
    logs = find_logs(paths)
    refuse_secrets(paths)
    verdicts: dict[str, JobVerdict] = {}
    for path in logs:
        log, problems = read_log(path)
        verdict = verdicts.setdefault(log.job_id, JobVerdict(log.job_id))
        verdict.problems.extend(problems)
        if log.party in verdict.logs:
            verdict.problems.append(
                Problem(
                    log.party,
                    None,
                    path,
                    f"a second log of this party for job "
                    f"'{log.job_id}' (the other is {verdict.logs[log.party].path})",
                )
            )
            continue
        verdict.logs[log.party] = log
    for verdict in verdicts.values():
        _check_job(verdict)
    return [verdicts[k] for k in sorted(verdicts)]


def read_log(path: Path) -> tuple[PartyLog, list[Problem]]:
    """Parse one log and check what it can show on its own."""
    records: list[dict[str, object]] = []
    problems: list[Problem] = []
    guess = path.parent.parent.parent.name or "?"
    try:
        for record in read_records(path):
            records.append(record)
    except LianmoError as exc:
        problems.append(Problem(guess, len(records), path, str(exc)))
    party = str(records[0].get("party", guess)) if records else guess
    job_id = str(records[0].get("job_id", path.parent.name)) if records else path.parent.name
    log = PartyLog(path, records, party, job_id)
    if not records:
        problems.append(Problem(party, None, path, "the log is empty"))
        return log, problems
    problems.extend(_check_log(log))
    return log, problems


def _check_log(log: PartyLog) -> list[Problem]:
    problems: list[Problem] = []

    def bad(seq: int | None, text: str) -> None:
        problems.append(Problem(log.party, seq, log.path, text))

    start = log.start
    found = start.get("signing_key")
    key = found if isinstance(found, str) and found != UNSIGNED_KEY else None
    if not start:
        bad(0, "the log does not begin with a job_start record")
    elif key is None:
        bad(
            0, "the log is not signed (the party ran at audit level 'chain'); it cannot be verified"
        )
    store = log.store
    prev, fmt, last_time = GENESIS, str(log.records[0].get("format")), None
    for seq, record in enumerate(log.records):
        problem = None
        if (record.get("party"), record.get("job_id")) != (log.party, log.job_id):
            problem = (
                f"belongs to party '{record.get('party')}' in job '{record.get('job_id')}', "
                f"not to '{log.party}' in '{log.job_id}': a record from another log was "
                "swapped in"
            )
        problem = problem or chain_problem(record, seq, prev, fmt)
        if problem is None and key is not None:
            sig = record.get("sig")
            if not isinstance(sig, str) or not signature_ok(key, sig, signed_bytes(record)):
                problem = "has no valid signature by the party's signing key"
        problem = problem or _time_problem(record, last_time)
        if problem is None and record.get("kind") == "message":
            problem = store.check(str(record.get("sha256"))) or _anchor_field(record, fmt)
        if problem is None and record.get("kind") == "job_start" and seq:
            problem = "is a second job_start"
        if problem is not None:
            bad(seq, problem)
            return problems  # everything after the first break is unanchored
        prev, last_time = str(record["hash"]), record["time"]
    spec = _spec_problem(log)
    if spec is not None:
        bad(0, spec)
    last = log.records[-1]
    if last.get("kind") != "job_end":
        bad(
            None,
            f"the log ends at record {len(log.records) - 1} without job_end: it was "
            "truncated, or the job is still running",
        )
    elif last.get("state") != "succeeded":
        bad(len(log.records) - 1, f"the job ended '{last.get('state')}': {last.get('error', '')}")
    head = _published_head(log.path)
    if head is not None and head != prev:
        bad(
            None,
            "the log's last hash differs from the audit_head in result.json: records "
            "were removed from or added to the end",
        )
    return problems


def _time_problem(record: dict[str, object], last: object) -> str | None:
    """Timestamps are numbers that never go backwards within a log."""
    now = record.get("time")
    if not isinstance(now, int | float) or isinstance(now, bool):
        return f"has no valid timestamp (time = {now!r})"
    if isinstance(last, int | float) and now < last:
        return f"is timed {now}, before the record preceding it ({last}): its timestamp was moved"
    return None


def _anchor_field(record: dict[str, object], fmt: str) -> str | None:
    """Since format v3 a received message's record holds the sender's audit head."""
    if fmt != FORMAT or record.get("direction") != "received":
        return None
    if not isinstance(record.get("peer_head"), str):
        return "records a received message without the sender's audit head (peer_head)"
    return None


def _spec_problem(log: PartyLog) -> str | None:
    """The job spec a full-level log stored is the one its ``spec_sha256`` names."""
    stored, digest = log.start.get("spec_payload"), log.start.get("spec_sha256")
    if stored is None:  # audit level chain keeps no payloads (reported as unsigned)
        return None
    if stored != digest:
        return (
            f"names the job spec {str(digest)[:16]}... but stored {str(stored)[:16]}...: the "
            "spec in its store is not the one the job ran"
        )
    problem = log.store.check(str(digest))
    if problem is not None:
        return f"the job spec it ran: {problem}; without it nobody can tell which parties took part"
    return None


def _published_head(path: Path) -> str | None:
    try:
        return str(json.loads((path.parent / "result.json").read_text())["audit_head"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_job(verdict: JobVerdict) -> None:
    logs = verdict.logs
    expected = _expected_parties(verdict)
    verdict.expected_parties = tuple(expected)
    for name, why in expected.items():
        if name not in logs:
            verdict.problems.append(
                Problem(
                    name,
                    None,
                    Path("-"),
                    f"no log of this party was found, but {why}; pass the folder holding "
                    "its job folder too",
                )
            )
    for field_name, what in (("spec_sha256", "job spec"), ("software", "lianmo version")):
        values = {p: log.start.get(field_name) for p, log in logs.items() if log.start}
        if len(set(values.values())) > 1:
            first = next(iter(values.values()))
            for party, value in values.items():
                if value != first:
                    verdict.problems.append(
                        Problem(
                            party,
                            0,
                            logs[party].path,
                            f"its {what} ({value}) differs from the other parties' ({first})",
                        )
                    )
    for party, log in logs.items():
        for record in log.records:
            if record.get("kind") != "peer_key":
                continue
            peer = str(record.get("peer"))
            if peer in logs and record.get("signing_key") != logs[peer].start.get("signing_key"):
                verdict.problems.append(
                    Problem(
                        peer,
                        0,
                        logs[peer].path,
                        f"signed with a key other than the one "
                        f"'{party}' received from it at the start of the job (record "
                        f"{record.get('seq')} of '{party}')",
                    )
                )
    for sender, receiver in ((a, b) for a in logs for b in logs if a != b):
        _match(verdict, logs[sender], logs[receiver])
    for sender in logs:
        _anchored(verdict, logs[sender], [logs[r] for r in logs if r != sender])


def _expected_parties(verdict: JobVerdict) -> dict[str, str]:
    """Every party that must have a log, with why: the spec lists it, or a peer saw it."""
    expected: dict[str, str] = {}
    spec = verdict.spec()
    parties = None if spec is None else spec.get("parties")
    if isinstance(parties, list):
        for p in parties:
            name = str(p.get("name")) if isinstance(p, dict) else str(p)
            expected[name] = "the job spec lists it"
    for party, log in sorted(verdict.logs.items()):
        for r in log.records:
            peer = r.get("peer")
            if r.get("kind") in ("message", "peer_key") and isinstance(peer, str):
                expected.setdefault(
                    peer, f"'{party}' logged exchanging messages with it (record {r.get('seq')})"
                )
    return expected


def _anchored(verdict: JobVerdict, sender: PartyLog, receivers: list[PartyLog]) -> None:
    """The heads ``sender``'s messages carried are records of its log before each send."""
    found = [
        (u, receiver)
        for receiver in receivers
        if (
            u := unanchored(
                sender.records, receiver.party, receiver.messages("received", sender.party)
            )
        )
        is not None
    ]
    if not found:
        return
    first, receiver = min(found, key=lambda f: int(str(f[0].sent.get("seq"))))
    verdict.problems.append(
        Problem(
            sender.party,
            _seq(first.sent),
            sender.path,
            f"sent {describe(str(first.sent.get('tag')))} round {first.sent.get('round')} to "
            f"'{receiver.party}' (record {first.received.get('seq')} of '{receiver.party}'), "
            f"which {first.why}",
        )
    )


_SAME = ("msg_seq", "round", "tag", "payload_type", "size", "sha256")


def _match(verdict: JobVerdict, sender: PartyLog, receiver: PartyLog) -> None:
    """What ``receiver`` logged as received from ``sender`` is what ``sender`` sent it."""
    sent = sender.messages("sent", receiver.party)
    got = receiver.messages("received", sender.party)
    for i, record in enumerate(got):
        if i >= len(sent):
            verdict.problems.append(
                Problem(
                    receiver.party,
                    _seq(record),
                    receiver.path,
                    f"claims to have received "
                    f"{describe(str(record.get('tag')))} round {record.get('round')} from "
                    f"'{sender.party}', which '{sender.party}' never logged sending",
                )
            )
            return
        want = sent[i]
        diff = [k for k in _SAME if record.get(k) != want.get(k)]
        if diff:
            verdict.problems.append(
                Problem(
                    receiver.party,
                    _seq(record),
                    receiver.path,
                    f"logged receiving "
                    f"{describe(str(record.get('tag')))} round {record.get('round')} from "
                    f"'{sender.party}', but '{sender.party}' logged sending "
                    f"{describe(str(want.get('tag')))} round {want.get('round')} there (record "
                    f"{want.get('seq')}); differs in {', '.join(diff)}",
                )
            )
            return
    if len(sent) > len(got):
        record = sent[len(got)]
        verdict.problems.append(
            Problem(
                sender.party,
                _seq(record),
                sender.path,
                f"sent {describe(str(record.get('tag')))} "
                f"round {record.get('round')} to '{receiver.party}', which "
                f"'{receiver.party}' never logged receiving: the round is incomplete",
            )
        )


def _seq(record: dict[str, object]) -> int | None:
    seq = record.get("seq")
    return seq if isinstance(seq, int) else None
