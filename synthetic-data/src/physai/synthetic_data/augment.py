"""Seeded image augmentation of an existing LeRobot dataset (tier A0), written as a new dataset.

    config = load_config("augment.yaml")        # or AugmentConfig(brightness=(0.8, 1.2), ...)
    report = augment_dataset("data/pick", "data/pick-aug", config, seed=7)

Each output episode is one copy of one source episode: its cameras augmented with parameters
drawn once for the episode from `numpy.random.default_rng((seed, source_episode, copy))` (one
consistent "camera setting" for all its frames), every other feature and its tasks copied
unchanged. Output episode `i * copies + c` is copy `c` of the `i`-th source episode. The drawn
parameters are published with the dataset as episode labels (`augment.*`, writer "augment").
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from physai.core.errors import UserError
from physai.data_management import (
    Annotations,
    LeRobotDatasetReader,
    LeRobotDatasetWriter,
    annotation_snapshot,
    curate,
    skip_pandas_in_pyarrow,
)
from physai.synthetic_data.augment_ops import CameraParams, FrameAugmenter

if TYPE_CHECKING:
    from physai.core.settings import Settings

__all__ = [
    "AugmentConfig",
    "AugmentReport",
    "AugmentedEpisode",
    "CameraParams",
    "augment_dataset",
    "draw_params",
    "episode_params",
    "load_config",
]

Range = tuple[float, float]
# Columns the writer fills itself (LeRobot's defaults): never copied from the source.
_WRITER_COLUMNS = frozenset({"timestamp", "frame_index", "episode_index", "index", "task_index"})
_CODECS = {"av1": "av1", "libsvtav1": "av1", "h264": "h264", "libx264": "h264"}


class AugmentConfig(BaseModel):
    """What to draw per episode; every range is `[low, high]`, drawn uniformly.

    The defaults change nothing: set only the augmentations wanted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    brightness: Range = Field((1.0, 1.0), description="pixel scale factor, >= 0 (1: unchanged)")
    contrast: Range = Field((1.0, 1.0), description="factor around the mean grey, >= 0")
    saturation: Range = Field((1.0, 1.0), description="factor from grey, >= 0 (0: grey)")
    hue: Range = Field((0.0, 0.0), description="rotation, fraction of the colour wheel, in ±0.5")
    blur_sigma: Range = Field((0.0, 0.0), description="gaussian blur sigma in pixels, >= 0")
    blur_probability: float = Field(1.0, ge=0.0, le=1.0, description="chance an episode blurs")
    noise_std: Range = Field((0.0, 0.0), description="gaussian noise std, 0-255 units, >= 0")
    crop_scale: Range = Field(
        (1.0, 1.0), description="side of a random crop as a fraction of the image, in (0, 1]"
    )
    shift: tuple[int, int] = Field(
        (0, 0), description="pixel shift range of each axis, e.g. [-4, 4]; edges replicated"
    )
    cameras: list[str] | None = Field(None, description="video features to augment (None: all)")
    copies: int = Field(1, ge=1, le=1000, description="augmented copies of each episode")
    video_codec: str | None = Field(None, description="av1 or h264 (None: the source's)")

    @field_validator("brightness", "contrast", "saturation", "blur_sigma", "noise_std")
    @classmethod
    def _non_negative(cls, value: Range) -> Range:
        if value[0] < 0:
            raise ValueError(f"must be >= 0, got {list(value)}")
        return value

    @field_validator("hue")
    @classmethod
    def _hue(cls, value: Range) -> Range:
        if value[0] < -0.5 or value[1] > 0.5:
            raise ValueError(f"must lie in [-0.5, 0.5], got {list(value)}")
        return value

    @field_validator("crop_scale")
    @classmethod
    def _crop(cls, value: Range) -> Range:
        if value[0] <= 0 or value[1] > 1:
            raise ValueError(f"must lie in (0, 1], got {list(value)}")
        return value

    @field_validator("video_codec")
    @classmethod
    def _codec(cls, value: str | None) -> str | None:
        if value is not None and value not in ("av1", "h264"):
            raise ValueError(f"must be 'av1' or 'h264', got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> AugmentConfig:
        for name in ("brightness", "contrast", "saturation", "hue", "blur_sigma", "noise_std"):
            low, high = getattr(self, name)
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"{name}: bounds must be finite")
            if low > high:
                raise ValueError(f"{name}: low {low} > high {high}")
        for name in ("crop_scale", "shift"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low {low} > high {high}")
        if self.cameras is not None and (
            not self.cameras or len(set(self.cameras)) != len(self.cameras)
        ):
            raise ValueError("cameras: give at least one camera, each once (or leave it out)")
        return self


def draw_params(config: AugmentConfig, rng: np.random.Generator) -> CameraParams:
    """One camera's parameters, drawn from `rng` in a fixed order (every value always drawn,
    so one camera's draws never depend on which augmentations are enabled)."""

    def uniform(bounds: Range) -> float:
        return float(rng.uniform(bounds[0], bounds[1]))

    brightness = uniform(config.brightness)
    contrast = uniform(config.contrast)
    saturation = uniform(config.saturation)
    hue = uniform(config.hue)
    blurs = float(rng.random()) < config.blur_probability
    sigma = uniform(config.blur_sigma)
    noise = uniform(config.noise_std)
    scale = uniform(config.crop_scale)
    top, left = float(rng.random()), float(rng.random())
    shift_y = int(rng.integers(config.shift[0], config.shift[1], endpoint=True))
    shift_x = int(rng.integers(config.shift[0], config.shift[1], endpoint=True))
    return CameraParams(
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        hue=hue,
        blur_sigma=sigma if blurs else 0.0,
        noise_std=noise,
        crop_scale=scale,
        crop_top=top if scale < 1 else 0.0,
        crop_left=left if scale < 1 else 0.0,
        shift_y=shift_y,
        shift_x=shift_x,
    )


def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> AugmentConfig:
    """An `AugmentConfig` from a YAML file or a mapping; any bad key or range is one UserError."""
    if isinstance(source, Mapping):
        data: object = dict(source)
        where = "augment config"
    else:
        path = Path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise UserError(f"cannot read the augment config {where}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise UserError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping of augmentation settings")
    try:
        return AugmentConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{field + ': ' if field else ''}{message}{more}"


class AugmentedEpisode(BaseModel):
    """One output episode: which source episode and copy it is, and what was drawn for it."""

    episode: int
    source_episode: int
    copy_index: int
    frames: int
    cameras: dict[str, dict[str, Any]]


class AugmentReport(BaseModel):
    """What `augment_dataset` published."""

    source: str
    out: str
    seed: int
    copies: int
    cameras: list[str]
    episodes: int
    frames: int
    workers: int
    seconds: float
    augmented: list[AugmentedEpisode] = Field(default_factory=list)


def augment_dataset(
    src_url: str | os.PathLike[str],
    out_url: str | os.PathLike[str],
    config: AugmentConfig,
    *,
    seed: int,
    workers: int | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
) -> AugmentReport:
    """Write `config.copies` augmented copies of every episode of `src_url` to a new dataset at
    `out_url` (published atomically; nothing there on any error).

    Episodes stream one at a time (frames decoded, augmented and encoded as they go). The same
    source, config and seed give byte-identical frames. `workers` > 1 splits the episodes over
    processes that write parts, merged without re-encoding (default: 1).
    """
    started = time.perf_counter()
    source, out = os.fspath(src_url), os.fspath(out_url)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    count = 1 if workers is None else workers
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"workers must be a positive integer, got {workers!r}")
    with LeRobotDatasetReader(source, settings=settings) as reader:
        cameras = _check_source(reader, config)
        indices = [e.episode_index for e in reader.episodes]
        lengths = {e.episode_index: e.length for e in reader.episodes}
    jobs = [(ep, c) for ep in indices for c in range(config.copies)]
    carried = _source_annotations(source, settings)
    count = min(count, len(indices))
    if count <= 1:
        episodes = _write(source, out, config, seed, jobs, carried, overwrite, settings, None)
    else:
        episodes = _write_parallel(
            source, out, config, seed, jobs, carried, overwrite, settings, count
        )
    augmented = [
        AugmentedEpisode(
            episode=i, source_episode=ep, copy_index=c, frames=lengths[ep], cameras=params
        )
        for i, ((ep, c), params) in enumerate(zip(jobs, episodes, strict=True))
    ]
    return AugmentReport(
        source=source,
        out=out,
        seed=seed,
        copies=config.copies,
        cameras=cameras,
        episodes=len(augmented),
        frames=sum(e.frames for e in augmented),
        workers=count,
        seconds=round(time.perf_counter() - started, 3),
        augmented=augmented,
    )


