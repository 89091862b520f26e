"""The `physai fleet-deployment` command group."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from physai.core.cli import domain_app
from physai.core.errors import UserError

app = domain_app(
    "fleet-deployment",
    help=(
        "Flux GitOps delivery, the approval gate service, the policy hot-loader "
        "and the ROS 2 inference node."
    ),
)


def check_node_inputs(policy: Path | None, watch: Path | None, rate: float | None) -> None:
    """UserError, before any ROS start-up, for a missing policy or pointer or a bad rate."""
    from physai.fleet_deployment.inference_node.pointer import read_pointer
    from physai.fleet_deployment.inference_node.rate import check_rate
    from physai.training import PolicyCard

    if policy is None and watch is None:
        raise UserError("give --policy DIR, --watch POINTER, or both")
    if rate is not None:
        check_rate(rate)
    if policy is not None:
        if not policy.is_dir():
            raise UserError(f"policy folder {policy} does not exist (export one first)")
        PolicyCard.read(policy)  # UserError when policy.json is missing or invalid
    if watch is not None:
        if policy is None:
            read_pointer(watch)  # the pointer is the only source: it must name a folder now
        elif not watch.parent.is_dir():
            raise UserError(f"the pointer's folder {watch.parent} does not exist")


def check_ros_args(extra: list[str]) -> None:
    """Extra arguments are ROS's only when they start with `--ros-args`: anything else is a
    mistyped option (`--rat 30`), which must not be passed on silently."""
    if extra and extra[0] != "--ros-args":
        raise UserError(
            f"unknown option or argument {extra[0]!r} (ROS arguments go after -- --ros-args)"
        )


@app.command(
    "node",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def node_command(
    ctx: typer.Context,
    policy: Path | None = typer.Option(
        None, "--policy", help="Exported policy folder (with policy.json) to start with."
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="Control rate in Hz (default: the card's control_rate_hz, else 50)."
    ),
    observation_topic: str = typer.Option(
        "observation", "--observation-topic", help="std_msgs/Float32MultiArray observations in."
    ),
    action_topic: str = typer.Option(
        "action", "--action-topic", help="std_msgs/Float32MultiArray actions out."
    ),
    watch: Path | None = typer.Option(
        None,
        "--watch",
        help="Pointer to poll for new versions: a `current` symlink or a current.json file.",
    ),
    watch_interval: float = typer.Option(
        0.5, "--watch-interval", help="Seconds between two looks at the pointer."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    latency_log: float = typer.Option(
        10.0, "--latency-log", help="Log the policy's latency every N seconds (0: never)."
    ),
    node_name: str = typer.Option("physai_inference", "--name", help="ROS node name."),
    as_json: bool = typer.Option(False, "--json", help="Print the final stats as JSON on exit."),
) -> None:
    """Run an exported policy as a ROS 2 node at a fixed rate, hot-swapping new versions.

    Subscribes to Float32MultiArray observations (the policy's input, flattened), publishes
    Float32MultiArray actions each tick once an observation has arrived, and the running
    version on ~/policy (JSON). With --watch, a pointer naming another version folder swaps it
    in between two ticks, without a restart; a version with other shapes is refused. ROS
    arguments go after `-- --ros-args` (-- --ros-args -r __ns:=/arm; a -p NAME:=VALUE parameter
    there beats the option of the same name). Stops on SIGINT/SIGTERM.

    Examples:

      physai fleet-deployment node --policy exports/ppo-pendulum --rate 50

      physai fleet-deployment node --watch policies/current --observation-topic /arm/obs \\
        --action-topic /arm/command

      ln -sfn v2 policies/current.tmp && mv -T policies/current.tmp policies/current
    """
    check_node_inputs(policy, watch, rate)
    check_ros_args(ctx.args)
    from physai.fleet_deployment.inference_node import run_node

    stats = run_node(
        policy,
        ros_args=list(ctx.args),
        watch=watch,
        rate_hz=rate,
        observation_topic=observation_topic,
        action_topic=action_topic,
        device=device,
        watch_interval_s=watch_interval,
        latency_log_s=latency_log,
        node_name=node_name,
    )
    if as_json:
        typer.echo(json.dumps(stats, indent=1))
    else:
        typer.echo(
            f"{stats['published']} actions published, {stats['swaps']} swap(s), "
            f"{stats['refused']} refused; last policy {stats['policy']['name']} "
            f"({stats['policy']['version']})"
        )
