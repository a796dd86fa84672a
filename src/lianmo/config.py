"""Typed, validated configuration: the party node config (TOML) and the job spec (YAML).

Both are parsed once into frozen dataclasses and passed down explicitly. Unknown keys
are errors, not warnings: a misspelt ``learning_rte`` silently ignored would train a
different model than the one the coordinator asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import typing as t
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from lianmo.errors import ConfigError

MIN_KEY_BITS = 2048
ROLES = ("guest", "host", "arbiter")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # fullmatch: '$' allows "name\n"
#: Largest integer a config field takes: seeds and counts stay int64 and print as JSON.
MAX_INT = 2**63 - 1

Mapping = dict[str, t.Any]


def _shown(value: t.Any) -> str:
    """``repr(value)``, cut to 200 characters, for an error message.

    An int of over 4300 digits, even inside a list, has no repr: ValueError.
    """
    try:
        text = repr(value)
    except ValueError:
        return f"a {type(value).__name__} holding an integer too large to print"
    return text if len(text) <= 200 else f"{text[:200]}..."


def _check_keys(
    where: str, data: Mapping, allowed: t.Iterable[str], required: t.Iterable[str] = ()
) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed), key=_shown)  # YAML keys need not be str
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {unknown}; allowed fields are {sorted(allowed)}"
        )
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where}: missing required field(s) {missing}")


def _typed(where: str, value: t.Any, kind: type | tuple[type, ...], what: str) -> t.Any:
    if (
        isinstance(value, bool)
        and kind is not bool
        and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise ConfigError(f"{where} must be {what}, got {_shown(value)}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where} must be {what}, got {_shown(value)}")
    return value


def _number(
    where: str,
    value: t.Any,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> t.Any:
    kind: tuple[type, ...] = (int,) if integer else (int, float)
    _typed(where, value, kind, "an integer" if integer else "a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if high is None and isinstance(value, int) and value > MAX_INT:
        raise ConfigError(f"{where} must be at most {MAX_INT}, got {_shown(value)}")
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"{'>' if low_open else '>='} {low}" + (
            f" and <= {high}" if high is not None else ""
        )
        raise ConfigError(f"{where} must be {bound}, got {_shown(value)}")
    return value


def check_name(where: str, name: t.Any) -> str:
    """A party or job name: letters, digits, '_', '.', '-', at most 63 characters."""
    _typed(where, name, str, "a string")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{where} {name!r} is not a valid name: use letters, digits, '_', '.', '-' "
            "(at most 63 characters, starting with a letter or digit)"
        )
    return str(name)


# ---- party node config -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One entry of a party's catalogue: a data set name mapped to a local file."""

    name: str
    path: Path
    id_column: str
    label_column: str | None = None


#: ``[compute] backend`` values: a process pool on this machine, or no worker processes.
AUDIT_LEVELS = ("full", "chain")
"""full: signed records plus a payload store (verify and replay work); chain: the hash
chain only, without signatures or payloads (smaller, but neither verifiable nor
replayable)."""
COMPUTE_BACKENDS = ("local", "serial", "ray")
# train a model; score with a trained one; or only align (find the common ids, e.g. to
# size the overlap before training)
TASKS = ("train", "predict", "align")


