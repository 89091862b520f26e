"""How bag topics become LeRobot features: the mapping YAML of `physai data-pipeline convert`.

    fps: 30
    task: pick up the red cube            # else the bag's episode metadata, else --task
    features:
      observation.state:                  # vectors: one or more sources, concatenated
        - {topic: /joint_states, field: position, names: [j1, j2, j3, j4, j5, j6, j7]}
      action:
        - {topic: /arm/command, field: data}
      observation.images.wrist:           # cameras: one Image or CompressedImage topic
        topic: /camera/wrist/image_raw
    align: {numbers: linear, max_staleness_ms: 100, on_stale: fail}

The alignment policy is written out in specifications/bag-conversion.specification.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from physai.core.jobs.spec import YamlModel

CAMERA_PREFIX = "observation.images."
_FEATURE = re.compile(r"^(observation\.state|action|observation\.[A-Za-z0-9_.]+)$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _topic(name: str) -> str:
    return name if name.startswith("/") else "/" + name


class VectorSource(_Model):
    """Numbers taken from one topic: a field path (`position`, `data`, `twist.linear.x`) or
    several, concatenated in order. For JointState, `names` picks and orders joints by name."""

    topic: str
    field: str | None = Field(default=None, description="one field path")
    fields: list[str] | None = Field(default=None, description="several, concatenated")
    names: list[str] | None = Field(
        default=None, description="JointState joints to take, in this order"
    )

    @model_validator(mode="after")
    def _check(self) -> VectorSource:
        object.__setattr__(self, "topic", _topic(self.topic))
        if (self.field is None) == (self.fields is None):
            raise ValueError(f"{self.topic}: give exactly one of field or fields")
        for path in self.paths:
            if not _FIELD.match(path):
                raise ValueError(f"{self.topic}: {path!r} is not a field path")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError(f"{self.topic}: joint names repeat")
        if self.names is not None and len(self.paths) != 1:
            raise ValueError(f"{self.topic}: joint names need exactly one field")
        return self

    @property
    def paths(self) -> list[str]:
        """The field paths read, in order."""
        return [self.field] if self.field is not None else list(self.fields or [])


class CameraSource(_Model):
    """One camera topic (sensor_msgs Image or CompressedImage)."""

    topic: str
    depth_range_mm: tuple[float, float] = Field(
        default=(0.0, 4000.0),
        description="16UC1 depth: millimetres mapped to 0..255 grey (lossy; video is 8-bit)",
    )

    @model_validator(mode="after")
    def _check(self) -> CameraSource:
        object.__setattr__(self, "topic", _topic(self.topic))
        low, high = self.depth_range_mm
        if not high > low >= 0:
            raise ValueError(f"{self.topic}: depth_range_mm must be [low, high] with high > low")
        return self


class AlignPolicy(_Model):
    """How streams of different rates meet the target frame times."""

    numbers: Literal["last", "linear"] = Field(
        default="last",
        description="last value at or before the frame time, or linear interpolation",
    )
    max_staleness_ms: float = Field(
        default=100.0, gt=0, description="the newest sample may be at most this old"
    )
    on_stale: Literal["fail", "drop"] = Field(
        default="fail", description="a frame with a stale stream fails the bag or is dropped"
    )
    time: Literal["header", "receive"] = Field(
        default="header",
        description="header.stamp when the message has one (else receive time), or receive",
    )


class ConversionMapping(YamlModel):
    """Topics to features, target fps and alignment (`--mapping FILE`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    yaml_kind: ClassVar[str] = "mapping"

    fps: int = Field(gt=0, le=1000)
    task: str | None = None
    robot_type: str | None = None
    features: dict[str, list[VectorSource] | CameraSource]
    align: AlignPolicy = Field(default_factory=AlignPolicy)
    video_codec: Literal["av1", "h264"] = "av1"

    @model_validator(mode="after")
    def _check(self) -> ConversionMapping:
        if "observation.state" not in self.features and "action" not in self.features:
            raise ValueError("features need observation.state or action")
        for name, source in self.features.items():
            if not _FEATURE.match(name):
                raise ValueError(f"feature {name!r}: expected observation.state, action, ...")
            if name.startswith(CAMERA_PREFIX) != isinstance(source, CameraSource):
                raise ValueError(
                    f"feature {name!r}: cameras are observation.images.<name> with one topic"
                )
            if isinstance(source, list) and not source:
                raise ValueError(f"feature {name!r} has no sources")
        cameras = [c.topic for c in self.cameras.values()]
        vectors = {s.topic for sources in self.vectors.values() for s in sources}
        for topic in cameras:
            if cameras.count(topic) > 1 or topic in vectors:
                raise ValueError(f"topic {topic} is mapped twice (a camera takes its own topic)")
        return self

    @property
    def cameras(self) -> dict[str, CameraSource]:
        """Camera features by name."""
        return {k: v for k, v in self.features.items() if isinstance(v, CameraSource)}

    @property
    def vectors(self) -> dict[str, list[VectorSource]]:
        """Vector features by name."""
        return {k: v for k, v in self.features.items() if isinstance(v, list)}

    @property
    def topics(self) -> set[str]:
        """Every topic the mapping reads."""
        found = {c.topic for c in self.cameras.values()}
        return found | {s.topic for sources in self.vectors.values() for s in sources}


def load_mapping(path: str | os.PathLike[str]) -> ConversionMapping:
    """Read and validate a mapping YAML file."""
    return ConversionMapping.from_yaml(Path(path))
