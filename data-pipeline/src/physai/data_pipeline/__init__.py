"""physai-data-pipeline.

ROS 2 episodic capture, bag to LeRobot conversion, and upload to storage.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from physai.core.lazy import lazy_exports

if TYPE_CHECKING:  # the real types for checkers; at run time they load on first use
    from physai.data_pipeline.convert import convert_bags
    from physai.data_pipeline.sim_robot import (
        TASKS,
        Episode,
        ScriptedExpert,
        SimArm,
        SimTask,
        get_task,
        task_names,
        write_episodes,
    )

__version__ = _version("physai-data-pipeline")

# The public API other domains use (the simulated arms and the converter), loaded on first use.
_PUBLIC = {
    "convert_bags": "physai.data_pipeline.convert",
    **{
        name: "physai.data_pipeline.sim_robot"
        for name in (
            "TASKS",
            "Episode",
            "ScriptedExpert",
            "SimArm",
            "SimTask",
            "get_task",
            "task_names",
            "write_episodes",
        )
    },
}
__all__ = [
    "TASKS",
    "Episode",
    "ScriptedExpert",
    "SimArm",
    "SimTask",
    "__version__",
    "convert_bags",
    "get_task",
    "task_names",
    "write_episodes",
]

__getattr__ = lazy_exports(__name__, _PUBLIC)
