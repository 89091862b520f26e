"""The simulated robot: MuJoCo physics, offscreen camera, scripted expert, bags without ROS."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.data_management import LeRobotDatasetReader
from physai.data_pipeline.bags import inspect_bag, open_bag
from physai.data_pipeline.convert import convert_bags
from physai.data_pipeline.mapping import ConversionMapping, load_mapping
from physai.data_pipeline.sim_robot import (
    Episode,
    ScriptedExpert,
    SimArm,
    conversion_mapping,
    get_task,
    task_names,
    write_episodes,
)


@pytest.mark.parametrize("task", ["pusher", "reacher"])
def test_expert_reaches_every_waypoint(task: str) -> None:
    arm = SimArm(task, seed=3, width=64, height=48)
    try:
        episode = Episode(arm, 4.0)
        kinds = Counter(event.kind for event in episode)
        assert episode.success is True
        assert isinstance(episode.expert, ScriptedExpert) and episode.expert.reached >= 1
        assert np.linalg.norm(arm.tip() - arm.waypoints[-1]) < arm.task.reach_tolerance * 1.5
        assert kinds == {"joint_state": 2000, "image": 120, "action": 120}
        image = arm.render()
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 5
    finally:
        arm.close()


def test_seeds_place_the_scene_and_replay_reproduces_the_expert() -> None:
    a = SimArm("reacher", seed=1, width=32, height=32)
    b = SimArm("reacher", seed=2, width=32, height=32)
    assert not np.allclose(a.waypoints[0], b.waypoints[0])
    expert = [e.data for e in Episode(a, 1.0) if e.kind == "action"]
    final = a.positions()
    b.reset(1)
    replayed = Episode(b, 1.0, actions=np.array(expert))
    for _ in replayed:
        pass
    assert replayed.success is None
    np.testing.assert_allclose(b.positions(), final, atol=1e-9)
    with pytest.raises(UserError, match="N x 2"):
        Episode(b, 1.0, actions=np.zeros((5, 3)))
    a.close()
    b.close()


def test_bags_convert_with_the_written_mapping(tmp_path: Path) -> None:
    paths = write_episodes(
        tmp_path / "bags", "pusher", episodes=2, seconds=1.0, width=64, height=48
    )
    assert [p.name for p in paths] == ["episode_000000", "episode_000001"]
    topics = {t.topic: t for t in inspect_bag(paths[0])}
    assert topics["/joint_states"].count == 500 and topics["/camera/image_raw"].count == 30
    assert topics["/joint_states"].rate_hz == pytest.approx(500, rel=0.01)
    meta = json.loads((paths[1] / "episode.json").read_text())
    assert meta["seed"] == 1 and meta["robot_id"] == "sim-pusher" and "success" in meta
    with open_bag(paths[0]) as reader:
        connection = next(c for c in reader.connections if c.topic == "/joint_states")
        _, _, raw = next(reader.messages([connection]))
        message = reader.deserialize(raw, connection.msgtype)
    assert list(message.name) == list(get_task("pusher").joints) and len(message.effort) == 7

    mapping = load_mapping(tmp_path / "bags" / "mapping.yaml")
    assert mapping == ConversionMapping.model_validate(conversion_mapping("pusher"))
    report = convert_bags(paths, mapping, tmp_path / "ds", work_dir=tmp_path / "w", workers=1)
    assert report.episodes == 2 and report.frames == 60
    with LeRobotDatasetReader(tmp_path / "ds") as dataset:
        frame = dataset[10]
        assert frame["observation.state"].shape == (7,)
        assert frame["observation.images.front"].shape == (48, 64, 3)
        assert frame["task"] == get_task("pusher").instruction


def test_cli_mcap_mode_replay_and_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    actions = np.zeros((3, 2))
    np.save(tmp_path / "zero.npy", actions)
    result = runner.invoke(
        app,
        ["data-pipeline", "sim-robot", "--task", "reacher", "--out", str(tmp_path / "b"),
         "--seconds", "0.5", "--width", "32", "--height", "32", "--replay",
         str(tmp_path / "zero.npy"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (bag,) = json.loads(result.output)
    assert json.loads((Path(bag) / "episode.json").read_text())["tags"][-1] == "replay"
    assert yaml.safe_load((tmp_path / "b/mapping.yaml").read_text())["fps"] == 30
    for args, message in [
        (["--task", "walker"], "unknown sim task 'walker' (known: pusher, reacher)"),
        (["--mode", "rtsp", "--out", str(tmp_path / "x")], "--mode must be mcap or ros"),
        (["--out", str(tmp_path / "y"), "--width", "8"], "image size 8x240"),
        (["--out", str(tmp_path / "b")], "exists: bags are never overwritten"),
        ([], "--out is required in mcap mode"),
    ]:
        bad = runner.invoke(app, ["data-pipeline", "sim-robot", "--seconds", "0.1", *args])
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
    assert task_names() == ["pusher", "reacher"]
