"""`LeRobotDatasetReader`: LeRobot v3.0 / v2.x datasets at any storage URL, without torch.

    with LeRobotDatasetReader("az://datasets/pick/v3") as ds:
        frame = ds[123]                      # numpy values, cameras as HxWx3 uint8, "task"
        for frame in ds.episode_frames(4):   # sequential decode of one episode
            ...
        stats = ds.compute_stats()

Random access decodes only the window of the episode inside its packed MP4 (seek to the
keyframe before the frame, decode forward), keeping containers and decoders open between calls;
data files are read once per file and kept as numpy columns (a few files, LRU).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.core.storage import Location, resolve
from physai.data_management.lerobot.features import Feature, column_to_numpy
from physai.data_management.lerobot.files import read_parquet
from physai.data_management.lerobot.metadata import DatasetMetadata, EpisodeInfo, load_metadata
from physai.data_management.lerobot.stats import (
    PixelCounts,
    Stats,
    aggregate_features,
    numeric_stats,
    sample_indices,
)
from physai.data_management.lerobot.video_decode import VideoCache, VideoFile, decode_image

if TYPE_CHECKING:
    from physai.core.settings import Settings

DEFAULT_TOLERANCE_S = 1e-4
Frame = dict[str, Any]


@dataclass
class _DataFile:
    """One parquet data file as numpy columns, and where each episode's rows start."""

    columns: dict[str, NDArray[Any]]
    starts: dict[int, int]


