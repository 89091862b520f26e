"""What to record on a robot: topics, episode triggers, disk thresholds, episode metadata.

    config = load_recording_config("arm.yaml")
    schema = recording_config_schema()  # JSON Schema, for editors and the recorder's users

The recorder (`physai.data_pipeline.recorder`) runs from this model; the YAML examples in
`data-pipeline/examples/configs/` validate against it (a test checks them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from physai.core.jobs.spec import YamlModel

MIN_DEFAULT_GAP_S = 0.05
"""Floor of the default gap threshold: delivery jitter on a busy, non-real-time host reaches
tens of milliseconds, so 3 periods of a 500 Hz stream (6 ms) would report noise."""

_TOPIC = re.compile(r"^/?[A-Za-z_~{][A-Za-z0-9_/{}~]*$")


def _check_topic(name: str) -> str:
    if not _TOPIC.match(name) or "//" in name or name.endswith("/"):
        raise ValueError(f"{name!r} is not a valid ROS 2 topic name")
    return name if name.startswith("/") else "/" + name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicConfig(_Model):
    """One recorded topic."""

    name: str = Field(description="topic name, e.g. /joint_states")
    type: str | None = Field(
        default=None,
        description="message type, e.g. sensor_msgs/msg/JointState (default: discovered)",
    )
    rate_hz: float | None = Field(
        default=None, gt=0, description="expected publish rate; gaps are judged against it"
    )
    compression: Literal["none", "lz4", "zstd"] = Field(
        default="none", description="MCAP chunk compression of this topic's bag file"
    )
    max_gap_ms: float | None = Field(
        default=None,
        gt=0,
        description=(
            "a gap longer than this is reported (default: 3 periods of rate_hz, at least 50 ms)"
        ),
    )
    required: bool = Field(
        default=True, description="an episode whose required topic never arrives is flagged"
    )

    @model_validator(mode="after")
    def _normalize(self) -> TopicConfig:
        object.__setattr__(self, "name", _check_topic(self.name))
        return self

    def gap_threshold_s(self) -> float | None:
        """The gap (seconds) beyond which this topic is reported, or None when not judged."""
        if self.max_gap_ms is not None:
            return self.max_gap_ms / 1000.0
        if self.rate_hz is not None:
            return max(3.0 / self.rate_hz, MIN_DEFAULT_GAP_S)
        return None


class ServiceTrigger(_Model):
    """Episodes start and stop through std_srvs/srv/SetBool (`data: true` starts)."""

    kind: Literal["service"] = "service"
    service: str = Field(default="/physai/record", description="SetBool service name")


class TopicTrigger(_Model):
    """Episodes start and stop on a std_msgs/msg/Bool topic (true starts, false stops)."""

    kind: Literal["topic"] = "topic"
    topic: str = Field(default="/physai/episode", description="std_msgs/msg/Bool topic")

    @model_validator(mode="after")
    def _normalize(self) -> TopicTrigger:
        object.__setattr__(self, "topic", _check_topic(self.topic))
        return self


class JointTrigger(_Model):
    """Episodes start when a joint position crosses `start_above` (or drops below
    `start_below`) and stop when it crosses back (hysteresis: the stop level must be on the
    other side of the start level)."""

    kind: Literal["joint"] = "joint"
    topic: str = Field(default="/joint_states", description="sensor_msgs/msg/JointState topic")
    joint: str = Field(description="joint name in JointState.name")
    start_above: float | None = None
    stop_below: float | None = None
    start_below: float | None = None
    stop_above: float | None = None

    @model_validator(mode="after")
    def _check_levels(self) -> JointTrigger:
        object.__setattr__(self, "topic", _check_topic(self.topic))
        rising = (self.start_above, self.stop_below)
        falling = (self.start_below, self.stop_above)
        if all(v is not None for v in rising) and all(v is None for v in falling):
            if self.stop_below > self.start_above:  # type: ignore[operator]
                raise ValueError("stop_below must not exceed start_above")
        elif all(v is not None for v in falling) and all(v is None for v in rising):
            if self.stop_above < self.start_below:  # type: ignore[operator]
                raise ValueError("stop_above must not be below start_below")
        else:
            raise ValueError("give start_above with stop_below, or start_below with stop_above")
        return self

    def next_state(self, recording: bool, position: float) -> bool:
        """Whether to be recording after seeing `position`, given whether we are now."""
        if self.start_above is not None:
            return position >= self.stop_below if recording else position > self.start_above  # type: ignore[operator]
        return position <= self.stop_above if recording else position < self.start_below  # type: ignore[operator]


Trigger = Annotated[ServiceTrigger | TopicTrigger | JointTrigger, Field(discriminator="kind")]


class DiskConfig(_Model):
    """Free-space thresholds on the output directory's file system."""

    warning_free_gb: float = Field(default=20.0, ge=0, description="warn below this")
    critical_free_gb: float = Field(
        default=5.0, ge=0, description="stop the episode cleanly and refuse new ones below this"
    )
    check_interval_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DiskConfig:
        if self.critical_free_gb > self.warning_free_gb:
            raise ValueError("critical_free_gb must not exceed warning_free_gb")
        return self


class EpisodeMetadata(_Model):
    """Written beside each bag; the converter turns `task` into the LeRobot task."""

    task: str = Field(description="what the robot is asked to do, in words")
    operator: str | None = None
    robot_id: str = Field(description="robot name; the upload layout uses it")
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> EpisodeMetadata:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.robot_id):
            raise ValueError("robot_id must be 1-64 characters of A-Z a-z 0-9 _ . -")
        if not self.task.strip():
            raise ValueError("task must not be empty")
        return self


class RecordingConfig(YamlModel):
    """Everything the recorder needs (`physai data-pipeline record --config FILE`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    yaml_kind: ClassVar[str] = "recording config"

    version: Literal[1] = 1
    topics: list[TopicConfig] = Field(min_length=1)
    trigger: Trigger = Field(default_factory=ServiceTrigger)
    disk: DiskConfig = Field(default_factory=DiskConfig)
    output_dir: str = Field(description="where episode bags go (one folder per episode)")
    metadata: EpisodeMetadata
    max_episode_s: float | None = Field(
        default=None, gt=0, description="stop an episode after this long"
    )

    @model_validator(mode="after")
    def _unique_topics(self) -> RecordingConfig:
        names = [t.name for t in self.topics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"topics listed more than once: {twice}")
        return self

    def topic(self, name: str) -> TopicConfig:
        """The configuration of one topic."""
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(name)


def recording_config_schema() -> dict[str, Any]:
    """The JSON Schema of `RecordingConfig`."""
    schema = RecordingConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://physai.dev/schemas/recording-config-v1.json"
    return schema


def load_recording_config(path: str | os.PathLike[str]) -> RecordingConfig:
    """Read and validate a YAML recording config; bad input raises a one-line `UserError`."""
    return RecordingConfig.from_yaml(Path(path))
