"""The recorded side of ``lianmo audit replay``: feed logged inputs, compare every output.

A party's job is re-run against a :class:`ReplayChannel`, which hands the protocol the
messages the log says the party received (bytes from the payload store) and checks
each message the protocol sends against the one the log says it sent, byte for byte
(same tag, round, sequence number, type and sha256). A :class:`ReplayRecorder` does the
same for the party's own records (phases, rounds, decisions, checkpoints, model
digest). The first difference raises :class:`Divergence`, naming the round and the
message or record; the caller adds the likely cause.
"""

from __future__ import annotations

import hashlib
from collections import deque

from lianmo.audit.verify import PartyLog
from lianmo.errors import AuditError, UnexpectedMessageError
from lianmo.transport.channel import Channel
from lianmo.transport.envelope import Envelope
from lianmo.transport.inbox import Inbox
from lianmo.transport.messages import Payload
from lianmo.wire.steps import describe

META = frozenset({"format", "seq", "party", "job_id", "prev", "hash", "time", "sig"})
START_IGNORED = frozenset({"tls_subject", "tls_sha256", "tls_not_after"})
"""job_start fields that may change without changing the computation (a renewed cert)."""
START_CHECKED = {
    "seed_commitment": "seed",
    "software": "software",
    "spec_sha256": "spec",
    "data_commitment": "data",
    "consent_commitment": "consent",
    "policy_sha256": "policy",
}


class Divergence(AuditError):
    """Replay produced something other than what the log holds."""

    def __init__(self, text: str, *, round: int | None = None, what: str = "") -> None:
        super().__init__(text)
        self.round = round
        self.what = what


class _RecordedInbox(Inbox):
    """The messages the log says were received, in order; asking past them diverges."""

    def __init__(self, log: PartyLog) -> None:
        peers = {str(r.get("peer")) for r in log.records if r.get("kind") == "message"}
        super().__init__(log.job_id, log.party, peers | {log.party})
        self.pending: dict[str, deque[Envelope]] = {p: deque() for p in peers}
        store = log.store
        for r in log.records:
            if r.get("kind") == "message" and r.get("direction") == "received":
                sender = str(r["peer"])
                self.pending[sender].append(
                    Envelope.build(
                        job_id=log.job_id,
                        round=int(str(r["round"])),
                        tag=str(r["tag"]),
                        sender=sender,
                        receiver=log.party,
                        seq=int(str(r["msg_seq"])),
                        payload_type=str(r["payload_type"]),
                        payload=store.get(str(r["sha256"])),
                        audit_head=str(r.get("peer_head", "")),
                    )
                )

    def take(self, sender: str, timeout: float) -> Envelope:
        queue = self.pending.get(sender)
        if not queue:
            raise Divergence(
                f"the replay waits for another message from '{sender}', but the log holds "
                f"no more messages received from '{sender}'",
                what=f"receive from '{sender}'",
            )
        return queue.popleft()