class LeRobotDatasetReader:
    """Read a LeRobot dataset (v3.0, v2.1, v2.0) from a path or storage URL."""

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        settings: Settings | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        max_open_videos: int = 32,
        max_cached_data_files: int = 4,
    ) -> None:
        self.url = os.fspath(url)
        self.tolerance_s = tolerance_s
        self._settings = settings
        self._max_open_videos = max_open_videos
        self._max_data_files = max_cached_data_files
        self._root: Location = resolve(self.url, settings)
        self.meta: DatasetMetadata = load_metadata(self._root)
        self._videos = VideoCache(max_open_videos)
        self._data: OrderedDict[str, _DataFile] = OrderedDict()

    # -- metadata --------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """The dataset's codebase_version."""
        return self.meta.version

    @property
    def info(self) -> dict[str, Any]:
        """meta/info.json as read."""
        return self.meta.info

    @property
    def fps(self) -> int:
        """Frames per second."""
        return self.meta.fps

    @property
    def features(self) -> dict[str, Feature]:
        """Declared features, default columns included."""
        return self.meta.features

    @property
    def camera_keys(self) -> list[str]:
        """Features that are cameras (video or image)."""
        return [name for name, f in self.features.items() if f.is_visual]

    @property
    def tasks(self) -> list[str]:
        """Task strings by task_index."""
        return self.meta.tasks

    @property
    def episodes(self) -> list[EpisodeInfo]:
        """Episodes in episode_index order."""
        return self.meta.episodes

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return len(self.meta.episodes)

    @property
    def num_frames(self) -> int:
        """Number of frames over all episodes."""
        return self.meta.total_frames

    @property
    def stats(self) -> dict[str, Stats] | None:
        """Dataset statistics as stored (v2.1: aggregated from episodes_stats.jsonl)."""
        return self.meta.stats

    def __len__(self) -> int:
        return self.num_frames

    # -- frames ----------------------------------------------------------------------------

    def __getitem__(self, index: int) -> Frame:
        return self.get_frame(index)

    def __iter__(self) -> Iterator[Frame]:
        for episode in self.meta.episodes:
            yield from self.episode_frames(episode.episode_index)

    def get_frame(self, index: int) -> Frame:
        """Frame `index` (global, 0..len-1): numpy values, decoded camera images, `task`."""
        index = int(index)
        if index < 0:
            index += self.num_frames
        episode = self.meta.episode_of_frame(index)
        return self._frame(episode, index - episode.dataset_from_index)

    def episode_frames(self, episode_index: int) -> Iterator[Frame]:
        """Every frame of one episode, in order (videos decoded sequentially)."""
        episode = self.meta.episode(episode_index)
        for row in range(episode.length):
            yield self._frame(episode, row)

    def episode_data(self, episode_index: int) -> dict[str, NDArray[Any]]:
        """The parquet columns of one episode (no camera images): {name: (length, *shape)}."""
        episode = self.meta.episode(episode_index)
        data = self._data_file(episode)
        start = data.starts[episode.episode_index]
        return {
            name: values[start : start + episode.length].copy()
            for name, values in data.columns.items()
        }

    def _frame(self, episode: EpisodeInfo, row: int) -> Frame:
        data = self._data_file(episode)
        position = data.starts[episode.episode_index] + row
        frame: Frame = {}
        for name, values in data.columns.items():
            feature = self.features[name]
            if feature.is_image:
                frame[name] = decode_image(values[position], f"{episode.data_path} [{name}]")
            elif feature.is_opaque:
                frame[name] = values[position]
            elif feature.is_scalar or feature.dtype == "string":
                frame[name] = np.asarray(values[position])
            else:
                frame[name] = values[position].copy()
        timestamp = (
            float(data.columns["timestamp"][position])
            if "timestamp" in data.columns
            else row / self.fps
        )
        for key, segment in episode.videos.items():
            video = self._video(segment.path)
            frame[key] = video.frame_at(segment.from_timestamp + timestamp, self.tolerance_s)
        task_index = int(frame["task_index"]) if "task_index" in frame else -1
        if 0 <= task_index < len(self.tasks):
            frame["task"] = self.tasks[task_index]
        return frame

    # -- statistics ------------------------------------------------------------------------

    def compute_episode_stats(self, episode_index: int) -> dict[str, Stats]:
        """Recompute one episode's statistics from its data and (sampled) camera frames."""
        episode = self.meta.episode(episode_index)
        data = self.episode_data(episode_index)
        stats: dict[str, Stats] = {}
        samples = sample_indices(episode.length)
        for name, feature in self.features.items():
            if feature.is_numeric and name in data:
                stats[name] = numeric_stats(data[name])
            elif feature.is_visual:
                counts = PixelCounts()
                for row in samples:
                    counts.add(self._camera_image(episode, name, int(row), data))
                stats[name] = counts.stats()
        return stats

    def compute_stats(self, episodes: Sequence[int] | None = None) -> dict[str, Stats]:
        """Recompute dataset statistics (LeRobot's method) over `episodes` (default: all)."""
        chosen = [ep.episode_index for ep in self.meta.episodes] if episodes is None else episodes
        if not chosen:
            raise UserError(f"{self._root.display}: no episodes to compute statistics over")
        return aggregate_features([self.compute_episode_stats(ep) for ep in chosen])

    def _camera_image(
        self, episode: EpisodeInfo, name: str, row: int, data: dict[str, NDArray[Any]]
    ) -> NDArray[Any]:
        if self.features[name].is_image:
            return decode_image(data[name][row], f"{episode.data_path} [{name}]")
        segment = episode.videos[name]
        timestamp = float(data["timestamp"][row]) if "timestamp" in data else row / self.fps
        return self._video(segment.path).frame_at(
            segment.from_timestamp + timestamp, self.tolerance_s
        )

    # -- caches ----------------------------------------------------------------------------

    def _video(self, relative: str) -> VideoFile:
        location = self._root.child(relative)
        return self._videos.get(relative, lambda: VideoFile(location))

    def _data_file(self, episode: EpisodeInfo) -> _DataFile:
        relative = episode.data_path
        cached = self._data.get(relative)
        if cached is not None:
            self._data.move_to_end(relative)
        else:
            cached = self._load_data_file(relative)
            self._data[relative] = cached
            while len(self._data) > self._max_data_files:
                self._data.popitem(last=False)
        if episode.episode_index not in cached.starts:
            raise UserError(
                f"{self._root.child(relative).display} holds no rows of episode "
                f"{episode.episode_index}"
            )
        return cached

    def _load_data_file(self, relative: str) -> _DataFile:
        location = self._root.child(relative)
        table = read_parquet(location, "LeRobot data parquet")
        where = location.display
        columns: dict[str, NDArray[Any]] = {}
        for name, feature in self.features.items():
            if feature.is_video:
                continue
            if name not in table.column_names:
                if feature.is_opaque:
                    continue
                raise UserError(f"{where} has no column {name!r} (declared in info.json)")
            if feature.is_image:
                cells = table.column(name).to_pylist()
                columns[name] = np.asarray(
                    [c.get("bytes") if isinstance(c, dict) else c for c in cells], dtype=object
                )
            else:
                columns[name] = column_to_numpy(table.column(name), feature, where)
        if "episode_index" not in columns:
            raise UserError(f"{where} has no episode_index column")
        episode_column = columns["episode_index"]
        values, first_rows = np.unique(episode_column, return_index=True)
        return _DataFile(
            columns=columns,
            starts={int(v): int(r) for v, r in zip(values, first_rows, strict=True)},
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close open videos and drop cached data."""
        self._videos.close()
        self._data.clear()

    def __enter__(self) -> LeRobotDatasetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (DataLoader workers): open files and caches are not carried."""
        state = self.__dict__.copy()
        state["_videos"] = VideoCache(self._max_open_videos)
        state["_data"] = OrderedDict()
        return state

    def __repr__(self) -> str:
        return (
            f"LeRobotDatasetReader({self._root.display!r}, version={self.version}, "
            f"episodes={self.num_episodes}, frames={self.num_frames})"
        )
