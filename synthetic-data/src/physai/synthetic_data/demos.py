"""Simulated demonstrations: a scripted expert on a MuJoCo arm, written as a LeRobot dataset.

    report = generate_demos("reacher", 100, "datasets/reacher-demos/v1", width=96, height=96,
                            randomization=RandomizationConfig.from_yaml("randomize.yaml"))

Each episode k uses seed `seed + k` for the scene (home posture, object or target placement)
and `(seed, k)` for its randomization draw and sensor noise, so any episode can be regenerated
alone. At every frame the joint state is observed, the expert decides an action (the motor
commands; applied after the drawn latency), the camera renders, and the physics advances
`physics_hz / fps` steps. The dataset carries, per episode, the outcome (`success` when the
expert reached every waypoint, else `failure`) and labels `seed` and `rand.<factor>` (see
randomization.py), so `physai data-management curate --where "labels.rand.mass_scale > 1"`
works at once. Episodes are spread over worker processes, each writing a part that `curate`
then merges without re-encoding; the result is published atomically.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from physai.core.errors import UserError
from physai.synthetic_data.randomization import RandomizationConfig, SceneRandomizer

if TYPE_CHECKING:
    from physai.core.settings import Settings

CAMERA = "observation.images.front"
DEFAULT_SECONDS = {"reacher": 2.0, "pusher": 4.0}


class DemoReport(BaseModel):
    """What `generate_demos` wrote."""

    model_config = ConfigDict(frozen=True)

    out: str
    task: str
    episodes: int
    frames: int
    successes: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        """End-to-end generation rate (physics, rendering, encoding, writing)."""
        return self.frames / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class DemoSpec:
    """Everything a worker needs to generate a range of episodes (picklable)."""

    task: str
    seed: int
    seconds: float
    fps: int
    width: int
    height: int
    physics_hz: int
    randomization: RandomizationConfig | None


@dataclass
class EpisodeRecord:
    """One generated episode."""

    state: NDArray[np.float32]
    action: NDArray[np.float32]
    images: list[NDArray[np.uint8]]
    success: bool
    draw: dict[str, float]


def run_episode(arm: Any, scene: SceneRandomizer | None, spec: DemoSpec, k: int) -> EpisodeRecord:
    """Generate episode `k` of `spec` with the scripted expert."""
    from physai.data_pipeline import ScriptedExpert

    arm.reset(spec.seed + k)
    rng = np.random.default_rng((spec.seed, k))
    draw = spec.randomization.sample(rng) if spec.randomization is not None else {}
    if scene is not None:
        scene.apply(draw)
    expert = ScriptedExpert(arm)
    frames = max(1, round(spec.seconds * spec.fps))
    # physics steps before frame i + 1: exact over the episode even when physics_hz / fps
    # is not a whole number (500 / 30 alternates 16 and 17 steps)
    boundaries = [round(i * spec.physics_hz / spec.fps) for i in range(frames + 1)]
    latency = int(draw.get("action_latency_steps", 0))
    state_noise, image_noise = draw.get("state_noise_std", 0.0), draw.get("image_noise_std", 0.0)
    states = np.empty((frames, len(arm.joint_names)), np.float32)
    actions = np.empty((frames, arm.model.nu), np.float32)
    images: list[NDArray[np.uint8]] = []
    for i in range(frames):
        state = arm.positions()
        if state_noise:
            state = state + rng.normal(0, state_noise, state.shape)
        states[i] = state
        actions[i] = expert.action()
        arm.act(actions[max(0, i - latency)].astype(np.float64))
        image = arm.render()
        if image_noise:
            noisy = image + rng.normal(0, image_noise, image.shape)
            image = np.clip(noisy, 0, 255).astype(np.uint8)
        images.append(image)
        for _ in range(boundaries[i + 1] - boundaries[i]):
            arm.step()
    # the recorded action is what the expert decided; the clip to the motors' range is applied
    low, high = arm.model.actuator_ctrlrange.T
    np.clip(actions, low, high, out=actions)
    return EpisodeRecord(states, actions, images, expert.success, draw)


def features(arm: Any, width: int, height: int) -> dict[str, dict[str, Any]]:
    """The dataset's features for this arm and image size."""
    names = list(arm.joint_names)
    return {
        "observation.state": {"dtype": "float32", "shape": [len(names)], "names": names},
        "action": {"dtype": "float32", "shape": [arm.model.nu], "names": names[: arm.model.nu]},
        CAMERA: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        },
    }


