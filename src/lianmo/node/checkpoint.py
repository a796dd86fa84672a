"""A party's checkpoints of one job, and resuming the job from the latest one.

Protocols save their state under a name after each completed step (``keys``,
``align``, ``split``, then ``lr/train`` or ``sb/train`` after every round). Each
checkpoint file also holds where the party stood when it was saved: its DRBG position,
how many messages it had sent to and taken from each peer, its audit log position
and message counts. Files are written atomically (temporary file, fsync, rename) to
``jobs/JOB/checkpoints/NAME.json``; a temporary left by a killed node is removed.

Resuming runs the party's job from the top in *fast-forward*: every step whose
checkpoint exists is skipped with its saved state (records are not written again,
no message may move), until the code reaches the latest checkpoint. There the DRBG,
channel and message counts jump to the saved position and the job goes on live.
Because every random draw comes from the job's DRBG and every message from the
spooled inbox, the rounds after the checkpoint are the same bytes as before the crash:
peers drop the resent messages as duplicates, and the final model is the one an
uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

from lianmo.audit.log import MessageStats, canonical
from lianmo.crypto.drbg import Drbg
from lianmo.errors import ProtocolError
from lianmo.fileio import write_atomic
from lianmo.protocols.context import CheckpointState, Recorder, S
from lianmo.transport.channel import Channel
from lianmo.transport.envelope import Direction, Envelope

FORMAT = "lianmo.checkpoint/v1"
Scalar = str | int | float | bool | None
TIMING = "timing"  # state key for wall-clock values, left out of the logged digest


class JobCheckpoints:
    """Implements :class:`lianmo.protocols.context.Checkpoints` for one party's job.

    Parameters
    ----------
    directory
        The job's ``checkpoints`` folder (created on the first save); None keeps
        checkpoints in memory only (replay, which must log the same records).

    Each save adds a ``checkpoint`` record to the party's audit log, and arriving at
    the latest checkpoint on resuming adds a ``resume`` record.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._saved = {} if directory is None else _load(directory)
        self.latest: dict[str, t.Any] | None = max(
            self._saved.values(), key=lambda c: int(c["n"]), default=None
        )
        self._next = 0 if self.latest is None else int(self.latest["n"]) + 1
        self.resuming = self.latest is not None
        rounds = [_round_in(c["state"]) for c in self._saved.values()]
        self.last_round = max((r for r in rounds if r is not None), default=-1)
        self._live: _Live | None = None

    def audit_position(self) -> dict[str, t.Any] | None:
        """Where the audit log stood at the latest checkpoint (None: start afresh)."""
        return None if self.latest is None else dict(self.latest["position"]["audit"])

    def attach(
        self,
        *,
        rng: Drbg,
        channel: Channel,
        stats: MessageStats,
        record: Recorder,
        audit_position: t.Callable[[], object],
    ) -> None:
        """Give the job's live state; a job without checkpoints starts reading at zero."""
        self._live = _Live(rng, channel, stats, record, audit_position)
        if self.latest is None:  # a fresh start, or a restart before the first checkpoint
            channel.restore({"sent": {}, "taken": dict.fromkeys(channel.peers, 0)})

    # -- the protocols' side ------------------------------------------------------------

    def restore(self, name: str, kind: type[S]) -> S | None:
        """The state saved under ``name`` while fast-forwarding; None once live."""
        if not self.resuming:
            return None
        saved = self._saved.get(name)
        if saved is None:
            return None
        if self.latest is not None and saved["n"] == self.latest["n"]:
            self._arrive(saved)
        try:
            return kind.from_checkpoint(saved["state"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(
                f"checkpoint '{name}' does not hold a {kind.__name__} ({exc!r}); it was "
                "written by another lianmo version: start the job afresh"
            ) from exc

    def save(self, name: str, typed: CheckpointState) -> None:
        """Write ``typed`` and the party's position atomically as checkpoint ``name``."""
        state = typed.to_checkpoint()
        if self.resuming:
            raise ProtocolError(
                f"internal error: checkpoint '{name}' reached while resuming before the "
                "latest checkpoint; the job's steps do not match its checkpoints"
            )
        live = self._attached()
        # wall-clock timings differ from run to run; the logged digest covers the rest
        content = canonical({k: v for k, v in state.items() if k != TIMING})
        digest = hashlib.sha256(content).hexdigest()
        live.record("checkpoint", name=name, n=self._next, round=_round_in(state), sha256=digest)
        data = {
            "format": FORMAT,
            "n": self._next,
            "name": name,
            "state": state,
            "position": {
                "drbg": live.rng.position,
                "channel": live.channel.position(),
                "stats": live.stats.snapshot(),
                "audit": live.audit_position(),
            },
        }
        if self.directory is not None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(_path(self.directory, name), canonical(data), mode=0o600)
        self._saved[name] = data
        self._next += 1
        round_ = _round_in(state)
        if round_ is not None:
            self.last_round = round_

    def _attached(self) -> _Live:
        if self._live is None:
            raise ProtocolError("internal error: checkpoints used before attach()")
        return self._live

    # -- guards while fast-forwarding ---------------------------------------------------

    def recorder(self, record: Recorder) -> Recorder:
        """``record``, except while fast-forwarding (those records are in the log already)."""

        def guarded(kind: str, **fields: Scalar) -> None:
            if not self.resuming:
                record(kind, **fields)

        return guarded

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        """Channel observer: no message may move before the latest checkpoint is reached."""
        if self.resuming:
            raise ProtocolError(
                f"internal error: {envelope.describe()} was {direction} while resuming, "
                "before the latest checkpoint; the job's steps do not match its checkpoints"
            )

    def _arrive(self, saved: dict[str, t.Any]) -> None:
        live = self._attached()
        position = saved["position"]
        live.rng.seek(int(position["drbg"]))
        live.channel.restore(position["channel"])
        live.stats.restore(position["stats"])
        self.resuming = False
        live.record("resume", checkpoint=str(saved["name"]), n=int(saved["n"]))


@dataclass(frozen=True)
class _Live:
    rng: Drbg
    channel: Channel
    stats: MessageStats
    record: Recorder
    audit_position: t.Callable[[], object]


def _path(directory: Path, name: str) -> Path:
    return directory / (name.replace("/", "-") + ".json")


def _round_in(state: dict[str, t.Any]) -> int | None:
    value = state.get("round")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _load(directory: Path) -> dict[str, dict[str, t.Any]]:
    """Every complete checkpoint by name; abandoned temporaries are removed."""
    if not directory.exists():
        return {}
    for tmp in directory.glob(".*"):
        tmp.unlink(missing_ok=True)
    saved: dict[str, dict[str, t.Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ProtocolError(
                f"checkpoint {path} is unreadable ({exc}); restore the state directory "
                "from backup, or delete the job folder and run the job again"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProtocolError(f"checkpoint {path} is not a {FORMAT} file")
        saved[str(data["name"])] = data
    return saved
