"""Bag to LeRobot conversion: alignment, formats, resume, bad input; outputs load in lerobot."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.data_management.lerobot import LeRobotDatasetReader
from physai.data_management.validate import validate_dataset
from physai.data_pipeline import align
from physai.data_pipeline.bag_writer import EpisodeBagWriter
from physai.data_pipeline.bags import find_bags, inspect_bag
from physai.data_pipeline.convert import convert_bags, plan_bag, write_part
from physai.data_pipeline.mapping import ConversionMapping, load_mapping

JOINTS = [f"joint_{i}" for i in range(7)]
T0 = 1_700_000_000 * 10**9
FPS = 30


def shade(i: int) -> int:
    return (40 + 9 * i) % 220


def frame_image(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = shade(i)
    image[:, :, 1] = 255 - shade(i)
    image[:, :, 2] = 100
    return image


def write_bag(
    path: Path,
    seconds: float = 2.0,
    *,
    storage: str = "mcap",
    state_hz: int = 500,
    camera_hz: int = 30,
    task: str | None = "reach the target",
    edit: Any = None,
) -> Path:
    """500 Hz JointState (position i/state_hz on every joint), 30 Hz action and camera."""
    meta = {"task": task} if task else None
    with EpisodeBagWriter(path, storage=storage, metadata=meta) as bag:  # type: ignore[arg-type]
        steps = int(seconds * state_hz)
        camera_every = state_hz // camera_hz
        for i in range(steps):
            t = T0 + i * 10**9 // state_hz
            position = np.full(7, i / state_hz) + np.arange(7)
            if edit is not None and edit(bag, i, t):
                continue
            bag.joint_state(t, JOINTS, position)
            if i % camera_every == 0:
                bag.array(t, "/arm/command", np.full(7, float(i)))
                bag.image(t, "/camera/image_raw", frame_image(i // camera_every))
    return path


MAPPING: dict[str, Any] = {
    "fps": FPS,
    "robot_type": "sim_arm",
    "features": {
        "observation.state": [{"topic": "/joint_states", "field": "position", "names": JOINTS}],
        "action": [{"topic": "/arm/command", "field": "data"}],
        "observation.images.front": {"topic": "/camera/image_raw"},
    },
}


def mapping(**changes: Any) -> ConversionMapping:
    data = json.loads(json.dumps(MAPPING))
    for key, value in changes.items():
        data[key] = value
    return ConversionMapping.model_validate(data)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bags")
    write_bag(folder / "episode_000000")
    write_bag(folder / "episode_000001", seconds=1.5, storage="sqlite3")
    return folder


def test_converted_dataset_is_aligned_and_valid(bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    report = convert_bags([bags], mapping(), out, work_dir=tmp_path / "work", workers=1)
    assert report.episodes == 2 and not (tmp_path / "work").exists()
    assert validate_dataset(str(out)).ok
    with LeRobotDatasetReader(out) as dataset:
        assert dataset.fps == FPS and dataset.num_episodes == 2
        lengths = [e.length for e in dataset.episodes]
        assert lengths == [60, 45]  # (last - first) * fps + 1 frames, both streams covered
        for k, frame in enumerate(dataset.episode_frames(0)):
            t = k / FPS
            # last value at or before t: JointState sample floor(t * 500)
            expected = np.floor(t * 500 + 1e-9) / 500 + np.arange(7)
            np.testing.assert_allclose(frame["observation.state"], expected, atol=1e-6)
            assert frame["timestamp"] == pytest.approx(t, abs=1e-6)
            # the camera at 30 Hz (every 16 state steps, 31.25 Hz): nearest image
            times = np.arange(0, 2.0, 16 / 500)
            nearest = int(np.argmin(np.abs(times - t)))
            assert abs(float(frame["observation.images.front"][..., 0].mean()) - shade(nearest)) < 4
            assert frame["action"][0] == 16 * int(np.floor(t * 500 / 16 + 1e-9))
            assert frame["task"] == "reach the target"
        names = dataset.meta.features["observation.state"].names
        assert names == JOINTS


def test_linear_interpolation_and_receive_time(bags: Path) -> None:
    plan = plan_bag(bags / "episode_000000", mapping(align={"numbers": "linear"}))
    t = np.arange(plan.frames) / FPS
    np.testing.assert_allclose(plan.vectors["observation.state"][:, 0], t, atol=1e-6)


def test_lerobot_loads_the_converted_dataset(bags: Path, tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = tmp_path / "dataset"
    convert_bags([bags / "episode_000000"], mapping(), out, work_dir=tmp_path / "w")
    theirs = LeRobotDataset("physai/converted", root=out, video_backend="pyav")
    with LeRobotDatasetReader(out) as ours:
        assert len(theirs) == ours.num_frames == 60
        for index in (0, 17, 59):
            item, mine = theirs[index], ours[index]
            np.testing.assert_allclose(item["observation.state"].numpy(), mine["observation.state"])
            image = (item["observation.images.front"].numpy().transpose(1, 2, 0) * 255).round()
            assert np.abs(image - mine["observation.images.front"]).max() <= 1
            assert item["task"] == "reach the target"


def test_rerun_reuses_finished_parts(bags: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = convert_bags([bags], mapping(), tmp_path / "a", work_dir=work, keep_parts=True)
    assert not any(b.reused for b in first.bags)
    # a killed run leaves parts; the next run reuses them and publishes the same dataset
    again = convert_bags([bags], mapping(), tmp_path / "b", work_dir=work)
    assert all(b.reused for b in again.bags) and again.frames == first.frames
    with LeRobotDatasetReader(tmp_path / "a") as a, LeRobotDatasetReader(tmp_path / "b") as b:
        np.testing.assert_array_equal(
            a[30]["observation.images.front"], b[30]["observation.images.front"]
        )


def test_parallel_workers_match_serial(bags: Path, tmp_path: Path) -> None:
    serial = convert_bags([bags], mapping(), tmp_path / "s", work_dir=tmp_path / "w1", workers=1)
    parallel = convert_bags([bags], mapping(), tmp_path / "p", work_dir=tmp_path / "w2", workers=2)
    assert [b.frames for b in serial.bags] == [b.frames for b in parallel.bags]
    with LeRobotDatasetReader(tmp_path / "s") as s, LeRobotDatasetReader(tmp_path / "p") as p:
        for index in (0, 59, 60, 104):
            np.testing.assert_array_equal(
                s[index]["observation.state"], p[index]["observation.state"]
            )


def test_formats_depth_mono_bgr_and_compressed(tmp_path: Path) -> None:
    bag = tmp_path / "formats"
    with EpisodeBagWriter(bag, metadata={"task": "look"}) as writer:
        for k in range(12):
            t = T0 + k * 10**9 // FPS
            writer.joint_state(t, JOINTS, np.zeros(7))
            rgb = frame_image(k)
            writer.image(t, "/bgr", rgb, encoding="bgr8")
            writer.image(t, "/mono", rgb[:, :, 0].copy(), encoding="mono8")
            depth = np.full((48, 64), 2000, np.uint16)  # 2 m of 4 m: grey 127
            writer.image(t, "/depth", depth, encoding="16UC1")
            png = av.CodecContext.create("png", "w")
            png.width, png.height, png.pix_fmt = 64, 48, "rgb24"
            packets = png.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
            buffer = b"".join(bytes(p) for p in packets)
            writer.compressed_image(t, "/png", buffer, fmt="png")
            jpeg = av.CodecContext.create("mjpeg", "w")
            jpeg.width, jpeg.height, jpeg.pix_fmt = 64, 48, "yuvj420p"
            jpeg.time_base = Fraction(1, FPS)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
            writer.compressed_image(t, "/jpeg", b"".join(bytes(p) for p in jpeg.encode(frame)))
    features = {
        "observation.state": [{"topic": "/joint_states", "field": "position"}],
        "observation.images.bgr": {"topic": "/bgr"},
        "observation.images.mono": {"topic": "/mono"},
        "observation.images.depth": {"topic": "/depth"},
        "observation.images.png": {"topic": "/png"},
        "observation.images.jpeg": {"topic": "/jpeg"},
    }
    plan = plan_bag(bag, mapping(features=features))
    assert plan.frames == 12 and plan.cameras["observation.images.png"].height == 48
    out = tmp_path / "out"
    convert_bags([bag], mapping(features=features), out, work_dir=tmp_path / "w")
    with LeRobotDatasetReader(out) as dataset:
        frame = dataset[5]
        expected = frame_image(5).astype(int)
        assert np.abs(frame["observation.images.bgr"].astype(int) - expected).mean() < 3
        assert np.abs(frame["observation.images.png"].astype(int) - expected).mean() < 3
        assert np.abs(frame["observation.images.jpeg"].astype(int) - expected).mean() < 4
        assert abs(frame["observation.images.mono"].mean() - shade(5)) < 3
        assert abs(frame["observation.images.depth"].mean() - 127.5) < 3


def test_ros1_bag(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    path = tmp_path / "episode.bag"
    with Writer(path) as bag:
        state = bag.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        camera = bag.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for k in range(30):
            t = T0 + k * 10**9 // FPS
            stamp = types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
            header = types["std_msgs/msg/Header"](seq=k, stamp=stamp, frame_id="")
            joints = types["sensor_msgs/msg/JointState"](
                header=header,
                name=JOINTS,
                position=np.full(7, float(k)),
                velocity=np.zeros(0),
                effort=np.zeros(0),
            )
            bag.write(state, t, store.serialize_ros1(joints, "sensor_msgs/msg/JointState"))
            image = types["sensor_msgs/msg/Image"](
                header=header,
                height=48,
                width=64,
                encoding="rgb8",
                is_bigendian=0,
                step=192,
                data=frame_image(k).reshape(-1),
            )
            bag.write(camera, t, store.serialize_ros1(image, "sensor_msgs/msg/Image"))
    features = {
        "observation.state": [{"topic": "/joint_states", "field": "position", "names": JOINTS}],
        "observation.images.front": {"topic": "/camera/image_raw"},
    }
    out = tmp_path / "out"
    convert_bags([path], mapping(features=features), out, task="ros one", work_dir=tmp_path / "w")
    with LeRobotDatasetReader(out) as dataset:
        assert dataset.num_frames == 30 and dataset[7]["task"] == "ros one"
        np.testing.assert_array_equal(dataset[7]["observation.state"], np.full(7, 7.0))
        assert abs(float(dataset[7]["observation.images.front"][..., 0].mean()) - shade(7)) < 4


def test_inspect_counts_rates_and_gaps(bags: Path, tmp_path: Path) -> None:
    def gap(_bag: Any, i: int, _t: int) -> bool:
        return 400 <= i < 600  # 0.4 s without any message

    bag = write_bag(tmp_path / "gappy", edit=gap)
    summary = {s.topic: s for s in inspect_bag(bag)}
    state = summary["/joint_states"]
    assert state.count == 800 and state.msgtype == "sensor_msgs/msg/JointState"
    assert state.gaps == 1 and state.max_gap_s == pytest.approx(0.402)
    assert summary["/camera/image_raw"].count == 50  # 63 less the 13 in the gap
    steady = {s.topic: s for s in inspect_bag(bags / "episode_000000")}
    assert steady["/camera/image_raw"].rate_hz == pytest.approx(31.25)
    assert steady["/joint_states"].gaps == 0
    result = CliRunner().invoke(app, ["data-pipeline", "inspect", str(bag), "--json"])
    assert result.exit_code == 0, result.output
    listed = {t["topic"]: t for t in json.loads(result.output)[str(bag)]}
    assert listed["/joint_states"]["count"] == 800


def test_stale_frames_fail_or_split_the_episode(tmp_path: Path) -> None:
    def camera_gap(bag: Any, i: int, t: int) -> bool:
        if 300 <= i < 600:  # the camera stops for 0.6 s; the arm keeps publishing
            bag.joint_state(t, JOINTS, np.zeros(7))
            if i % 16 == 0:
                bag.array(t, "/arm/command", np.zeros(7))
            return True
        return False

    bag = write_bag(tmp_path / "stale", edit=camera_gap)
    with pytest.raises(UserError, match=r"topic /camera/image_raw is stale at t=\d+\.\d+ s"):
        plan_bag(bag, mapping())
    plan = plan_bag(bag, mapping(align={"on_stale": "drop", "max_staleness_ms": 100}))
    assert len(plan.runs) == 2 and plan.dropped > 0 and "dropped" in plan.warnings[0]
    out = tmp_path / "out"
    report = convert_bags([bag], mapping(align={"on_stale": "drop"}), out, work_dir=tmp_path / "w")
    assert report.episodes == 2 and validate_dataset(str(out)).ok


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_topic", r"topic /nowhere is not in the bag \(it has \["),
        ("wrong_type", r"topic /joint_states is sensor_msgs/msg/JointState: cameras need"),
        ("duplicate_time", r"topic /joint_states: duplicate timestamp at t=1700000000\.398000 s"),
        ("backwards_time", r"topic /joint_states: non-monotonic timestamp at t="),
        ("nan", r"topic /joint_states at t=1700000000\.\d+ s holds NaN or inf"),
        ("size_change", r"image size changed from 64x48 to 32x24"),
        ("empty", r"the bag is empty"),
        ("truncated", r"not a readable bag|corrupt or truncated"),
        ("no_task", r"no task: pass --task"),
        ("not_a_bag", r"not a bag \(expected"),
    ],
)
def test_bad_input_is_one_line_and_publishes_nothing(
    tmp_path: Path, case: str, message: str
) -> None:
    bag = tmp_path / "bag"
    chosen = mapping()

    def duplicate(b: Any, i: int, t: int) -> bool:
        if i == 200:
            b.joint_state(t, JOINTS, np.zeros(7), stamp_ns=T0 + 199 * 2_000_000)
            return True
        return False

    def backwards(b: Any, i: int, t: int) -> bool:
        if i == 200:
            b.joint_state(t, JOINTS, np.zeros(7), stamp_ns=T0)
            return True
        return False

    def nan(b: Any, i: int, t: int) -> bool:
        if i == 100:
            b.joint_state(t, JOINTS, np.full(7, np.nan))
            return True
        return False

    def size_change(b: Any, i: int, t: int) -> bool:
        if i == 320:
            b.joint_state(t, JOINTS, np.zeros(7))
            b.array(t, "/arm/command", np.zeros(7))
            b.image(t, "/camera/image_raw", np.zeros((24, 32, 3), np.uint8))
            return True
        return False

    edits = {"duplicate_time": duplicate, "backwards_time": backwards, "nan": nan}
    edits["size_change"] = size_change
    if case == "missing_topic":
        chosen = mapping(features={"action": [{"topic": "/nowhere", "field": "data"}]})
    if case == "wrong_type":
        chosen = mapping(
            features={
                "action": [{"topic": "/arm/command", "field": "data"}],
                "observation.images.x": {"topic": "/joint_states"},
            }
        )
    if case == "empty":
        with EpisodeBagWriter(bag, metadata={"task": "t"}):
            pass
    elif case == "not_a_bag":
        bag = tmp_path / "notes.txt"
        bag.write_text("hello")
    else:
        write_bag(bag, task=None if case == "no_task" else "t", edit=edits.get(case))
    if case == "truncated":
        (data,) = bag.glob("*.mcap")
        blob = data.read_bytes()
        data.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            *("data-pipeline", "convert", str(bag)),
            *("--mapping", str(write_yaml(tmp_path, chosen))),
            *("--out", str(out), "--work-dir", str(tmp_path / "work")),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), result.output
    assert not out.exists()


def write_yaml(folder: Path, chosen: ConversionMapping) -> Path:
    path = folder / "mapping.yaml"
    path.write_text(yaml.safe_dump(chosen.model_dump(mode="json", exclude_none=True)))
    return path


def test_bad_mapping_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("fps: 30\nfeatures:\n  observation.images.x: [{topic: /a, field: data}]\n")
    result = CliRunner().invoke(
        app, ["data-pipeline", "convert", str(tmp_path), "--mapping", str(path), "--out", "x"]
    )
    assert result.exit_code == 2 and "mapping" in result.output


def test_alignment_helpers() -> None:
    stream = align.Stream("/a", np.array([0, 10, 20], np.int64), np.array([[0.0], [1.0], [2.0]]))
    clock = np.array([5, 10, 25], np.int64)
    values, age = align.align_numbers(stream, clock, "linear")
    np.testing.assert_allclose(values[:, 0], [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(age, [5, 0, 5])
    index, distance = align.nearest_index(stream.times, np.array([4, 6, 30], np.int64))
    np.testing.assert_array_equal(index, [0, 1, 2])
    np.testing.assert_array_equal(distance, [4, 4, 10])
    assert align.good_runs(np.array([True, False, False, True, False])) == [(1, 3), (4, 5)]
    ms = align.Stream("/b", np.array([0, 10, 20], np.int64) * 1_000_000)
    assert align.frame_clock([ms], 100).tolist() == [0, 10_000_000, 20_000_000]


def test_find_bags_load_mapping_and_write_part(bags: Path, tmp_path: Path) -> None:
    (bags / "notes.txt").write_text("not a bag: find_bags skips it")
    assert find_bags([bags]) == [bags / "episode_000000", bags / "episode_000001"]
    chosen = load_mapping(write_yaml(tmp_path, mapping()))
    assert chosen == mapping() and chosen.topics == {
        "/joint_states",
        "/arm/command",
        "/camera/image_raw",
    }
    plan = plan_bag(bags / "episode_000001", chosen)
    assert write_part(plan, chosen, str(tmp_path / "part")) == 45
    with pytest.raises(UserError, match="holds no bag"):
        find_bags([tmp_path / "part" / "meta"])


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            {"action": [{"topic": "/j", "fields": ["position", "velocity"], "names": ["a"]}]},
            "joint names need exactly one field",
        ),
        (
            {
                "action": [{"topic": "/cam", "field": "data"}],
                "observation.images.a": {"topic": "/cam"},
            },
            "topic /cam is mapped twice",
        ),
        (
            {
                "action": [{"topic": "/j", "field": "data"}],
                "observation.images.a": {"topic": "/cam"},
                "observation.images.b": {"topic": "/cam"},
            },
            "topic /cam is mapped twice",
        ),
    ],
)
def test_mapping_rejects_ambiguous_sources(features: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        ConversionMapping.from_dict({"fps": 30, "features": features})
