"""Typed, validated configuration: the party node config (TOML) and the job spec (YAML).

Both are parsed once into frozen dataclasses and passed down explicitly. Every key
declares its default and its constraint once, on its dataclass field (``_rules`` holds
the constraints, ``_read`` the one reader that applies them). Unknown keys are errors,
not warnings: a misspelt ``learning_rte`` silently ignored would train a different model
than the one the coordinator asked for.
"""

from __future__ import annotations

from lianmo.config._rules import MAX_INT as MAX_INT
from lianmo.config._rules import Name, Where
from lianmo.config.job import ROLES as ROLES
from lianmo.config.job import TASKS as TASKS
from lianmo.config.job import AlignmentSpec as AlignmentSpec
from lianmo.config.job import JobSpec as JobSpec
from lianmo.config.job import PartySpec as PartySpec
from lianmo.config.job import ValidationSpec as ValidationSpec
from lianmo.config.model import BOOST_OBJECTIVES as BOOST_OBJECTIVES
from lianmo.config.model import COORDINATED as COORDINATED
from lianmo.config.model import LR_OPTIMIZERS as LR_OPTIMIZERS
from lianmo.config.model import MIN_KEY_BITS as MIN_KEY_BITS
from lianmo.config.model import BoostSpec as BoostSpec
from lianmo.config.model import LabelProtection as LabelProtection
from lianmo.config.model import LrSpec as LrSpec
from lianmo.config.model import ModelSpec as ModelSpec
from lianmo.config.model import ScorecardSpec as ScorecardSpec
from lianmo.config.party import AUDIT_LEVELS as AUDIT_LEVELS
from lianmo.config.party import COMPUTE_BACKENDS as COMPUTE_BACKENDS
from lianmo.config.party import DatasetEntry as DatasetEntry
from lianmo.config.party import PartyConfig as PartyConfig
from lianmo.config.policy import ANY_PEER as ANY_PEER
from lianmo.config.policy import NodePolicy as NodePolicy


def check_name(where: str, name: object) -> str:
    """A party, job or data set name: letters, digits, '_', '.', '-', at most 63 characters.

    ``where`` names the key, e.g. "job.yaml: job_id"; a bad name is a ConfigError.
    """
    source, _, path = where.rpartition(": ")
    return str(Name()(name, Where(source, path) if source else Where(where, "name")))
