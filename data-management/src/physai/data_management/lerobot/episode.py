"""One episode being recorded: value checks, numeric buffers, one streaming encoder per camera.

Values are checked as they arrive (missing or extra features, dtype, shape): a bad value raises
a `UserError` and the writer drops the whole episode. Camera frames go straight to the encoder;
only their per-frame pixel counts (for statistics) are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.data_management.lerobot.features import Feature
from physai.data_management.lerobot.format import DEFAULT_FEATURES
from physai.data_management.lerobot.stats import PixelCounts, sample_indices
from physai.data_management.lerobot.video_encode import EpisodeEncoder, VideoCodec


def check_value(feature: Feature, value: Any) -> NDArray[Any]:
    """One frame's value of a non-camera feature, checked against its declaration."""
    if feature.dtype == "string":
        if not isinstance(value, str):
            raise UserError(f"feature {feature.name!r}: expected a str, got {type(value).__name__}")
        return np.asarray(value, dtype=object)
    if not isinstance(value, np.ndarray | np.generic):
        raise UserError(
            f"feature {feature.name!r}: expected a numpy array of dtype {feature.dtype}, "
            f"got {type(value).__name__}"
        )
    array = np.asarray(value)
    if array.dtype != np.dtype(feature.dtype):
        raise UserError(
            f"feature {feature.name!r}: dtype {array.dtype} is not the declared "
            f"{feature.dtype} (convert with .astype(np.{feature.dtype}))"
        )
    shape = array.shape
    if shape != feature.shape and not (feature.is_scalar and shape == ()):
        raise UserError(
            f"feature {feature.name!r}: shape {shape} is not the declared {feature.shape}"
        )
    return array.reshape(()) if feature.is_scalar else array


def check_column(feature: Feature, values: Any, length: int) -> NDArray[Any]:
    """A whole episode's values of a non-camera feature: (length, *shape)."""
    if feature.dtype == "string":
        items = list(values)
        if len(items) != length or not all(isinstance(v, str) for v in items):
            raise UserError(f"feature {feature.name!r}: expected {length} strings")
        return np.asarray(items, dtype=object)
    if not isinstance(values, np.ndarray):
        raise UserError(
            f"feature {feature.name!r}: expected a numpy array, got {type(values).__name__}"
        )
    if values.dtype != np.dtype(feature.dtype):
        raise UserError(
            f"feature {feature.name!r}: dtype {values.dtype} is not the declared "
            f"{feature.dtype} (convert with .astype(np.{feature.dtype}))"
        )
    expected = (length, *feature.shape)
    if values.shape != expected and not (feature.is_scalar and values.shape == (length,)):
        raise UserError(
            f"feature {feature.name!r}: shape {values.shape} is not (frames, *shape) = {expected}"
        )
    return values.reshape(length) if feature.is_scalar else values