def write_part(
    spec: DemoSpec,
    episodes: range,
    url: str,
    threads: int | None = None,
    *,
    overwrite: bool = True,
    settings: Settings | None = None,
) -> int:
    """Generate `episodes` and write them as one dataset at `url`; the number of successes."""
    from physai.data_management import LeRobotDatasetWriter, annotation_snapshot
    from physai.data_pipeline import SimArm

    arm = SimArm(spec.task, seed=spec.seed, width=spec.width, height=spec.height,
                 physics_hz=spec.physics_hz)  # fmt: skip
    scene = SceneRandomizer(arm) if spec.randomization is not None else None
    outcomes: dict[int, Any] = {}
    labels: dict[int, dict[str, object]] = {}
    try:
        writer = LeRobotDatasetWriter(
            url,
            fps=spec.fps,
            features=features(arm, spec.width, spec.height),
            robot_type=f"sim_{spec.task}",
            encoder_threads=threads,
            overwrite=overwrite,
            settings=settings,
        )
        try:
            for local, k in enumerate(episodes):
                record = run_episode(arm, scene, spec, k)
                data = {"observation.state": record.state, "action": record.action,
                        CAMERA: record.images}  # fmt: skip
                writer.add_episode(data, arm.task.instruction)
                outcomes[local] = "success" if record.success else "failure"
                drawn = {f"rand.{key}": value for key, value in record.draw.items()}
                labels[local] = {"seed": spec.seed + k, **drawn}
            snapshot = annotation_snapshot(outcomes, labels, writer="demos")
            if snapshot is not None:
                writer.add_file(*snapshot)
        except BaseException:
            writer.abort()
            raise
        writer.finish()
    finally:
        arm.close()
    return sum(outcome == "success" for outcome in outcomes.values())


def _worker_init() -> None:
    from physai.data_management import skip_pandas_in_pyarrow

    os.environ.setdefault("MUJOCO_GL", "egl")
    # One worker per core already: Mesa's software renderer would otherwise start a thread per
    # core in every worker, and they would fight (read when the GL context is created).
    os.environ.setdefault("LP_NUM_THREADS", "1")
    skip_pandas_in_pyarrow()  # a generation worker never converts to pandas


def generate_demos(
    task: str,
    episodes: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    seconds: float | None = None,
    fps: int = 30,
    width: int = 96,
    height: int = 96,
    physics_hz: int = 500,
    randomization: RandomizationConfig | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
) -> DemoReport:
    """Generate `episodes` demonstrations of `task` and publish them as one dataset at `out`."""
    from physai.core.storage import exists
    from physai.data_management import curate
    from physai.data_pipeline import get_task

    get_task(task)  # unknown task: a clear error before anything runs
    if episodes < 1:
        raise UserError(f"episodes must be 1 or more, not {episodes}")
    if seed < 0:
        raise UserError(f"seed must be 0 or more, not {seed}")
    if physics_hz < fps:
        raise UserError(f"physics_hz ({physics_hz}) must be at least fps ({fps})")
    if not overwrite and exists(os.fspath(out), settings):
        raise UserError(f"{os.fspath(out)} exists: pass overwrite=True (--overwrite) to replace it")
    if not 1 <= fps <= 1000:
        raise UserError(f"fps must be 1-1000, not {fps}")
    spec = DemoSpec(task, seed, seconds or DEFAULT_SECONDS[task], fps, width, height,
                    physics_hz, randomization)  # fmt: skip
    count = max(1, min(workers or os.cpu_count() or 1, episodes))
    started = time.perf_counter()
    if count == 1:
        successes = write_part(
            spec, range(episodes), os.fspath(out), overwrite=overwrite, settings=settings
        )
    else:
        shares = np.array_split(np.arange(episodes), count)
        work = Path(tempfile.mkdtemp(prefix="physai-demos-"))
        try:
            parts = [str(work / f"part-{i}") for i in range(count)]
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                count, mp_context=context, initializer=_worker_init
            ) as pool:
                futures = [
                    pool.submit(write_part, spec, range(int(s[0]), int(s[-1]) + 1), part, 1)
                    for s, part in zip(shares, parts, strict=True)
                ]
                successes = sum(f.result() for f in futures)
            curate(parts, out, overwrite=overwrite, settings=settings)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    frames = episodes * max(1, round(spec.seconds * fps))
    return DemoReport(
        out=os.fspath(out),
        task=task,
        episodes=episodes,
        frames=frames,
        successes=successes,
        seconds=time.perf_counter() - started,
    )
