"""Simulated demonstrations: datasets that load, labels per episode, randomization, coverage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.data_management import Annotations, LeRobotDatasetReader
from physai.data_pipeline import SimArm
from physai.synthetic_data.coverage_report import coverage_report, occupancy, pair_occupancy
from physai.synthetic_data.demos import DemoSpec, generate_demos, run_episode
from physai.synthetic_data.randomization import RandomizationConfig, Range, SceneRandomizer

RANDOM = {
    "light_intensity": {"low": 0.4, "high": 1.6},
    "light_ambient": {"low": 0.0, "high": 0.3},
    "color_jitter": 0.2,
    "camera_distance": {"low": 0.9, "high": 1.1},
    "camera_azimuth_deg": {"low": -15, "high": 15},
    "object_offset_m": {"low": -0.02, "high": 0.02},
    "mass_scale": {"low": 0.7, "high": 1.3},
    "friction_scale": {"low": 0.8, "high": 1.2},
    "state_noise_std": 0.001,
    "image_noise_std": 2.0,
    "action_latency_steps": [0, 2],
}


def test_two_workers_write_one_dataset_with_labels_that_lerobot_loads(tmp_path: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = RandomizationConfig.model_validate(RANDOM)
    out = tmp_path / "demos"
    report = generate_demos(
        "reacher", 4, out, seconds=0.5, width=32, height=32, randomization=config, workers=2
    )
    assert (report.episodes, report.frames) == (4, 60) and report.frames_per_second > 0
    with LeRobotDatasetReader(out) as reader:
        assert reader.num_episodes == 4 and reader.num_frames == 60
        frame = reader.get_frame(20)
        assert frame["observation.images.front"].shape == (32, 32, 3)
        assert frame["observation.state"].shape == (2,) and frame["action"].shape == (2,)
        assert frame["task"] == "touch the red target with the fingertip"
    notes = Annotations(str(out))
    seeds = [notes.get(e).labels["seed"] for e in range(4)]
    assert seeds == [0, 1, 2, 3]  # episode order follows the seeds across both workers
    for episode in range(4):
        note = notes.get(episode)
        assert note.outcome in ("success", "failure")
        assert 0.4 <= note.labels["rand.light_intensity"] <= 1.6
        assert note.labels["rand.action_latency_steps"] in (0, 1, 2)
    assert report.successes == sum(notes.get(e).outcome == "success" for e in range(4))

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("local/demos", root=out, video_backend="pyav")
    assert len(dataset) == 60 and dataset[59]["observation.images.front"].shape == (3, 32, 32)


def test_an_episode_regenerates_alone_and_randomization_changes_the_scene() -> None:
    arm = SimArm("pusher", width=48, height=48)
    try:
        spec = DemoSpec(
            "pusher", 5, 0.4, 30, 48, 48, 500, RandomizationConfig.model_validate(RANDOM)
        )
        scene = SceneRandomizer(arm)
        first = run_episode(arm, scene, spec, 2)
        again = run_episode(arm, scene, spec, 2)
        np.testing.assert_array_equal(first.state, again.state)
        assert first.draw == again.draw
        other = run_episode(arm, scene, spec, 3)
        assert other.draw["light_intensity"] != first.draw["light_intensity"]
        # light intensity drives brightness: the dimmest draw renders darker
        dark = dict(first.draw, light_intensity=0.3, light_ambient=0.0, image_noise_std=0.0)
        bright = dict(dark, light_intensity=1.6)
        arm.reset(5)
        scene.apply(dark)
        low = arm.render().mean()
        scene.apply(bright)
        assert arm.render().mean() > low + 5
        scene.apply({})  # the nominal model again
        assert np.allclose(arm.model.body_mass, scene._nominal["body_mass"])
    finally:
        arm.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"light_intensity": {"low": 2, "high": 1}}, "must not exceed"),
        ({"sun": 1}, "Extra inputs"),
        ({"mass_scale": {"low": 0, "high": 1}}, "positive"),
        ({"action_latency_steps": [3, 1]}, "action_latency_steps"),
        ({"image_noise_std": -1}, "greater than or equal"),
    ],
)
def test_bad_randomization_is_refused_before_any_episode(
    tmp_path: Path, config: dict[str, object], message: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(
        app,
        ["synthetic-data", "demos", "--task", "reacher", "--episodes", "1",
         "--out", str(tmp_path / "o"), "--randomize", str(path)],
    )  # fmt: skip
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError):
        RandomizationConfig.from_yaml(path)


def test_cli_demos_and_coverage_report(tmp_path: Path) -> None:
    runner = CliRunner()
    config = tmp_path / "r.yaml"
    config.write_text(json.dumps({"light_intensity": {"low": 0.3, "high": 1.7}}))
    out = tmp_path / "d"
    done = runner.invoke(
        app,
        ["synthetic-data", "demos", "--task", "reacher", "--episodes", "6", "--seconds", "0.4",
         "--width", "32", "--height", "32", "--workers", "1", "--randomize", str(config),
         "--out", str(out), "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["episodes"] == 6
    assert runner.invoke(app, ["synthetic-data", "demos", "--task", "nope", "--episodes", "1",
                               "--out", str(tmp_path / "x")]).exit_code == 2  # fmt: skip
    again = runner.invoke(app, ["synthetic-data", "demos", "--task", "reacher", "--episodes", "2",
                                "--workers", "2", "--out", str(out)])  # fmt: skip
    assert again.exit_code == 2 and "exists" in again.output  # refused before any episode

    report = coverage_report(out, tmp_path / "report", frames_per_episode=2)
    assert report.episodes == 6 and set(report.state_coverage) == {"joint0", "joint1"}
    assert all(0 < v <= 1 for v in report.state_coverage.values())
    (light,) = [f for f in report.factors if f.factor == "light_intensity"]
    assert light.corr_brightness is not None and light.corr_brightness > 0.8
    assert (tmp_path / "report/coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "report/coverage.json").read_text())["episodes"] == 6
    shown = runner.invoke(
        app, ["synthetic-data", "coverage", str(out), "--out", str(tmp_path / "r2")]
    )
    assert shown.exit_code == 0 and "light_intensity" in shown.output
    bad = runner.invoke(app, ["synthetic-data", "coverage", str(out), "--out", str(tmp_path / "r3"),
                              "--camera", "observation.images.side"])  # fmt: skip
    assert bad.exit_code == 2 and "no camera" in bad.output


def test_occupancy_counts_bins() -> None:
    assert occupancy(np.array([0.0, 1.0]), 4) == 0.5
    assert occupancy(np.linspace(0, 1, 100), 10) == 1.0
    assert pair_occupancy(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 2) == 0.5


def test_range_draws_stay_inside() -> None:
    rng = np.random.default_rng(0)
    draws = [Range(low=-1, high=2).sample(rng) for _ in range(200)]
    assert min(draws) >= -1 and max(draws) <= 2 and np.std(draws) > 0.5
    assert Range(low=3, high=3).sample(rng) == 3
