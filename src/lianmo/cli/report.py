"""``lianmo report``: (re)write a party's model report of a scorecard job."""

from __future__ import annotations

import typing as t
from pathlib import Path

import click

if t.TYPE_CHECKING:
    from lianmo.config import PartyConfig

_SPEC = "spec.json"  # every job folder holds the spec its party accepted


@click.command("report")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The party's config (TOML): its state_dir, where its jobs are.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder to write into (default: the job's folder).",
)
@click.argument("job")
def report_cmd(config_path: Path, job: str, out: Path | None) -> None:
    """Write this party's report of JOB (a job id or job folder) as HTML and Markdown.

    JOB is a scorecard training job (the party's WOE/IV, column selection and points
    table; at the guest also the validation performance) or a predict job scored with
    one (score PSI at the guest, CSI of the party's own columns). The report shows only
    what this party learned. Writes report.html, report.md and its charts
    (report-charts/*.svg) and prints the paths.
    """
    from lianmo.config import PartyConfig
    from lianmo.node.scorecard_report import job_share, write_job_report

    config = PartyConfig.load(config_path)
    folder = _job_folder(config, job)
    share = job_share(folder, config.name)
    for path in write_job_report(folder, share, out):
        click.echo(str(path))


def _job_folder(config: PartyConfig, job: str) -> Path:
    """A job id of this party, or a path to a job folder (as ``lianmo audit replay``)."""
    from lianmo.errors import ConfigError

    path = Path(job)
    if (path / _SPEC).exists():
        return path
    folder = config.state_dir / "jobs" / job
    if not (folder / _SPEC).exists():
        raise ConfigError(
            f"party '{config.name}' has no job '{job}' ({folder / _SPEC} does not exist); "
            "pass a job id from its state_dir/jobs or a job folder"
        )
    return folder
