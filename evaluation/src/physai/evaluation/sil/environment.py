"""The gymnasium environment of a task, made the way training makes it (offscreen rendering)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from physai.core.errors import UserError

if TYPE_CHECKING:
    from physai.training import TaskSpec

DEFAULT_FPS = 30.0


def make_env(task: TaskSpec, *, render: bool = False) -> Any:
    """One gymnasium env of a MuJoCo `task` (time limit included); `render`: rgb_array frames.

    It is the env that `make_vector_env` puts in each slot of its vector env, so a reset with
    the same seed starts from the same state.
    """
    if task.source != "gymnasium":
        raise UserError(
            f"{task.name} is an Isaac Lab task: SiL in Isaac Lab is planned, not implemented; "
            "evaluate a MuJoCo task (physai evaluation sil --task InvertedPendulum ...)"
        )
    os.environ.setdefault("MUJOCO_GL", "egl")
    import gymnasium as gym

    kwargs = dict(task.kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    return gym.make(task.env_id, **kwargs)


def frame_rate(env: Any, control_rate_hz: float | None) -> float:
    """Frames per second of a video of `env`: its render_fps, else the policy's control rate."""
    fps = env.metadata.get("render_fps") if hasattr(env, "metadata") else None
    return float(fps or control_rate_hz or DEFAULT_FPS)
