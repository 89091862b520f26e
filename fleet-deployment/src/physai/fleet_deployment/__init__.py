"""physai-fleet-deployment.

Flux GitOps delivery, the approval gate service, the policy hot-loader and the ROS 2 inference node.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("physai-fleet-deployment")
except PackageNotFoundError:  # run from a source tree on PYTHONPATH (e.g. a robot or GPU host)
    __version__ = "0.0.0+source"
