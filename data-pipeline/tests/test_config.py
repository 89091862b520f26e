"""Recording configs: the YAML examples validate, the JSON Schema accepts them, bad configs
are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.data_pipeline.config import (
    DiskConfig,
    EpisodeMetadata,
    JointTrigger,
    RecordingConfig,
    ServiceTrigger,
    TopicConfig,
    TopicTrigger,
    load_recording_config,
    recording_config_schema,
)

EXAMPLES = sorted((Path(__file__).parents[1] / "examples" / "configs").glob("*.yaml"))


def test_there_are_two_examples() -> None:
    assert {p.stem for p in EXAMPLES} == {"arm-6dof", "mobile-manipulator"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_against_model_and_schema(path: Path) -> None:
    config = load_recording_config(path)
    assert config.topics and config.metadata.robot_id
    jsonschema.validate(yaml.safe_load(path.read_text()), recording_config_schema())


def test_defaults_and_normalization() -> None:
    config = RecordingConfig.model_validate(
        {
            "topics": [
                {"name": "joint_states", "rate_hz": 500},
                {"name": "/cam", "max_gap_ms": 80},
            ],
            "output_dir": "/tmp/bags",
            "metadata": {"task": "pick", "robot_id": "arm-1"},
        }
    )
    assert config.topics[0].name == "/joint_states"
    assert config.topic("/joint_states").gap_threshold_s() == pytest.approx(0.05)  # the floor
    assert config.topic("/cam").gap_threshold_s() == pytest.approx(0.08)
    assert config.trigger.kind == "service" and config.disk.critical_free_gb == 5.0


def test_joint_trigger_hysteresis() -> None:
    trigger = JointTrigger(joint="gripper", start_below=0.02, stop_above=0.035)
    assert trigger.next_state(False, 0.01) is True
    assert trigger.next_state(True, 0.03) is True  # inside the band: keep recording
    assert trigger.next_state(True, 0.04) is False
    with pytest.raises(ValueError, match="give start_above with stop_below"):
        JointTrigger(joint="g", start_above=1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topics: []\noutput_dir: x\nmetadata: {task: t, robot_id: r}\n", "topics"),
        (
            "topics: [{name: 'bad topic'}]\noutput_dir: x\nmetadata: {task: t, robot_id: r}\n",
            "not a valid ROS 2 topic name",
        ),
        (
            "topics: [{name: /a, compression: gzip}]\noutput_dir: x\n"
            "metadata: {task: t, robot_id: r}\n",
            "compression",
        ),
        (
            "topics: [{name: /a}, {name: a}]\noutput_dir: x\nmetadata: {task: t, robot_id: r}\n",
            "more than once",
        ),
        (
            "topics: [{name: /a}]\noutput_dir: x\nmetadata: {task: t, robot_id: '../r'}\n",
            "robot_id",
        ),
        (
            "topics: [{name: /a}]\noutput_dir: x\ndisk: {warning_free_gb: 1, critical_free_gb: 2}\n"
            "metadata: {task: t, robot_id: r}\n",
            "critical_free_gb",
        ),
        ("topics: [{name: /a}\n", "not valid YAML"),
    ],
)
def test_bad_configs_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        load_recording_config(path)
    assert "\n" not in str(info.value)


def test_schema_command_prints_the_schema() -> None:
    result = CliRunner().invoke(app, ["data-pipeline", "config-schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "RecordingConfig" and "topics" in schema["properties"]


def test_config_from_python_objects() -> None:
    config = RecordingConfig(
        topics=[TopicConfig(name="/joint_states", rate_hz=250, compression="lz4")],
        trigger=TopicTrigger(topic="episode"),
        disk=DiskConfig(warning_free_gb=10, critical_free_gb=2),
        output_dir="/data/bags",
        metadata=EpisodeMetadata(task="open the drawer", robot_id="tiago-07", tags=["demo"]),
    )
    assert config.trigger.kind == "topic" and config.trigger.topic == "/episode"
    assert ServiceTrigger().service == "/physai/record"
    again = RecordingConfig.model_validate(json.loads(config.model_dump_json()))
    assert again == config
