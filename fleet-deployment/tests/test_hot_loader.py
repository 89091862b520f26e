"""The hot-loader without ROS: the pointer formats and their watcher, the policy slot's checked
and atomic swap, and the `node` command's refusals (exit 2, one line) before any ROS start-up."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.fleet_deployment.inference_node import (
    IncompatiblePolicyError,
    PointerWatcher,
    PolicySlot,
    read_pointer,
    write_pointer,
)
from physai.training import load_policy

runner = CliRunner()


@pytest.mark.parametrize("name", ["current", "current.json"])
def test_pointer_round_trip_and_atomic_replace(tmp_path: Path, name: str) -> None:
    v1, v2 = (tmp_path / "v1").resolve(), (tmp_path / "v2").resolve()
    v1.mkdir()
    v2.mkdir()
    pointer = tmp_path / name
    write_pointer(pointer, v1)
    assert read_pointer(pointer) == v1
    write_pointer(pointer, v2)  # replaces the existing pointer in one rename
    assert read_pointer(pointer) == v2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["v1", "v2", name])
    if name.endswith(".json"):
        assert json.loads(pointer.read_text()) == {"policy": "v2"}  # relative: movable
    else:
        assert pointer.is_symlink() and str(pointer.readlink()) == "v2"


def test_pointer_problems_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_pointer(tmp_path / "current")
    bad = tmp_path / "current.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match='"policy"'):
        read_pointer(bad)
    bad.write_text('{"policy": "v9"}')
    with pytest.raises(UserError, match="not a folder"):
        read_pointer(bad)
    with pytest.raises(UserError, match="not a policy version folder"):
        write_pointer(tmp_path / "current", tmp_path / "v9")


def test_watcher_calls_once_per_change_and_reports_problems_once(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    pointer = tmp_path / "current.json"
    changes: list[Path] = []
    problems: list[str] = []
    watcher = PointerWatcher(
        pointer, changes.append, interval_s=0.01, current=v1, on_problem=problems.append
    )
    assert watcher.poll() is None and watcher.poll() is None  # no pointer yet: one report
    assert len(problems) == 1 and "does not exist" in problems[0]
    write_pointer(pointer, v1)
    assert watcher.poll() is None  # already running v1
    write_pointer(pointer, v2)
    assert watcher.poll() == v2.resolve() and watcher.poll() is None
    assert changes == [v2.resolve()]
    watcher.start()  # the thread sees the next change
    write_pointer(pointer, v1)
    deadline = threading.Event()
    for _ in range(200):
        if len(changes) == 2:
            break
        deadline.wait(0.01)
    watcher.stop()
    assert changes == [v2.resolve(), v1.resolve()]


def test_slot_swaps_checked_versions_and_never_mixes_them(
    tmp_path: Path, make_policy: Callable[..., Path]
) -> None:
    v1 = make_policy(tmp_path / "v1", seed=1)
    v2 = make_policy(tmp_path / "v2", seed=2)
    wide = make_policy(tmp_path / "wide", obs=8, seed=3)
    obs = np.random.default_rng(0).standard_normal((1, 6)).astype(np.float32)
    expected = [load_policy(v, device="cpu")(obs, copy=True) for v in (v1, v2)]
    slot = PolicySlot(device="cpu", warmup=2)
    first = slot.swap(v1)
    assert first.version == "v1" and first.format == "onnx" and len(first.sha256) == 64
    assert str(slot.signature) == "(1, 6) float32 -> (1, 3) float32"
    np.testing.assert_array_equal(slot.step(obs), expected[0])
    assert slot.latency().count == 1  # warm-up calls are not counted

    # A control loop steps the slot while another thread swaps back and forth: every result is
    # exactly one version's actions, and the loop never stops or fails.
    seen: list[np.ndarray] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            seen.append(slot.step(obs))

    thread = threading.Thread(target=loop)
    thread.start()
    for i in range(6):
        slot.swap(v2 if i % 2 == 0 else v1)
    stop.set()
    thread.join()
    assert slot.swaps == 7 and slot.active.version == "v1"
    matches = [any(np.array_equal(a, e) for e in expected) for a in seen]
    assert len(seen) > 10 and all(matches)

    with pytest.raises(IncompatiblePolicyError, match=r"takes/gives \(1, 8\).*running one stays"):
        slot.swap(wide)
    with pytest.raises(UserError, match="does not exist"):
        slot.swap(tmp_path / "nope")
    assert slot.active.version == "v1" and slot.swaps == 7
    np.testing.assert_array_equal(slot.step(obs), expected[0])


def test_watcher_outlives_a_failing_swap_and_retries_a_completed_copy(
    tmp_path: Path, make_policy: Callable[..., Path]
) -> None:
    v1, v2, v3 = (make_policy(tmp_path / v, seed=i) for i, v in enumerate(("v1", "v2", "v3")))
    pointer = tmp_path / "current"
    slot = PolicySlot(device="cpu", warmup=1)
    slot.swap(v1)
    attempts: list[str] = []
    problems: list[str] = []

    def on_change(folder: Path) -> None:
        attempts.append(folder.name)
        if folder.name == "v2":
            raise RuntimeError("a runtime's own error, not a UserError")
        slot.swap(folder)

    watcher = PointerWatcher(
        pointer, on_change, interval_s=0.01, current=v1, on_problem=problems.append
    )
    watcher.start()
    try:
        write_pointer(pointer, v2)
        wait_for(lambda: problems != [])
        assert "RuntimeError" in problems[0]
        write_pointer(pointer, v3)  # the watcher is still polling
        wait_for(lambda: slot.active.version == "v3")
    finally:
        watcher.stop()
    assert attempts == ["v2", "v3"]

    # A version refused while half-copied (its file does not match the card's sha256) is tried
    # again once the copy completes, and only then.
    half = tmp_path / "v4"
    shutil.copytree(v2, half)
    model = (half / "policy.onnx").read_bytes()
    (half / "policy.onnx").write_bytes(model[: len(model) // 2])
    refused: list[str] = []

    def swap(folder: Path) -> None:
        try:
            slot.swap(folder)
        except UserError as exc:
            refused.append(exc.message)

    retrying = PointerWatcher(pointer, swap, interval_s=0.01, current=v3)
    write_pointer(pointer, half)
    assert retrying.poll() == half.resolve() and "sha256" in refused[0]
    assert retrying.poll() is None and len(refused) == 1  # not retried while unchanged
    (half / "policy.onnx").write_bytes(model)
    assert retrying.poll() == half.resolve() and slot.active.version == "v4"


def test_a_closed_slot_installs_nothing_and_bad_versions_are_user_errors(
    tmp_path: Path, make_policy: Callable[..., Path]
) -> None:
    v1, v2 = make_policy(tmp_path / "v1", seed=1), make_policy(tmp_path / "v2", seed=2)
    missing = make_policy(tmp_path / "missing", seed=3)
    card = json.loads((missing / "policy.json").read_text())
    card["files"]["onnx"]["path"] = "gone.onnx"  # a card naming a file that is not there
    (missing / "policy.json").write_text(json.dumps(card))
    garbled = make_policy(tmp_path / "garbled", seed=4)
    (garbled / "policy.json").write_bytes(b"\xff\xfe not a card")
    slot = PolicySlot(device="cpu", warmup=1)
    slot.swap(v1)
    with pytest.raises(UserError, match="missing"):
        slot.swap(missing)
    with pytest.raises(UserError, match="not a valid"):
        slot.swap(garbled)
    slot.close()
    with pytest.raises(UserError, match="shutting down"):
        slot.swap(v2)
    assert slot.active.version == "v1" and slot.swaps == 1


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def node_args(*args: str) -> list[str]:
    return ["fleet-deployment", "node", *args]


def test_node_command_refuses_bad_input_with_exit_2(
    tmp_path: Path, make_policy: Callable[..., Path]
) -> None:
    policy = make_policy(tmp_path / "v1")
    (tmp_path / "empty").mkdir()
    cases = {
        "does not exist": node_args("--policy", str(tmp_path / "missing")),
        "policy.json does not exist": node_args("--policy", str(tmp_path / "empty")),
        "control rate must be above 0": node_args("--policy", str(policy), "--rate", "0"),
        "at most 1000 Hz": node_args("--policy", str(policy), "--rate", "5000"),
        "give --policy DIR, --watch POINTER": node_args(),
        "pointer": node_args("--watch", str(tmp_path / "current")),
        "unknown option or argument '--rat'": node_args("--policy", str(policy), "--rat", "30"),
    }
    for message, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert runner.invoke(app, node_args("--policy", str(policy), "--rate", "-3")).exit_code == 2
    assert runner.invoke(app, node_args("--policy", str(policy), "--rate", "nan")).exit_code == 2


def test_node_command_names_the_ros_extra_without_rclpy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_policy: Callable[..., Path]
) -> None:
    policy = make_policy(tmp_path / "v1")
    monkeypatch.setitem(sys.modules, "rclpy", None)  # `import rclpy` fails as if not installed
    result = runner.invoke(app, node_args("--policy", str(policy)))
    assert result.exit_code == 2
    assert "rclpy" in result.stderr and "physai-fleet-deployment[ros]" in result.stderr


def test_node_help_has_examples() -> None:
    result = runner.invoke(app, node_args("--help"))
    assert result.exit_code == 0
    assert "Examples" in result.output and "--watch" in result.output
