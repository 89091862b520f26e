"""The inference node for real: rclpy nodes in separate ROS contexts talking over localhost DDS
in a domain of their own. Actions are checked against `load_policy` on the same observation,
the rate is counted, and versions are swapped while the loop runs (pointer, `swap()`, CLI)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from physai.fleet_deployment.inference_node import IncompatiblePolicyError, write_pointer
from physai.training import PolicyCard, load_policy

pytest.importorskip("rclpy", reason="the ros extra is installed by scripts/setup-dev")
pytestmark = pytest.mark.integration

PHYSAI = str(Path(sys.executable).with_name("physai"))


def observation(size: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, size)).astype(np.float32)


def actions_of(folder: Path, obs: np.ndarray) -> np.ndarray:
    """What the training runtime gives for `obs`, flattened as the node publishes it."""
    return np.asarray(load_policy(folder, device="cpu", warmup=0)(obs, copy=True)).ravel()


def test_actions_are_the_policys_at_the_control_rate(
    tmp_path: Path,
    make_policy: Callable[..., Path],
    robot: Any,
    start_node: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    folder = make_policy(tmp_path / "v1", seed=1, rate_hz=25.0)
    node = start_node(folder, device="cpu", latency_log_s=0.5)
    assert node.rate_hz == 25.0  # the card's control rate
    robot.wait_for_node()
    time.sleep(0.3)
    assert robot.actions == [] and node.counts["idle_ticks"] >= 3  # no observation: no action

    obs = observation()
    expected = actions_of(folder, obs)
    robot.stream(obs)
    robot.wait_until(lambda: len(robot.actions) >= 5)
    np.testing.assert_array_equal(robot.actions[-1][1], expected)
    dims = [(d.label, d.size, d.stride) for d in robot.layouts[-1].dim]
    assert dims == [("batch", 1, 3), ("actions", 3, 3)]

    before = len(robot.actions)
    time.sleep(2.0)
    counted = len(robot.actions) - before
    assert 35 <= counted <= 65, counted  # 25 Hz for 2 s, loosely

    # Wrong lengths are dropped (one warning per length); the last good observation stays.
    for _ in range(4):
        robot.publish(np.zeros(5, np.float32))
        time.sleep(0.03)
        robot.publish(np.zeros(7, np.float32))
        time.sleep(0.03)
    robot.wait_until(lambda: node.counts["dropped"] >= 4)
    time.sleep(0.1)
    np.testing.assert_array_equal(robot.actions[-1][1], expected)

    robot.wait_until(lambda: bool(robot.status))
    card = PolicyCard.read(folder)
    status = robot.status[-1]
    assert status["name"] == card.name and status["version"] == "v1"
    assert status["sha256"] == card.files["onnx"].sha256 and status["format"] == "onnx"
    latency = node.latency()
    assert latency.count >= counted and 0 < latency.p50_us < 10_000
    stats = node.stats()
    assert stats["published"] >= counted and stats["swaps"] == 0 and stats["refused"] == 0
    time.sleep(0.1)
    err = capfd.readouterr().err
    assert err.count("dropping observations of 5 values") == 1
    assert err.count("dropping observations of 7 values") == 1
    assert "calls: p50" in err  # the periodic latency log


def test_pointer_swap_lands_between_ticks_and_other_shapes_are_refused(
    tmp_path: Path,
    make_policy: Callable[..., Path],
    robot: Any,
    start_node: Callable[..., Any],
) -> None:
    v1 = make_policy(tmp_path / "v1", seed=1)
    v2 = make_policy(tmp_path / "v2", seed=2)
    wide = make_policy(tmp_path / "wide", obs=8, seed=3)
    pointer = tmp_path / "current"
    write_pointer(pointer, v1)
    rate = 20.0
    node = start_node(None, watch=pointer, rate_hz=rate, device="cpu", watch_interval_s=0.1)
    obs = observation()
    first, second = actions_of(v1, obs), actions_of(v2, obs)
    assert not np.allclose(first, second)
    robot.wait_for_node()
    robot.stream(obs)
    robot.wait_until(lambda: len(robot.actions) >= 3)
    np.testing.assert_array_equal(robot.actions[-1][1], first)

    start = len(robot.actions) - 1
    write_pointer(pointer, v2)  # no restart: the watcher loads v2 and swaps it in
    robot.wait_until(lambda: np.array_equal(robot.actions[-1][1], second))
    time.sleep(0.3)
    window = robot.actions[start:]
    kinds = [
        0 if np.array_equal(a, first) else 1 if np.array_equal(a, second) else 2 for _, a in window
    ]
    assert 2 not in kinds and kinds == sorted(kinds)  # one version, then the other, never mixed
    gaps = np.diff([t for t, _ in window])
    assert gaps.max() < 2 / rate, gaps.max()  # no tick missed around the swap
    assert node.max_tick_gap_s < 2 / rate
    robot.wait_until(lambda: robot.status[-1]["version"] == "v2")
    assert node.active.version == "v2" and node.stats()["swaps"] == 1

    # Other shapes: refused through the pointer and through swap(); v2 keeps running.
    write_pointer(pointer, wide)
    robot.wait_until(lambda: node.stats()["refused"] == 1)
    with pytest.raises(IncompatiblePolicyError, match="refused, the running one stays"):
        node.swap(wide)
    time.sleep(0.2)
    assert node.active.version == "v2" and node.stats()["refused"] == 2
    np.testing.assert_array_equal(robot.actions[-1][1], second)
    assert robot.status[-1]["version"] == "v2"


def test_recurrent_state_starts_from_zero_after_a_swap_and_on_reset(
    tmp_path: Path,
    make_policy: Callable[..., Path],
    robot: Any,
    start_node: Callable[..., Any],
) -> None:
    # actions = scale * (sum of every observation so far): +2 per tick with obs [1, 1]
    up = make_policy(tmp_path / "up", obs=2, act=1, recurrent_scale=1.0)
    down = make_policy(tmp_path / "down", obs=2, act=1, recurrent_scale=-1.0)
    pointer = tmp_path / "current.json"
    write_pointer(pointer, up)
    node = start_node(up, watch=pointer, rate_hz=50.0, device="cpu", watch_interval_s=0.05)
    robot.wait_for_node()
    robot.stream(np.ones((1, 2), np.float32))
    robot.wait_until(lambda: bool(robot.actions) and robot.actions[-1][1][0] >= 20)
    write_pointer(pointer, down)
    robot.wait_until(lambda: robot.actions[-1][1][0] < 0)
    first_down = next(a[0] for _, a in robot.actions if a[0] < 0)
    assert first_down == -2.0  # the new version's state started at zero
    robot.wait_until(lambda: robot.actions[-1][1][0] <= -20)
    count = len(robot.actions)
    node.reset_policy()
    robot.wait_until(lambda: len(robot.actions) > count + 2)
    after = [a[0] for _, a in robot.actions[count:]]
    assert any(-6 <= value < 0 for value in after)  # back near zero after the reset


def test_cli_node_runs_swaps_through_a_json_pointer_and_stops_on_sigint(
    tmp_path: Path,
    make_policy: Callable[..., Path],
    robot: Any,
    ros_env: dict[str, str],
) -> None:
    v1 = make_policy(tmp_path / "v1", seed=1)
    v2 = make_policy(tmp_path / "v2", seed=2)
    pointer = tmp_path / "current.json"
    write_pointer(pointer, v1)
    node = subprocess.Popen(
        [PHYSAI, "fleet-deployment", "node", "--watch", str(pointer), "--rate", "40",
         "--device", "cpu", "--watch-interval", "0.1", "--json"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        obs = observation()
        robot.wait_for_node(timeout_s=30)
        robot.stream(obs)
        robot.wait_until(lambda: len(robot.actions) >= 3)
        np.testing.assert_array_equal(robot.actions[-1][1], actions_of(v1, obs))
        write_pointer(pointer, v2)
        second = actions_of(v2, obs)
        robot.wait_until(lambda: np.array_equal(robot.actions[-1][1], second))
    finally:
        node.send_signal(signal.SIGINT)
        out, err = node.communicate(timeout=30)
    assert node.returncode == 0, err
    stats = json.loads(out)
    assert stats["rate_hz"] == 40.0 and stats["swaps"] == 1 and stats["refused"] == 0
    assert stats["policy"]["version"] == "v2" and stats["published"] >= 3
    assert "swapped to policy reach (v2" in err


def test_run_node_takes_ros_parameters_and_stops_on_its_event(
    tmp_path: Path, make_policy: Callable[..., Path], robot: Any
) -> None:
    from physai.fleet_deployment.inference_node import run_node

    folder = make_policy(tmp_path / "v1", seed=4, rate_hz=25.0)
    stop = threading.Event()
    result: dict[str, Any] = {}

    ros_args = ["--ros-args", "-p", "rate_hz:=40"]  # an integer to ROS: read as 40.0

    def run() -> None:
        result.update(run_node(folder, stop=stop, ros_args=ros_args, device="cpu"))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        robot.wait_for_node()
        obs = observation(seed=4)
        robot.stream(obs)
        robot.wait_until(lambda: len(robot.actions) >= 3)
        np.testing.assert_array_equal(robot.actions[-1][1], actions_of(folder, obs))
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert result["rate_hz"] == 40.0  # the ROS parameter beats the card's 25 Hz
    assert result["published"] >= 3 and result["policy"]["version"] == "v1"
