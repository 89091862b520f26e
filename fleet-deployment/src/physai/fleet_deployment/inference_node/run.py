"""`run_node`: start the inference node in a ROS context of its own and spin it until SIGINT or
SIGTERM (what `physai fleet-deployment node` calls)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from physai.fleet_deployment.inference_node.ros import require_ros


def run_node(
    policy: str | Path | None = None,
    *,
    stop: threading.Event | None = None,
    ros_args: Sequence[str] = (),
    domain_id: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run an `InferenceNode(policy, **options)` until SIGINT/SIGTERM or `stop` is set; return
    its final `stats()`.

    `ros_args` are ROS command-line arguments (e.g. `["--ros-args", "-p", "rate_hz:=30"]`);
    `domain_id` overrides `ROS_DOMAIN_ID`. Signal handlers are installed only when called from
    the main thread, and restored on return.
    """
    rclpy = require_ros()
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from physai.fleet_deployment.inference_node.node import InferenceNode

    done = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    context = rclpy.Context()
    rclpy.init(
        args=["physai", *ros_args],
        context=context,
        domain_id=domain_id,
        signal_handler_options=SignalHandlerOptions.NO,
    )
    try:
        node = InferenceNode(policy, context=context, **options)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        try:
            while not done.is_set():
                executor.spin_once(timeout_sec=0.05)
            return node.stats()
        finally:
            executor.remove_node(node)
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
