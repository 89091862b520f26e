"""Fixtures for the inference node: tiny ONNX policies written in milliseconds (no torch), a
ROS domain of its own per test, the node spinning on a thread, and a test "robot" node in a
second ROS context that publishes observations and records what comes back."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from physai.training import PolicyCard


def write_policy(
    folder: Path,
    *,
    name: str = "reach",
    obs: int = 6,
    act: int = 3,
    seed: int = 0,
    rate_hz: float | None = None,
    recurrent_scale: float | None = None,
) -> Path:
    """An exported-policy folder (policy.onnx + policy.json) as `physai training export` writes.

    Feed-forward: actions = tanh(obs @ W + b), W and b drawn from `seed`. With
    `recurrent_scale`: h_out = h + obs @ 1 (a running sum of the observation's total) and
    actions = scale * h_out, with h fed back (a recurrent card).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", obs])
    y = helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", act])
    inputs, outputs = [x], [y]
    if recurrent_scale is None:
        weights = [
            numpy_helper.from_array(rng.standard_normal((obs, act)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.standard_normal(act).astype(np.float32), "b"),
        ]
        nodes = [
            helper.make_node("MatMul", ["obs", "W"], ["z"]),
            helper.make_node("Add", ["z", "b"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["actions"]),
        ]
    else:
        inputs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", act]))
        outputs.append(helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["batch", act]))
        weights = [
            numpy_helper.from_array(np.ones((obs, act), np.float32), "W"),
            numpy_helper.from_array(np.float32(recurrent_scale), "scale"),
        ]
        nodes = [
            helper.make_node("MatMul", ["obs", "W"], ["z"]),
            helper.make_node("Add", ["h", "z"], ["h_out"]),
            helper.make_node("Mul", ["h_out", "scale"], ["actions"]),
        ]
    graph = helper.make_graph(nodes, "policy", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    file = folder / "policy.onnx"
    file.write_bytes(model.SerializeToString())
    card: dict[str, Any] = {
        "name": name,
        "policy": "recurrent_actor" if recurrent_scale is not None else "mlp_actor",
        "inputs": [
            {"name": v.name, "shape": [-1, obs if v.name == "obs" else act]} for v in inputs
        ],
        "outputs": [{"name": v.name, "shape": [-1, act]} for v in outputs],
        "control_rate_hz": rate_hz,
        "source": {"kind": "rsl_rl", "checkpoint": "model.pt"},
        "files": {
            "onnx": {"path": file.name, "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
        },
    }
    if recurrent_scale is not None:
        card["recurrent"] = {"hidden_inputs": ["h"], "hidden_outputs": ["h_out"]}
    (folder / "policy.json").write_text(PolicyCard.model_validate(card).to_json())
    return folder


@pytest.fixture
def make_policy() -> Callable[..., Path]:
    """`make_policy(folder, **options)`: see `write_policy` (test modules cannot import
    conftest under pytest's importlib mode, so the helper comes as a fixture)."""
    return write_policy


@pytest.fixture
def ros_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DDS kept on this host, in a domain of its own (as the data-pipeline tests do), set in this
    process and returned for subprocesses."""
    env = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(random.randint(1, 200)),
        "PHYSAI_HOME": str(tmp_path / "home"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


class Robot:
    """A test node in its own ROS context: publishes observations, records actions (with their
    arrival times) and the node's `~/policy` announcements."""

    def __init__(self, node_name: str = "physai_inference") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Float32MultiArray, String

        from physai.fleet_deployment.inference_node import ros

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("test_robot", context=self.context)
        self.actions: list[tuple[float, np.ndarray]] = []
        self.layouts: list[Any] = []
        self.status: list[dict[str, Any]] = []
        self._publisher = self.node.create_publisher(
            Float32MultiArray, "observation", ros.action_qos()
        )
        self.node.create_subscription(Float32MultiArray, "action", self._on_action, 100)
        self.node.create_subscription(
            String, f"/{node_name}/policy", self._on_status, ros.latched_qos()
        )
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._streamed = np.zeros(0, np.float32)
        self._streamer: threading.Thread | None = None

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.02)

    def _on_action(self, message: Any) -> None:
        self.actions.append((time.monotonic(), np.array(message.data, np.float32)))
        self.layouts.append(message.layout)

    def _on_status(self, message: Any) -> None:
        self.status.append(json.loads(message.data))

    def publish(self, values: np.ndarray) -> None:
        """One observation, flattened."""
        from physai.fleet_deployment.inference_node import ros

        self._publisher.publish(ros.to_message(values))

    def stream(self, values: np.ndarray, hz: float = 50.0) -> None:
        """Publish `values` at `hz` from now on, as a robot's state estimator would (best-effort
        delivery may lose any one message)."""
        self._streamed = values
        if self._streamer is None:

            def loop() -> None:
                while not self._stop.wait(1.0 / hz):
                    self.publish(self._streamed)

            self._streamer = threading.Thread(target=loop, daemon=True)
            self._streamer.start()

    def wait_for_node(self, timeout_s: float = 10.0) -> None:
        """Until the inference node subscribes to the observations."""
        wait_until(lambda: self._publisher.get_subscription_count() > 0, timeout_s)

    @staticmethod
    def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """See the module's `wait_until` (tests reach it through the fixture)."""
        wait_until(condition, timeout_s)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(5)
        if self._streamer is not None:
            self._streamer.join(5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll `condition` every 10 ms; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {condition}")
        time.sleep(0.01)


class Spinner:
    """Spins one node of its own context on a background thread."""

    def __init__(self, node: Any, context: Any) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.node, self.context = node, context
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def robot(ros_env: dict[str, str]) -> Iterator[Robot]:
    """The test robot, in the test's ROS domain."""
    pytest.importorskip("rclpy", reason="the ros extra is installed by scripts/setup-dev")
    robot = Robot()
    yield robot
    robot.close()


@pytest.fixture
def start_node(ros_env: dict[str, str]) -> Iterator[Callable[..., Any]]:
    """`start_node(policy, **options)`: an InferenceNode spinning on a thread of its own (in a
    context of its own), destroyed after the test."""
    pytest.importorskip("rclpy", reason="the ros extra is installed by scripts/setup-dev")
    import rclpy

    from physai.fleet_deployment.inference_node import InferenceNode

    spinners: list[Spinner] = []

    def start(policy: Path | None, **options: Any) -> Any:
        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = InferenceNode(policy, context=context, **options)
        except BaseException:
            rclpy.shutdown(context=context)
            raise
        spinners.append(Spinner(node, context))
        return node

    yield start
    for spinner in spinners:
        spinner.close()
