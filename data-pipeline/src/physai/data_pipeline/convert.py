"""Bags to a LeRobot v3.0 dataset (`physai data-pipeline convert`).

Each bag is one episode (or several, when stale frames are dropped). A bag is read twice:

1. **Plan**: every mapped numeric message and every image's time and size are read (images are
   not decoded), times are checked, streams aligned to the frame clock and staleness judged
   (align.py). Every input error surfaces here, before any video is encoded.
2. **Write**: each camera's images stream from the bag into the video encoder in frame order,
   one decoded image per camera in memory; the episode becomes a small LeRobot dataset, a
   *part*, published atomically under the work directory.

When every part exists, the parts are merged into `out` by copying their encoded video packets
(data-management curation: nothing re-encoded) and published atomically. A rerun reuses the
parts already made, so a killed conversion resumes where it stopped. Parts convert in parallel
processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from physai.core.errors import UserError
from physai.core.settings import Settings, settings_or_default
from physai.core.storage import published_info
from physai.data_management import (
    LeRobotDatasetReader,
    LeRobotDatasetWriter,
    curate,
    skip_pandas_in_pyarrow,
)
from physai.data_pipeline import align
from physai.data_pipeline.bags import (
    deserialize,
    episode_metadata,
    episode_metadata_path,
    find_bags,
    messages,
    open_bag,
    topic_connections,
)
from physai.data_pipeline.mapping import CameraSource, ConversionMapping, VectorSource
from physai.data_pipeline.messages import (
    IMAGE_TYPES,
    CompressedDecoder,
    field_values,
    header_time_ns,
    joint_values,
    raw_image,
)

log = logging.getLogger(__name__)


# -- plan ------------------------------------------------------------------------------------


@dataclass
class CameraPlan:
    """Which image (by read order) each frame takes, and the image size."""

    source: CameraSource
    msgtype: str
    index: NDArray[np.int64]
    height: int
    width: int


@dataclass
class BagPlan:
    """What one bag becomes: aligned numbers, camera frame indices, episode runs."""

    path: Path
    task: str
    frames: int
    vectors: dict[str, NDArray[np.float32]]
    names: dict[str, list[str]]
    cameras: dict[str, CameraPlan]
    runs: list[tuple[int, int]]
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)


def episode_task(path: Path, mapping: ConversionMapping, task: str | None) -> str:
    """The task of a bag: `task` if given, else the bag's episode metadata, else the mapping's."""
    if task:
        return task
    found = episode_metadata(path).get("task")
    if isinstance(found, str) and found.strip():
        return found
    if mapping.task:
        return mapping.task
    where = episode_metadata_path(path).name
    raise UserError(f"{path}: no task: pass --task, set task in the mapping or in {where}")


class _VectorReader:
    """Collects one topic's numbers for every source that reads it."""

    def __init__(self, topic: str, sources: list[tuple[str, VectorSource]]) -> None:
        self.topic = topic
        self.sources = sources
        self.times: list[int] = []
        self.rows: list[list[float]] = []
        self.widths: list[int] | None = None

    def add(self, message: Any, t: int) -> None:
        row: list[float] = []
        widths: list[int] = []
        for _, source in self.sources:
            if source.names is not None:
                values = joint_values(message, source.paths[0], source.names)
            else:
                values = field_values(message, source.paths)
            row += values
            widths.append(len(values))
        if self.widths is None:
            self.widths = widths
        elif widths != self.widths:
            raise UserError(f"has {len(row)} values, earlier messages had {sum(self.widths)}")
        self.times.append(t)
        self.rows.append(row)


class _ImageTimes:
    """One camera topic's image times and size (images are not decoded, but the first
    compressed one, for its size)."""

    def __init__(self, name: str, source: CameraSource, msgtype: str) -> None:
        self.name, self.source, self.msgtype = name, source, msgtype
        self.times: list[int] = []
        self.size: tuple[int, int] | None = None

    def add(self, message: Any, t: int) -> None:
        if self.msgtype == IMAGE_TYPES[0]:
            size = (int(message.height), int(message.width))
        elif self.size is None:
            height, width = CompressedDecoder().decode(message).shape[:2]
            size = (int(height), int(width))
        else:
            size = self.size
        if self.size is None:
            self.size = size
        check_size(self.size, size)
        self.times.append(t)


def check_size(planned: tuple[int, int], found: tuple[int, ...]) -> None:
    """UserError when an image's (height, width) differs from the camera's."""
    if tuple(found[:2]) != planned:
        raise UserError(
            f"image size changed from {planned[1]}x{planned[0]} to {found[1]}x{found[0]}"
        )


