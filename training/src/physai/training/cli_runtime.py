"""`physai training latency`: how fast an exported policy runs here, through `load_policy`.

physai training latency exports/ppo                         # the default runtime, 10k calls
physai training latency exports/act --format onnx --device cuda --tf32 --json
"""

from __future__ import annotations

import json
from typing import cast

import typer

from physai.core.errors import UserError


def register_commands(app: typer.Typer) -> None:
    """Add `latency` to the `physai training` app."""
    app.command("latency")(latency_command)


def latency_command(
    policy: str = typer.Argument(..., help="An exported policy folder (with policy.json)."),
    fmt: str | None = typer.Option(
        None, "--format", help="onnx | torchscript | tensorrt (default: the fastest available)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto | cpu | cuda (load_policy checks it)."
    ),
    calls: int = typer.Option(10_000, "--calls", help="Timed calls, each on a new observation."),
    batch_size: int = typer.Option(1, "--batch-size", help="Observations per call."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU intra-op threads (default 1 at batch 1, else all cores)."
    ),
    tf32: bool = typer.Option(False, "--tf32", help="Let GPU matrix products use TF32."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Time an exported policy's calls through `load_policy`: per-call latency on this machine.

    Loads the policy as a robot or an evaluation would (fixed buffers, warm-up, a CUDA graph on
    a GPU), then times --calls calls on random observations, a different one each call (camera
    frames as uint8 noise). Prints the runtime used and p50/p90/p99/mean/max in microseconds.

    Example: physai training latency exports/ppo --device cpu --calls 20000
    """
    from physai.training.runtime import load_policy
    from physai.training.runtime.policy import DeviceChoice

    if calls < 1:
        raise UserError(f"--calls must be 1 or more, not {calls}")
    loaded = load_policy(
        policy,
        format=fmt,
        device=cast(DeviceChoice, device),
        batch_size=batch_size,
        threads=threads,
        tf32=tf32,
    )
    stats = loaded.benchmark(calls)
    facts = loaded.describe()
    if as_json:
        typer.echo(json.dumps({"policy": loaded.card.name, **facts, **stats.to_dict()}, indent=1))
        return
    runtime = ", ".join(f"{key} {value}" for key, value in facts.items())
    typer.echo(f"{loaded.card.name}: {runtime}")
    typer.echo(f"{stats}, max {stats.max_us:.1f} us")
