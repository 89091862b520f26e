"""The ROS 2 inference node and its policy hot-loader.

    from physai.fleet_deployment.inference_node import InferenceNode, run_node, write_pointer

    run_node("policies/v1", watch="policies/current")           # spins until SIGINT/SIGTERM
    write_pointer("policies/current", "policies/v2")             # the node swaps to v2

One job per module: `pointer` (the watched `current` link or `current.json`), `slot` (the
running policy and its atomic swap), `ros` (messages and QoS), `node` (the rclpy node) and
`run` (a context of its own, spun until a signal). `InferenceNode` needs rclpy (the `ros`
extra) and is imported on first use; the rest imports without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from physai.fleet_deployment.inference_node.pointer import (
    PointerWatcher,
    read_pointer,
    write_pointer,
)
from physai.fleet_deployment.inference_node.run import run_node
from physai.fleet_deployment.inference_node.slot import (
    ActivePolicy,
    IncompatiblePolicyError,
    PolicySlot,
    Signature,
)

if TYPE_CHECKING:
    from physai.fleet_deployment.inference_node.node import InferenceNode

__all__ = [
    "ActivePolicy",
    "IncompatiblePolicyError",
    "InferenceNode",
    "PointerWatcher",
    "PolicySlot",
    "Signature",
    "read_pointer",
    "run_node",
    "write_pointer",
]


def __getattr__(name: str) -> Any:
    if name == "InferenceNode":
        from physai.fleet_deployment.inference_node.ros import require_ros

        require_ros()  # MissingDependencyError naming the `ros` extra
        from physai.fleet_deployment.inference_node.node import InferenceNode

        return InferenceNode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
