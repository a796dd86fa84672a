"""A party's job framed by its audit trail: what is recorded before, around and after it.

The same sequence runs live (records go to the party's :class:`AuditLog`) and under
``lianmo audit replay`` (records are compared with the logged ones), so that replay
checks exactly what the node did:

1. ``job_start``: role, spec digest (the spec itself goes to the payload store), lianmo
   version, public signing key, a commitment to the DRBG seed and one to the data file;
   the job's purpose, a digest of the data set's purpose policy and, with a consent
   register, a commitment to it and the time consent was checked at
   (:mod:`lianmo.node.data_use`);
2. the signing-key exchange (:mod:`lianmo.protocols.signing_keys`) and one ``peer_key``
   record per peer, then every party confirms that its peers hold the same spec
   (:mod:`lianmo.protocols.same_spec`) before any data-dependent message;
3. the job itself, whose protocols add ``phase``, ``round``, ``level``, ``checkpoint``,
   ``evaluation`` records and one ``message`` record per message, and ``data_use`` (the
   commitment to whose data the job used) after alignment;
4. ``model`` (digest of the model share written, if any) and ``job_end``.
"""

from __future__ import annotations

import hashlib
import hmac
import typing as t
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from lianmo.compute.backend import ComputeBackend
from lianmo.config import DatasetEntry, JobSpec
from lianmo.crypto.drbg import Drbg
from lianmo.data.consent import parse_time
from lianmo.node.data_use import JobDataset, policy_digest
from lianmo.node.job import run_party_job
from lianmo.node.job_data import JobOutcome, model_path
from lianmo.protocols.context import (
    Checkpoints,
    Limits,
    NoCheckpoints,
    Progress,
    Recorder,
    RoleContext,
    no_progress,
    no_record,
)
from lianmo.protocols.same_spec import confirm_same_spec
from lianmo.protocols.signing_keys import exchange_signing_keys
from lianmo.transport.channel import Channel

_SEED_DOMAIN = b"lianmo.audit.seed-commitment\x00"
_DATA_LABEL = "audit/data-commitment"
_CONSENT_LABEL = "audit/consent-commitment"
_CHUNK = 1 << 20


class JobAudit(t.Protocol):
    """Where the framing records go: the live log, or replay's comparison."""

    def record(self, kind: str, **fields: str | int | float | bool | None) -> None: ...

    def keep(self, data: bytes) -> str | None: ...


@dataclass(frozen=True)
class PeerKeys:
    """Checkpoint ``keys``: the signing key each peer sent at the start of the job."""

    peers: t.Mapping[str, str]

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {"peers": dict(self.peers)}

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> PeerKeys:
        return cls({str(k): str(v) for k, v in raw["peers"].items()})


def software_version() -> str:
    return version("lianmo")


def seed_commitment(seed: bytes) -> str:
    """A public commitment to a DRBG seed: replay checks it before using a seed file."""
    return hashlib.sha256(_SEED_DOMAIN + seed).hexdigest()


def file_commitment(rng: Drbg, path: Path, label: str = _DATA_LABEL) -> str:
    """HMAC of a file's bytes under a key from the party's DRBG.

    Only the seed holder can test a file against it, so the log says nothing about the
    data to anyone else, while replay can tell "the data changed" from other causes.
    """
    mac = hmac.new(rng.child(label).random_bytes(32), digestmod="sha256")
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            mac.update(chunk)
    return mac.hexdigest()


def limit_fields(limits: Limits) -> dict[str, int]:
    """The party's own limits as ``job_start`` records them (replay runs with them again)."""
    cap = limits.max_peer_set
    return {} if cap is None else {"max_peer_set": cap}


def logged_limits(job_start: t.Mapping[str, object]) -> Limits:
    """The limits a logged ``job_start`` records (see :func:`limit_fields`)."""
    cap = job_start.get("max_peer_set")
    return Limits(max_peer_set=cap if isinstance(cap, int) else None)


