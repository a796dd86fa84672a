"""Session fixture: real audited jobs (see :mod:`tests.audit.jobs`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audit.jobs import AuditedJobs, run_audited_jobs


@pytest.fixture(scope="session")
def audited_jobs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> AuditedJobs:
    return run_audited_jobs(tmp_path_factory.mktemp("audited"), shared_data)
