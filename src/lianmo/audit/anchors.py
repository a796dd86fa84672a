"""Each party's log anchored in its peers' logs: the audit heads carried by its messages.

Every envelope carries the sender's audit head (the hash of the last record it had
logged) and the receiver logs it as ``peer_head``. A head is a commitment to the whole
chain up to it, so a party that later rewrites its own log (edits a record, re-chains
and re-signs every record after it with its own key) no longer holds the records its
peers logged as its heads: :func:`unanchored` finds the first such message.

One honest exception: a party that resumes from a checkpoint cuts its log back to that
checkpoint and sends the later messages again; a peer that already had one keeps the
first copy, whose head was in the cut-off part. So a send that the log shows after a
``resume`` (or before the first checkpoint: a restart then starts the log afresh) and
before the next ``checkpoint`` may carry a head outside the chain. Such a window can
only hide records after its own checkpoint: the heads sent after the next checkpoint
pin everything before them, the checkpoint and the ``resume`` record included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Record = dict[str, object]


@dataclass(frozen=True)
class Unanchored:
    """A message whose head is not a record of the sender's log before the send."""

    sent: Record
    """The sender's record of the message."""
    received: Record
    """The receiver's record of it, holding ``peer_head``."""
    why: str


def unanchored(
    sender: Sequence[Record], receiver: str, received: Sequence[Record]
) -> Unanchored | None:
    """The first message to ``receiver`` whose logged head does not anchor ``sender``'s log.

    ``received`` are the receiver's records of messages from the sender. Receipts without
    ``peer_head`` (logs of format v2) and receipts with no matching send (which verify
    names elsewhere) are skipped.
    """
    position = {str(r.get("hash")): i for i, r in enumerate(sender)}
    sends = _sends(sender, receiver)
    found: list[Unanchored] = []
    for receipt in received:
        head = receipt.get("peer_head")
        send = sends.get(receipt.get("msg_seq"))
        if head is None or send is None:
            continue
        index, redone = send
        why = _why(str(head), position.get(str(head)), index, redone)
        if why is not None:
            found.append(Unanchored(sender[index], receipt, why))
    return min(found, key=lambda u: int(str(u.sent.get("seq"))), default=None)


def _sends(records: Sequence[Record], receiver: str) -> dict[object, tuple[int, bool]]:
    """Per message number: where the log records sending it, and if inside a redo window."""
    sends: dict[object, tuple[int, bool]] = {}
    redone = True  # before the first checkpoint a restarted party starts its log afresh
    for i, r in enumerate(records):
        kind = r.get("kind")
        if kind == "checkpoint":
            redone = False
        elif kind == "resume":
            redone = True
        elif kind == "message" and r.get("direction") == "sent" and r.get("peer") == receiver:
            sends[r.get("msg_seq")] = (i, redone)
    return sends


def _why(head: str, at: int | None, index: int, redone: bool) -> str | None:
    if not head:
        return "carried no audit head, so this log is not anchored in the receiver's"
    if at is None:
        if redone:
            return None  # sent again after a resume: the receiver kept the first copy
        return (
            f"carried the head {head[:16]}..., which is no record of this log: the log "
            "was rewritten after the job (re-chained and re-signed)"
        )
    if at >= index:
        return (
            f"carried the head of record {at}, which the log places after this send: "
            "the log was rewritten after the job"
        )
    return None