@contextlib.contextmanager
def located(path: Path, topic: str, t: int) -> Iterator[None]:
    """Name the bag, topic and message time in any UserError raised inside."""
    try:
        yield
    except UserError as exc:
        raise UserError(f"{path}: topic {topic} at t={t / 1e9:.6f} s: {exc}") from None


def plan_bag(path: Path, mapping: ConversionMapping, task: str | None = None) -> BagPlan:
    """Pass 1 over one bag: read, check and align everything but the pixels."""
    task_text = episode_task(path, mapping, task)
    use_header = mapping.align.time == "header"
    with open_bag(path) as reader:
        if not reader.message_count:
            raise UserError(f"{path}: the bag is empty")
        by_topic: dict[str, _VectorReader | _ImageTimes] = {}
        vectors: dict[str, _VectorReader] = {}
        wanted = []
        for name, sources in mapping.vectors.items():
            for source in sources:
                reader_for = vectors.get(source.topic)
                if reader_for is None:
                    wanted += topic_connections(reader, path, source.topic)
                    reader_for = vectors[source.topic] = _VectorReader(source.topic, [])
                reader_for.sources.append((name, source))
        by_topic.update(vectors)
        for name, camera in mapping.cameras.items():
            connections = topic_connections(reader, path, camera.topic)
            msgtype = connections[0].msgtype
            if msgtype not in IMAGE_TYPES:
                raise UserError(
                    f"{path}: topic {camera.topic} is {msgtype}: cameras need "
                    f"{' or '.join(IMAGE_TYPES)}"
                )
            wanted += connections
            by_topic[camera.topic] = _ImageTimes(name, camera, msgtype)
        for connection, received, raw in messages(reader, path, wanted):
            message = deserialize(reader, path, connection, raw, received)
            stamp = header_time_ns(message) if use_header else None
            t = stamp if stamp is not None else received
            with located(path, connection.topic, t):
                by_topic[connection.topic].add(message, t)
    return _align(path, mapping, task_text, by_topic)


def _align(
    path: Path,
    mapping: ConversionMapping,
    task: str,
    by_topic: dict[str, _VectorReader | _ImageTimes],
) -> BagPlan:
    streams: dict[str, align.Stream] = {}
    for topic, item in by_topic.items():
        times = np.asarray(item.times, np.int64)
        values = None
        if isinstance(item, _VectorReader):
            values = np.asarray(item.rows, np.float64)
            bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
            if bad.size:
                t = int(times[bad[0]])
                raise UserError(f"{path}: topic {topic} at t={t / 1e9:.6f} s holds NaN or inf")
        stream = align.Stream(topic, times, values)
        try:
            align.check_times(stream)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None
        streams[topic] = stream
    try:
        clock = align.frame_clock(list(streams.values()), mapping.fps)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    limit = int(mapping.align.max_staleness_ms * 1e6)
    stale = np.zeros(clock.size, dtype=bool)
    first_stale: tuple[int, str, int] | None = None

    def judge(topic: str, age: NDArray[np.int64]) -> None:
        nonlocal stale, first_stale
        bad = age > limit
        if bad.any():
            k = int(np.argmax(bad))
            if first_stale is None or k < first_stale[0]:
                first_stale = (k, topic, int(age[k]))
            stale |= bad

    vectors: dict[str, NDArray[np.float32]] = {}
    names: dict[str, list[str]] = {}
    per_topic: dict[str, NDArray[np.float64]] = {}
    for topic, item in by_topic.items():
        if isinstance(item, _VectorReader):
            values, age = align.align_numbers(streams[topic], clock, mapping.align.numbers)
            judge(topic, age)
            per_topic[topic] = values
    for name, sources in mapping.vectors.items():
        parts, labels = [], []
        for source in sources:
            item = by_topic[source.topic]
            assert isinstance(item, _VectorReader) and item.widths is not None
            start = 0
            for (other_name, other), width in zip(item.sources, item.widths, strict=True):
                if other is source and other_name == name:
                    parts.append(per_topic[source.topic][:, start : start + width])
                    labels += _labels(source, width)
                    break
                start += width
        vectors[name] = np.concatenate(parts, axis=1).astype(np.float32)
        names[name] = labels
    cameras: dict[str, CameraPlan] = {}
    for topic, item in by_topic.items():
        if isinstance(item, _ImageTimes):
            index, distance = align.nearest_index(streams[topic].times, clock)
            judge(topic, distance)
            assert item.size is not None
            height, width = item.size
            cameras[item.name] = CameraPlan(item.source, item.msgtype, index, height, width)
    runs = [(0, int(clock.size))]
    dropped = 0
    warnings: list[str] = []
    if first_stale is not None:
        at, topic, age_ns = first_stale
        where = f"{path}: topic {topic} is stale at t={clock[at] / 1e9:.6f} s"
        detail = f"(newest sample {age_ns / 1e6:.0f} ms away, max_staleness_ms is "
        detail += f"{mapping.align.max_staleness_ms:g})"
        if mapping.align.on_stale == "fail":
            raise UserError(f"{where} {detail}: raise max_staleness_ms or set on_stale: drop")
        runs = align.good_runs(stale)
        dropped = int(stale.sum())
        warnings.append(
            f"{path}: dropped {dropped} stale frames (first: {topic} at t={clock[at] / 1e9:.6f} "
            f"s); {len(runs)} episode(s) remain"
        )
        if not runs:
            raise UserError(f"{where} {detail}: every frame is stale")
    return BagPlan(path, task, int(clock.size), vectors, names, cameras, runs, dropped, warnings)