def check_image(feature: Feature, frame: Any) -> NDArray[Any]:
    """One camera frame: uint8, (H, W, 3) or (3, H, W) → HWC."""
    if not isinstance(frame, np.ndarray):
        raise UserError(
            f"camera {feature.name!r}: expected a numpy uint8 image, got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8:
        raise UserError(
            f"camera {feature.name!r}: dtype {frame.dtype} is not uint8 (RGB 0-255 images)"
        )
    h, w, c = feature.frame_shape
    if frame.shape == (h, w, c):
        return frame
    if frame.shape == (c, h, w):
        return np.transpose(frame, (1, 2, 0))
    raise UserError(
        f"camera {feature.name!r}: frame shape {frame.shape} is not the declared "
        f"{(h, w, c)} (HWC) or {(c, h, w)} (CHW)"
    )


class EpisodeBuffer:
    """The frames of the episode being recorded."""

    def __init__(
        self,
        features: Mapping[str, Feature],
        scratch: Path,
        *,
        fps: int,
        codec: VideoCodec,
        threads: int | None,
        label: str,
    ) -> None:
        self._features = {n: f for n, f in features.items() if n not in DEFAULT_FEATURES}
        self._scratch = scratch
        self._fps = fps
        self._codec = codec
        self._threads = threads
        self._label = label
        self.length = 0
        self.tasks: list[str] = []
        self._frames: dict[str, list[NDArray[Any]]] = {}
        self._columns: dict[str, NDArray[Any]] = {}
        self.encoders: dict[str, EpisodeEncoder] = {}
        # Per-frame pixel counts (uint32, 3 KiB a frame): only the frames statistics will sample
        # when the length is known up front, else every frame, sampled at the end.
        self._pixel_counts: dict[str, dict[int, NDArray[Any]]] = {}
        self._sampled: set[int] | None = None

    @property
    def cameras(self) -> list[str]:
        """Video features."""
        return [n for n, f in self._features.items() if f.is_video]

    def check_keys(self, keys: set[str]) -> None:
        """UserError unless `keys` are exactly the declared features (defaults aside)."""
        expected = set(self._features)
        missing, extra = sorted(expected - keys), sorted(keys - expected)
        if missing or extra:
            parts = ([f"missing {missing}"] if missing else []) + (
                [f"unknown {extra}"] if extra else []
            )
            raise UserError(f"features do not match the declaration: {'; '.join(parts)}")

    def add_frame(self, frame: Mapping[str, Any], task: str) -> None:
        """Check and add one frame (cameras go to their encoders now)."""
        if self._columns:
            raise UserError("this episode was given as whole arrays: add no single frames to it")
        self.check_keys(set(frame))
        if not isinstance(task, str) or not task:
            raise UserError("task must be a non-empty string")
        values = {
            name: check_value(f, frame[name])
            for name, f in self._features.items()
            if not f.is_video
        }
        images = {name: check_image(self._features[name], frame[name]) for name in self.cameras}
        for name, image in images.items():
            self._encode(name, image)
        for name, value in values.items():
            self._frames.setdefault(name, []).append(value)
        self.tasks.append(task)
        self.length += 1

    def set_columns(self, data: Mapping[str, Any], length: int) -> None:
        """Check and take whole-episode arrays of the non-camera features."""
        self._sampled = {int(i) for i in sample_indices(length)}
        self._columns = {
            name: check_column(f, data[name], length)
            for name, f in self._features.items()
            if not f.is_video
        }

    def add_image(self, name: str, image: Any) -> None:
        """One camera frame of a whole-episode add (frames counted by the caller)."""
        self._encode(name, check_image(self._features[name], image))

    def _encode(self, name: str, image: NDArray[Any]) -> None:
        encoder = self.encoders.get(name)
        if encoder is None:
            h, w, _ = self._features[name].frame_shape
            if h % 2 or w % 2:
                raise UserError(f"camera {name!r}: height and width must be even (yuv420p)")
            encoder = EpisodeEncoder(
                self._scratch / f"{self._label}-{len(self.encoders)}.mp4",
                fps=self._fps,
                width=w,
                height=h,
                codec=self._codec,
                threads=self._threads,
            )
            self.encoders[name] = encoder
        index = encoder.frames
        encoder.add(image)
        if self._sampled is None or index in self._sampled:
            counts = PixelCounts.of_frame(image).astype(np.uint32)
            self._pixel_counts.setdefault(name, {})[index] = counts

    def columns(self) -> dict[str, NDArray[Any]]:
        """{feature: (length, *shape)} of the non-camera features."""
        if self._columns:
            return self._columns
        return {name: np.stack(values) for name, values in self._frames.items()}

    def camera_counts(self, name: str) -> PixelCounts:
        """Pixel counts of the frames LeRobot samples for statistics."""
        counts = PixelCounts()
        frames = self._pixel_counts.get(name, {})
        for index in sample_indices(self.length):
            counts.add_counts(frames[int(index)])
        return counts

    def close_encoders(self) -> None:
        """Flush every camera's encoder (the episode's MP4s are complete after this)."""
        for encoder in self.encoders.values():
            encoder.close()

    def discard(self) -> None:
        """Drop everything, temporary videos included."""
        for encoder in self.encoders.values():
            encoder.abort()
        self.encoders.clear()
        self._frames.clear()
        self._columns = {}
        self._pixel_counts.clear()
        self._sampled = None
        self.length = 0
        self.tasks = []
