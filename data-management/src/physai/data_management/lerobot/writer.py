"""`LeRobotDatasetWriter`: write a LeRobot v3.0 dataset to any storage URL, published atomically.

    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": None},
        "action": {"dtype": "float32", "shape": [6], "names": None},
        "observation.images.front": {"dtype": "video", "shape": [480, 640, 3],
                                     "names": ["height", "width", "channels"]},
    }
    with LeRobotDatasetWriter("az://datasets/pick/v3", fps=30, features=features) as writer:
        writer.add_episode({"observation.state": states, "action": actions,
                            "observation.images.front": frames}, task="pick the cube")
    # visible at the URL only now, complete (physai.core.storage.publish)

Frames can also come one at a time (`add_frame(...)` then `save_episode()`); camera frames go to
the encoder as they arrive. Bad input raises `UserError` and drops that episode; leaving the
`with` block through an exception publishes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.core.storage import publish
from physai.data_management.lerobot import format as fmt
from physai.data_management.lerobot.episode import EpisodeBuffer
from physai.data_management.lerobot.features import (
    Feature,
    column_to_numpy,
    declare_features,
    numpy_to_arrow,
)
from physai.data_management.lerobot.files import OutputDir, write_json
from physai.data_management.lerobot.packing import CameraFiles, EpisodeRows, ParquetFiles
from physai.data_management.lerobot.stats import Stats, aggregate_features, numeric_stats
from physai.data_management.lerobot.stats import to_json as stats_to_json
from physai.data_management.lerobot.video_encode import probe_video_info
from physai.data_management.lerobot.video_encode import video_codec as resolve_codec
from physai.data_management.lerobot.video_remux import FilePart, VideoWindow

if TYPE_CHECKING:
    from physai.core.settings import Settings


@dataclass(frozen=True)
class WriteSummary:
    """What a finished writer published."""

    url: str
    total_episodes: int
    total_frames: int
    total_tasks: int


class _AbortedError(Exception):
    """Thrown into the publish block to discard the staging directory."""


class LeRobotDatasetWriter:
    """Create a LeRobot v3.0 dataset at `url` (nothing is visible there until `finish`)."""

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        fps: int,
        features: Mapping[str, Mapping[str, Any]] | Mapping[str, Feature],
        robot_type: str | None = None,
        video_codec: str = "av1",
        chunks_size: int = fmt.DEFAULT_CHUNKS_SIZE,
        data_files_size_in_mb: float = fmt.DEFAULT_DATA_FILES_SIZE_IN_MB,
        video_files_size_in_mb: float = fmt.DEFAULT_VIDEO_FILES_SIZE_IN_MB,
        encoder_threads: int | None = None,
        overwrite: bool = False,
        settings: Settings | None = None,
    ) -> None:
        if not isinstance(fps, int) or isinstance(fps, bool) or fps <= 0:
            raise UserError(f"fps must be a positive integer, got {fps!r}")
        for name, value in (
            ("chunks_size", chunks_size),
            ("data_files_size_in_mb", data_files_size_in_mb),
            ("video_files_size_in_mb", video_files_size_in_mb),
        ):
            if not isinstance(value, int | float) or value <= 0:
                raise UserError(f"{name} must be positive, got {value!r}")
        self.url = os.fspath(url)
        self.fps = fps
        self.features: dict[str, Feature] = _declared(features)
        self._robot_type = robot_type
        self._codec = resolve_codec(video_codec)
        self._threads = encoder_threads
        self._limits = (int(chunks_size), data_files_size_in_mb, video_files_size_in_mb)
        self._stack = contextlib.ExitStack()
        staging = self._stack.enter_context(publish(self.url, settings, overwrite=overwrite))
        try:
            self._out = OutputDir(staging)
            self._scratch = Path(tempfile.mkdtemp(prefix="physai-lerobot-"))
            self._data = ParquetFiles(
                self._out,
                fmt.DATA_PATH,
                self._data_schema(),
                limit_mb=data_files_size_in_mb,
                chunks_size=int(chunks_size),
            )
            self._cameras = {
                key: CameraFiles(
                    self._out, key, limit_mb=video_files_size_in_mb, chunks_size=int(chunks_size)
                )
                for key in self._video_keys()
            }
            self._rows = EpisodeRows(
                self._out,
                self._episodes_schema(),
                limit_mb=data_files_size_in_mb,
                chunks_size=int(chunks_size),
            )
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._tasks: dict[str, int] = {}
        self._episode_stats: list[dict[str, Stats]] = []
        self._episodes = 0
        self._frames = 0
        self._buffer: EpisodeBuffer | None = None
        self._closed = False
        self._broken = False

    # -- public API ------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far."""
        return self._episodes

    @property
    def num_frames(self) -> int:
        """Frames saved so far."""
        return self._frames

    def add_frame(self, frame: Mapping[str, Any], task: str) -> None:
        """Add one frame to the current episode (every declared feature, cameras as uint8)."""
        buffer = self._open_buffer()
        try:
            buffer.add_frame(frame, task)
        except BaseException:
            self.clear_episode()
            raise

    def save_episode(self) -> int:
        """Write the current episode; its episode_index."""
        self._check_open()
        buffer = self._buffer
        if buffer is None or buffer.length == 0:
            raise UserError("the current episode has no frames: add_frame() first")
        try:
            return self._save(buffer, buffer.columns(), buffer.tasks)
        finally:
            self._buffer = None

    def clear_episode(self) -> None:
        """Drop the current episode's frames."""
        if self._buffer is not None:
            self._buffer.discard()
            self._buffer = None

    def add_episode(
        self,
        data: Mapping[str, Any],
        task: str | Sequence[str],
        *,
        length: int | None = None,
    ) -> int:
        """Add a whole episode: arrays (frames, *shape) per feature; cameras as a uint8 array
        (frames, H, W, 3) or any iterable of HxWx3 frames (encoded as they come; pass `length`
        when no other feature gives it). `task` is one string or one per frame."""
        if self._buffer is not None and self._buffer.length:
            raise UserError("an episode is being recorded with add_frame(): save or clear it")
        buffer = self._open_buffer()
        try:
            frames = self._episode_length(buffer, data, length)
            buffer.check_keys(set(data))
            tasks = self._episode_tasks(task, frames)
            buffer.set_columns(data, frames)
            streams = {name: iter(data[name]) for name in buffer.cameras}
            for index in range(frames):
                for name, stream in streams.items():
                    image = next(stream, None)
                    if image is None:
                        raise UserError(f"camera {name!r} has {index} frames, not {frames}")
                    buffer.add_image(name, image)
            for name, stream in streams.items():
                if next(stream, None) is not None:
                    raise UserError(f"camera {name!r} has more than {frames} frames")
            buffer.length = frames
            return self._save(buffer, buffer.columns(), tasks)
        except BaseException:
            self.clear_episode()
            raise
        finally:
            self._buffer = None

    def add_packed_episode(
        self,
        table: pa.Table,
        tasks: Sequence[str],
        videos: Mapping[str, VideoWindow | FilePart],
        stats: Mapping[str, Stats],
    ) -> int:
        """Add an episode that is already encoded: its parquet rows, one task per row, each
        camera's packet window or part of a whole copied file (not re-encoded) and statistics
        carried over.

        `timestamp` and `frame_index` are kept as given; `episode_index`, `index` and
        `task_index` are renumbered and their statistics recomputed. `stats` must hold every
        camera's; numeric features it lacks are computed from the rows.
        """
        self._check_open()
        if self._buffer is not None and self._buffer.length:
            raise UserError("an episode is being recorded with add_frame(): save or clear it")
        length = table.num_rows
        if length <= 0:
            raise UserError("an episode needs at least one frame")
        tasks = self._episode_tasks(list(tasks), length)
        missing = [k for k in self._video_keys() if k not in videos or k not in stats]
        if missing:
            raise UserError(f"the episode lacks the video or statistics of {missing}")
        task_ids = self._task_ids(tasks)
        columns: dict[str, NDArray[Any]] = {
            "episode_index": np.full(length, self._episodes, dtype=np.int64),
            "index": np.arange(self._frames, self._frames + length, dtype=np.int64),
            "task_index": np.asarray([task_ids[t] for t in tasks], dtype=np.int64),
        }
        arrays = []
        for name, feature in self.features.items():
            if feature.is_video:
                continue
            if name in columns:
                arrays.append(numpy_to_arrow(columns[name], feature))
            elif name in table.column_names:
                arrays.append(table.column(name))
            else:
                raise UserError(f"the episode's rows have no column {name!r}")
        names = [n for n, f in self.features.items() if not f.is_video]
        rows = pa.table(arrays, names=names)
        episode_stats: dict[str, Stats] = {}
        for name, feature in self.features.items():
            if name in stats and name not in columns and (feature.is_video or feature.is_numeric):
                episode_stats[name] = dict(stats[name])
            elif feature.is_numeric:
                values = columns.get(name)
                if values is None:
                    values = column_to_numpy(rows.column(name), feature, "episode rows")
                episode_stats[name] = numeric_stats(values)
        return self._commit(
            rows,
            tasks,
            task_ids,
            episode_stats,
            lambda key, camera: _append_video(camera, videos[key]),
        )

    def add_file(self, relative: str, data: bytes) -> None:
        """Publish one more file with the dataset, e.g. `annotations/...` or `meta/<name>.json`."""
        self._check_open()
        parts = relative.split("/")
        reserved = relative in (fmt.INFO_PATH, fmt.STATS_PATH, fmt.TASKS_PATH) or (
            parts[0] in ("data", "videos") or parts[:2] == ["meta", "episodes"]
        )
        if not relative or "\\" in relative or any(p in ("", ".", "..") for p in parts) or reserved:
            raise UserError(f"cannot add a file at {relative!r} to a dataset")
        self._out.path(relative).write_bytes(data)
        self._out.done(relative)

    def finish(self) -> WriteSummary:
        """Write the metadata and publish the dataset at its URL."""
        self._check_open()
        if self._buffer is not None and self._buffer.length:
            self.abort()
            raise UserError("an episode was left unsaved (add_frame without save_episode)")
        if self._episodes == 0:
            self.abort()
            raise UserError(f"no episodes were added: nothing published at {self.url}")
        try:
            self._data.close()
            for camera in self._cameras.values():
                camera.close()
            self._rows.close()
            self._write_tasks()
            stats = aggregate_features(self._episode_stats)
            write_json(self._out.path(fmt.STATS_PATH), stats_to_json(stats))
            self._out.done(fmt.STATS_PATH)
            write_json(self._out.path(fmt.INFO_PATH), self._info())
            self._out.done(fmt.INFO_PATH)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        try:
            self._stack.close()  # commits the publish
        finally:
            self._cleanup()
        return WriteSummary(self.url, self._episodes, self._frames, len(self._tasks))

    def abort(self) -> None:
        """Publish nothing; remove everything written so far."""
        if self._closed:
            return
        self._closed = True
        self.clear_episode()
        parts: list[ParquetFiles | CameraFiles | EpisodeRows] = [
            self._data,
            *self._cameras.values(),
            self._rows,
        ]
        for part in parts:
            with contextlib.suppress(Exception):
                part.abort()
        try:
            self._stack.__exit__(_AbortedError, _AbortedError("aborted"), None)
        finally:
            self._cleanup()

    def __enter__(self) -> LeRobotDatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.finish()

    # -- internals -------------------------------------------------------------------------

    def _video_keys(self) -> list[str]:
        return [name for name, f in self.features.items() if f.is_video]

    def _check_open(self) -> None:
        if self._closed:
            raise UserError(f"the writer of {self.url} is finished or aborted")
        if self._broken:
            raise UserError(f"the writer of {self.url} failed earlier: abort() it")

    def _open_buffer(self) -> EpisodeBuffer:
        self._check_open()
        if self._buffer is None:
            self._buffer = EpisodeBuffer(
                self.features,
                self._scratch,
                fps=self.fps,
                codec=self._codec,
                threads=self._threads,
                label=f"episode-{self._episodes:06d}",
            )
        return self._buffer

    def _episode_length(
        self, buffer: EpisodeBuffer, data: Mapping[str, Any], length: int | None
    ) -> int:
        lengths = {
            name: len(data[name])
            for name in self.features
            if name in data and hasattr(data[name], "__len__")
        }
        if length is None:
            if not lengths:
                raise UserError("cannot tell the episode length: pass length=")
            length = next(iter(lengths.values()))
        for name, value in lengths.items():
            if value != length:
                raise UserError(f"feature {name!r} has {value} frames, the episode {length}")
        if length <= 0:
            raise UserError("an episode needs at least one frame")
        return length

    @staticmethod
    def _episode_tasks(task: str | Sequence[str], frames: int) -> list[str]:
        tasks = [task] * frames if isinstance(task, str) else list(task)
        if len(tasks) != frames or not all(isinstance(t, str) and t for t in tasks):
            raise UserError(f"task must be one non-empty string or {frames} of them")
        return tasks

    def _task_ids(self, tasks: list[str]) -> dict[str, int]:
        new = [t for t in dict.fromkeys(tasks) if t not in self._tasks]
        return {**self._tasks, **{t: len(self._tasks) + i for i, t in enumerate(new)}}

    def _save(
        self, buffer: EpisodeBuffer, columns: dict[str, NDArray[Any]], tasks: list[str]
    ) -> int:
        buffer.close_encoders()
        length = buffer.length
        task_ids = self._task_ids(tasks)
        frame_index = np.arange(length, dtype=np.int64)
        columns = {
            **columns,
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, self._episodes, dtype=np.int64),
            "index": np.arange(self._frames, self._frames + length, dtype=np.int64),
            "task_index": np.asarray([task_ids[t] for t in tasks], dtype=np.int64),
        }
        stats: dict[str, Stats] = {}
        for name, feature in self.features.items():
            if feature.is_video:
                stats[name] = buffer.camera_counts(name).stats()
            elif feature.is_numeric:
                stats[name] = numeric_stats(columns[name])
        table = pa.table(
            {
                name: numpy_to_arrow(columns[name], f)
                for name, f in self.features.items()
                if not f.is_video
            }
        )

        def append_video(key: str, camera: CameraFiles) -> dict[str, Any]:
            encoder = buffer.encoders[key]
            if self._episodes == 0:
                info = probe_video_info(encoder.path)
                self.features[key] = Feature(
                    key,
                    "video",
                    self.features[key].shape,
                    self.features[key].names,
                    {**info, **self._codec.info(), "is_depth_map": False},
                )
            return camera.append(encoder.path, encoder.frames, self.fps)

        try:
            return self._commit(table, tasks, task_ids, stats, append_video)
        finally:
            buffer.discard()

    def _commit(
        self,
        table: pa.Table,
        tasks: list[str],
        task_ids: dict[str, int],
        stats: dict[str, Stats],
        append_video: Callable[[str, CameraFiles], dict[str, Any]],
    ) -> int:
        """Write one episode's rows, videos and metadata row; the writer's state after it."""
        episode_index, length = self._episodes, table.num_rows
        try:
            data_chunk, data_file = self._data.write(table)
            row: dict[str, Any] = {
                "episode_index": episode_index,
                "tasks": list(dict.fromkeys(tasks)),
                "length": length,
                "data/chunk_index": data_chunk,
                "data/file_index": data_file,
                "dataset_from_index": self._frames,
                "dataset_to_index": self._frames + length,
            }
            for key, camera in self._cameras.items():
                row.update(append_video(key, camera))
            for name, feature_stats in stats.items():
                for key, value in feature_stats.items():
                    row[f"stats/{name}/{key}"] = np.asarray(value).tolist()
            self._rows.add(row)
        except BaseException:
            self._broken = True  # files were half-appended: only abort() is left
            raise
        self._tasks = task_ids
        self._episode_stats.append(stats)
        self._episodes += 1
        self._frames += length
        return episode_index

    def _data_schema(self) -> pa.Schema:
        fields = [pa.field(n, f.arrow_type()) for n, f in self.features.items() if not f.is_video]
        hf = {n: f.hf_feature() for n, f in self.features.items() if not f.is_video}
        return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})

    def _episodes_schema(self) -> pa.Schema:
        fields = [
            pa.field("episode_index", pa.int64()),
            pa.field("tasks", pa.list_(pa.string())),
            pa.field("length", pa.int64()),
            pa.field("data/chunk_index", pa.int64()),
            pa.field("data/file_index", pa.int64()),
            pa.field("dataset_from_index", pa.int64()),
            pa.field("dataset_to_index", pa.int64()),
        ]
        for key in self._video_keys():
            fields += [
                pa.field(f"videos/{key}/chunk_index", pa.int64()),
                pa.field(f"videos/{key}/file_index", pa.int64()),
                pa.field(f"videos/{key}/from_timestamp", pa.float64()),
                pa.field(f"videos/{key}/to_timestamp", pa.float64()),
            ]
        for name, feature in self.features.items():
            if feature.is_video:
                depth = 3
            elif feature.is_numeric:
                depth = 1
            else:
                continue
            nested: pa.DataType = pa.float64()
            for _ in range(depth):
                nested = pa.list_(nested)
            for key in fmt.STAT_KEYS:
                kind = pa.list_(pa.int64()) if key == "count" else nested
                fields.append(pa.field(f"stats/{name}/{key}", kind))
        fields += [
            pa.field("meta/episodes/chunk_index", pa.int64()),
            pa.field("meta/episodes/file_index", pa.int64()),
        ]
        return pa.schema(fields)

    def _write_tasks(self) -> None:
        names = sorted(self._tasks, key=self._tasks.__getitem__)
        table = pa.table(
            {
                "task_index": pa.array([self._tasks[n] for n in names], pa.int64()),
                "task": pa.array(names, pa.string()),
            }
        )
        table = table.replace_schema_metadata({"pandas": json.dumps(_PANDAS_TASKS_METADATA)})
        pq.write_table(table, self._out.path(fmt.TASKS_PATH))
        self._out.done(fmt.TASKS_PATH)

    def _info(self) -> dict[str, Any]:
        chunks_size, data_mb, video_mb = self._limits
        return {
            "codebase_version": fmt.CODEBASE_VERSION,
            "fps": self.fps,
            "features": {name: f.to_json() for name, f in self.features.items()},
            "total_episodes": self._episodes,
            "total_frames": self._frames,
            "total_tasks": len(self._tasks),
            "chunks_size": chunks_size,
            "data_files_size_in_mb": data_mb,
            "video_files_size_in_mb": video_mb,
            "data_path": fmt.DATA_PATH,
            "video_path": fmt.VIDEO_PATH if self._video_keys() else None,
            "robot_type": self._robot_type,
            "splits": {"train": f"0:{self._episodes}"},
        }

    def _cleanup(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._out.cleanup()


def _append_video(camera: CameraFiles, video: VideoWindow | FilePart) -> dict[str, Any]:
    if isinstance(video, FilePart):
        return camera.append_from_copy(video)
    return camera.append_window(video)


def _declared(
    features: Mapping[str, Mapping[str, Any]] | Mapping[str, Feature],
) -> dict[str, Feature]:
    """Feature specs for a new dataset, or parsed `Feature`s copied from another dataset."""
    if features and all(isinstance(f, Feature) for f in features.values()):
        copied = {name: f for name, f in features.items() if isinstance(f, Feature)}
        defaults = declare_features({})
        missing = [name for name in defaults if name not in copied]
        if missing:
            raise UserError(f"copied features lack the default columns {missing}")
        return copied
    return declare_features(features)  # type: ignore[arg-type]


def write_episodes(
    url: str | os.PathLike[str],
    episodes: Iterable[tuple[Mapping[str, Any], str | Sequence[str]]],
    *,
    fps: int,
    features: Mapping[str, Mapping[str, Any]],
    **options: Any,
) -> WriteSummary:
    """Write every (data, task) episode of `episodes` to a new dataset at `url`."""
    writer = LeRobotDatasetWriter(url, fps=fps, features=features, **options)
    try:
        for data, task in episodes:
            writer.add_episode(data, task)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


# pandas' description of a frame indexed by `task` (LeRobot reads tasks.parquet with pandas and
# expects the task strings as the index).
_PANDAS_TASKS_METADATA: dict[str, Any] = {
    "index_columns": ["task"],
    "column_indexes": [
        {
            "name": None,
            "field_name": None,
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": {"encoding": "UTF-8"},
        }
    ],
    "columns": [
        {
            "name": "task_index",
            "field_name": "task_index",
            "pandas_type": "int64",
            "numpy_type": "int64",
            "metadata": None,
        },
        {
            "name": "task",
            "field_name": "task",
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": None,
        },
    ],
    "attributes": {},
    "creator": {"library": "pyarrow", "version": pa.__version__},
    "pandas_version": "2.2.3",
}
