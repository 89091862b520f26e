"""The `physai training` command group."""

from __future__ import annotations

import typer

from physai.core.cli import domain_app, get_settings
from physai.core.errors import UserError

app = domain_app(
    "training",
    help="RL (skrl, RSL-RL) and IL/VLA (LeRobot) training, export, packaging and registration.",
)


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    """`--set key=value` pairs as a dict; values parsed as JSON when they are JSON."""
    import json

    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except ValueError:
            overrides[key.strip()] = raw
    return overrides


@app.command("il")
def il_command(
    ctx: typer.Context,
    policy: str = typer.Option(
        ..., "--policy", "-p", help="act | diffusion | smolvla | pi0 | pi05 | groot."
    ),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="LeRobot v3.0 dataset: a path, az:// or Blob https URL."
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Run output URL (default: <state dir>/runs/il/...)."
    ),
    steps: int = typer.Option(100_000, "--steps", help="Total gradient steps (across resumes)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Samples per step (per GPU)."),
    learning_rate: float | None = typer.Option(
        None, "--learning-rate", "--lr", help="Learning rate (default: the policy's preset)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    num_workers: int = typer.Option(0, "--num-workers", help="Dataloader worker processes."),
    checkpoint_every: int = typer.Option(
        1_000, "--checkpoint-every", help="Steps between checkpoints (and one at the end)."
    ),
    log_every: int = typer.Option(100, "--log-every", help="Steps between metric logs."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Policy config field as key=value (JSON values), repeatable."
    ),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Pretrained weights: a local directory or a hub repo id."
    ),
    pretrained_revision: str | None = typer.Option(
        None, "--pretrained-revision", help="Hub commit to pin (required with a hub repo id)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from <output>/latest.json."),
    experiment: str = typer.Option("physai-il", "--experiment", help="MLflow experiment name."),
    no_tracking: bool = typer.Option(False, "--no-tracking", help="Do not log to MLflow."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train an imitation-learning / VLA policy with LeRobot on a LeRobot dataset.

    Checkpoints go to OUTPUT/checkpoints/<step>/ and OUTPUT/latest.json; metrics to MLflow.
    Multi-GPU: run it under `accelerate launch --multi_gpu` (untested).

    Example: physai training il --policy act --dataset az://datasets/pick/v3 --steps 20000
    """
    import json
    from contextlib import nullcontext
    from typing import Any

    from physai.core.tracking import DatasetRef, Tracker
    from physai.training.il import load_il_config, train_il

    settings = get_settings(ctx)
    config = load_il_config(
        policy=policy,
        dataset=dataset,
        output=output,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        num_workers=num_workers,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        device=device,
        overrides=_parse_overrides(overrides),
        pretrained=pretrained,
        pretrained_revision=pretrained_revision,
        resume=resume,
    )
    tracking: Any = (
        nullcontext(None)
        if no_tracking
        else Tracker(settings).start(
            experiment,
            run_name=f"{policy}-seed{seed}",
            params=config.model_dump(mode="json"),
            tags={"physai.trainer": "lerobot", "physai.policy": policy},
        )
    )
    with tracking as tracker:
        if tracker is not None:
            tracker.set_lineage(datasets=[DatasetRef(uri=dataset.split("?", 1)[0])])
        result = train_il(config, tracker=tracker, settings=settings)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4g}"
        typer.echo(f"{result.policy}: step {result.step}, loss {loss}, latest {result.latest}")