def _check_source(reader: LeRobotDatasetReader, config: AugmentConfig) -> list[str]:
    """The cameras to augment; UserError for anything this cannot write, before any frame."""
    images = [n for n, f in reader.features.items() if f.is_image]
    if images:
        raise UserError(f"{reader.url}: image features {images} are not supported (videos only)")
    videos = [n for n, f in reader.features.items() if f.is_video]
    cameras = list(config.cameras) if config.cameras is not None else videos
    unknown = [c for c in cameras if c not in videos]
    if unknown:
        raise UserError(f"unknown camera(s) {unknown}: {reader.url} has {videos}")
    if not cameras:
        raise UserError(f"{reader.url} has no video features to augment")
    for name in cameras:
        height, width, _ = reader.features[name].frame_shape
        if max(abs(s) for s in config.shift) >= min(height, width):
            raise UserError(
                f"shift {list(config.shift)} is not smaller than camera {name!r} ({height}x{width})"
            )
    if reader.num_episodes == 0:
        raise UserError(f"{reader.url} has no episodes")
    return cameras


def episode_params(
    config: AugmentConfig, cameras: Sequence[str], seed: int, episode: int, copy: int
) -> dict[str, CameraParams]:
    """Every camera's parameters for copy `copy` of source episode `episode`: drawn in camera
    order from `numpy.random.default_rng((seed, episode, copy))`."""
    rng = np.random.default_rng((seed, episode, copy))
    return {name: draw_params(config, rng) for name in cameras}


