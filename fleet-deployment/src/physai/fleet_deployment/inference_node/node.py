"""`InferenceNode`: an rclpy node that runs an exported policy at a fixed rate.

    node = InferenceNode("policies/v1", watch="policies/current", context=context)
    executor.add_node(node); executor.spin()

It keeps the latest observation (`observation_topic`), and on a timer at `rate_hz` runs the
policy on it and publishes the actions (`action_topic`); before the first observation it
publishes nothing. A wrong-length observation is dropped, with one warning per distinct length.
The running version is published on `~/policy` (std_msgs/String, JSON, latched) at start and
after each swap, and latency is logged every `latency_log_s`. Importing this module needs rclpy
(the `ros` extra); `physai.fleet_deployment.inference_node` imports it on first use.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rcl_interfaces.msg import ParameterDescriptor  # type: ignore[import-untyped]
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, String

from physai.core.errors import UserError
from physai.fleet_deployment.inference_node import ros
from physai.fleet_deployment.inference_node.pointer import PointerWatcher, read_pointer
from physai.fleet_deployment.inference_node.rate import control_rate
from physai.fleet_deployment.inference_node.slot import DEFAULT_WARMUP, ActivePolicy, PolicySlot
from physai.training import LatencyStats

NODE_NAME = "physai_inference"


class InferenceNode(Node):
    """Runs a policy on the latest observation at a fixed rate; hot-swaps new versions.

    Constructor arguments are the defaults of the ROS parameters of the same names, so
    `--ros-args -p rate_hz:=30` still overrides them. `policy` is the folder to start with
    (default: the pointer's folder); `watch` a pointer (`current` link or `current.json`)
    polled every `watch_interval_s`; `rate_hz` 0 or None means the card's `control_rate_hz`,
    else 50 Hz.
    """

    def __init__(
        self,
        policy: str | Path | None = None,
        *,
        watch: str | Path | None = None,
        rate_hz: float | None = None,
        observation_topic: str = "observation",
        action_topic: str = "action",
        device: str = "auto",
        watch_interval_s: float = 0.5,
        latency_log_s: float = 10.0,
        warmup: int = DEFAULT_WARMUP,
        node_name: str = NODE_NAME,
        namespace: str | None = None,
        context: Any = None,
    ) -> None:
        super().__init__(node_name, namespace=namespace, context=context)
        self._watcher: PointerWatcher | None = None
        p = self._parameter
        policy_path = p("policy", str(policy or ""), "policy folder to start with")
        watch_path = p("watch", str(watch or ""), "pointer to poll: a `current` link or .json")
        rate = p("rate_hz", float(rate_hz or 0.0), "control rate; 0: the card's, else 50 Hz")
        obs_topic = p("observation_topic", observation_topic, "Float32MultiArray observations")
        act_topic = p("action_topic", action_topic, "Float32MultiArray actions")
        device_name = p("device", device, "auto, cpu or cuda")
        interval = p("watch_interval_s", float(watch_interval_s), "pointer poll period")
        self._latency_log_s = p("latency_log_s", float(latency_log_s), "0: never log latency")

        self.slot = PolicySlot(device=device_name, warmup=warmup)
        self.watch = Path(watch_path) if watch_path else None
        if not policy_path and self.watch is None:
            raise UserError("give the inference node a policy folder or a pointer to watch")
        start = Path(policy_path) if policy_path else read_pointer(watch_path)
        record = self.slot.swap(start)
        signature = self.slot.signature
        self.rate_hz = control_rate(rate, record.control_rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self._obs_shape = signature.observation
        self._obs_dtype = np.dtype(signature.observation_dtype)
        self._obs_size = signature.observation_size
        self._layout = ros.layout(signature.action, self.slot.policy.action_specs[0].name)
        self._latest: NDArray[Any] | None = None
        self._bad_lengths: set[int] = set()
        self._last_tick: float | None = None
        self.counts = dict.fromkeys(
            (
                "observations",
                "dropped",
                "ticks",
                "published",
                "idle_ticks",
                "late_ticks",
                "failed_ticks",
            ),
            0,
        )
        self.refused: list[str] = []
        self.max_tick_gap_s = 0.0

        self._status = self.create_publisher(String, "~/policy", ros.latched_qos())
        self._actions = self.create_publisher(Float32MultiArray, act_topic, ros.action_qos())
        self.create_subscription(
            Float32MultiArray, obs_topic, self._on_observation, ros.observation_qos()
        )
        self._timer = self.create_timer(self.period_s, self._tick)
        if self._latency_log_s > 0:
            self.create_timer(self._latency_log_s, self._log_latency)
        self._announce(record, "running")
        if self.watch is not None:
            self._watcher = PointerWatcher(
                self.watch,
                self._on_pointer,
                interval_s=interval,
                current=start,
                on_problem=self._pointer_problem,
            )
            self._watcher.start()
        self.get_logger().info(
            f"{obs_topic} -> {act_topic} at {self.rate_hz:g} Hz, {signature}"
            + (f", watching {self.watch}" if self.watch else "")
        )

    # -- public -----------------------------------------------------------------------------

    @property
    def active(self) -> ActivePolicy:
        """The running policy version (name, version folder, format, sha256, ...)."""
        return self.slot.active

    def swap(self, path: str | Path) -> ActivePolicy:
        """Load the policy folder `path` and make it the running one between two ticks.

        Blocks the caller while loading and warming up, so call it from any thread but the one
        spinning this node (the pointer watcher has its own). Raises UserError, and keeps the
        running version, when the new one cannot load or takes/gives other shapes.
        """
        try:
            record = self.slot.swap(path)
        except UserError as exc:
            self.refused.append(exc.message)
            self.get_logger().error(f"swap to {path} refused: {exc.message}")
            raise
        if record.control_rate_hz and abs(record.control_rate_hz - self.rate_hz) > 1e-9:
            self.get_logger().warning(
                f"{record} asks for {record.control_rate_hz:g} Hz; the node keeps "
                f"{self.rate_hz:g} Hz (the rate is set at start)"
            )
        self._announce(record, "swapped to")
        return record

    def latency(self) -> LatencyStats:
        """Per-call latency of the running policy since it was installed (microseconds)."""
        return self.slot.latency()

    def reset_policy(self) -> None:
        """Zero a recurrent policy's state (at the start of an episode); no-op otherwise."""
        self.slot.reset()

    def stats(self) -> dict[str, Any]:
        """Counters, tick timing, the running version and its latency (JSON-ready)."""
        return {
            **self.counts,
            "swaps": self.slot.swaps - 1,
            "refused": len(self.refused),
            "rate_hz": self.rate_hz,
            "max_tick_gap_ms": round(self.max_tick_gap_s * 1e3, 3),
            "policy": self.active.to_dict(),
            "latency": self.latency().to_dict(),
        }

    def destroy_node(self) -> None:
        """Stop the pointer watcher (a swap loading now is dropped), then the node."""
        self.slot.close()
        if self._watcher is not None:
            self._watcher.stop()
        super().destroy_node()

    # -- callbacks --------------------------------------------------------------------------

    def _parameter(self, name: str, default: Any, description: str) -> Any:
        # Typed by its default, but declared dynamically typed so that `-p rate_hz:=30` (an
        # integer to ROS) is read as 30.0 rather than refused with a type exception.
        descriptor = ParameterDescriptor(
            description=description, read_only=True, dynamic_typing=True
        )
        value = self.declare_parameter(name, default, descriptor).value
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            kind = type(default).__name__
            raise UserError(f"ROS parameter {name} must be a {kind}, got {value!r}") from None

    def _on_observation(self, message: Any) -> None:
        values = ros.from_message(message)
        if values.size != self._obs_size:
            self.counts["dropped"] += 1
            if values.size not in self._bad_lengths:
                self._bad_lengths.add(values.size)
                self.get_logger().warning(
                    f"dropping observations of {values.size} values: the policy takes "
                    f"{self._obs_size} {self._obs_shape} (warned once per length)"
                )
            return
        self._latest = values.astype(self._obs_dtype).reshape(self._obs_shape)
        self.counts["observations"] += 1

    def _tick(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            gap = now - self._last_tick
            self.max_tick_gap_s = max(self.max_tick_gap_s, gap)
            if gap > 1.5 * self.period_s:
                self.counts["late_ticks"] += 1
        self._last_tick = now
        self.counts["ticks"] += 1
        observation = self._latest
        if observation is None:
            self.counts["idle_ticks"] += 1
            return
        try:
            actions = self.slot.step(observation)
        except Exception as exc:  # the loop outlives a bad call; nothing stale is published
            self.counts["failed_ticks"] += 1
            if self.counts["failed_ticks"] == 1 or self.counts["failed_ticks"] % 1000 == 0:
                self.get_logger().error(
                    f"policy call failed ({self.counts['failed_ticks']}x): {exc}"
                )
            return
        self._actions.publish(ros.to_message(actions, self._layout))
        self.counts["published"] += 1

    def _on_pointer(self, folder: Path) -> None:
        try:
            self.swap(folder)
        except UserError:
            pass  # logged and counted by swap(); the old version stays
        except Exception as exc:  # anything else must not end hot-loading either
            self.refused.append(f"{type(exc).__name__}: {exc}")
            self.get_logger().error(f"swap to {folder} failed: {type(exc).__name__}: {exc}")

    def _pointer_problem(self, message: str) -> None:
        self.get_logger().warning(message)

    def _announce(self, record: ActivePolicy, what: str) -> None:
        self._status.publish(String(data=json.dumps(record.to_dict())))
        self.get_logger().info(f"{what} policy {record}")

    def _log_latency(self) -> None:
        self.get_logger().info(f"policy {self.active}: {self.latency()}")
