"""What every model share has in common: who owns it, how it is written, read and checked.

A share is one party's part of a trained model, kept in ``jobs/<job>/model.json``: its
own weights or split rules, never another party's. Every kind of share names its format
(``FORMAT``), so a scoring job finds the right kind from the file alone
(:func:`share_format`), and is read through :meth:`ModelShare.load`, which turns a
missing or malformed file, or a share of another party or role, into one clear error.
"""

from __future__ import annotations

import abc
import hashlib
import json
import typing as t
from pathlib import Path

from lianmo.errors import ConfigError
from lianmo.fileio import write_atomic

SHARE_FILE = "model.json"


class ModelShare(abc.ABC):
    """Base of the model shares: ``job_id``, ``party``, ``role``, ``dataset`` and format."""

    FORMAT: t.ClassVar[str]
    #: older formats this kind still reads (it writes only ``FORMAT``)
    KIND: t.ClassVar[str]  # the model type, as job specs name it
    job_id: str
    party: str
    role: str
    dataset: str
    feature_names: tuple[str, ...]

    @classmethod
    def formats(cls) -> tuple[str, ...]:
        """Every format this kind of share reads (``FORMAT`` unless a kind has several)."""
        return (cls.FORMAT,)

    @abc.abstractmethod
    def to_json(self) -> bytes:
        """The share as the bytes of ``model.json`` (its sha256 is the model digest)."""

    @classmethod
    @abc.abstractmethod
    def from_raw(cls, raw: dict[str, t.Any]) -> t.Self:
        """The share from the parsed JSON (KeyError, TypeError, ValueError if malformed)."""

    @abc.abstractmethod
    def problem(self, party: str, role: str) -> str:
        """Why this is not a consistent share of ``role`` ``party`` ('' if it is)."""

    def write(self, job_dir: Path) -> str:
        """Write ``model.json`` atomically into ``job_dir``; returns its sha256 (hex)."""
        data = self.to_json()
        write_atomic(job_dir / SHARE_FILE, data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path, *, party: str, role: str) -> t.Self:
        """Read and check a share file: right format, party and role, consistent contents."""
        try:
            raw = json.loads(path.read_bytes())
            fmt = raw.get("format") if isinstance(raw, dict) else None
            if fmt not in cls.formats():  # another kind's share: say so, not which key it lacks
                raise ConfigError(
                    f"party '{party}': {path} is not a {cls.KIND} model share (format "
                    f"{fmt!r}, expected {' or '.join(map(repr, cls.formats()))})"
                )
            share = cls.from_raw(raw)
        except FileNotFoundError:
            raise ConfigError(
                f"party '{party}' has no model share at {path}: was model_job trained with "
                "this party, and did it succeed?"
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"party '{party}': model share {path} is malformed: {exc}") from exc
        problem = share.problem(party, role)
        if problem:
            raise ConfigError(
                f"party '{party}': {path} is not a consistent {role} share of a {cls.KIND} "
                f"model: {problem}"
            )
        return share

    def ownership_problem(self, party: str, role: str, format: str) -> str:
        """The checks every share shares: its format, its party and its role."""
        if format not in self.formats():
            return f"format {format!r}, expected {' or '.join(map(repr, self.formats()))}"
        if (self.party, self.role) != (party, role):
            return f"it belongs to {self.role} '{self.party}'"
        return ""


def share_format(path: Path) -> str | None:
    """The ``format`` a share file declares; None if it is missing or unreadable."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return str(raw.get("format", "")) if isinstance(raw, dict) else None
