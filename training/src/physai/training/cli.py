"""The `physai training` command group."""

from __future__ import annotations

import typer

from physai.core.cli import domain_app, get_settings
from physai.core.errors import UserError
from physai.training import cli_options as opts
from physai.training.metrics import TRAINING_FLUSH_S

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


JOB_OPTIONS = {"backend", "dry_run", "image", "gpus", "nodes", "pool"}


def _as_job(
    ctx: typer.Context,
    kind: str,
    backend: str,
    dry_run: bool,
    image: str | None,
    gpus: int,
    nodes: int,
    pool: str | None,
) -> bool:
    """Print or submit this command as a job when asked; True when it was (nothing to run)."""
    if backend == "local" and not dry_run:
        return False
    from physai.core.cli import command_argv
    from physai.core.jobs.backends import check_backend, render_text, submit_cloud
    from physai.training.jobs import training_job

    chosen = check_backend(backend)
    settings = get_settings(ctx)
    spec = training_job(
        kind,  # type: ignore[arg-type]
        command_argv(ctx, skip=JOB_OPTIONS),
        image=image or ("local" if chosen == "local" else None),
        gpus=gpus,
        nodes=nodes,
    )
    if dry_run:
        typer.echo(render_text(spec, chosen, settings), nl=False)
    else:
        typer.echo(submit_cloud(spec, chosen, settings, pool=pool))
    return True


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
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="lerobot (its loop) | fast (frames on the GPU, CUDA-graph step) | auto (fast for "
        "ACT on CUDA).",
    ),
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
    backend: opts.Backend = "local",
    dry_run: opts.DryRun = False,
    image: opts.Image = None,
    gpus: opts.Gpus = 0,
    nodes: opts.Nodes = 1,
    pool: opts.Pool = None,
) -> None:
    """Train an imitation-learning / VLA policy with LeRobot on a LeRobot dataset.

    Checkpoints go to OUTPUT/checkpoints/<step>/ and OUTPUT/latest.json; metrics to MLflow.
    Multi-GPU: run it under `accelerate launch --multi_gpu` (untested).

    Example: physai training il --policy act --dataset az://datasets/pick/v3 --steps 20000
    Cloud:   ... --output az://runs/act --backend azureml --image IMAGE --gpus 4 --dry-run
    """
    if _as_job(ctx, "il", backend, dry_run, image, gpus, nodes, pool):
        return
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
        engine=engine,
        overrides=_parse_overrides(overrides),
        pretrained=pretrained,
        pretrained_revision=pretrained_revision,
        resume=resume,
    )
    tracking: Any = (
        nullcontext(None)
        if no_tracking
        else Tracker(settings, flush_interval_s=TRAINING_FLUSH_S).start(
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


@app.command("rl")
def rl_command(
    ctx: typer.Context,
    library: str = typer.Option("skrl", "--library", help="PPO implementation: skrl or rsl_rl."),
    task: str = typer.Option("InvertedPendulum", "--task", help="Task name (physai task list)."),
    num_envs: int = typer.Option(8, "--num-envs", help="Parallel environments."),
    iterations: int = typer.Option(150, "--iterations", help="PPO iterations to run now."),
    steps_per_iteration: int = typer.Option(
        32, "--steps-per-iteration", help="Rollout length per environment and iteration."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of torch, numpy and the environments."),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Adam learning rate."),
    schedule: str = typer.Option(
        "fixed", "--schedule", help="Learning-rate schedule: fixed, linear or adaptive (KL)."
    ),
    hidden: str = typer.Option("64,64", "--hidden", help="Hidden layer sizes, comma-separated."),
    checkpoint_url: str | None = typer.Option(
        None, "--checkpoint-url", help="Storage URL for ckpt_<iteration>.pt and latest.json."
    ),
    checkpoint_every: int = typer.Option(
        10, "--checkpoint-every", help="Iterations between checkpoints (and one at the end)."
    ),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="Checkpoint to continue from: a .pt file, a latest.json, a checkpoint directory "
        "or URL, or a runs:/ or models:/ URI.",
    ),
    warm_start: bool = typer.Option(
        False, "--warm-start", help="Load only the weights of --resume; the counter starts at 0."
    ),
    eval_episodes: int = typer.Option(
        8, "--eval-episodes", help="Deterministic evaluation episodes at the end (0: none)."
    ),
    experiment: str = typer.Option("physai-rl", "--experiment", help="MLflow experiment."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the run to MLflow."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    backend: opts.Backend = "local",
    dry_run: opts.DryRun = False,
    image: opts.Image = None,
    gpus: opts.Gpus = 0,
    nodes: opts.Nodes = 1,
    pool: opts.Pool = None,
) -> None:
    """Train PPO (skrl or RSL-RL) on a gymnasium task, checkpointing to a storage URL.

    Example: physai training rl --library rsl_rl --iterations 150 --checkpoint-url out/ppo
    Cloud:   ... --checkpoint-url az://runs/ppo --backend osmo --image IMAGE --gpus 1 --dry-run
    """
    if _as_job(ctx, "rl", backend, dry_run, image, gpus, nodes, pool):
        return
    import json

    from physai.training.rl import load_config, train_rl

    try:
        hidden_sizes = tuple(int(h) for h in hidden.split(",") if h.strip())
    except ValueError:
        raise UserError(f"--hidden must be comma-separated integers, not {hidden!r}") from None
    config = load_config(
        library=library,
        task=task,
        num_envs=num_envs,
        iterations=iterations,
        steps_per_iteration=steps_per_iteration,
        seed=seed,
        learning_rate=learning_rate,
        schedule=schedule,
        hidden_sizes=hidden_sizes,
        checkpoint_url=checkpoint_url,
        checkpoint_every=checkpoint_every,
        resume=resume,
        warm_start=warm_start,
        eval_episodes=eval_episodes,
    )
    settings = get_settings(ctx)

    def progress(iteration: int, metrics: dict[str, float]) -> None:
        if not as_json and iteration % max(1, config.iterations // 20) == 0:
            shown = {k.removeprefix("train/"): round(v, 3) for k, v in metrics.items()}
            typer.echo(f"iteration {iteration}: {shown}", err=True)

    run_id: str | None = None
    if track:
        from physai.core.tracking import Tracker

        tracking = Tracker(settings, flush_interval_s=TRAINING_FLUSH_S)
        with tracking.start(experiment, run_name=f"{library}-{task}-s{seed}") as tracker:
            tracker.set_lineage(task=task)
            result = train_rl(config, tracker=tracker, settings=settings, on_iteration=progress)
            run_id = tracker.run_id
    else:
        result = train_rl(config, settings=settings, on_iteration=progress)
    summary = {**result.to_json(), "run_id": run_id}
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        typer.echo(
            f"{library} PPO on {task}: iteration {result.iterations}, mean return "
            f"{result.mean_return}, {len(result.checkpoints)} checkpoint(s)"
            + (f", latest {result.checkpoints[-1]}" if result.checkpoints else "")
            + (f", MLflow run {run_id}" if run_id else "")
        )


@app.command("export")
def export_command(
    ctx: typer.Context,
    checkpoint: str = typer.Argument(
        ...,
        help="An RL checkpoint (.pt, latest.json or its folder/URL, runs:/ or models:/) or an "
        "IL run / checkpoint folder (LeRobot ACT).",
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="Folder (or storage URL) to write; must not exist."
    ),
    formats: str = typer.Option(
        "onnx,torchscript", "--format", "-f", help="onnx, torchscript and/or tensorrt."
    ),
    tolerance: float = typer.Option(
        1e-4, "--tolerance", help="Max abs error of every format against the PyTorch policy."
    ),
    observations: str | None = typer.Option(
        None, "--observations", help="Recorded inputs for the parity check (.npy or .npz)."
    ),
    samples: int = typer.Option(64, "--samples", help="Random inputs for the parity check."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="The ACT policy's LeRobot dataset (lineage and its fps)."
    ),
    name: str | None = typer.Option(None, "--name", help="Policy name (default: the folder's)."),
    control_rate: float | None = typer.Option(
        None, "--control-rate-hz", help="Control rate to record (default: the task's/dataset's)."
    ),
    precision: str = typer.Option("fp32", "--precision", help="TensorRT engine: fp32 or fp16."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing export."),
    uint8_images: bool = typer.Option(
        False,
        "--uint8-images",
        help="ACT: take cameras as (batch, height, width, 3) uint8 frames, as cameras give them.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a trained policy to ONNX / TorchScript / TensorRT with policy.json.

    Each format must match the PyTorch policy within --tolerance; a failed check writes nothing.

    Example: physai training export outputs/ppo/latest.json --format onnx,torchscript -o exports/ppo
    ACT:     physai training export outputs/act --dataset data/pick -o exports/act
    """
    import json

    from physai.training.export import export_policy

    if precision not in ("fp32", "fp16"):
        raise UserError(f"--precision must be fp32 or fp16, not {precision!r}")
    result = export_policy(
        checkpoint,
        output,
        formats=formats,
        tolerance=tolerance,
        observations=observations,
        samples=samples,
        name=name,
        dataset=dataset,
        control_rate_hz=control_rate,
        precision=precision,  # type: ignore[arg-type]
        overwrite=overwrite,
        uint8_images=uint8_images,
        settings=get_settings(ctx),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    checks = ", ".join(
        f"{fmt} (max abs error {p.max_abs_error:.2g})" for fmt, p in result.card.parity.items()
    )
    typer.echo(f"{result.card.policy} exported to {result.output}: {checks}; policy.json written")


from physai.training import cli_release as _release  # noqa: E402 (the commands need `app`)
from physai.training import cli_runtime as _runtime  # noqa: E402

_release.register_commands(app)
_runtime.register_commands(app)
