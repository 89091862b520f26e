"""Small rclpy helpers the recorder and the simulated robot share (the `ros` extra).

rclpy and the message packages come from the `ros-*` wheels on PyPI
(`pip install 'physai-data-pipeline[ros]'`), so no ROS install is needed. Nothing here is
imported until a ROS feature is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError, UserError

ROS_HINT = "pip install 'physai-data-pipeline[ros]' (ROS 2 wheels from PyPI, no ROS install)"


def require_rclpy() -> Any:
    """The rclpy module, or a MissingDependencyError saying how to install it."""
    try:
        import rclpy
    except ImportError as exc:
        raise MissingDependencyError(f"rclpy ({exc})", ROS_HINT) from None
    return rclpy


def message_class(msgtype: str) -> Any:
    """The rclpy class of a message type such as `sensor_msgs/msg/JointState`."""
    package, kind, name = [*msgtype.split("/"), "", ""][:3]
    if kind not in ("msg", "srv") or not name:
        raise UserError(f"{msgtype!r} is not a ROS 2 type name like sensor_msgs/msg/JointState")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        raise UserError(
            f"message type {msgtype} is not installed (pip install ros-{package.replace('_', '-')})"
        ) from None


def stamp(t_ns: int) -> Any:
    """A builtin_interfaces/Time for `t_ns` nanoseconds."""
    from builtin_interfaces.msg import Time

    return Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9)


def joint_state(
    t_ns: int,
    names: Sequence[str],
    position: NDArray[Any],
    velocity: NDArray[Any] | None = None,
    effort: NDArray[Any] | None = None,
) -> Any:
    """A sensor_msgs/JointState."""
    from sensor_msgs.msg import JointState

    message = JointState()
    message.header.stamp = stamp(t_ns)
    message.name = list(names)
    message.position = np.asarray(position, np.float64).tolist()
    if velocity is not None:
        message.velocity = np.asarray(velocity, np.float64).tolist()
    if effort is not None:
        message.effort = np.asarray(effort, np.float64).tolist()
    return message


def image(t_ns: int, rgb: NDArray[np.uint8], frame_id: str = "camera") -> Any:
    """A sensor_msgs/Image (rgb8) from an H x W x 3 array."""
    from sensor_msgs.msg import Image

    data = np.ascontiguousarray(rgb, np.uint8)
    message = Image()
    message.header.stamp = stamp(t_ns)
    message.header.frame_id = frame_id
    message.height, message.width = data.shape[:2]
    message.encoding = "rgb8"
    message.step = data.shape[1] * 3
    message.data = data.tobytes()
    return message


def float_array(values: NDArray[Any]) -> Any:
    """A std_msgs/Float64MultiArray."""
    from std_msgs.msg import Float64MultiArray

    message = Float64MultiArray()
    message.data = np.asarray(values, np.float64).tolist()
    return message


def reliable_qos(depth: int = 1000) -> Any:
    """Reliable, keep-last `depth` QoS: nothing is dropped while the reader keeps up."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
    )
