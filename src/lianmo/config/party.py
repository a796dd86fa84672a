"""The party node config (TOML): identity, listen address, state, limits, data catalogue,
and the policy of what jobs it accepts (:mod:`lianmo.config.policy`).

Each field declares its key in the file, its default and its constraint in one place;
relative paths are relative to the config file.
"""

from __future__ import annotations

import tomllib
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from lianmo.config._read import ListOf, Section, TableOf, checked, read
from lianmo.config._rules import FilePath, Interval, Name, Options, OrNone, Text, Where, shown
from lianmo.config.policy import NodePolicy
from lianmo.errors import ConfigError

AUDIT_LEVELS = ("full", "chain")
"""full: signed records plus a payload store (verify and replay work); chain: the hash
chain only, without signatures or payloads (smaller, but neither verifiable nor
replayable)."""
#: ``[compute] backend`` values: a process pool on this machine, no worker processes, or
#: tasks on a Ray cluster
COMPUTE_BACKENDS = ("local", "serial", "ray")
RAY_ADDRESS = (
    "the Ray cluster: 'ray://HEAD:10001', 'auto' (the cluster this machine is in) or "
    "'local' (a Ray instance inside the node)"
)
MEGABYTES = Interval(int, 1)
SECONDS = Interval(float, 1)
FILE = FilePath("a file path, relative to the party config")


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One entry of a party's catalogue: a data set name mapped to a local file."""

    name: str  # the table's name, [datasets.NAME]
    path: Path = field(metadata=checked(FilePath("a data file path: .csv, .csv.gz or .parquet")))
    id_column: str = field(metadata=checked(Text("a column name")))
    label_column: str | None = field(default=None, metadata=checked(OrNone(Text("a column name"))))


CATALOGUE = TableOf(DatasetEntry, Name(), "a table of [datasets.NAME] tables")


@dataclass(frozen=True, slots=True)
class PartyConfig:
    """Everything a party node needs: identity, listen address, state, data catalogue, policy."""

    name: str = field(metadata=checked(Name()))
    listen: str = field(metadata=checked(Text("a string 'host:port'")))
    state_dir: Path = field(metadata=checked(FilePath("a folder path")))
    cert: Path = field(metadata=checked(FILE, key="tls.cert"))
    key: Path = field(metadata=checked(FILE, key="tls.key"))
    ca: Path = field(metadata=checked(FILE, key="tls.ca"))
    datasets: dict[str, DatasetEntry] = field(default_factory=dict, metadata=checked(CATALOGUE))
    coordinators: tuple[str, ...] = field(
        default=("coordinator",), metadata=checked(ListOf(Name(), "a list of certificate names"))
    )
    max_message_mb: int = field(default=2048, metadata=checked(MEGABYTES))
    max_job_mb: int = field(default=65536, metadata=checked(MEGABYTES))
    recv_timeout_s: float = field(default=1800.0, metadata=checked(SECONDS))
    send_deadline_s: float = field(default=600.0, metadata=checked(SECONDS))
    peer_retries: int = field(default=8, metadata=checked(Interval(int, 0)))
    peer_backoff_s: float = field(default=0.2, metadata=checked(Interval(float, 0.01)))
    # [limits]: what one peer's incoming calls may hold (threads, time) at this node
    first_chunk_s: float = field(
        default=30.0, metadata=checked(SECONDS, key="limits.first_chunk_s")
    )
    chunk_gap_s: float = field(default=60.0, metadata=checked(SECONDS, key="limits.chunk_gap_s"))
    calls_per_peer: int = field(
        default=4, metadata=checked(Interval(int, 1, 12), key="limits.calls_per_peer")
    )
    compute_backend: str = field(
        default="local", metadata=checked(Options(COMPUTE_BACKENDS), key="compute.backend")
    )
    compute_workers: int | None = field(  # None: all usable cores
        default=None, metadata=checked(OrNone(Interval(int, 1)), key="compute.workers")
    )
    compute_address: str | None = field(
        default=None, metadata=checked(OrNone(Text(RAY_ADDRESS)), key="compute.address")
    )
    signing_key: Path | None = field(
        default=None, metadata=checked(OrNone(FILE), key="audit.signing_key")
    )
    audit_level: str = field(
        default="full", metadata=checked(Options(AUDIT_LEVELS), key="audit.level")
    )
    health_listen: str | None = field(
        default=None,
        metadata=checked(
            OrNone(Text("a string 'host:port' (plaintext gRPC health only, for probes)"))
        ),
    )
    policy: NodePolicy = field(default_factory=NodePolicy, metadata=checked(Section(NodePolicy)))

    @property
    def signing_key_path(self) -> Path:
        """The audit signing key: ``[audit] signing_key``, else NAME.signing.key by tls.key."""
        return self.signing_key or self.key.parent / f"{self.name}.signing.key"

    @classmethod
    def load(cls, path: str | Path) -> PartyConfig:
        """Read and validate a party config TOML file; relative paths are relative to it."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"party config {path} does not exist") from None
        except (OSError, ValueError, RecursionError) as exc:  # TOMLDecodeError, not UTF-8
            raise ConfigError(f"party config {path} cannot be read: {exc}") from exc
        return cls.from_dict(data, base=path.parent, source=str(path))

    @classmethod
    def from_dict(cls, data: t.Any, *, base: Path, source: str = "party config") -> PartyConfig:
        """Validate a parsed config mapping."""
        at = Where(source, base=base, table="table")
        config = read(cls, data, at)
        _check_compute(config, at.child("compute"))
        return config

    def dataset(self, name: str) -> DatasetEntry:
        """The catalogue entry for ``name``, or a ConfigError listing what exists."""
        try:
            return self.datasets[name]
        except KeyError:
            raise ConfigError(
                f"party '{self.name}' has no data set named '{name}' in its catalogue "
                f"(it has: {sorted(self.datasets) or 'none'}); add it under [datasets.{name}] "
                "in the party config or fix the job spec"
            ) from None


def _check_compute(config: PartyConfig, at: Where) -> None:
    """``workers`` belongs to the local pool, ``address`` to Ray (which needs it)."""
    backend = config.compute_backend
    if config.compute_workers is not None and backend != "local":
        at.child("workers").reject(
            f"is {shown(config.compute_workers)} but workers applies only to backend = 'local' "
            f"(compute.backend is {backend!r}); remove it or switch the backend"
        )
    if backend == "ray" and config.compute_address is None:
        at.child("address").reject(
            f"is missing but backend = 'ray' needs it: {RAY_ADDRESS}; add it"
        )
    if backend != "ray" and config.compute_address is not None:
        at.child("address").reject(
            f"is {shown(config.compute_address)} but address applies only to backend = 'ray' "
            f"(compute.backend is {backend!r}); remove it or switch the backend"
        )