def _labels(source: VectorSource, width: int) -> list[str]:
    if source.names is not None:
        return list(source.names)
    base = source.topic.strip("/").replace("/", ".")
    if width == len(source.paths):
        return [f"{base}.{p}" for p in source.paths]
    return [f"{base}.{i}" for i in range(width)]


# -- write -----------------------------------------------------------------------------------


def _camera_frames(path: Path, plan: CameraPlan, wanted: NDArray[np.int64]) -> Iterator[Any]:
    """The images of `wanted` (read-order indices, non-decreasing), decoded one at a time."""
    decoder = CompressedDecoder()
    with open_bag(path) as reader:
        connections = topic_connections(reader, path, plan.source.topic)
        stream = messages(reader, path, connections)
        position = -1
        current: Any = None
        for target in wanted.tolist():
            if target != position:
                while position < target:
                    connection, received, raw = next(stream)
                    position += 1
                message = deserialize(reader, path, connection, raw, received)
                with located(path, plan.source.topic, received):
                    if plan.msgtype == IMAGE_TYPES[0]:
                        current = raw_image(message, plan.source.depth_range_mm)
                    else:
                        current = decoder.decode(message)
                    check_size((plan.height, plan.width), current.shape)
            yield current


def features_of(plan: BagPlan) -> dict[str, dict[str, Any]]:
    """The LeRobot features a plan writes."""
    features: dict[str, dict[str, Any]] = {}
    for name, values in plan.vectors.items():
        features[name] = {
            "dtype": "float32",
            "shape": [int(values.shape[1])],
            "names": plan.names[name],
        }
    for name, camera in plan.cameras.items():
        features[name] = {
            "dtype": "video",
            "shape": [camera.height, camera.width, 3],
            "names": ["height", "width", "channels"],
        }
    return features


def write_part(
    plan: BagPlan, mapping: ConversionMapping, url: str, encoder_threads: int | None = None
) -> int:
    """Pass 2: encode and write the plan's episodes as a LeRobot dataset at `url`."""
    with LeRobotDatasetWriter(
        url,
        fps=mapping.fps,
        features=features_of(plan),
        robot_type=mapping.robot_type,
        video_codec=mapping.video_codec,
        encoder_threads=encoder_threads,
        overwrite=True,
    ) as writer:
        for start, stop in plan.runs:
            data: dict[str, Any] = {k: v[start:stop] for k, v in plan.vectors.items()}
            for name, camera in plan.cameras.items():
                data[name] = _camera_frames(plan.path, camera, camera.index[start:stop])
            writer.add_episode(data, plan.task, length=stop - start)
        return writer.num_frames


# -- many bags -------------------------------------------------------------------------------


class BagReport(BaseModel):
    """What became of one bag."""

    model_config = ConfigDict(frozen=True)

    bag: str
    part: str
    episodes: int
    frames: int
    dropped_frames: int
    reused: bool
    warnings: list[str]


class ConversionReport(BaseModel):
    """What `convert_bags` published."""

    model_config = ConfigDict(frozen=True)

    out: str
    bags: list[BagReport]
    episodes: int
    frames: int


