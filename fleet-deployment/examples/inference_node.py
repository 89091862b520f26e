"""Run an exported policy as a ROS 2 node and hot-swap a new version in, without a restart.

Writes two versions of a tiny policy (an ONNX MLP and its policy.json, as `physai training
export` would), points `policies/current` at v1, and starts `physai fleet-deployment node
--watch policies/current` in a second process. A small rclpy "robot" here streams
observations and prints the actions that come back; then the pointer is flipped to v2 and
the actions change at the next ticks, while the node keeps running. SIGINT stops the node,
which prints its stats. Needs the `ros` extra (installed by scripts/setup-dev).

    uv run python fleet-deployment/examples/inference_node.py [WORK_DIR]
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from physai.fleet_deployment.inference_node import write_pointer
from physai.fleet_deployment.inference_node.ros import latched_qos
from physai.training import PolicyCard

OBS, ACT = 4, 2


def export_tiny_policy(folder: Path, seed: int) -> Path:
    """actions = tanh(obs @ W + b) as policy.onnx (dynamic batch) with its policy.json."""
    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["obs", "W"], ["z"]),
            helper.make_node("Add", ["z", "b"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["actions"]),
        ],
        "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", ACT])],
        [
            numpy_helper.from_array(rng.standard_normal((OBS, ACT)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.standard_normal(ACT).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder.mkdir(parents=True)
    (folder / "policy.onnx").write_bytes(model.SerializeToString())
    digest = hashlib.sha256((folder / "policy.onnx").read_bytes()).hexdigest()
    card = PolicyCard.model_validate(
        {
            "name": "pendulum-balance",
            "policy": "mlp_actor",
            "inputs": [{"name": "obs", "shape": [-1, OBS]}],
            "outputs": [{"name": "actions", "shape": [-1, ACT]}],
            "control_rate_hz": 30.0,
            "source": {"kind": "rsl_rl", "checkpoint": f"model_{seed}.pt"},
            "files": {"onnx": {"path": "policy.onnx", "sha256": digest}},
        }
    )
    (folder / "policy.json").write_text(card.to_json())
    return folder


class Robot:
    """Streams one observation at 30 Hz and keeps the actions and `~/policy` announcements."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Float32MultiArray, String

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("example_robot", context=self.context)
        self.observations = self.node.create_publisher(Float32MultiArray, "observation", 10)
        self.actions: list[list[float]] = []
        self.versions: list[str] = []
        self.node.create_subscription(
            Float32MultiArray, "action", lambda m: self.actions.append(list(m.data)), 10
        )
        self.node.create_subscription(
            String,
            "/physai_inference/policy",
            lambda m: self.versions.append(json.loads(m.data)["version"]),
            latched_qos(),
        )
        self.observation = Float32MultiArray(data=[0.1, -0.2, 0.3, 0.05])
        self.node.create_timer(1 / 30, lambda: self.observations.publish(self.observation))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.02)

    def wait(self, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Until `condition()` holds; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the inference node did not answer in time")
            time.sleep(0.02)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def main(work: Path) -> None:
    policies = work / "policies"
    v1 = export_tiny_policy(policies / "v1", seed=1)
    v2 = export_tiny_policy(policies / "v2", seed=2)
    pointer = policies / "current"
    write_pointer(pointer, v1)  # policies/current -> v1 (a symlink, replaced atomically)

    domain_id = random.randint(1, 200)
    env = {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # keep DDS traffic on this machine
        "ROS_DOMAIN_ID": str(domain_id),
    }
    physai = str(Path(sys.executable).with_name("physai"))
    node = subprocess.Popen(
        [physai, "fleet-deployment", "node", "--watch", str(pointer), "--device", "cpu",
         "--watch-interval", "0.2", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # this process's DDS too
    robot = Robot(domain_id)
    try:
        robot.wait(lambda: len(robot.actions) >= 5)
        print(f"{robot.versions[-1]}: actions {np.round(robot.actions[-1], 4)}")
        write_pointer(pointer, v2)  # the node loads v2 off its control loop, then swaps
        robot.wait(lambda: robot.versions[-1] == "v2" and len(robot.actions) > 0)
        count = len(robot.actions)
        robot.wait(lambda: len(robot.actions) >= count + 5)
        print(f"{robot.versions[-1]}: actions {np.round(robot.actions[-1], 4)}")
    finally:
        robot.close()
        node.send_signal(signal.SIGINT)
        out, err = node.communicate(timeout=30)
    if node.returncode != 0:
        raise SystemExit(f"the node failed:\n{err}")
    stats = json.loads(out)
    latency = stats["latency"]
    print(
        f"node: {stats['published']} actions at {stats['rate_hz']:g} Hz, {stats['swaps']} swap, "
        f"policy call p50 {latency['p50_us']:.0f} us, "
        f"longest tick gap {stats['max_tick_gap_ms']} ms"
    )
    assert stats["swaps"] == 1 and stats["policy"]["version"] == "v2"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