@dataclass(frozen=True, slots=True)
class PartyConfig:
    """Everything a party node needs: identity, listen address, state, data catalogue."""

    name: str
    listen: str
    state_dir: Path
    cert: Path
    key: Path
    ca: Path
    datasets: dict[str, DatasetEntry]
    coordinators: tuple[str, ...] = ("coordinator",)
    max_message_mb: int = 2048
    max_job_mb: int = 65536
    recv_timeout_s: float = 1800.0
    send_deadline_s: float = 600.0
    peer_retries: int = 8
    peer_backoff_s: float = 0.2
    compute_backend: str = "local"
    compute_workers: int | None = None
    compute_address: str | None = None
    signing_key: Path | None = None
    audit_level: str = "full"
    health_listen: str | None = None

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
    def from_dict(cls, data: Mapping, *, base: Path, source: str = "party config") -> PartyConfig:
        """Validate a parsed config mapping."""
        _check_keys(
            source,
            data,
            [
                "name",
                "listen",
                "health_listen",
                "state_dir",
                "tls",
                "datasets",
                "coordinators",
                "max_message_mb",
                "max_job_mb",
                "recv_timeout_s",
                "send_deadline_s",
                "peer_retries",
                "peer_backoff_s",
                "compute",
                "audit",
            ],
            ["name", "listen", "state_dir", "tls"],
        )
        audit = data.get("audit", {})
        _typed(f"{source}: [audit]", audit, dict, "a table with signing_key and level")
        _check_keys(f"{source}: [audit]", audit, ["signing_key", "level"])
        audit_level = audit.get("level", "full")
        if audit_level not in AUDIT_LEVELS:
            raise ConfigError(
                f"{source}: [audit] level must be one of {list(AUDIT_LEVELS)}, "
                f"got {_shown(audit_level)}"
            )
        signing_key = audit.get("signing_key")
        if signing_key is not None:
            where = f"{source}: [audit] signing_key"
            signing_key = base / _typed(where, signing_key, str, "a path")
        compute = data.get("compute", {})
        _typed(f"{source}: [compute]", compute, dict, "a table with backend and workers")
        _check_keys(f"{source}: [compute]", compute, ["backend", "workers", "address"])
        backend = compute.get("backend", "local")
        if backend not in COMPUTE_BACKENDS:
            raise ConfigError(
                f"{source}: [compute] backend must be one of {list(COMPUTE_BACKENDS)}, "
                f"got {_shown(backend)}"
            )
        workers = compute.get("workers")
        if workers is not None:
            workers = _number(f"{source}: [compute] workers", workers, low=1, integer=True)
            if backend != "local":
                raise ConfigError(
                    f"{source}: [compute] workers applies only to backend = 'local'; "
                    f"remove it or switch the backend (got backend = {backend!r})"
                )
        address = compute.get("address")
        if backend == "ray":
            address = _typed(
                f"{source}: [compute] address",
                address,
                str,
                "the Ray cluster: 'ray://HEAD:10001', 'auto' (the cluster this machine is in) "
                "or 'local' (a Ray instance inside the node)",
            )
        elif address is not None:
            raise ConfigError(
                f"{source}: [compute] address applies only to backend = 'ray'; remove it "
                f"or switch the backend (got backend = {backend!r})"
            )
        name = check_name(f"{source}: name", data["name"])
        tls = data["tls"]
        _check_keys(f"{source}: [tls]", tls, ["cert", "key", "ca"], ["cert", "key", "ca"])
        catalogue = data.get("datasets", {})
        _typed(f"{source}: [datasets]", catalogue, dict, "a table of [datasets.NAME] tables")
        datasets = {}
        for ds_name, entry in catalogue.items():
            where = f"{source}: [datasets.{ds_name}]"
            check_name(where, ds_name)
            _check_keys(where, entry, ["path", "id_column", "label_column"], ["path", "id_column"])
            datasets[ds_name] = DatasetEntry(
                name=ds_name,
                path=base / _typed(f"{where} path", entry["path"], str, "a file path"),
                id_column=_typed(f"{where} id_column", entry["id_column"], str, "a column name"),
                label_column=_typed(
                    f"{where} label_column",
                    entry.get("label_column"),
                    (str, type(None)),
                    "a column name",
                ),
            )
        coordinators = data.get("coordinators", ["coordinator"])
        _typed(f"{source}: coordinators", coordinators, list, "a list of certificate names")
        return cls(
            name=name,
            listen=_typed(f"{source}: listen", data["listen"], str, "'host:port'"),
            state_dir=base / _typed(f"{source}: state_dir", data["state_dir"], str, "a path"),
            cert=base / _typed(f"{source}: tls.cert", tls["cert"], str, "a path"),
            key=base / _typed(f"{source}: tls.key", tls["key"], str, "a path"),
            ca=base / _typed(f"{source}: tls.ca", tls["ca"], str, "a path"),
            datasets=datasets,
            coordinators=tuple(check_name(f"{source}: coordinators", c) for c in coordinators),
            max_message_mb=_number(
                f"{source}: max_message_mb", data.get("max_message_mb", 2048), low=1, integer=True
            ),
            max_job_mb=_number(
                f"{source}: max_job_mb", data.get("max_job_mb", 65536), low=1, integer=True
            ),
            recv_timeout_s=_number(
                f"{source}: recv_timeout_s", data.get("recv_timeout_s", 1800.0), low=1
            ),
            send_deadline_s=_number(
                f"{source}: send_deadline_s", data.get("send_deadline_s", 600.0), low=1
            ),
            peer_retries=_number(
                f"{source}: peer_retries", data.get("peer_retries", 8), low=0, integer=True
            ),
            peer_backoff_s=_number(
                f"{source}: peer_backoff_s", data.get("peer_backoff_s", 0.2), low=0.01
            ),
            compute_backend=backend,
            compute_workers=workers,
            compute_address=address,
            signing_key=signing_key,
            audit_level=audit_level,
            health_listen=_typed(
                f"{source}: health_listen",
                data.get("health_listen"),
                (str, type(None)),
                "'host:port' (plaintext gRPC health only, for probes)",
            ),
        )

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


