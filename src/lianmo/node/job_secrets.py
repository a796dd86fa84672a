"""A party's per-job secrets (the DRBG seed), kept outside the job folder auditors receive.

The seed of job ``J``, from which the party's Paillier key, masks and every other random
draw of the job derive, lives at ``SECRETS/J/drbg.seed`` (folders mode 0700, file 0600),
where ``SECRETS`` is the party config's ``secrets_dir``, by default ``state_dir/secrets``.
The job folder ``state_dir/jobs/J/`` then holds no secret and can be handed to auditors
as it is.

Nodes before this layout kept the seed in the job folder. A node moves such a seed out
when it restores or runs the job; replay reads one it finds there, with a note, and never
changes the folder it replays.
"""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

from lianmo.config import PartyConfig
from lianmo.errors import AuditError, ConfigError
from lianmo.fileio import write_atomic

SEED_FILE = "drbg.seed"
_LOG = logging.getLogger("lianmo.node")


def seed_path(config: PartyConfig, job_id: str) -> Path:
    """Where this party keeps job ``job_id``'s seed."""
    return config.secrets_path / job_id / SEED_FILE


def refuse_reused_id(config: PartyConfig, job_id: str) -> None:
    """ConfigError if a seed of an earlier job with this id is kept (for a new job folder).

    A new job must not run on an old job's seed (the same key and masks over other data),
    and that seed must not be overwritten: an archived copy of the old job's folder can
    only be replayed with it.
    """
    path = seed_path(config, job_id)
    if path.exists():
        raise ConfigError(
            f"party '{config.name}' already ran a job '{job_id}' (its seed is still kept); "
            "choose a new job_id"
        )


def job_seed(config: PartyConfig, job_id: str, job_dir: Path, draw: t.Callable[[], bytes]) -> bytes:
    """The seed a node runs job ``job_id`` with: drawn on the first run, read back after.

    Raises
    ------
    ConfigError
        If the job already has checkpoints but its seed is gone: a fresh seed would give
        other keys and messages than the peers already hold.
    """
    move_legacy_seed(config, job_id, job_dir)
    path = seed_path(config, job_id)
    if path.exists():
        return path.read_bytes()
    if any((job_dir / "checkpoints").glob("*.json")):
        raise ConfigError(
            f"party '{config.name}': job '{job_id}' has checkpoints but its seed {path} is "
            "missing, so it cannot resume; restore that file from the party's backup, or "
            "run the job again under a new job_id"
        )
    seed = draw()
    _write_seed(path, seed)
    return seed


def move_legacy_seed(config: PartyConfig, job_id: str, job_dir: Path) -> bool:
    """Move a seed an older node left in the job folder to the secrets folder.

    Returns True if one was moved. The copy is written (and fsynced) before the job
    folder's file is removed, so a crash in between leaves two equal copies, not none.
    """
    legacy = job_dir / SEED_FILE
    if not legacy.exists():
        return False
    seed = legacy.read_bytes()
    path = seed_path(config, job_id)
    if path.exists() and path.read_bytes() != seed:
        raise ConfigError(
            f"party '{config.name}': job '{job_id}' has two different seeds, {legacy} and "
            f"{path}; keep the one the job ran with (its log's seed_commitment tells, see "
            "lianmo audit replay) and delete the other"
        )
    if not path.exists():
        _write_seed(path, seed)
    legacy.unlink()
    _LOG.warning(
        "job %s: moved its seed out of the job folder to %s (the job folder goes to "
        "auditors; the seed must not)",
        job_id,
        path,
        extra={"job_id": job_id},
    )
    return True


def replay_seed(config: PartyConfig, job_id: str, job_dir: Path) -> tuple[bytes, str | None]:
    """The seed replay runs job ``job_id`` with, and a note if it came from the job folder.

    Raises
    ------
    AuditError
        If neither the secrets folder nor the job folder holds it.
    """
    path = seed_path(config, job_id)
    legacy = job_dir / SEED_FILE
    for where in (path, legacy):
        try:
            seed = where.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise AuditError(
                f"party '{config.name}': cannot read job '{job_id}''s seed {where} ({exc}); "
                "replay needs the seed the node drew for this job"
            ) from exc
        if where == legacy:
            return seed, (
                f"the seed was read from the job folder ({legacy}), where an older node "
                f"kept it; move it to {path} and never hand a folder holding it to auditors"
            )
        return seed, None
    raise AuditError(
        f"party '{config.name}' has no seed for job '{job_id}': {path} does not exist (nor "
        f"{legacy}); replay needs the seed the node drew for this job: run it with the "
        "config of the node that ran the job (its secrets_dir), or restore the seed from "
        "the party's backup"
    )


def _write_seed(path: Path, seed: bytes) -> None:
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, seed, mode=0o600)
