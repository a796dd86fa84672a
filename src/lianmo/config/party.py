"""The party node config (TOML): identity, listen address, state, limits, data catalogue,
and the policy of what jobs it accepts (:mod:`lianmo.config.policy`).

Each field declares its key in the file, its default and its constraint in one place;
relative paths are relative to the config file.
"""

from __future__ import annotations

import os
import tomllib
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lianmo.config._read import ListOf, Section, TableOf, checked, read
from lianmo.config._rules import (
    FilePath,
    Interval,
    Name,
    Options,
    OrNone,
    Rule,
    Text,
    Where,
    shown,
)
from lianmo.config.policy import NodePolicy
from lianmo.config.serving import ServingConfig
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
#: ``[compute] address`` values that keep Ray's traffic on this machine (see _check_compute)
RAY_ON_THIS_MACHINE = ("local", "auto")
#: Ray's own TLS switch and files (ray._common.tls_utils.load_certs_from_env)
RAY_TLS_ENV = ("RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT")
MEGABYTES = Interval(int, 1)
SECONDS = Interval(float, 1)
FILE = FilePath("a file path, relative to the party config")


#: cells read as missing by default (stripped, case-sensitive): the empty cell and the
#: usual NA spellings of spreadsheets, pandas and databases
DEFAULT_MISSING_VALUES = (
    "",
    "NA",
    "N/A",
    "n/a",
    "NaN",
    "nan",
    "NULL",
    "null",
    "None",
    "#N/A",
    "<NA>",
)
COLUMN_NAMES = ListOf(Text("a column name"), "a list of column names")
#: a purpose's column list that allows every column the data set offers
ALL_COLUMNS = "*"


@dataclass(frozen=True, slots=True)
class PurposeColumns(Rule):
    """``[datasets.NAME.purposes]``: each purpose a job may serve, mapped to the feature
    columns it may use (a list, or ``"*"`` for every column the data set offers)."""

    expected: str = (
        f"a table mapping purposes to lists of column names (or {ALL_COLUMNS!r} for all)"
    )

    def __call__(self, value: t.Any, at: Where) -> dict[str, tuple[str, ...] | None]:
        if not isinstance(value, dict):
            at.fail(value, self.expected, f"write it as [{at.path}] with PURPOSE = [columns]")
        out: dict[str, tuple[str, ...] | None] = {}
        for purpose, columns in value.items():
            Name()(purpose, Where(at.source, f"{at.path} key"))
            if columns == ALL_COLUMNS:
                out[purpose] = None
                continue
            names = COLUMN_NAMES(columns, at.child(purpose))
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                at.child(purpose).reject(f"names {repeated} more than once; list each column once")
            out[purpose] = names
        return out


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One entry of a party's catalogue: a data set name mapped to a local file.

    ``categorical`` names the feature columns read as categories (text or codes);
    ``missing_values`` the cell texts read as missing in feature columns (``[]``: a
    missing cell is an error); ``columns``, if set, the only feature columns any job
    may use. Ids and labels are never missing.

    ``purposes``, if set, lists the purposes a job may serve with this data set, each with
    the columns it may use (inside ``columns``); a job with another purpose, or none, is
    refused. ``consent``, if set, is the consent register (:mod:`lianmo.data.consent`): a
    job then uses only the ids with consent valid for its purpose when it starts.
    """

    name: str  # the table's name, [datasets.NAME]
    path: Path = field(metadata=checked(FilePath("a data file path: .csv, .csv.gz or .parquet")))
    id_column: str = field(metadata=checked(Text("a column name")))
    label_column: str | None = field(default=None, metadata=checked(OrNone(Text("a column name"))))
    categorical: tuple[str, ...] = field(default=(), metadata=checked(COLUMN_NAMES))
    missing_values: tuple[str, ...] = field(
        default=DEFAULT_MISSING_VALUES,
        metadata=checked(ListOf(Text("a cell text"), "a list of cell texts, [] for none")),
    )
    columns: tuple[str, ...] | None = field(default=None, metadata=checked(OrNone(COLUMN_NAMES)))
    purposes: dict[str, tuple[str, ...] | None] | None = field(
        default=None, metadata=checked(OrNone(PurposeColumns()))
    )
    consent: Path | None = field(
        default=None,
        metadata=checked(OrNone(FilePath("a consent register path: .csv, .csv.gz or .parquet"))),
    )


def _check_dataset(entry: DatasetEntry, at: Where) -> None:
    """A purpose may use only columns the data set offers, and never its id or label."""
    for purpose, names in (entry.purposes or {}).items():
        for name in names or ():
            if entry.columns is not None and name not in entry.columns:
                at.child("purposes").child(purpose).reject(
                    f"names column {name!r}, which the data set's columns do not offer; "
                    "add it to columns or remove it here"
                )
            if name in (entry.id_column, entry.label_column):
                at.child("purposes").child(purpose).reject(
                    f"names {name!r}, the id or label column; list feature columns only"
                )


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
    secrets_dir: Path | None = field(  # None: state_dir/secrets
        default=None, metadata=checked(OrNone(FilePath("a folder path")))
    )
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
    compute_tls_cert: Path | None = field(
        default=None, metadata=checked(OrNone(FILE), key="compute.tls_cert")
    )
    compute_tls_key: Path | None = field(
        default=None, metadata=checked(OrNone(FILE), key="compute.tls_key")
    )
    compute_tls_ca: Path | None = field(
        default=None, metadata=checked(OrNone(FILE), key="compute.tls_ca")
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
    metrics_listen: str | None = field(  # None: no metrics endpoint
        default=None,
        metadata=checked(
            OrNone(Text("a string 'host:port' (plaintext HTTP /metrics for Prometheus)")),
            key="metrics.listen",
        ),
    )
    # [retention]: the node prunes finished jobs this many days after they ended (None: never)
    prune_after_days: float | None = field(
        default=None,
        metadata=checked(OrNone(Interval(float, 0)), key="retention.prune_after_days"),
    )
    # [retention]: the node removes a day of its online request record this many days after
    # the day ended (None: never; docs/serving.md)
    request_record_days: float | None = field(
        default=None,
        metadata=checked(OrNone(Interval(float, 0)), key="retention.request_record_days"),
    )
    policy: NodePolicy = field(default_factory=NodePolicy, metadata=checked(Section(NodePolicy)))
    serving: ServingConfig = field(
        default_factory=ServingConfig, metadata=checked(Section(ServingConfig))
    )

    @property
    def secrets_path(self) -> Path:
        """Where per-job secrets (the DRBG seed) live: ``secrets_dir``, else state_dir/secrets.

        Never inside ``state_dir/jobs``: a job's folder is what auditors receive.
        """
        return self.secrets_dir or self.state_dir / "secrets"

    @property
    def ray_tls(self) -> tuple[Path, Path, Path] | None:
        """``[compute] tls_cert, tls_key, tls_ca`` for Ray's TLS, if the config sets them."""
        if self.compute_tls_cert and self.compute_tls_key and self.compute_tls_ca:
            return (self.compute_tls_cert, self.compute_tls_key, self.compute_tls_ca)
        return None

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
        for name, entry in config.datasets.items():
            _check_dataset(entry, at.child("datasets").child(name))
        _check_compute(config, at.child("compute"))
        _check_coordinator_tasks(config, at.child("policy").child("coordinator_tasks"))
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