# ---- job spec ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartySpec:
    """One party of a job as the coordinator sees it: no file paths, only names."""

    name: str
    role: str
    address: str
    dataset: str | None = None


@dataclass(frozen=True, slots=True)
class AlignmentSpec:
    """Private set intersection settings."""

    min_intersection: int = 100


@dataclass(frozen=True, slots=True)
class ValidationSpec:
    """How the aligned rows are split for validation.

    With ``stratify`` the guest draws the split per class from the labels and tells the
    hosts which rows are validation rows; otherwise every party derives it from the ids.
    """

    share: float = 0.2
    stratify: bool = False


@dataclass(frozen=True, slots=True)
class LrSpec:
    """Hyperparameters of coordinated hetero logistic regression."""

    epochs: int = 5
    batch_size: int = 1024
    learning_rate: float = 0.15
    lr_decay: float = 0.0
    l2: float = 0.0
    tol: float = 1e-4
    key_bits: int = 2048


#: objectives SecureBoost trains
BOOST_OBJECTIVES = ("binary", "multiclass", "regression")


@dataclass(frozen=True, slots=True)
class BoostSpec:
    """Hyperparameters of SecureBoost (XGBoost's names where they differ in brackets)."""

    type: str = "secureboost"
    trees: int = 30  # boosting rounds [n_estimators]; multi-class grows one per class per round
    depth: int = 3  # [max_depth]
    learning_rate: float = 0.3  # [eta]
    max_bins: int = 32
    min_child_weight: float = 1.0
    l2: float = 1.0  # [lambda]
    gamma: float = 0.0
    subsample: float = 1.0
    colsample: float = 1.0  # per party, per tree [colsample_bytree]
    early_stopping_rounds: int | None = None
    objective: str = "binary"
    class_weights: tuple[float, ...] | str | None = None
    key_bits: int = 2048


