"""physai-fleet-deployment.

Flux GitOps delivery, the approval gate service, the policy hot-loader and the ROS 2 inference node.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-fleet-deployment")
