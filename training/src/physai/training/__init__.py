"""physai-training.

RL (skrl, RSL-RL) and IL/VLA (LeRobot) training, export, packaging and registration.

What this package does, and what it will do, is written in its `specifications/`.

Other domains use training through the names below (imported on first use, so that
`import physai.training` stays light):

    from physai.training import load_policy, get_task, make_vector_env
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from physai.core.lazy import lazy_exports

try:
    __version__ = _version("physai-training")
except PackageNotFoundError:  # run from a source tree on PYTHONPATH (e.g. a GPU host)
    __version__ = "0.0.0+source"

if TYPE_CHECKING:  # the `as` form re-exports each name for type checkers
    from physai.training.export import export_policy as export_policy
    from physai.training.policy_card import PolicyCard as PolicyCard
    from physai.training.rl import EVAL_SEED_OFFSET as EVAL_SEED_OFFSET
    from physai.training.rl import RLConfig as RLConfig
    from physai.training.rl import train_rl as train_rl
    from physai.training.runtime import LatencyStats as LatencyStats
    from physai.training.runtime import Policy as Policy
    from physai.training.runtime import load_policy as load_policy
    from physai.training.tasks import TaskSpec as TaskSpec
    from physai.training.tasks import episode_successes as episode_successes
    from physai.training.tasks import get_task as get_task
    from physai.training.tasks import make_vector_env as make_vector_env
    from physai.training.tasks import task_names as task_names

# public name -> the module that defines it
_EXPORTS = {
    "EVAL_SEED_OFFSET": "physai.training.rl",
    "RLConfig": "physai.training.rl",
    "train_rl": "physai.training.rl",
    "export_policy": "physai.training.export",
    "LatencyStats": "physai.training.runtime",
    "Policy": "physai.training.runtime",
    "load_policy": "physai.training.runtime",
    "PolicyCard": "physai.training.policy_card",
    "TaskSpec": "physai.training.tasks",
    "episode_successes": "physai.training.tasks",
    "get_task": "physai.training.tasks",
    "make_vector_env": "physai.training.tasks",
    "task_names": "physai.training.tasks",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
