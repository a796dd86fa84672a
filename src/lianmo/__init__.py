"""lianmo (联模): privacy-preserving vertical federated learning, as a Python API.

::

    import lianmo

    client = lianmo.Client(ca="certs/ca.pem", cert="certs/coordinator.pem",
                           key="certs/coordinator.key")
    job = client.submit("job.yaml")          # returns at once
    job.status().parties["broker"].phase     # where each party is
    result = job.wait()                      # JobFailedError names the party that failed
    result.metrics.validation                # BinaryMetrics(rows=..., auc=..., ks=...)

See docs/api.md. The names below are imported on first use, so ``import lianmo`` (and
every ``lianmo.*`` module, which imports this package first) stays light: gRPC and the
coordinator load only when a program asks for the client.
"""

from __future__ import annotations

import importlib
import typing as t

if t.TYPE_CHECKING:
    from lianmo.cli.client import Client as Client
    from lianmo.config import JobSpec as JobSpec
    from lianmo.coordinator.jobs import Job as Job
    from lianmo.coordinator.results import BinaryMetrics as BinaryMetrics
    from lianmo.coordinator.results import JobMetrics as JobMetrics
    from lianmo.coordinator.results import JobResult as JobResult
    from lianmo.coordinator.results import JobStatus as JobStatus
    from lianmo.coordinator.results import ModelMetrics as ModelMetrics
    from lianmo.coordinator.results import MulticlassMetrics as MulticlassMetrics
    from lianmo.coordinator.results import PartyStatus as PartyStatus
    from lianmo.coordinator.results import PartySummary as PartySummary
    from lianmo.coordinator.results import RegressionMetrics as RegressionMetrics
    from lianmo.errors import JobCancelledError as JobCancelledError
    from lianmo.errors import JobFailedError as JobFailedError
    from lianmo.errors import LianmoError as LianmoError
    from lianmo.node.scorecard_tables import ScorecardTables as ScorecardTables

    __version__: str

_EXPORTS = {
    "Client": "lianmo.cli.client",
    "Job": "lianmo.coordinator.jobs",
    "JobSpec": "lianmo.config",
    "JobStatus": "lianmo.coordinator.results",
    "PartyStatus": "lianmo.coordinator.results",
    "JobResult": "lianmo.coordinator.results",
    "JobMetrics": "lianmo.coordinator.results",
    "PartySummary": "lianmo.coordinator.results",
    "ModelMetrics": "lianmo.coordinator.results",
    "BinaryMetrics": "lianmo.coordinator.results",
    "MulticlassMetrics": "lianmo.coordinator.results",
    "RegressionMetrics": "lianmo.coordinator.results",
    "JobFailedError": "lianmo.errors",
    "JobCancelledError": "lianmo.errors",
    "LianmoError": "lianmo.errors",
    "ScorecardTables": "lianmo.node.scorecard_tables",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib.metadata import version

        value: object = version("lianmo")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'lianmo' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
