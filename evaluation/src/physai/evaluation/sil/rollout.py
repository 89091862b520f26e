"""One closed-loop episode: reset with a seed, then policy -> clipped action -> env.step.

The conventions are training's own deterministic evaluation (`physai.training.rl.evaluate`):
the episode resets with its seed, observations go to the policy as float32, actions are
clipped to the action space's bounds, the return is the sum of the rewards, and success is the
task's signal on the last step's info.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from physai.evaluation.sil.interface import Interface
from physai.evaluation.sil.report import EpisodeResult

if TYPE_CHECKING:
    from physai.training import Policy, TaskSpec

Frame = NDArray[np.uint8]


def run_episode(
    env: Any,
    policy: Policy,
    task: TaskSpec,
    interface: Interface,
    index: int,
    seed: int,
    on_frame: Callable[[Frame], None] | None = None,
) -> EpisodeResult:
    """Run one episode of `env` (a gymnasium Env with a time limit) driven by `policy`.

    `on_frame` gets the rendered frame after the reset and after every step (length + 1 frames;
    the env must have been made with render_mode='rgb_array').
    """
    obs, _ = env.reset(seed=seed)
    policy.reset()
    feed = np.empty(interface.policy_obs_shape, dtype=interface.policy_obs_dtype)
    flat = feed.reshape(-1)
    low, high, shape = interface.action_low, interface.action_high, interface.action_shape
    if on_frame is not None:
        on_frame(env.render())
    total, steps = 0.0, 0
    terminated = truncated = False
    info: dict[str, Any] = {}
    while not (terminated or truncated):
        np.copyto(flat, np.asarray(obs).reshape(-1), casting="same_kind")
        action = np.clip(np.asarray(policy(feed)).reshape(shape), low, high)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        if on_frame is not None:
            on_frame(env.render())
    return EpisodeResult(
        index=index,
        seed=seed,
        episode_return=total,
        length=steps,
        success=task.is_success(info, bool(terminated), bool(truncated)),
        terminated=bool(terminated),
    )
