"""The `physai evaluation` command group."""

from __future__ import annotations

import typer

from physai.core.cli import domain_app, get_settings
from physai.core.logs import redact

app = domain_app(
    "evaluation",
    help="Closed-loop SiL/HiL evaluation, open-loop replay, gates and a policy server.",
)


@app.command("sil")
def sil_command(
    ctx: typer.Context,
    policy: str = typer.Argument(
        ..., help="Folder written by `physai training export` (policy.json + model files)."
    ),
    task: str | None = typer.Option(
        None, "--task", help="MuJoCo task name (default: policy.json's source.task)."
    ),
    episodes: int = typer.Option(10, "--episodes", "-n", help="Episodes to run (1 or more)."),
    seed: int = typer.Option(0, "--seed", help="First seed: episode i resets with seed + i."),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder (or storage URL) for report.json and the video; must not exist "
        "(default: <state dir>/evaluations/sil/<policy>-<time>).",
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="onnx | torchscript | tensorrt (default: the fastest available)."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    video: bool = typer.Option(False, "--video", help="Write an mp4 of the first episode."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run an exported policy in closed loop on a MuJoCo task: success rate, returns, latency.

    Episode i resets with SEED + i and actions are clipped to the action space, as in
    training's own evaluation, so an export scores what its checkpoint scored there.
    OUT/report.json (and OUT/episode_0.mp4 with --video) appear atomically.

    Example: physai evaluation sil exports/ppo-pendulum --episodes 20 --out evals/ppo
    Video:   physai evaluation sil exports/ppo-pendulum --task InvertedPendulum --video -o evals/v
    """
    from datetime import UTC, datetime
    from pathlib import Path
    from typing import cast

    from rich.progress import Progress

    from physai.evaluation.sil import evaluate_policy
    from physai.evaluation.sil.runner import DeviceChoice

    settings = get_settings(ctx)
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = Path(policy).resolve().name or "policy"
        out = str(settings.state_dir / "evaluations" / "sil" / f"{name}-{stamp}")
    with Progress(transient=True, disable=as_json) as bar:
        progress = bar.add_task("episodes", total=max(episodes, 0))
        report = evaluate_policy(
            policy,
            task,
            episodes,
            seed,
            format=fmt,
            device=cast(DeviceChoice, device),
            out=out,
            video=video,
            overwrite=overwrite,
            settings=settings,
            on_episode=lambda _episode: bar.advance(progress),
        )
    if as_json:
        typer.echo(report.to_json(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="SiL evaluation", show_header=False)
    for label, value in report.summary_rows():
        table.add_row(label, value)
    Console().print(table)
    where = redact(out.split("?", 1)[0])  # a SAS-signed URL: the folder, not its token
    typer.echo(f"report: {where}/report.json")
    if report.video:
        typer.echo(f"video: {where}/{report.video}")