def _check_coordinator_tasks(config: PartyConfig, at: Where) -> None:
    """A coordinator given its own tasks must be one this node accepts jobs from at all."""
    for name in config.policy.coordinator_tasks:
        if name not in config.coordinators:
            at.child(name).reject(
                f"names a coordinator that is not in coordinators {list(config.coordinators)}, "
                "so it would submit nothing; add it to coordinators or remove it"
            )


def _check_compute(config: PartyConfig, at: Where) -> None:
    """``workers`` belongs to the local pool, ``address`` and TLS to Ray (which needs them)."""
    backend = config.compute_backend
    tls_keys = {"tls_cert": config.compute_tls_cert, "tls_key": config.compute_tls_key}
    tls_keys["tls_ca"] = config.compute_tls_ca
    given = [k for k, v in tls_keys.items() if v is not None]
    if given and backend != "ray":
        at.child(given[0]).reject(
            f"applies only to backend = 'ray' (compute.backend is {backend!r}); remove it "
            "or switch the backend"
        )
    if given and len(given) < len(tls_keys):
        missing = [k for k in tls_keys if k not in given]
        at.child(missing[0]).reject(
            f"is missing: Ray's TLS needs tls_cert, tls_key and tls_ca together "
            f"(the config sets {', '.join(given)}); add {', '.join(missing)}"
        )
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
    if backend == "ray" and config.compute_address is not None:
        problem = ray_tls_problem(config.compute_address, config.ray_tls is not None)
        if problem:
            at.child("address").reject(problem)


def ray_tls_on(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment turns Ray's TLS on: RAY_USE_TLS=1 and its three files."""
    env = os.environ if environ is None else environ
    return env.get("RAY_USE_TLS", "0").lower() in ("1", "true") and all(
        env.get(name) for name in RAY_TLS_ENV
    )


def ray_tls_problem(
    address: str, tls_in_config: bool, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why Ray at ``address`` may not be used as configured, or None if it may.

    Ray carries decryption chunks (the Paillier key's factors) between the node and its
    workers in clear text unless its TLS is on. 'local' (a Ray instance inside the node)
    and 'auto' (the cluster this machine belongs to, checked at start to be this machine
    alone) keep that traffic on this machine; any other address crosses a network.
    """
    if address in RAY_ON_THIS_MACHINE or tls_in_config or ray_tls_on(environ):
        return None
    return (
        f"is {shown(address)}, a Ray cluster reached over the network, but Ray's TLS is off: "
        "Ray would carry this party's Paillier key factors in clear text. Turn Ray's TLS "
        "on with [compute] tls_cert, tls_key and tls_ca (or RAY_USE_TLS=1 with "
        f"{', '.join(RAY_TLS_ENV)} in the node's environment), with the cluster itself "
        "started with RAY_USE_TLS=1; or use address = 'local' or 'auto' on this machine"
    )
