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
    seed: int = typer.Option(0, "--seed", min=0, help="Episode k uses seed + k."),
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


@app.command("cosmos-transfer")
def cosmos_transfer_command(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="LeRobot dataset URL holding the rendered videos."),
    out: str = typer.Option(..., "--out", help="URL of the photoreal dataset to write."),
    prompt: str = typer.Option(..., "--prompt", help="What the video should look like."),
    rgb: str = typer.Option(..., "--rgb", help="Camera feature with the rendered colour video."),
    control: list[str] = typer.Option(
        ..., "--control", help="TYPE=CAMERA[:WEIGHT], e.g. depth=observation.images.depth:0.5."
    ),
    image: str = typer.Option(..., "--image", help="Cosmos-Transfer container with physai."),
    backend: str = typer.Option("osmo", "--backend", help="osmo, azureml or local (a plan)."),
    episodes: str | None = typer.Option(None, "--episodes", help="e.g. 0-3,7 (default: all)."),
    gpus: int | None = typer.Option(None, "--gpus", help="GPUs per node (default: 1)."),
) -> None:
    """Print the Cosmos-Transfer job for a backend (validated offline; nothing is submitted).

    The Cosmos models do not run in physai's own environment: the job runs in their container.

    Example: physai synthetic-data cosmos-transfer datasets/sim/v1 --out datasets/real/v1
    --prompt "a sunlit kitchen" --rgb observation.images.front
    --control depth=observation.images.depth --control edge= --image myacr.azurecr.io/ct:1
    """
    from physai.core.jobs.backends import render_text
    from physai.synthetic_data.cosmos import transfer_job
    from physai.synthetic_data.cosmos_runner import parse_control

    parsed = [parse_control(c) for c in control]
    spec = transfer_job(
        dataset,
        out,
        prompt=prompt,
        rgb_camera=rgb,
        controls={kind: camera for kind, camera, _ in parsed},
        weights={kind: weight for kind, _, weight in parsed},
        image=image,
        episodes=episodes,
        gpus=gpus,
    )
    typer.echo(render_text(spec, backend, get_settings(ctx)), nl=False)


@app.command("judge")
def judge_command(
    dataset: str = typer.Argument(..., help="LeRobot dataset URL to judge."),
    camera: str | None = typer.Option(None, "--camera", help="Camera feature to sample."),
    frames: int = typer.Option(8, "--frames", help="Frames sampled per episode."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="OpenAI-compatible base URL (default: $PHYSAI_JUDGE_URL)."
    ),
    model: str | None = typer.Option(None, "--model", help="Model (default: $PHYSAI_JUDGE_MODEL)."),
    label_key: str | None = typer.Option(
        None, "--label-key", help="Judge locally from this success column instead of a VLM."
    ),
    report_url: str | None = typer.Option(None, "--report", help="Write the JSON report here."),
    write_annotations: bool = typer.Option(
        False, "--annotate", help="Store verdicts as episode outcomes with their reasons."
    ),
) -> None:
    """Judge each episode success/failure with a reason (VLM endpoint, or a local label).

    The key is read from $PHYSAI_JUDGE_API_KEY and never printed.

    Example: physai synthetic-data judge datasets/pick/v1 --camera observation.images.front
    --endpoint http://localhost:8000/v1 --model nvidia/Cosmos-Reason1-7B --annotate
    """
    import os

    from physai.synthetic_data.judge import (
        Judge,
        LocalJudge,
        OpenAIJudge,
        annotate,
        judge_dataset,
        report,
        write_report,
    )

    judge: Judge
    if label_key is None and camera is None:
        raise UserError("a VLM judge needs frames: give --camera (or --label-key to judge locally)")
    if frames < 1:
        raise UserError(f"--frames must be 1 or more, not {frames}")
    if label_key is not None:
        judge, name = LocalJudge(), f"local:{label_key}"
    else:
        url = endpoint or os.environ.get("PHYSAI_JUDGE_URL")
        chosen = model or os.environ.get("PHYSAI_JUDGE_MODEL")
        if not url or not chosen:
            raise UserError("give --endpoint and --model (or PHYSAI_JUDGE_URL/_MODEL)")
        judge, name = OpenAIJudge(url, chosen), chosen
    verdicts = judge_dataset(dataset, judge, camera=camera, frames=frames, label_key=label_key)
    document = report(verdicts, dataset_url=dataset, judge=name)
    if report_url is not None:
        write_report(report_url, document)
    if write_annotations:
        annotate(verdicts, dataset)
    for item in verdicts:
        typer.echo(f"{item.episode}\t{item.verdict.outcome}\t{item.verdict.reason}")
    typer.echo(f"{document['success']} success, {document['failure']} failure")


@app.command("augment")
def augment_command(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Source dataset: a path or storage URL."),
    out: str = typer.Option(..., "--out", help="Dataset path or storage URL to publish."),
    seed: int = typer.Option(..., "--seed", min=0, help="Seed of every draw (same: same frames)."),
    config_file: Path = typer.Option(
        ..., "--config", help="Augmentation YAML (ranges; see the augmentation specification)."
    ),
    copies: int | None = typer.Option(
        None, "--copies", min=1, help="Augmented copies of each episode (overrides the config)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Processes writing parts, merged at the end (default 1)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Write a new dataset whose camera images are augmented (colour jitter, blur, noise,
    crop and shift), drawn once per episode from the seed; other features are copied.

    Output episode i*copies+c is copy c of source episode i; each carries its drawn
    parameters as labels (augment.*). Published atomically; bad input writes nothing.

    Example: physai synthetic-data augment data/pick --out data/pick-aug --seed 7 --config aug.yaml
    """
    from physai.synthetic_data.augment import augment_dataset, load_config

    config = load_config(config_file)
    if copies is not None:
        config = config.model_copy(update={"copies": copies})
    report = augment_dataset(
        dataset,
        out,
        config,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        settings=get_settings(ctx),
    )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
        return
    typer.echo(
        f"{report.out}: {report.episodes} episodes ({report.copies} per source episode), "
        f"{report.frames} frames, cameras {', '.join(report.cameras)}, in {report.seconds:.1f} s"
    )