ModelSpec = LrSpec | BoostSpec


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job: who takes part, with which data set, which model."""

    job_id: str
    seed: int
    task: str
    parties: tuple[PartySpec, ...]
    alignment: AlignmentSpec = field(default_factory=AlignmentSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    model: ModelSpec = field(default_factory=LrSpec)
    model_job: str | None = None

    @property
    def guest(self) -> str:
        return next(p.name for p in self.parties if p.role == "guest")

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parties if p.role == "host")

    @property
    def arbiter(self) -> str | None:
        """The arbiter's name; None when the job has none (SecureBoost, prediction)."""
        return next((p.name for p in self.parties if p.role == "arbiter"), None)

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parties)

    def party(self, name: str) -> PartySpec:
        for p in self.parties:
            if p.name == name:
                return p
        raise ConfigError(
            f"party '{name}' is not part of job '{self.job_id}' (parties: "
            f"{list(self.party_names)}); list it under parties in the job spec, or send the "
            "job only to the parties it lists"
        )

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): what crosses the wire and is hashed."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """sha256 of the canonical JSON, recorded in every party's audit log."""
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes) -> JobSpec:
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError) as exc:  # also not UTF-8, or nested too deep
            raise ConfigError(f"job spec is not valid JSON: {exc}") from exc
        return cls.from_dict(parsed, source="job spec")

    @classmethod
    def load(cls, path: str | Path) -> JobSpec:
        """Read and validate a job spec YAML file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"job spec {path} does not exist") from None
        except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
            # ValueError: not UTF-8, or an int of over 4300 digits (PyYAML calls int())
            raise ConfigError(f"job spec {path} cannot be read: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "job spec") -> JobSpec:
        """Validate a parsed job spec mapping."""
        _check_keys(
            source,
            data,
            ["job_id", "seed", "task", "parties", "alignment", "validation", "model", "model_job"],
            ["job_id", "parties"],
        )
        task = data.get("task", "train")
        if task not in TASKS:
            raise ConfigError(f"{source}: task must be one of {list(TASKS)}, got {_shown(task)}")
        model = _parse_model(source, data.get("model", {}))
        parties = _parse_parties(source, data["parties"], task, model)
        model_job = data.get("model_job")
        if task == "predict" and model_job is None:
            raise ConfigError(
                f"{source}: a predict job needs model_job: the job id whose model shares to use"
            )
        validation = _parse_validation(source, data.get("validation", {}))
        if task == "train" and validation.share == 0:
            raise ConfigError(
                f"{source}: validation.share must be above 0 for a training job: the job "
                "evaluates the model on the validation rows (0.2 is usual)"
            )
        return cls(
            job_id=check_name(f"{source}: job_id", data["job_id"]),
            seed=_number(f"{source}: seed", data.get("seed", 42), low=0, integer=True),
            task=task,
            parties=parties,
            alignment=_parse_alignment(source, data.get("alignment", {})),
            validation=validation,
            model=model,
            model_job=None if model_job is None else check_name(f"{source}: model_job", model_job),
        )


def _parse_parties(source: str, raw: t.Any, task: str, model: ModelSpec) -> tuple[PartySpec, ...]:
    _typed(f"{source}: parties", raw, list, "a list of parties")
    parties = []
    for i, entry in enumerate(raw):
        where = f"{source}: parties[{i}]"
        _check_keys(
            where, entry, ["name", "role", "address", "dataset"], ["name", "role", "address"]
        )
        role = entry["role"]
        if role not in ROLES:
            raise ConfigError(f"{where}: role must be one of {list(ROLES)}, got {_shown(role)}")
        dataset = entry.get("dataset")
        if role != "arbiter" and dataset is None:
            raise ConfigError(f"{where}: a {role} must name the data set it contributes")
        if role == "arbiter" and dataset is not None:
            raise ConfigError(f"{where}: the arbiter holds no data; remove 'dataset'")
        parties.append(
            PartySpec(
                name=check_name(f"{where} name", entry["name"]),
                role=role,
                address=_typed(f"{where} address", entry["address"], str, "'host:port'"),
                dataset=None if dataset is None else check_name(f"{where} dataset", dataset),
            )
        )
    names = [p.name for p in parties]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: party names must be unique, got {names}")
    roles = [p.role for p in parties]
    listed = ", ".join(f"{p.name}={p.role}" for p in parties) or "no parties"
    if roles.count("guest") != 1:
        raise ConfigError(
            f"{source}: exactly one party must be the guest (label holder), got "
            f"{roles.count('guest')} ({listed}); give role 'guest' to the party with the labels"
        )
    if roles.count("host") < 1:
        raise ConfigError(
            f"{source}: at least one host is needed, got none ({listed}); give role "
            "'host' to the party that holds the other features"
        )
    if roles.count("arbiter") > 1:
        raise ConfigError(f"{source}: a job has at most one arbiter, got several ({listed})")
    if task == "train" and isinstance(model, LrSpec) and roles.count("arbiter") != 1:
        raise ConfigError(
            f"{source}: coordinated logistic regression needs exactly one arbiter to hold "
            f"the Paillier key, got none ({listed}); add a party with role 'arbiter' and no "
            "dataset, or use model.type 'secureboost'"
        )
    return tuple(parties)


def _parse_alignment(source: str, raw: t.Any) -> AlignmentSpec:
    _check_keys(f"{source}: alignment", raw, ["min_intersection"])
    return AlignmentSpec(
        min_intersection=_number(
            f"{source}: alignment.min_intersection",
            raw.get("min_intersection", 100),
            low=1,
            integer=True,
        ),
    )


def _parse_validation(source: str, raw: t.Any) -> ValidationSpec:
    _check_keys(f"{source}: validation", raw, ["share", "stratify"])
    return ValidationSpec(
        share=_number(f"{source}: validation.share", raw.get("share", 0.2), low=0, high=0.9),
        stratify=_typed(
            f"{source}: validation.stratify", raw.get("stratify", False), bool, "true or false"
        ),
    )


def _parse_model(source: str, raw: t.Any) -> ModelSpec:
    _typed(f"{source}: model", raw, dict, "a mapping")
    kind = raw.get("type", "hetero_lr")
    if kind == "secureboost":
        return _parse_boost(source, raw)
    if kind != "hetero_lr":
        raise ConfigError(
            f"{source}: model.type must be 'hetero_lr' or 'secureboost', got {_shown(kind)}"
        )
    return _parse_lr(source, raw)


def _key_bits(where: str, value: t.Any) -> int:
    key_bits = _number(f"{where}.key_bits", value, low=1, integer=True)
    if key_bits < MIN_KEY_BITS:
        raise ConfigError(
            f"{where}.key_bits: {key_bits}-bit Paillier keys are refused; use at least "
            f"{MIN_KEY_BITS} (3072 for data that must stay confidential past 2030)"
        )
    return int(key_bits)


def _parse_boost(source: str, raw: Mapping) -> BoostSpec:
    where = f"{source}: model"
    d = BoostSpec()
    _check_keys(where, raw, [f.name for f in fields(BoostSpec)])

    def num(name: str, **kw: t.Any) -> t.Any:
        return _number(f"{where}.{name}", raw.get(name, getattr(d, name)), **kw)

    objective = raw.get("objective", d.objective)
    if objective not in BOOST_OBJECTIVES:
        raise ConfigError(
            f"{where}.objective must be one of {list(BOOST_OBJECTIVES)}, got {_shown(objective)}"
        )
    early = raw.get("early_stopping_rounds")
    if early is not None:
        early = _number(f"{where}.early_stopping_rounds", early, low=1, integer=True)
    weights = raw.get("class_weights")
    if isinstance(weights, list):
        weights = tuple(
            float(_number(f"{where}.class_weights[{i}]", w, low=0, low_open=True))
            for i, w in enumerate(weights)
        )
        if objective == "binary" and len(weights) != 2:
            raise ConfigError(
                f"{where}.class_weights: a binary model needs 2 weights (label 0, label 1)"
            )
    elif weights not in (None, "balanced"):
        raise ConfigError(
            f"{where}.class_weights must be 'balanced' or a list of weights, one per class "
            f"(lowest label first), got {_shown(weights)}"
        )
    if weights is not None and objective == "regression":
        raise ConfigError(f"{where}.class_weights apply to classification objectives only")
    return BoostSpec(
        trees=num("trees", low=1, integer=True),
        depth=num("depth", low=1, high=16, integer=True),
        learning_rate=num("learning_rate", low=0, low_open=True),
        max_bins=num("max_bins", low=2, high=256, integer=True),
        min_child_weight=num("min_child_weight", low=0),
        l2=num("l2", low=0),
        gamma=num("gamma", low=0),
        subsample=num("subsample", low=0, high=1, low_open=True),
        colsample=num("colsample", low=0, high=1, low_open=True),
        early_stopping_rounds=early,
        objective=objective,
        class_weights=weights,
        key_bits=_key_bits(where, raw.get("key_bits", d.key_bits)),
    )


def _parse_lr(source: str, raw: t.Any) -> LrSpec:
    where = f"{source}: model"
    _check_keys(
        where,
        raw,
        ["type", "epochs", "batch_size", "learning_rate", "lr_decay", "l2", "tol", "key_bits"],
    )
    d = LrSpec()
    key_bits = _key_bits(where, raw.get("key_bits", d.key_bits))
    return LrSpec(
        epochs=_number(f"{where}.epochs", raw.get("epochs", d.epochs), low=1, integer=True),
        batch_size=_number(
            f"{where}.batch_size", raw.get("batch_size", d.batch_size), low=1, integer=True
        ),
        learning_rate=_number(
            f"{where}.learning_rate",
            raw.get("learning_rate", d.learning_rate),
            low=0,
            low_open=True,
        ),
        lr_decay=_number(f"{where}.lr_decay", raw.get("lr_decay", d.lr_decay), low=0),
        l2=_number(f"{where}.l2", raw.get("l2", d.l2), low=0),
        tol=_number(f"{where}.tol", raw.get("tol", d.tol), low=0),
        key_bits=key_bits,
    )
