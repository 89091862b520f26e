"""The ROS 2 recorder for real: publisher and recorder are separate processes on localhost DDS."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from physai.data_pipeline.bags import find_bags, inspect_bag, open_bag
from physai.data_pipeline.config import load_recording_config
from physai.data_pipeline.convert import convert_bags
from physai.data_pipeline.mapping import ConversionMapping
from physai.data_pipeline.mcap_episode import McapEpisode
from physai.data_pipeline.recorder import Recorder
from physai.data_pipeline.sim_robot import conversion_mapping, publish_episodes

pytest.importorskip("rclpy", reason="the ros extra is installed by scripts/setup-dev")
pytestmark = pytest.mark.integration

PHYSAI = str(Path(sys.executable).with_name("physai"))

# A scripted publisher: {"trigger": bool topic or null, "steps": [[joint value, pause_s], ...]}.
# Publishes JointState at 500 Hz (joint "gripper" = the step's value) and a 64x48 Image every
# 17th message, after waiting for the recorder's subscriptions; prints what it published.
PUBLISHER = """
import json, sys, time
import numpy as np
import rclpy
from physai.data_pipeline import ros
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool
plan = json.loads(sys.argv[1])
rclpy.init()
node = rclpy.create_node("test_publisher")
qos = ros.reliable_qos()
joints = node.create_publisher(JointState, "/joint_states", qos)
images = node.create_publisher(Image, "/camera/image_raw", qos)
trigger = None
if plan["trigger"]:
    trigger = node.create_publisher(Bool, plan["trigger"], ros.reliable_qos(10))
deadline = time.monotonic() + 20
while joints.get_subscription_count() < 1 or images.get_subscription_count() < 1 or (
    trigger is not None and trigger.get_subscription_count() < 1
):
    assert time.monotonic() < deadline, "the recorder never subscribed"
    time.sleep(0.05)
if trigger is not None:
    trigger.publish(Bool(data=True))
    time.sleep(0.3)
sent = {"/joint_states": 0, "/camera/image_raw": 0}
start = time.monotonic()
i = 0
for value, pause in plan["steps"]:
    time.sleep(pause)
    target = start + i / 500
    now = time.monotonic()
    if target > now:
        time.sleep(target - now)
    t_ns = time.time_ns()
    joints.publish(ros.joint_state(t_ns, ["j0", "gripper"], np.array([i / 500, value])))
    sent["/joint_states"] += 1
    if i % 17 == 0:
        images.publish(ros.image(t_ns, np.full((48, 64, 3), i % 250, np.uint8)))
        sent["/camera/image_raw"] += 1
    i += 1
    if pause:
        start += pause
