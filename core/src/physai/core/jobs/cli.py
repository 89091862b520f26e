"""`physai jobs`: run a job spec (or DAG) locally, or render/submit it for AzureML or OSMO."""

from __future__ import annotations

from pathlib import Path

import typer

from physai.core.commands import PhysaiGroup, get_settings
from physai.core.jobs.backends import BACKENDS, check_backend, render_text
from physai.core.jobs.dag import load_spec
from physai.core.jobs.local import LocalRunner
from physai.core.jobs.results import JobResult

BACKEND_HELP = f"Where to run: {' | '.join(BACKENDS)} (default: settings.job_backend)."


app = typer.Typer(
    name="jobs",
    help="Run job specs locally, or render and submit them for AzureML or NVIDIA OSMO.\n\n"
    "Example: physai jobs run train.job.yaml --backend osmo --dry-run",
    cls=PhysaiGroup,
    no_args_is_help=True,
)


@app.command("run")
def run(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="A job spec or DAG YAML file."),
    backend: str | None = typer.Option(None, "--backend", "-b", help=BACKEND_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would run; run nothing."),
    run_id: str | None = typer.Option(None, "--run-id", help="Local run id (default: new)."),
    max_workers: int | None = typer.Option(None, "--max-workers", help="Local parallel jobs."),
    pool: str | None = typer.Option(None, "--pool", help="OSMO pool (default: osmo_pool)."),
) -> None:
    """Run SPEC locally, or submit it to AzureML or OSMO.

    Example: physai jobs run train.job.yaml --backend azureml --dry-run
    """
    settings = get_settings(ctx)
    target = load_spec(spec)
    chosen = check_backend(backend or settings.job_backend)
    if dry_run:
        typer.echo(render_text(target, chosen, settings, run_id=run_id), nl=False)
        return
    if chosen == "local":
        runner = LocalRunner(settings, run_id=run_id, max_workers=max_workers, on_result=_report)
        typer.echo(f"run {runner.run_id}: {runner.run_dir}")
        summary = runner.run(target)
        typer.echo(f"summary: {summary.summary_path}")
    elif chosen == "azureml":
        from physai.core.jobs import azureml

        submitted = azureml.submit(target, settings)
        typer.echo(f"submitted AzureML job {submitted.name}: {submitted.studio_url or ''}")
    else:
        from physai.core.jobs import osmo

        answer = osmo.submit(target, settings, pool=pool)
        typer.echo(f"submitted OSMO workflow {answer.workflow_id or '(id not reported)'}")
        typer.echo(f"spec: {answer.spec_path}")


def _report(result: JobResult) -> None:
    typer.echo(f"{result.name}: {result.status} in {result.duration_s:.1f}s ({result.log_path})")


@app.command("render")
def render(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="A job spec or DAG YAML file."),
    backend: str = typer.Option(..., "--backend", "-b", help=BACKEND_HELP),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not stdout."),
) -> None:
    """Print SPEC rendered for a backend (validated offline against its schema or SDK).

    Example: physai jobs render pipeline.yaml --backend osmo -o workflow.yaml
    """
    settings = get_settings(ctx)
    text = render_text(load_spec(spec), check_backend(backend), settings)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