def _use_fields(
    rng: Drbg, spec: JobSpec, dataset: DatasetEntry | None, started_at: datetime
) -> dict[str, str]:
    """``job_start``'s purpose, policy digest and consent commitment (what applies)."""
    out = {} if spec.purpose is None else {"purpose": spec.purpose}
    if dataset is None:
        return out
    out["policy_sha256"] = policy_digest(dataset)
    if dataset.consent is not None:
        out["consent_commitment"] = file_commitment(rng, dataset.consent, _CONSENT_LABEL)
        out["consent_at"] = started_at.isoformat()
    return out


def logged_start(job_start: t.Mapping[str, object]) -> datetime:
    """When a logged job started at the party: its ``consent_at``, else the record's time."""
    consent_at = job_start.get("consent_at")
    if isinstance(consent_at, str):
        return parse_time(consent_at)
    return datetime.fromtimestamp(float(str(job_start.get("time", 0))), UTC)


def role_context(
    spec: JobSpec,
    party: str,
    channel: Channel,
    rng: Drbg,
    *,
    compute: ComputeBackend,
    progress: Progress = no_progress,
    record: Recorder = no_record,
    checkpoints: Checkpoints | None = None,
    limits: Limits | None = None,
) -> RoleContext:
    """The context a party runs its role of ``spec`` in, live and under replay alike."""
    return RoleContext(
        job_id=spec.job_id,
        party=party,
        channel=channel,
        rng=rng,
        guest=spec.guest,
        hosts=spec.hosts,
        arbiter=spec.arbiter if spec.task == "train" else None,
        progress=progress,
        compute=compute,
        record=record,
        checkpoints=checkpoints or NoCheckpoints(),
        roles={p.name: p.role for p in spec.parties},
        limits=limits or Limits(),
    )


def run_audited(
    ctx: RoleContext,
    spec: JobSpec,
    dataset: DatasetEntry | None,
    job_dir: Path,
    audit: JobAudit,
    *,
    signing_key: str,
    started_at: datetime,
    identity: t.Mapping[str, str] | None = None,
) -> JobOutcome:
    """Run this party's role of ``spec`` between its framing audit records.

    ``started_at`` is when the job first started at this party (replay: as logged); a
    consent register is read as of then.
    """
    role = spec.party(ctx.party).role
    spec_json = spec.to_json()
    data = None
    if dataset is not None:
        data = JobDataset.open(
            ctx.party, dataset, spec.purpose, as_of=started_at, rng=ctx.rng, folder=job_dir
        )
    audit.record(
        "job_start",
        role=role,
        task=spec.task,
        spec_sha256=spec.digest(),
        spec_payload=audit.keep(spec_json),
        software=software_version(),
        signing_key=signing_key,
        seed_commitment=seed_commitment(ctx.rng.seed),
        dataset=None if dataset is None else dataset.name,
        data_commitment=None if dataset is None else file_commitment(ctx.rng, dataset.path),
        **_use_fields(ctx.rng, spec, dataset, started_at),
        **limit_fields(ctx.limits),
        **(identity or {}),
    )
    audit.record("phase", name="keys")
    if ctx.checkpoints.restore("keys", PeerKeys) is None:
        peer_keys = exchange_signing_keys(ctx, signing_key)
        for peer, key in sorted(peer_keys.items()):
            audit.record("peer_key", peer=peer, signing_key=key)
        confirm_same_spec(ctx, spec.digest())
        ctx.checkpoints.save("keys", PeerKeys(peer_keys))
    if spec.task == "predict" and role != "arbiter":
        share = model_path(job_dir, spec)
        if share.exists():
            audit.record("model_input", sha256=hashlib.sha256(share.read_bytes()).hexdigest())
    outcome = run_party_job(ctx, spec, data, job_dir)
    summary = outcome.summary
    for name, ev in (("validation", summary.validation), ("metrics", summary.metrics)):
        if ev is not None:  # the guest's own evaluation, as it reports it
            audit.record("evaluation", on=name, **ev.to_json())
    if summary.model_digest is not None:
        audit.record("model", sha256=summary.model_digest)
    audit.record("job_end", state="succeeded")
    return outcome
