"""physai-data-pipeline.

ROS 2 episodic capture, bag to LeRobot conversion, and upload to storage.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-data-pipeline")
