"""`evaluate_policy`: run an exported policy in closed loop on a MuJoCo task and report.

    report = evaluate_policy("exports/ppo-pendulum", episodes=10, seed=0, out="evals/ppo")
    report.success_rate, report.mean_return, report.latency.p99_us

Episode i resets with seed + i, which is how training's deterministic evaluation seeds its
vector env: `evaluate_policy(export, task, N, S)` scores what `evaluate(learner, task, N, S)`
scored for the checkpoint the export came from.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from physai.core.errors import NotFoundError, UserError
from physai.evaluation.sil.environment import frame_rate, make_env
from physai.evaluation.sil.interface import check_interface
from physai.evaluation.sil.output import check_output, publish_report
from physai.evaluation.sil.report import (
    EpisodeResult,
    LatencySummary,
    PolicyInfo,
    SilReport,
)
from physai.evaluation.sil.rollout import run_episode
from physai.evaluation.sil.video import Mp4Writer

if TYPE_CHECKING:
    from physai.core.settings import Settings
    from physai.training import Policy

VIDEO_NAME = "episode_0.mp4"
DeviceChoice = Literal["auto", "cpu", "cuda"]


def evaluate_policy(
    policy: str | Path,
    task: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    *,
    format: str | None = None,
    device: DeviceChoice = "auto",
    out: str | None = None,
    video: bool = False,
    overwrite: bool = False,
    settings: Settings | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> SilReport:
    """Run `episodes` closed-loop episodes of the exported `policy` on `task` and report.

    `policy`: a folder written by `physai training export` (or its policy.json). `task`: a
    MuJoCo task name; None takes policy.json's `source.task`. `format`/`device`: as
    `physai.training.load_policy` (None/'auto': the fastest this machine runs). `out`: a folder
    (path or storage URL) to publish report.json to, atomically; `video` adds an mp4 of the
    first episode there. `on_episode` is called after each episode (progress bars).

    Bad input (missing policy, unknown task, a policy whose input/output sizes do not match
    the task's spaces, episodes < 1, an existing `out` without `overwrite`) raises UserError
    before any rollout, and nothing is written.
    """
    from physai.training import get_task, load_policy

    if episodes < 1:
        raise UserError(f"episodes must be 1 or more, not {episodes}")
    if seed < 0:
        raise UserError(f"seed must be 0 or more, not {seed}")
    if video and out is None:
        raise UserError("a video needs an output folder (out)")
    folder = Path(policy)
    if not folder.exists():
        raise NotFoundError(f"policy {folder} does not exist: pass a folder written by "
                            "`physai training export`")  # fmt: skip
    if out is not None:
        check_output(out, overwrite, settings)
    loaded = load_policy(folder, format=format, device=device)
    name = task or loaded.card.source.task
    if name is None:
        raise UserError(f"policy.json of {loaded.card.name!r} names no source task: pass a task")
    spec = get_task(name)
    env = make_env(spec, render=video)
    try:
        interface = check_interface(loaded, env.observation_space, env.action_space, spec.name)
        loaded.clear_latency()
        with tempfile.TemporaryDirectory(prefix="physai-sil-") as tmp:
            clip = Path(tmp) / VIDEO_NAME if video else None
            began = time.perf_counter()
            results: list[EpisodeResult] = []
            for index in range(episodes):
                if index == 0 and clip is not None:
                    fps = frame_rate(env, loaded.card.control_rate_hz)
                    with Mp4Writer(clip, fps) as writer:
                        result = run_episode(env, loaded, spec, interface, 0, seed, writer.add)
                else:
                    result = run_episode(env, loaded, spec, interface, index, seed + index)
                results.append(result)
                if on_episode is not None:
                    on_episode(result)
            seconds = time.perf_counter() - began
            report = _report(loaded, folder, spec.name, spec.env_id, seed, results, seconds, clip)
            if out is not None:
                publish_report(report, out, video=clip, overwrite=overwrite, settings=settings)
        return report
    finally:
        env.close()


def _report(
    policy: Policy,
    folder: Path,
    task: str,
    env_id: str,
    seed: int,
    results: list[EpisodeResult],
    seconds: float,
    clip: Path | None,
) -> SilReport:
    card = policy.card
    returns = np.array([r.episode_return for r in results], dtype=np.float64)
    outcomes = [r.success for r in results if r.success is not None]
    rate = card.control_rate_hz
    stats = policy.latency()
    return SilReport(
        task=task,
        env_id=env_id,
        policy=PolicyInfo(
            name=card.name,
            path=str(folder.resolve()),
            kind=card.policy,
            format=policy.format,
            device=policy.device,
            sha256=card.files[policy.format].sha256,
            source_task=card.source.task,
            source_checkpoint=card.source.checkpoint,
        ),
        seed=seed,
        episodes=results,
        success_rate=float(np.mean(outcomes)) if outcomes else None,
        mean_return=float(returns.mean()),
        std_return=float(returns.std()),
        mean_length=float(np.mean([r.length for r in results])),
        latency=LatencySummary(**stats.to_dict(), budget_us=1e6 / rate if rate else None),
        control_rate_hz=rate,
        video=clip.name if clip is not None else None,
        created=datetime.now(UTC),
        seconds=round(seconds, 3),
        versions=_versions(policy.format),
    )


def _versions(fmt: str) -> dict[str, str]:
    runtime = {"onnx": "onnxruntime", "torchscript": "torch", "tensorrt": "tensorrt"}.get(fmt)
    found = {}
    for package in ("physai-evaluation", "physai-training", "gymnasium", "mujoco", runtime):
        if package is None:
            continue
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