def part_key(path: Path, mapping: ConversionMapping, task: str | None) -> str:
    """A name for a bag's part that changes when the bag, the mapping or the task does."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps([stamp, mapping.model_dump(mode="json"), task], sort_keys=True)
    return f"{path.stem[:40]}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def convert_one(
    path: Path,
    mapping: ConversionMapping,
    part_url: str,
    task: str | None = None,
    encoder_threads: int | None = None,
) -> BagReport:
    """Plan and write one bag's part (reused when it already exists)."""
    if published_info(part_url) is not None:
        with LeRobotDatasetReader(part_url) as done:
            episodes, frames = done.num_episodes, done.num_frames
        return BagReport(
            bag=str(path),
            part=part_url,
            episodes=episodes,
            frames=frames,
            dropped_frames=0,
            reused=True,
            warnings=[],
        )
    plan = plan_bag(path, mapping, task)
    frames = write_part(plan, mapping, part_url, encoder_threads)
    return BagReport(
        bag=str(path),
        part=part_url,
        episodes=len(plan.runs),
        frames=frames,
        dropped_frames=plan.dropped,
        reused=False,
        warnings=plan.warnings,
    )


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (shard K of N) as `(K, N)`; UserError unless N >= 1 and 0 <= K < N."""
    match = _SHARD.match(text)
    if match is None:
        raise UserError(f"bad shard {text!r}: write K/N, e.g. 0/4 (shard K of N, K from 0)")
    shard = (int(match.group(1)), int(match.group(2)))
    check_shard(shard)
    return shard


def check_shard(shard: tuple[int, int]) -> None:
    """UserError unless `shard` is `(K, N)` with N >= 1 and 0 <= K < N."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise UserError(
            f"bad shard {index}/{count}: the count N must be at least 1 and the index K "
            f"from 0 to N-1"
        )


def select_shard(paths: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    """The bags of shard `(K, N)`: those at positions p with p % N == K (all when None).

    UserError for a bad shard, and for a shard that gets no bag (more shards than bags).
    """
    if shard is None:
        return paths
    check_shard(shard)
    index, count = shard
    chosen = paths[index::count]
    if not chosen:
        raise UserError(
            f"shard {index}/{count} holds no bag: {len(paths)} bag(s) for {count} shards; "
            f"use at most {len(paths)} shard(s)"
        )
    return chosen


def default_work_dir(out: str, settings: Settings | None = None) -> Path:
    """Where parts of a conversion to `out` are kept until it is published."""
    digest = hashlib.sha256(out.encode()).hexdigest()[:16]
    return settings_or_default(settings).state_dir / "cache" / "convert" / digest


def convert_bags(
    bags: Sequence[str | os.PathLike[str]],
    mapping: ConversionMapping,
    out: str | os.PathLike[str],
    *,
    task: str | None = None,
    workers: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    keep_parts: bool = False,
    settings: Settings | None = None,
    progress: Callable[[BagReport], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> ConversionReport:
    """Convert bags (one episode each) into one LeRobot v3.0 dataset at `out`.

    Every bag is planned and checked before its video is encoded; any error leaves nothing at
    `out`. Parts made by an earlier, interrupted run are reused. `shard=(k, n)` converts only
    the bags at positions k, k + n, k + 2n, ... of `find_bags(bags)` (see `select_shard`).
    """
    out_url = os.fspath(out)
    paths = select_shard(find_bags([os.fspath(b) for b in bags]), shard)
    if published_info(out_url, settings) is not None and not overwrite:
        raise UserError(f"{out_url} exists: pass --overwrite to replace it")
    work = Path(work_dir) if work_dir else default_work_dir(out_url, settings)
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(p, str(work / part_key(p, mapping, task))) for p in paths]
    count = workers or min(len(jobs), os.cpu_count() or 1)
    threads = max(1, (os.cpu_count() or 1) // max(1, count))
    reports: dict[str, BagReport] = {}
    if count <= 1:
        for path, part in jobs:
            report = convert_one(path, mapping, part, task, threads)
            reports[part] = report
            if progress:
                progress(report)
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            count, mp_context=context, initializer=skip_pandas_in_pyarrow
        ) as pool:  # workers convert bags and exit: they never need pandas
            futures = {
                pool.submit(convert_one, path, mapping, part, task, threads): part
                for path, part in jobs
            }
            try:
                for future in concurrent.futures.as_completed(futures):
                    report = future.result()
                    reports[futures[future]] = report
                    if progress:
                        progress(report)
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
    ordered = [reports[part] for _, part in jobs]
    for report in ordered:
        for warning in report.warnings:
            log.warning(warning)
    result = curate([r.part for r in ordered], out_url, overwrite=overwrite, settings=settings)
    if not keep_parts:
        shutil.rmtree(work, ignore_errors=True)
    total = result.outputs[0]
    return ConversionReport(out=out_url, bags=ordered, episodes=total.episodes, frames=total.frames)
