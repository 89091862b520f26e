"""The task registry: gymnasium MuJoCo tasks (the laptop default) and Isaac Lab tasks (GPU
clusters, used when `isaaclab` is installed) behind one interface for trainers and evaluation.

    task = get_task("InvertedPendulum")
    envs = make_vector_env(task, num_envs=8, seed=0)      # a gymnasium VectorEnv
    task.is_success(info, terminated, truncated)          # per-env success at episode end

Each task names its environment id, its source, a `solved_return` (the mean episode return that
counts as learned; tests and examples assert it) and a success signal.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError, UserError

Source = Literal["gymnasium", "isaaclab"]
ISAACLAB_HINT = (
    "pip install 'physai-training[isaaclab]' on a machine with Isaac Sim and an NVIDIA GPU "
    "(or run the job in the Isaac Lab container through --backend osmo|azureml)"
)
Success = Callable[[dict[str, Any], bool, bool], bool]


def _survived(info: dict[str, Any], terminated: bool, truncated: bool) -> bool:
    """Success when the episode ran to its time limit without failing."""
    return truncated and not terminated


def _near(key: str, tolerance: float) -> Success:
    """Success when the last step's `info[key]` (a negative distance) is within `tolerance`."""

    def success(info: dict[str, Any], terminated: bool, truncated: bool) -> bool:
        value = info.get(key)
        return value is not None and -float(value) < tolerance

    return success


@dataclass(frozen=True)
class TaskSpec:
    """One task: where it comes from, how to make it, when it counts as learned."""

    name: str
    source: Source
    env_id: str
    description: str
    solved_return: float | None = None
    success: Success | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()

    def is_success(self, info: dict[str, Any], terminated: bool, truncated: bool) -> bool | None:
        """Whether a finished episode succeeded; None when the task has no success signal."""
        return None if self.success is None else self.success(info, terminated, truncated)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "InvertedPendulum",
            "gymnasium",
            "InvertedPendulum-v5",
            "balance a pole on a cart (1 action); learns in about a minute on a CPU",
            solved_return=500.0,
            success=_survived,
        ),
        TaskSpec(
            "Reacher",
            "gymnasium",
            "Reacher-v5",
            "move a 2-joint arm's fingertip to a target",
            solved_return=-6.0,
            success=_near("reward_dist", 0.05),
        ),
        TaskSpec(
            "Pusher",
            "gymnasium",
            "Pusher-v5",
            "push a puck to a goal with a 7-joint arm",
            solved_return=-30.0,
            success=_near("reward_dist", 0.1),
        ),
        TaskSpec("HalfCheetah", "gymnasium", "HalfCheetah-v5", "run forward", 3000.0),
        TaskSpec("Hopper", "gymnasium", "Hopper-v5", "hop forward without falling", 2500.0),
        TaskSpec("Ant", "gymnasium", "Ant-v5", "walk forward with a quadruped", 3000.0),
        TaskSpec("Isaac-Cartpole", "isaaclab", "Isaac-Cartpole-v0", "Isaac Lab cart-pole"),
        TaskSpec("Isaac-Ant", "isaaclab", "Isaac-Ant-v0", "Isaac Lab ant locomotion"),
        TaskSpec(
            "Isaac-Anymal-C-Rough",
            "isaaclab",
            "Isaac-Velocity-Rough-Anymal-C-v0",
            "Isaac Lab ANYmal-C on rough terrain",
        ),
        TaskSpec(
            "Isaac-Franka-Lift",
            "isaaclab",
            "Isaac-Lift-Cube-Franka-v0",
            "Isaac Lab Franka lifting a cube",
        ),
    )
}


def task_names(source: Source | None = None) -> list[str]:
    """The registered task names (of one source, or all)."""
    return sorted(n for n, t in TASKS.items() if source is None or t.source == source)


def get_task(name: str) -> TaskSpec:
    """The task called `name` (or whose environment id is `name`); UserError otherwise."""
    if name in TASKS:
        return TASKS[name]
    for spec in TASKS.values():
        if spec.env_id == name:
            return spec
    raise UserError(f"unknown task {name!r} (known: {', '.join(task_names())})")


def make_vector_env(
    task: TaskSpec | str,
    num_envs: int = 1,
    *,
    seed: int | None = 0,
    asynchronous: bool = False,
) -> Any:
    """A gymnasium VectorEnv of `num_envs` copies of a gymnasium task, reset with `seed`.

    Isaac Lab tasks are made by Isaac Lab's own launcher inside its container; here they raise
    MissingDependencyError unless `isaaclab` is importable.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if num_envs < 1:
        raise UserError(f"num_envs must be 1 or more, not {num_envs}")
    if spec.source == "isaaclab":
        try:
            import isaaclab  # noqa: F401
        except ImportError:
            raise MissingDependencyError(f"Isaac Lab (for {spec.name})", ISAACLAB_HINT) from None
        raise UserError(
            f"{spec.name} runs through Isaac Lab's app launcher: use the Isaac Lab container job"
        )
    os.environ.setdefault("MUJOCO_GL", "egl")
    import gymnasium as gym

    kwargs = dict(spec.kwargs)
    factory = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
    envs = factory([lambda: gym.make(spec.env_id, **kwargs) for _ in range(num_envs)])
    if seed is not None:
        envs.reset(seed=seed)
        envs.action_space.seed(seed)
    return envs


def episode_successes(
    spec: TaskSpec,
    infos: dict[str, Any],
    terminated: NDArray[np.bool_],
    truncated: NDArray[np.bool_],
) -> list[bool]:
    """Success of every sub-environment whose episode ended at this vector step."""
    done = np.logical_or(terminated, truncated)
    results = []
    for i in np.flatnonzero(done):
        info = {
            k: v[i] for k, v in infos.items() if not k.startswith("_") and hasattr(v, "__len__")
        }
        outcome = spec.is_success(info, bool(terminated[i]), bool(truncated[i]))
        if outcome is not None:
            results.append(outcome)
    return results