print(json.dumps(sent), flush=True)
time.sleep(0.5)
"""


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """DDS kept on this host, in a domain of its own, so parallel runs do not mix."""
    return {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(random.randint(1, 200)),
        "PHYSAI_HOME": str(tmp_path / "home"),
    }


def recording_config(tmp_path: Path, **changes: Any) -> Path:
    config: dict[str, Any] = {
        "version": 1,
        "topics": [
            {"name": "/joint_states", "type": "sensor_msgs/msg/JointState", "rate_hz": 500,
             "compression": "zstd"},
            {"name": "/camera/image_raw", "type": "sensor_msgs/msg/Image", "rate_hz": 30},
        ],
        "trigger": {"kind": "service", "service": "/physai/record"},
        "disk": {"warning_free_gb": 0.01, "critical_free_gb": 0.001},
        "output_dir": str(tmp_path / "bags"),
        "metadata": {"task": "reach", "robot_id": "sim-1", "tags": ["test"]},
    }  # fmt: skip
    config.update(changes)
    path = tmp_path / "recording.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_recorder(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PHYSAI, "data-pipeline", "record", "--config", str(config), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_recorder(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[list[Any], str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return json.loads(out), err


def publish(plan: dict[str, Any], env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PUBLISHER, json.dumps(plan)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def bag_counts(bag: Path) -> tuple[Counter[str], list[int]]:
    """Messages per topic, and the JointState header stamps in order."""
    counts: Counter[str] = Counter()
    stamps: list[int] = []
    with open_bag(bag) as reader:
        for connection, _, raw in reader.messages():
            counts[connection.topic] += 1
            if connection.topic == "/joint_states":
                message = reader.deserialize(raw, connection.msgtype)
                stamps.append(message.header.stamp.sec * 10**9 + message.header.stamp.nanosec)
    return counts, stamps


def test_sim_robot_episodes_recorded_whole_through_the_service_trigger(
    tmp_path: Path, ros_env: dict[str, str]
) -> None:
    config = recording_config(
        tmp_path,
        topics=[
            {"name": "/joint_states", "rate_hz": 500, "compression": "zstd"},  # type discovered
            {"name": "/camera/image_raw", "type": "sensor_msgs/msg/Image", "rate_hz": 30},
            {
                "name": "/arm/command",
                "type": "std_msgs/msg/Float64MultiArray",
                "compression": "lz4",
            },
        ],
    )  # fmt: skip
    recorder = start_recorder(config, ros_env)
    sim = subprocess.run(
        [PHYSAI, "data-pipeline", "sim-robot", "--mode", "ros", "--task", "reacher",
         "--episodes", "2", "--seconds", "3", "--width", "64", "--height", "48",
         "--trigger-service", "/physai/record", "--json"],
        env=ros_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr + recorder.communicate(timeout=5)[1]
    published = json.loads(sim.stdout)
    assert published[0] == {"/joint_states": 1500, "/camera/image_raw": 90, "/arm/command": 90}
    episodes, _ = stop_recorder(recorder)

    assert [e["stop_reason"] for e in episodes] == ["trigger", "trigger"]
    bags = find_bags([tmp_path / "bags"])
    assert [b.name for b in bags] == [Path(e["path"]).name for e in episodes]
    for bag, sent in zip(bags, published, strict=True):
        counts, stamps = bag_counts(bag)
        assert dict(counts) == sent  # every published message is in the bag
        assert len(set(stamps)) == len(stamps) == 1500 and stamps == sorted(stamps)
        meta = json.loads((bag / "episode.json").read_text())
        assert meta["robot_id"] == "sim-1" and meta["message_counts"] == sent
        assert meta["stop_reason"] == "trigger" and meta["missing_topics"] == []
    assert not list((tmp_path / "bags").glob(".*"))  # no half-written episode left

    # The recorded bags convert with the sim robot's mapping.
    mapping = ConversionMapping.model_validate(conversion_mapping("reacher"))
    report = convert_bags(bags, mapping, tmp_path / "dataset", work_dir=tmp_path / "w", workers=1)
    assert report.episodes >= 2 and report.frames >= 90  # receive-time jitter may drop some


def test_sigterm_flushes_every_received_message(tmp_path: Path, ros_env: dict[str, str]) -> None:
    config = recording_config(tmp_path, trigger={"kind": "topic", "topic": "/physai/episode"})
    recorder = start_recorder(config, ros_env)
    steps = [[0.0, 0.0]] * 1000 + [[0.0, 0.5]] + [[0.0, 0.0]] * 499  # a 0.5 s gap mid-way
    sent = publish({"trigger": "/physai/episode", "steps": steps}, ros_env)
    episodes, err = stop_recorder(recorder, signal.SIGTERM)  # no stop trigger: the signal ends it
    (episode,) = episodes
    assert episode["stop_reason"] == "signal"
    counts, stamps = bag_counts(Path(episode["path"]))
    assert dict(counts) == sent == {"/joint_states": 1500, "/camera/image_raw": 89}
    assert stamps == sorted(stamps)
    gaps = [g for g in episode["gaps"] if g["topic"] == "/joint_states"]
    assert any(0.4 < g["seconds"] < 1.0 for g in gaps), gaps
    assert "gap on /joint_states" in err


def test_joint_trigger_and_episode_limit_in_process(
    tmp_path: Path, ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID"):
        monkeypatch.setenv(key, ros_env[key])
    config = load_recording_config(
        recording_config(
            tmp_path,
            trigger={"kind": "joint", "joint": "gripper", "start_above": 0.5, "stop_below": 0.2},
            max_episode_s=0.6,
        )
    )
    # closed 0.4 s, open 0.4 s (the first episode), closed 0.4 s, open 1.2 s (cut at 0.6 s)
    values = [0.0] * 200 + [0.9] * 200 + [0.1] * 200 + [0.9] * 600
    plan = json.dumps({"trigger": None, "steps": [[v, 0.0] for v in values]})
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, plan], env=ros_env)
    recorder = Recorder(config)
    threading.Thread(
        target=lambda: (publisher.wait(), recorder.request_stop()), daemon=True
    ).start()
    report = recorder.run()  # returns once the publisher is done
    assert publisher.returncode == 0
    assert [e.stop_reason for e in report.episodes] == ["trigger", "max_episode_s"]
    first = report.episodes[0].messages["/joint_states"]
    assert 195 <= first <= 201  # the open phase (±1 for the trigger's own message)
    second = report.episodes[1].messages["/joint_states"]
    assert 200 <= second <= 330  # 0.6 s at 500 Hz, stopped by the 50 ms limit check


def test_critical_disk_refuses_episodes(tmp_path: Path, ros_env: dict[str, str]) -> None:
    config = recording_config(tmp_path, disk={"warning_free_gb": 1e9, "critical_free_gb": 1e9})
    recorder = start_recorder(config, ros_env)
    sim = subprocess.run(
        [PHYSAI, "data-pipeline", "sim-robot", "--mode", "ros", "--task", "reacher",
         "--seconds", "0.2", "--width", "32", "--height", "32",
         "--trigger-service", "/physai/record"],
        env=ros_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    episodes, err = stop_recorder(recorder)
    assert sim.returncode == 2 and "below the critical threshold" in sim.stderr
    assert episodes == [] and "below the critical" in err


def test_per_topic_compression_in_one_mcap_file(tmp_path: Path) -> None:
    from mcap.reader import make_reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    array = store.types["std_msgs/msg/Float64MultiArray"]
    layout = store.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    kinds = {"/a": "zstd", "/b": "lz4", "/c": "none"}
    with McapEpisode(tmp_path / "ep", kinds, chunk_size=20_000, metadata={"task": "t"}) as ep:
        for topic in kinds:
            ep.add_topic(topic, "std_msgs/msg/Float64MultiArray")
        for i in range(600):
            data = store.serialize_cdr(
                array(layout=layout, data=np.full(8, float(i))), array.__msgtype__
            )
            for topic in kinds:
                ep.write(topic, 10**9 + i * 10**6, data)
    with (tmp_path / "ep/ep_0.mcap").open("rb") as handle:
        summary = make_reader(handle).get_summary()
    assert summary is not None
    by_channel = {summary.channels[i].topic: set() for i in summary.channels}
    for chunk in summary.chunk_indexes:
        for channel in chunk.message_index_offsets:
            by_channel[summary.channels[channel].topic].add(chunk.compression)
    assert by_channel == {"/a": {"zstd"}, "/b": {"lz4"}, "/c": {""}}
    assert {t.topic: t.count for t in inspect_bag(tmp_path / "ep")} == dict.fromkeys(kinds, 600)
    with open_bag(tmp_path / "ep") as reader:
        times = [t for _, t, _ in reader.messages()]
    assert times == sorted(times) and len(times) == 1800

    # A reader that streams the file from the start (no summary, as after a crash) finds every
    # channel before its messages, also when no uncompressed topic has any message.
    from mcap.reader import NonSeekingReader

    with McapEpisode(tmp_path / "zstd_only", {"/a": "zstd"}, chunk_size=2_000) as ep:
        ep.add_topic("/a", "std_msgs/msg/Float64MultiArray")
        for i in range(300):
            ep.write("/a", 10**9 + i, data)
    for path in (tmp_path / "ep/ep_0.mcap", tmp_path / "zstd_only/zstd_only_0.mcap"):
        with path.open("rb") as handle:
            streamed = Counter(c.topic for _, c, _ in NonSeekingReader(handle).iter_messages())
        assert sum(streamed.values()) in (1800, 300), streamed


def test_recorder_refuses_an_unknown_message_type_at_start(
    tmp_path: Path, ros_env: dict[str, str]
) -> None:
    config = recording_config(
        tmp_path, topics=[{"name": "/gripper", "type": "my_robot_msgs/msg/Gripper"}]
    )
    done = subprocess.run(
        [PHYSAI, "data-pipeline", "record", "--config", str(config)],
        env=ros_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "my_robot_msgs/msg/Gripper" in done.stderr
    assert not (tmp_path / "bags").exists() or not any((tmp_path / "bags").iterdir())


def test_recorder_needs_a_type_it_cannot_discover(tmp_path: Path, ros_env: dict[str, str]) -> None:
    config = recording_config(tmp_path, topics=[{"name": "/nobody_publishes"}])
    done = subprocess.run(
        [PHYSAI, "data-pipeline", "record", "--config", str(config), "--discovery-timeout", "1"],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no publisher of /nobody_publishes" in done.stderr and "type:" in done.stderr


def test_publish_episodes_counts_without_listeners(
    ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID"):
        monkeypatch.setenv(key, ros_env[key])
    counts = publish_episodes(
        "reacher", seconds=0.2, width=32, height=32, wait_for_subscribers_s=0.2, realtime=False
    )
    assert counts == [{"/joint_states": 100, "/camera/image_raw": 6, "/arm/command": 6}]