def _codec(reader: LeRobotDatasetReader, config: AugmentConfig) -> str:
    if config.video_codec:
        return config.video_codec
    for feature in reader.features.values():
        if feature.is_video and feature.info:
            found = _CODECS.get(str(feature.info.get("video.codec")))
            if found:
                return found
    return "av1"


def _source_annotations(source: str, settings: Settings | None) -> dict[int, dict[str, Any]]:
    """Source episodes' outcome and labels, carried to their copies."""
    carried: dict[int, dict[str, Any]] = {}
    for episode, view in Annotations(source, settings).all().items():
        carried[episode] = {"outcome": view.outcome, "labels": dict(view.labels)}
    return carried


def _labels(
    jobs: Sequence[tuple[int, int]],
    params: Sequence[Mapping[str, dict[str, Any]]],
    seed: int,
    carried: Mapping[int, Mapping[str, Any]],
) -> tuple[str, bytes] | None:
    outcomes = {}
    labels: dict[int, dict[str, object]] = {}
    for index, ((episode, copy), drawn) in enumerate(zip(jobs, params, strict=True)):
        source = carried.get(episode, {})
        if source.get("outcome"):
            outcomes[index] = source["outcome"]
        labels[index] = {
            **source.get("labels", {}),
            "augment.source_episode": episode,
            "augment.copy": copy,
            "augment.seed": seed,
            "augment.params": dict(drawn),
        }
    return annotation_snapshot(outcomes, labels, writer="augment")


