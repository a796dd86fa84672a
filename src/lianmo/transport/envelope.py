"""The envelope every message travels in, and the observer hook the audit log uses."""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass

Direction = t.Literal["sent", "received"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message of a job: typed header plus serialised payload bytes.

    Identified by ``(job_id, sender, receiver, seq)``; ``(round, tag)`` say which
    protocol step it belongs to. ``sha256`` is the digest of ``payload``.
    ``audit_head`` is the hash of the last record in the sender's audit log when it
    sent the message ("" if it keeps none): the receiver logs it, which anchors the
    sender's log in its peers' logs (``lianmo audit verify`` checks it).
    """

    job_id: str
    round: int
    tag: str
    sender: str
    receiver: str
    seq: int
    payload_type: str
    payload: bytes
    sha256: bytes
    audit_head: str = ""

    @classmethod
    def build(
        cls,
        *,
        job_id: str,
        round: int,
        tag: str,
        sender: str,
        receiver: str,
        seq: int,
        payload_type: str,
        payload: bytes,
        audit_head: str = "",
    ) -> Envelope:
        """Make an envelope, computing the payload digest."""
        return cls(
            job_id=job_id,
            round=round,
            tag=tag,
            sender=sender,
            receiver=receiver,
            seq=seq,
            payload_type=payload_type,
            payload=payload,
            sha256=hashlib.sha256(payload).digest(),
            audit_head=audit_head,
        )

    def describe(self) -> str:
        """Short human description for error messages."""
        return (
            f"message '{self.tag}' round {self.round} seq {self.seq} "
            f"from '{self.sender}' to '{self.receiver}' in job '{self.job_id}'"
        )


class MessageObserver(t.Protocol):
    """Told about every message a channel sends or hands to its protocol."""

    def on_message(self, direction: Direction, envelope: Envelope) -> None: ...
