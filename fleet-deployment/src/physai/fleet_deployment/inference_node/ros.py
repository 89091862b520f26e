"""What the node puts on the wire: message conversion and QoS (the `ros` extra).

Observations and actions are `std_msgs/msg/Float32MultiArray`: the policy's array flattened in
row-major (C) order. An action message's layout names its dimensions (the batch of 1, then the
policy's output shape, labelled with the output's name); an observation's layout is ignored,
only its length is checked. Nothing here imports rclpy until a function is called.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError

ROS_HINT = "pip install 'physai-fleet-deployment[ros]' (ROS 2 wheels from PyPI, no ROS install)"


def require_ros() -> Any:
    """The rclpy module once rclpy and std_msgs import; MissingDependencyError naming the `ros`
    extra otherwise."""
    try:
        import rclpy
    except ImportError as exc:
        raise MissingDependencyError(f"rclpy ({exc})", ROS_HINT) from None
    try:
        import std_msgs.msg  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"std_msgs ({exc})", f"{ROS_HINT}, and ros-std-msgs") from None
    return rclpy


def layout(shape: tuple[int, ...], label: str) -> Any:
    """A std_msgs/MultiArrayLayout for a C-ordered array of `shape`: dimension 0 is `batch`,
    the others `label`, `label_1`, ..."""
    from std_msgs.msg import MultiArrayDimension, MultiArrayLayout

    dims = []
    for i, size in enumerate(shape):
        name = "batch" if i == 0 else (label if i == 1 else f"{label}_{i - 1}")
        stride = int(np.prod(shape[i:]))
        dims.append(MultiArrayDimension(label=name, size=int(size), stride=stride))
    return MultiArrayLayout(dim=dims, data_offset=0)


def to_message(values: NDArray[Any], message_layout: Any = None) -> Any:
    """A Float32MultiArray holding `values` flattened (C order), as float32."""
    from std_msgs.msg import Float32MultiArray

    message = Float32MultiArray()
    if message_layout is not None:
        message.layout = message_layout
    message.data = array("f", np.ascontiguousarray(values, np.float32).tobytes())
    return message


def from_message(message: Any) -> NDArray[np.float32]:
    """The float32 values of a Float32MultiArray, as a 1-D array (a view of its buffer)."""
    data = message.data
    if isinstance(data, array):
        return np.frombuffer(data, np.float32)
    return np.asarray(data, np.float32)


def observation_qos() -> Any:
    """Best effort, keep the last one: accepts reliable and best-effort publishers alike, and the
    node only ever uses the latest observation."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST
    )


def action_qos() -> Any:
    """Reliable, keep the last 10: readable by reliable and best-effort subscribers."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
    )


def latched_qos() -> Any:
    """Reliable and transient-local, depth 1: a late subscriber still gets the last status."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
        history=HistoryPolicy.KEEP_LAST,
    )