def _write(
    source: str,
    out: str,
    config: AugmentConfig,
    seed: int,
    jobs: Sequence[tuple[int, int]],
    carried: Mapping[int, Mapping[str, Any]],
    overwrite: bool,
    settings: Settings | None,
    threads: int | None,
) -> list[dict[str, dict[str, Any]]]:
    """Write `jobs` (source episode, copy) in order as a new dataset at `out`; drawn params."""
    drawn: list[dict[str, dict[str, Any]]] = []
    with LeRobotDatasetReader(source, settings=settings) as reader:
        cameras = _check_source(reader, config)
        writer = LeRobotDatasetWriter(
            out,
            fps=reader.fps,
            features=reader.features,
            robot_type=reader.info.get("robot_type"),
            video_codec=_codec(reader, config),
            encoder_threads=threads,
            overwrite=overwrite,
            settings=settings,
        )
        try:
            for episode, copy in jobs:
                params = episode_params(config, cameras, seed, episode, copy)
                _add_episode(reader, writer, params, seed, episode, copy)
                drawn.append({name: p.to_json() for name, p in params.items()})
            snapshot = _labels(jobs, drawn, seed, carried)
            if snapshot is not None:
                writer.add_file(*snapshot)
        except BaseException:
            writer.abort()
            raise
        writer.finish()
    return drawn


def _add_episode(
    reader: LeRobotDatasetReader,
    writer: LeRobotDatasetWriter,
    params: Mapping[str, CameraParams],
    seed: int,
    episode: int,
    copy: int,
) -> None:
    data = reader.episode_data(episode)
    tasks = [reader.tasks[int(t)] for t in data["task_index"]]
    columns: dict[str, Any] = {
        name: values
        for name, values in data.items()
        if name not in _WRITER_COLUMNS and not reader.features[name].is_visual
    }
    videos = [n for n, f in reader.features.items() if f.is_video]
    augmenters = {}
    for number, name in enumerate(videos):
        if name in params:
            height, width, _ = reader.features[name].frame_shape
            noise = np.random.default_rng((seed, episode, copy, 1 + number))
            augmenters[name] = FrameAugmenter(
                params[name], height=height, width=width, noise_rng=noise
            )
    streams = _camera_streams(reader.episode_frames(episode), videos)
    for name in videos:
        stream = streams[name]
        columns[name] = (augmenters[name](f) for f in stream) if name in augmenters else stream
    writer.add_episode(columns, tasks, length=len(tasks))


def _camera_streams(
    frames: Iterator[dict[str, Any]], cameras: Sequence[str]
) -> dict[str, Iterator[NDArray[np.uint8]]]:
    """One iterator per camera over one pass of decoded frames (the writer takes them in step,
    so at most a frame or two per camera is held)."""
    pending: dict[str, deque[NDArray[np.uint8]]] = {name: deque() for name in cameras}

    def stream(name: str) -> Iterator[NDArray[np.uint8]]:
        queue = pending[name]
        while True:
            if not queue:
                frame = next(frames, None)
                if frame is None:
                    return
                for key in cameras:
                    pending[key].append(frame[key])
            yield queue.popleft()

    return {name: stream(name) for name in cameras}


def _write_part(
    source: str,
    part: str,
    config: AugmentConfig,
    seed: int,
    jobs: list[tuple[int, int]],
    carried: dict[int, dict[str, Any]],
    settings: Settings | None,
) -> list[dict[str, dict[str, Any]]]:
    return _write(source, part, config, seed, jobs, carried, False, settings, 1)


def _write_parallel(
    source: str,
    out: str,
    config: AugmentConfig,
    seed: int,
    jobs: Sequence[tuple[int, int]],
    carried: dict[int, dict[str, Any]],
    overwrite: bool,
    settings: Settings | None,
    count: int,
) -> list[dict[str, dict[str, Any]]]:
    """Contiguous runs of `jobs` written as parts by `count` processes, merged by `curate`
    (packets copied, labels renumbered)."""
    size = math.ceil(len(jobs) / count)
    chunks = [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]
    work = Path(tempfile.mkdtemp(prefix="physai-augment-"))
    try:
        parts = [str(work / f"part-{i:04d}") for i in range(len(chunks))]
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            len(chunks), mp_context=context, initializer=skip_pandas_in_pyarrow
        ) as pool:
            futures = [
                pool.submit(_write_part, source, part, config, seed, chunk, carried, settings)
                for part, chunk in zip(parts, chunks, strict=True)
            ]
            try:
                drawn = [d for future in futures for d in future.result()]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        curate(parts, out, overwrite=overwrite, settings=settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return drawn
