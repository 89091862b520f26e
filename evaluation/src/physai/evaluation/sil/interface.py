"""Does an exported policy fit a task's environment? One clear UserError when it does not.

SiL in MuJoCo drives policies that take one flat float observation and return one action
vector (what `physai training export` writes for RL actors, recurrent ones included): the
policy's per-sample input size must equal the observation space's, and its output size the
action space's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from physai.core.errors import UserError

if TYPE_CHECKING:
    from physai.training import Policy


@dataclass(frozen=True)
class Interface:
    """The shapes a rollout converts between: env arrays <-> the policy's batch-1 buffers."""

    policy_obs_shape: tuple[int, ...]
    policy_obs_dtype: np.dtype[Any]
    action_shape: tuple[int, ...]
    action_low: np.ndarray[Any, Any]
    action_high: np.ndarray[Any, Any]


def _box(space: Any, what: str, task: str) -> tuple[int, ...]:
    shape = getattr(space, "shape", None)
    if type(space).__name__ != "Box" or not shape:
        raise UserError(f"{task}'s {what} space is {space}: SiL drives Box spaces only")
    return tuple(int(d) for d in shape)


def check_interface(
    policy: Policy, observation_space: Any, action_space: Any, task: str
) -> Interface:
    """The rollout's shapes, or UserError when `policy` cannot drive the task's spaces."""
    name = policy.card.name
    if len(policy.observation_specs) != 1 or len(policy.action_specs) != 1:
        inputs = ", ".join(b.name for b in policy.observation_specs)
        outputs = ", ".join(b.name for b in policy.action_specs)
        raise UserError(
            f"policy {name!r} takes {{{inputs}}} and returns {{{outputs}}}: SiL in MuJoCo drives "
            "policies with one observation input and one action output"
        )
    norm = policy.card.normalization
    if norm.kind != "none" and not norm.folded:
        raise UserError(
            f"policy {name!r} expects {norm.kind} normalized observations that its graph does not "
            "apply: re-export it with the normalizer folded in"
        )
    obs_in, act_out = policy.observation_specs[0], policy.action_specs[0]
    if not np.issubdtype(obs_in.dtype, np.floating):
        raise UserError(f"policy {name!r} takes {obs_in.describe()}: SiL feeds float observations")
    obs_shape = _box(observation_space, "observation", task)
    act_shape = _box(action_space, "action", task)
    wants, gives = math.prod(obs_in.shape[1:]), math.prod(act_out.shape[1:])
    if obs_in.shape[0] != 1 or wants != math.prod(obs_shape):
        raise UserError(
            f"policy {name!r} takes {obs_in.name} of {wants} values but {task}'s observations "
            f"have {math.prod(obs_shape)} (shape {obs_shape}): evaluate it on the task it was "
            f"trained on (policy.json source.task: {policy.card.source.task})"
        )
    if gives != math.prod(act_shape):
        raise UserError(
            f"policy {name!r} returns {act_out.name} of {gives} values but {task} takes "
            f"{math.prod(act_shape)} (shape {act_shape})"
        )
    return Interface(
        policy_obs_shape=obs_in.shape,
        policy_obs_dtype=obs_in.dtype,
        action_shape=act_shape,
        action_low=np.asarray(action_space.low, dtype=np.float32),
        action_high=np.asarray(action_space.high, dtype=np.float32),
    )
