"""The job spec (YAML, or canonical JSON on the wire): who takes part, which data, which model.

Each field declares its default and constraint; what spans fields (the roles of the
parties, what a task needs) is checked once the whole spec is read.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lianmo.config._read import ListOf, Section, checked, plain, read
from lianmo.config._rules import Boolean, Interval, Name, Options, OrNone, Text, Where
from lianmo.config.model import COORDINATED, LrSpec, Model, ModelSpec
from lianmo.errors import ConfigError

ROLES = ("guest", "host", "arbiter")
# train a model; score with a trained one; or only align (find the common ids, e.g. to
# size the overlap before training)
TASKS = ("train", "predict", "align")
NAME = Name()
# as config.party.COLUMN_NAMES (which imports this module through config.policy)
COLUMN_NAMES = ListOf(Text("a column name"), "a list of column names")


def _check_party(party: PartySpec, at: Where) -> None:
    """Guests and hosts bring a data set (and may choose its columns); the arbiter none."""
    if party.role != "arbiter" and party.dataset is None:
        at.child("dataset").reject(
            f"is missing but a {party.role} must name the data set it contributes; add the "
            "name it has in that party's catalogue"
        )
    if party.role == "arbiter" and party.dataset is not None:
        at.child("dataset").reject(
            f"is {party.dataset!r} but the arbiter holds no data; remove 'dataset'"
        )
    _check_columns(party, at)


def _check_columns(party: PartySpec, at: Where) -> None:
    """``columns`` or ``exclude``, not both; a data party's, each name once, columns not []."""
    given = [key for key in ("columns", "exclude") if getattr(party, key) is not None]
    if len(given) == 2:
        at.refuse(
            f"party '{party.name}' gives both columns and exclude; give columns (exactly the "
            "feature columns to use) or exclude (all feature columns but these), not both"
        )
    for key in given:
        names: tuple[str, ...] = getattr(party, key)
        if party.role == "arbiter":
            at.child(key).reject(
                f"is given for '{party.name}', but the arbiter holds no data; remove it"
            )
        if key == "columns" and not names:
            at.child(key).reject(
                f"is [] for party '{party.name}', which would use no feature column; name "
                "the columns to use, or remove it to use all of them"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            at.child(key).reject(
                f"names {repeated} more than once for party '{party.name}'; list each column once"
            )


@dataclass(frozen=True, slots=True)
class PartySpec:
    """One party of a job as the coordinator sees it: no file paths, only names."""

    name: str = field(metadata=checked(NAME))
    role: str = field(metadata=checked(Options(ROLES)))
    address: str = field(metadata=checked(Text("a string 'host:port'")))
    dataset: str | None = field(default=None, metadata=checked(OrNone(NAME)))
    # the feature columns of ``dataset`` the job uses: exactly ``columns`` (in that order),
    # or all but ``exclude``; neither: all the party's catalogue offers. Optional: a spec
    # without them keeps the digest it had before they existed.
    columns: tuple[str, ...] | None = field(
        default=None, metadata=checked(OrNone(COLUMN_NAMES), optional=True)
    )
    exclude: tuple[str, ...] | None = field(
        default=None, metadata=checked(OrNone(COLUMN_NAMES), optional=True)
    )


@dataclass(frozen=True, slots=True)
class AlignmentSpec:
    """Private set intersection settings."""

    min_intersection: int = field(default=100, metadata=checked(Interval(int, 1)))


@dataclass(frozen=True, slots=True)
class ValidationSpec:
    """How the aligned rows are split for validation.

    With ``stratify`` the guest draws the split per class from the labels and tells the
    hosts which rows are validation rows; otherwise every party derives it from the ids.
    """

    share: float = field(default=0.2, metadata=checked(Interval(float, 0, 0.9)))
    stratify: bool = field(default=False, metadata=checked(Boolean()))


PARTIES = ListOf(
    Section(PartySpec, _check_party), "a list of parties, each with name, role, address, dataset"
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job: who takes part, with which data set, which model."""

    job_id: str = field(metadata=checked(NAME))
    seed: int = field(default=42, kw_only=True, metadata=checked(Interval(int, 0)))
    task: str = field(default="train", kw_only=True, metadata=checked(Options(TASKS)))
    parties: tuple[PartySpec, ...] = field(metadata=checked(PARTIES))
    alignment: AlignmentSpec = field(
        default_factory=AlignmentSpec, metadata=checked(Section(AlignmentSpec))
    )
    validation: ValidationSpec = field(
        default_factory=ValidationSpec, metadata=checked(Section(ValidationSpec))
    )
    model: ModelSpec = field(default_factory=LrSpec, metadata=checked(Model()))
    model_job: str | None = field(default=None, metadata=checked(OrNone(NAME)))
    # what the job's use of personal data is for (e.g. credit_scoring, suitability): each
    # party's catalogue says which purposes a data set may serve, with which columns.
    # Optional: a spec without it keeps the digest it had before it existed.
    purpose: str | None = field(default=None, metadata=checked(OrNone(NAME), optional=True))

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
        return json.dumps(plain(self), sort_keys=True, separators=(",", ":")).encode()

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
    def from_dict(cls, data: t.Any, *, source: str = "job spec") -> JobSpec:
        """Validate a parsed job spec mapping."""
        at = Where(source)
        spec = read(cls, data, at)
        _check_task(spec, at)
        _check_roles(spec, at)
        return spec


def _check_task(spec: JobSpec, at: Where) -> None:
    if spec.task == "predict" and spec.model_job is None:
        at.child("model_job").reject(
            "is missing but a predict job needs it; set model_job to the id of the training "
            "job whose model shares to use"
        )
    if spec.task == "train" and spec.validation.share == 0:
        at.child("validation").child("share").reject(
            "is 0 but must be above 0 for a training job: the job evaluates the model on "
            "the validation rows; set it to 0.2 (usual) or remove it for the default"
        )
    if spec.task != "train":
        for i, party in enumerate(spec.parties):
            for key in ("columns", "exclude"):
                if getattr(party, key) is not None:
                    at.child("parties").child(i).child(key).reject(
                        f"is given for party '{party.name}' but a {spec.task} job chooses "
                        "no columns: "
                        + (
                            "it scores with the columns model_job trained on"
                            if spec.task == "predict"
                            else "alignment reads only the ids"
                        )
                        + "; remove it"
                    )


def _check_roles(spec: JobSpec, at: Where) -> None:
    """One guest, at least one host, at most one arbiter; LR without one takes one host."""
    names = [p.name for p in spec.parties]
    for i, name in enumerate(names):
        if name in names[:i]:
            at.child("parties").child(i).child("name").reject(
                f"is {name!r} again: party names must be unique, got {names}; rename or "
                "remove the duplicate"
            )
    roles = [p.role for p in spec.parties]
    listed = ", ".join(f"{p.name}={p.role}" for p in spec.parties) or "no parties"
    if roles.count("guest") != 1:
        at.refuse(
            f"exactly one party must be the guest (label holder), got {roles.count('guest')} "
            f"({listed}); give role 'guest' to the party with the labels"
        )
    if roles.count("host") < 1:
        at.refuse(
            f"at least one host is needed, got none ({listed}); give role 'host' to the "
            "party that holds the other features"
        )
    if roles.count("arbiter") > 1:
        at.refuse(
            f"a job has at most one arbiter, got {roles.count('arbiter')} ({listed}); keep "
            "one and remove the others"
        )
    two_party = "arbiter" not in roles
    if spec.task == "train" and isinstance(spec.model, COORDINATED) and two_party:
        if roles.count("host") > 1:
            at.refuse(
                "logistic regression without an arbiter runs between the guest and one "
                f"host, got {roles.count('host')} hosts ({listed}); add a party with role "
                "'arbiter' and no dataset to hold the key of coordinated LR, or keep one host"
            )


__all__ = ["ROLES", "TASKS", "AlignmentSpec", "JobSpec", "PartySpec", "ValidationSpec"]