class ReplayChannel(Channel):
    """A channel whose inbound side is the log and whose outbound side is checked against it."""

    def __init__(self, log: PartyLog) -> None:
        inbox = _RecordedInbox(log)
        super().__init__(
            job_id=log.job_id, party=log.party, inbox=inbox, peers=inbox.pending.keys()
        )
        self._recorded_inbox = inbox
        self._expected: dict[str, deque[dict[str, object]]] = {p: deque() for p in self.peers}
        for r in log.records:
            if r.get("kind") == "message" and r.get("direction") == "sent":
                self._expected.setdefault(str(r["peer"]), deque()).append(r)
        self.compared = 0

    def recv(self, frm: str, tag: str, *, round: int = 0) -> Payload:
        try:
            return super().recv(frm, tag, round=round)
        except UnexpectedMessageError as exc:
            raise Divergence(
                f"the replay expects {describe(tag)} round {round} from '{frm}' next, but the log "
                f"holds another message there ({exc})",
                round=round,
                what=f"'{tag}' from '{frm}'",
            ) from exc

    def _deliver(self, env: Envelope) -> None:
        queue = self._expected.get(env.receiver)
        if not queue:
            raise Divergence(
                f"the replay sends {describe(env.tag)} round {env.round} to "
                f"'{env.receiver}', which the log does not hold: the logged job sent nothing "
                "more to that peer",
                round=env.round,
                what=f"'{env.tag}' to '{env.receiver}'",
            )
        want = queue.popleft()
        got = {
            "tag": env.tag,
            "round": env.round,
            "msg_seq": env.seq,
            "payload_type": env.payload_type,
            "sha256": env.sha256.hex(),
        }
        diff = [k for k, v in got.items() if want.get(k) != v]
        if diff:
            raise Divergence(
                f"message {describe(env.tag)} #{env.seq} to '{env.receiver}' "
                f"differs from the logged one (record {want.get('seq')}: '{want.get('tag')}' "
                f"round {want.get('round')}) in {', '.join(diff)}",
                round=env.round,
                what=f"'{env.tag}' to '{env.receiver}'",
            )
        self.compared += 1

    def leftovers(self) -> str | None:
        """What the log holds that the replay never sent or received, or None."""
        for peer, queue in sorted(self._expected.items()):
            if queue:
                r = queue[0]
                return (
                    f"the log holds {describe(str(r.get('tag')))} round {r.get('round')} "
                    f"sent to '{peer}' "
                    f"(record {r.get('seq')}), which the replay never sent"
                )
        for _, pending in sorted(self._recorded_inbox.pending.items()):
            if pending:
                env = pending[0]
                return (
                    f"the log holds {env.describe()} as received, which the replay never asked for"
                )
        return None


class ReplayRecorder:
    """Compares the party's own records, in order, with those in the log.

    ``job_start`` is compared field by field and differences are kept in ``changed``
    (seed, software, spec, data) to explain a later divergence; every other record must
    match exactly.
    """

    def __init__(self, log: PartyLog) -> None:
        # a resumed job notes where it resumed; the replay runs straight through
        skipped = ("message", "resume")
        self._logged = deque(r for r in log.records if r.get("kind") not in skipped)
        self.changed: dict[str, tuple[object, object]] = {}
        self.compared = 0
        self.last_round: int | None = None

    def position(self) -> None:
        """Replay writes no log, so there is no position to checkpoint."""
        return None

    def keep(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @property
    def head(self) -> str:
        """Replay makes no chain; the heads the logged job sent are not compared."""
        return ""

    def record(self, kind: str, **fields: str | int | float | bool | None) -> None:
        if not self._logged:
            raise Divergence(f"the replay records '{kind}' {fields}, past the end of the log")
        want = self._logged.popleft()
        logged = {k: v for k, v in want.items() if k not in META}
        if isinstance(fields.get("round"), int):
            self.last_round = int(str(fields["round"]))
        if kind == "job_start" and logged.get("kind") == "job_start":
            for name, cause in START_CHECKED.items():
                if logged.get(name) != fields.get(name):
                    self.changed[cause] = (logged.get(name), fields.get(name))
            ignored = START_IGNORED | set(START_CHECKED)
            fields = {k: v for k, v in fields.items() if k not in ignored}
            logged = {k: v for k, v in logged.items() if k not in ignored}
        mine = {"kind": kind, **fields}
        if mine != logged:
            diff = sorted(k for k in set(mine) | set(logged) if mine.get(k) != logged.get(k))
            detail = ", ".join(
                f"{k}: logged {logged.get(k)!r}, replay {mine.get(k)!r}" for k in diff
            )
            raise Divergence(
                f"record {want.get('seq')} ('{logged.get('kind')}') differs: {detail}",
                round=self.last_round,
                what=f"record '{logged.get('kind')}'",
            )
        self.compared += 1

    def leftovers(self) -> str | None:
        if self._logged:
            r = self._logged[0]
            return (
                f"the log holds record {r.get('seq')} ('{r.get('kind')}'), which the replay "
                "never made"
            )
        return None
