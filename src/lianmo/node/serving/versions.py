"""Model versions a party serves: its trained shares, and which one is promoted per name.

A *version* is a training job of this party that succeeded and left a model share
(``jobs/JOB/model.json``): its id, its share's sha256 and the job spec's digest, which is
the same at every party of the job. ``lianmo model promote NAME JOB`` makes it the version
this party serves under NAME; ``rollback`` returns to the one promoted before.

Promotions live in one signed, hash-chained log per party,
``STATE_DIR/models/versions.jsonl`` (the audit log's format, :mod:`lianmo.audit.log`):
``versions_start`` (the signing key), then one ``promote`` or ``rollback`` record each.
The log is the only record of what is promoted; the node reads it again whenever the file
changes, and refuses to serve if the chain or a signature is broken
(:func:`lianmo.node.serving.signed_log.check_log`, which checks the request record's
seals too).

Parties never mix shares of different models: a guest asks its hosts for the version it
serves (job id and spec digest) and a host answers only for the version it has promoted
under that name (:mod:`lianmo.node.serving.service`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import typing as t
from dataclasses import dataclass
from pathlib import Path

from lianmo.audit.log import read_records
from lianmo.audit.signing import SigningKey
from lianmo.config import JobSpec, PartyConfig
from lianmo.config.model import MODEL_TYPES
from lianmo.errors import ConfigError, LianmoError
from lianmo.node.serving.signed_log import append, check_log
from lianmo.node.share import SHARE_FILE

LOG_FILE = "versions.jsonl"
LOG_ID = "model-versions"  # the log's job_id field
START = "versions_start"  # its first record, naming the signing key
DEFAULT_NAME = "default"


@dataclass(frozen=True, slots=True)
class Version:
    """One trained share of this party: the job, its share digest, spec digest and role."""

    job_id: str
    model_sha256: str
    spec_sha256: str
    role: str
    model_type: str
    purpose: str | None
    guest: str  # the party that trained it as guest (who may ask a host for its part)
    hosts: tuple[str, ...]
    folder: Path


@dataclass(frozen=True, slots=True)
class Promotion:
    """The version promoted under a name, as the signed log says."""

    name: str
    job_id: str
    model_sha256: str
    spec_sha256: str
    seq: int  # the log record that promoted it
    at: float = 0.0  # when it became the served version (its promote or rollback record)
    # the version this promotion replaced; None after a rollback (a withdrawn version is
    # never handed over to)
    replaced: Promotion | None = None


def versions_dir(config: PartyConfig) -> Path:
    return config.state_dir / "models"


def find_versions(config: PartyConfig) -> list[Version]:
    """Every succeeded training job of this party that left a model share, oldest first."""
    jobs = config.state_dir / "jobs"
    found = []
    for folder in sorted(jobs.iterdir()) if jobs.is_dir() else ():
        version = read_version(config, folder)
        if version is not None:
            found.append(version)
    return sorted(found, key=lambda v: (v.folder.stat().st_mtime, v.job_id))


def read_version(config: PartyConfig, folder: Path) -> Version | None:
    """The version a job folder holds, or None if it holds no finished model share."""
    share, result, spec_file = folder / SHARE_FILE, folder / "result.json", folder / "spec.json"
    if not (share.is_file() and result.is_file() and spec_file.is_file()):
        return None
    try:
        spec = JobSpec.from_json(spec_file.read_bytes())
        me = spec.party(config.name)
    except (OSError, LianmoError):
        return None
    if spec.task != "train":
        return None
    return Version(
        job_id=spec.job_id,
        model_sha256=hashlib.sha256(share.read_bytes()).hexdigest(),
        spec_sha256=spec.digest(),
        role=me.role,
        model_type=next(k for k, cls in MODEL_TYPES.items() if isinstance(spec.model, cls)),
        purpose=spec.purpose,
        guest=spec.guest,
        hosts=spec.hosts,
        folder=folder,
    )


class VersionLog:
    """The party's signed promotion log; thread-safe, re-read when the file changes."""

    def __init__(self, config: PartyConfig, signer: SigningKey | None = None) -> None:
        self.config = config
        self.path = versions_dir(config) / LOG_FILE
        self._signer = signer
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._stacks: dict[str, list[Promotion]] = {}

    # -- reading -----------------------------------------------------------------------

    def current(self, name: str) -> Promotion | None:
        """The version promoted under ``name`` now (None: none)."""
        stack = self._read().get(name, [])
        return stack[-1] if stack else None

    def handing_over(self, name: str, within_s: float, now: float) -> Promotion | None:
        """The version the one served under ``name`` replaced, if that promotion is less
        than ``within_s`` seconds old at ``now`` (None otherwise, and after a rollback)."""
        current = self.current(name)
        if current is None or current.replaced is None or now - current.at >= within_s:
            return None
        return current.replaced

    def promoted(self) -> dict[str, list[Promotion]]:
        """Per name, the promotions in force, oldest first (the last one is served)."""
        return {k: list(v) for k, v in self._read().items()}

    def _read(self) -> dict[str, list[Promotion]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                self._stacks = _replay(self.path, self.config.name)
                self._stamp = stamp
            return self._stacks

    # -- writing -----------------------------------------------------------------------

    def promote(self, name: str, version: Version, *, operator: str = "") -> Promotion:
        """Serve ``version`` under ``name`` from now on; logged and signed."""
        current = self.current(name)
        if current is not None and current.job_id == version.job_id:
            raise ConfigError(
                f"party '{self.config.name}' already serves version '{version.job_id}' as "
                f"model '{name}'"
            )
        self._append(
            "promote",
            name=name,
            version=version.job_id,
            model_sha256=version.model_sha256,
            spec_sha256=version.spec_sha256,
            role=version.role,
            previous=None if current is None else current.job_id,
            operator=operator,
        )
        promoted = self.current(name)
        assert promoted is not None
        return promoted

    def rollback(self, name: str, *, operator: str = "") -> Promotion:
        """Serve the version promoted before the current one under ``name``; logged."""
        stack = self._read().get(name, [])
        if len(stack) < 2:
            raise ConfigError(
                f"party '{self.config.name}' has no earlier version of model '{name}' to roll "
                f"back to ({'one version' if stack else 'none'} promoted); promote one instead"
            )
        back = stack[-2]
        self._append(
            "rollback",
            name=name,
            version=back.job_id,
            model_sha256=back.model_sha256,
            spec_sha256=back.spec_sha256,
            withdrawn=stack[-1].job_id,
            operator=operator,
        )
        current = self.current(name)
        assert current is not None
        return current

    def _append(self, kind: str, **fields: str | None) -> None:
        if self._signer is None:
            raise ConfigError(
                f"party '{self.config.name}' needs its audit signing key to change promoted "
                "model versions (the promotion log is signed)"
            )
        with self._lock:
            _replay(self.path, self.config.name)  # never extend a broken log
            append(
                self.path,
                party=self.config.name,
                log_id=LOG_ID,
                start=START,
                signer=self._signer,
                kind=kind,
                **fields,
            )
            self._stamp = None


def _replay(path: Path, party: str) -> dict[str, list[Promotion]]:
    """The promotions in force, from a verified log (ConfigError naming the broken record)."""
    stacks: dict[str, list[Promotion]] = {}
    records, problem = check_log(path, party=party, log_id=LOG_ID, start=START)
    if problem is not None:
        raise ConfigError(
            f"party '{party}': the model version log {path} {problem}; no version is served "
            "until it is restored from a backup"
        )
    for seq, record in enumerate(records):
        kind, name = record.get("kind"), str(record.get("name", ""))
        promotion = Promotion(
            name,
            str(record.get("version")),
            str(record.get("model_sha256")),
            str(record.get("spec_sha256")),
            seq,
        )
        at = float(t.cast(float, record.get("time", 0.0)))
        if kind == "promote":
            stack = stacks.setdefault(name, [])
            replaced = stack[-1] if stack else None
            stack.append(dataclasses.replace(promotion, at=at, replaced=replaced))
        elif kind == "rollback":
            stack = stacks.get(name, [])
            if len(stack) >= 2:
                stack.pop()
                stack[-1] = dataclasses.replace(stack[-1], at=at, replaced=None)
    return stacks


def signing_key_of(path: Path) -> str | None:
    """The public signing key a version log was started with (None: no log)."""
    if not path.exists():
        return None
    for record in read_records(path):
        return str(record.get("signing_key", "")) or None
    return None


def describe(version: Version) -> dict[str, t.Any]:
    """A version as plain JSON (``lianmo model list --json``)."""
    return {
        "version": version.job_id,
        "model_sha256": version.model_sha256,
        "spec_sha256": version.spec_sha256,
        "role": version.role,
        "model": version.model_type,
        "purpose": version.purpose,
        "guest": version.guest,
        "hosts": list(version.hosts),
    }


__all__ = [
    "DEFAULT_NAME",
    "Promotion",
    "Version",
    "VersionLog",
    "describe",
    "find_versions",
    "read_version",
]
