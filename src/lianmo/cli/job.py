"""``lianmo job ...`` and ``lianmo predict``: the coordinator's commands, on top of the
Python API (:class:`lianmo.Client`)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import click

from lianmo.config import JobSpec
from lianmo.errors import ConfigError

_IDENTITY_HELP = "coordinator TLS {}: defaults to $LIANMO_{}"
DEFAULT_ROOT = Path("jobs")


def identity_options(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """--ca/--cert/--key options for commands that act as the coordinator."""
    for name in ("key", "cert", "ca"):
        fn = click.option(
            f"--{name}",
            envvar=f"LIANMO_{name.upper()}",
            required=True,
            type=click.Path(path_type=Path),
            help=_IDENTITY_HELP.format(name, name.upper()),
        )(fn)
    return fn


def optional_identity(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """--ca/--cert/--key for commands that can also do without them."""
    for name in ("key", "cert", "ca"):
        fn = click.option(
            f"--{name}",
            envvar=f"LIANMO_{name.upper()}",
            type=click.Path(path_type=Path),
            default=None,
            help=_IDENTITY_HELP.format(name, name.upper()),
        )(fn)
    return fn


def coordinator_command(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """SPEC_PATH, --output and the coordinator's TLS identity options."""
    fn = identity_options(fn)
    fn = click.option(
        "--output",
        type=click.Path(path_type=Path),
        default=None,
        help="Where to write metrics.json and job.json (default: ./jobs/JOB_ID).",
    )(fn)
    return click.argument("spec_path", type=click.Path(path_type=Path))(fn)


def json_option(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object (docs/api.md)."
    )(fn)


def job_folder(job_ref: str) -> Path:
    """A job's coordinator output folder, from the folder itself or the job id."""
    from lianmo.coordinator.output import resolve_job

    return resolve_job(DEFAULT_ROOT, job_ref)


@click.group()
def job() -> None:
    """Run jobs across party nodes (as the coordinator)."""


@job.command("run")
@coordinator_command
@click.option(
    "--detach",
    is_flag=True,
    help="Return at once; a background coordinator (lianmo job watch) follows the job.",
)
def job_run(
    spec_path: Path, output: Path | None, ca: Path, cert: Path, key: Path, detach: bool
) -> None:
    """Run the job in SPEC_PATH (YAML) and write its metrics.

    Shows progress and prints the metrics at the end; Ctrl-C cancels the job at every
    party. With --detach it prints the job id and output folder and returns: follow the
    job with 'lianmo job status', stop it with 'lianmo job cancel'.
    """
    from lianmo.cli.follow import LOG_FILE, run_and_report, start_detached

    spec = JobSpec.load(spec_path)
    folder = output or DEFAULT_ROOT / spec.job_id
    if not detach:
        run_and_report(spec, folder, ca=ca, cert=cert, key=key)
        return
    pid = start_detached(spec, folder, ca=ca, cert=cert, key=key)
    click.echo(f"job '{spec.job_id}' detached: coordinator process {pid}")
    click.echo(f"output: {folder} (its log: {folder / LOG_FILE})")
    click.echo(f"follow it: lianmo job status {folder}; stop it: lianmo job cancel {folder}")


@job.command("watch")
@click.argument("job_ref", metavar="JOB")
@identity_options
def job_watch(job_ref: str, ca: Path, cert: Path, key: Path) -> None:
    """Coordinate JOB (its output folder, or its id under ./jobs) until it ends.

    Writes coordinator.json while it runs and metrics.json at the end, as 'job run' does
    ('job run --detach' starts this in the background). Parties that have not started
    the job start it; running ones are followed. Ctrl-C stops watching, not the job.
    """
    from lianmo.cli.follow import watch_and_report

    watch_and_report(str(job_folder(job_ref)), ca=ca, cert=cert, key=key)


@job.command("resume")
@click.argument("job_ref", metavar="JOB")
@identity_options
def job_resume(job_ref: str, ca: Path, cert: Path, key: Path) -> None:
    """Resume JOB (its output folder, or its id under ./jobs) from the parties' checkpoints.

    Every party that stopped -- failed, cancelled, or interrupted by a node restart --
    continues from its own latest checkpoint; running parties are watched as they are.
    The final model and metrics are those of an uninterrupted run.
    """
    from lianmo.cli.follow import run_and_report
    from lianmo.coordinator.output import read_spec

    folder = job_folder(job_ref)
    run_and_report(read_spec(folder), folder, ca=ca, cert=cert, key=key, resume=True)


@job.command("status")
@click.argument("job_ref", metavar="JOB")
@optional_identity
@json_option
def job_status(
    job_ref: str, ca: Path | None, cert: Path | None, key: Path | None, as_json: bool
) -> None:
    """Where JOB stands and why it stopped: asks every party if the coordinator's TLS
    identity is given (--ca/--cert/--key or $LIANMO_*), else shows the last recorded state."""
    from lianmo.cli.status import show_status

    show_status(job_folder(job_ref), ca=ca, cert=cert, key=key, as_json=as_json)


@job.command("list")
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=DEFAULT_ROOT,
    show_default=True,
    help="The folder holding the jobs' output folders.",
)
@json_option
def job_list(root: Path, as_json: bool) -> None:
    """The jobs under --root, with the state their coordinator last recorded."""
    from lianmo.cli.status import show_list

    show_list(root, as_json=as_json)


@job.command("cancel")
@click.argument("job_ref", metavar="JOB")
@identity_options
def job_cancel(job_ref: str, ca: Path, cert: Path, key: Path) -> None:
    """Cancel JOB (its output folder, or its id under ./jobs) at every party.

    Its output's coordinator.json is marked cancelled, and a coordinator still watching
    the job stops. A party that cannot be reached is named and the command exits 6.
    """
    from lianmo.cli.status import cancel_job

    cancel_job(job_folder(job_ref), ca=ca, cert=cert, key=key)


@click.command("predict")
@coordinator_command
def predict_cmd(spec_path: Path, output: Path | None, ca: Path, cert: Path, key: Path) -> None:
    """Score aligned ids with a trained model (SPEC has task: predict and model_job).

    The guest receives the scores, in scores.csv in its job folder.
    """
    from lianmo.cli.follow import run_and_report

    spec = JobSpec.load(spec_path)
    if spec.task != "predict":
        raise ConfigError(f"{spec_path}: 'lianmo predict' needs task: predict in the spec")
    run_and_report(spec, output or DEFAULT_ROOT / spec.job_id, ca=ca, cert=cert, key=key)
