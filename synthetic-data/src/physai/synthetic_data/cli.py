"""The `physai synthetic-data` command group."""

from __future__ import annotations

from pathlib import Path

import typer

from physai.core.cli import domain_app, get_settings
from physai.core.errors import UserError

app = domain_app(
    "synthetic-data",
    help="Simulated demonstrations, domain randomization, augmentation and Cosmos jobs.",
)


@app.command("demos")
def demos_command(
    ctx: typer.Context,
    task: str = typer.Option(..., "--task", help="Simulated task: reacher or pusher."),
    episodes: int = typer.Option(..., "--episodes", help="Number of episodes."),
    out: str = typer.Option(..., "--out", help="Dataset path or storage URL to publish."),
    seed: int = typer.Option(0, "--seed", help="Episode k uses seed + k."),
    seconds: float | None = typer.Option(
        None, "--seconds", help="Episode length (default: 2 s reacher, 4 s pusher)."
    ),
    fps: int = typer.Option(30, "--fps", help="Frames (and actions) per second."),
    width: int = typer.Option(96, "--width", help="Camera image width."),
    height: int = typer.Option(96, "--height", help="Camera image height."),
    randomize: Path | None = typer.Option(
        None, "--randomize", help="Domain randomization YAML (see the demonstrations spec)."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes (default: cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Generate scripted-expert demonstrations in MuJoCo as a LeRobot v3.0 dataset.

    Each episode records its seed, success and randomization draw as episode labels.

    Example: physai synthetic-data demos --task reacher --episodes 50 --out datasets/reach/v1
    """
    from physai.synthetic_data.demos import generate_demos
    from physai.synthetic_data.randomization import RandomizationConfig

    config = RandomizationConfig.from_yaml(randomize) if randomize is not None else None
    report = generate_demos(
        task,
        episodes,
        out,
        seed=seed,
        seconds=seconds,
        fps=fps,
        width=width,
        height=height,
        randomization=config,
        workers=workers,
        overwrite=overwrite,
        settings=get_settings(ctx),
    )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
        return
    typer.echo(
        f"{report.out}: {report.episodes} episodes, {report.frames} frames, "
        f"{report.successes} successful, {report.frames_per_second:.0f} frames/s"
    )


@app.command("coverage")
def coverage_command(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset path or storage URL."),
    out: str = typer.Option(..., "--out", help="Folder for coverage.json and coverage.png."),
    bins: int = typer.Option(20, "--bins", help="Bins per joint range."),
    camera: str | None = typer.Option(None, "--camera", help="Camera (default: the first)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report."),
) -> None:
    """Report state-space coverage and image statistics per randomization factor, with plots.

    Example: physai synthetic-data coverage datasets/reach/v1 --out reports/reach
    """
    from physai.synthetic_data.coverage_report import coverage_report

    if bins < 2:
        raise UserError("--bins must be 2 or more")
    report = coverage_report(
        dataset, out, bins=bins, camera=camera, overwrite=overwrite, settings=get_settings(ctx)
    )
    joints = ", ".join(f"{k} {v:.0%}" for k, v in report.state_coverage.items())
    typer.echo(f"{report.episodes} episodes; joint coverage: {joints}; report in {out}")
    for effect in report.factors:
        typer.echo(f"  {effect.factor}: r(brightness) = {effect.corr_brightness}")
