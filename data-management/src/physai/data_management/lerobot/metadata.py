"""A dataset's metadata (info, tasks, episodes, stats), read from v3.0 or v2.x layouts.

v3.0: `meta/info.json`, `meta/tasks.parquet`, `meta/episodes/chunk-*/file-*.parquet` (one row per
episode: length, tasks, data and video file indices, `videos/<camera>/from_timestamp`, per-episode
`stats/...`), `meta/stats.json`. v2.x: `meta/info.json`, `meta/tasks.jsonl`, `meta/episodes.jsonl`,
`meta/episodes_stats.jsonl` (v2.1), one data file and one video per episode found through the
`data_path` / `video_path` templates (`episode_chunk = episode_index // chunks_size`).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from physai.core.errors import NotFoundError, UserError
from physai.core.storage import Location
from physai.data_management.lerobot import format as fmt
from physai.data_management.lerobot.features import Feature, parse_features
from physai.data_management.lerobot.files import (
    exists,
    glob,
    read_json,
    read_jsonl,
    read_parquet,
    reading,
)
from physai.data_management.lerobot.stats import Stats, aggregate_features, from_json


@dataclass(frozen=True)
class VideoSegment:
    """Where one camera's frames of one episode are: a file and a time window in it."""

    path: str
    from_timestamp: float
    to_timestamp: float


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode: its frames' global index range, tasks, data file and video segments."""

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    data_path: str
    dataset_from_index: int
    dataset_to_index: int
    videos: Mapping[str, VideoSegment] = field(default_factory=dict)


@dataclass
class DatasetMetadata:
    """Everything under `meta/`, normalized across format versions."""

    root: Location
    version: str
    info: dict[str, Any]
    features: dict[str, Feature]
    fps: int
    tasks: list[str]
    episodes: list[EpisodeInfo]
    stats: dict[str, Stats] | None
    _episode_stats: list[dict[str, Stats]] | pa.Table | None = field(default=None, repr=False)
    _starts: list[int] = field(default_factory=list, repr=False)
    _positions: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._starts = [ep.dataset_from_index for ep in self.episodes]
        self._positions = {ep.episode_index: i for i, ep in enumerate(self.episodes)}

    @property
    def total_frames(self) -> int:
        """Frames over all episodes."""
        return sum(ep.length for ep in self.episodes)

    @property
    def video_keys(self) -> list[str]:
        """Cameras stored as MP4."""
        return [name for name, f in self.features.items() if f.is_video]

    def episode(self, episode_index: int) -> EpisodeInfo:
        """The episode with this `episode_index`."""
        position = self._positions.get(episode_index)
        if position is None:
            raise UserError(f"{self.root.display} has no episode {episode_index}")
        return self.episodes[position]

    def episode_of_frame(self, index: int) -> EpisodeInfo:
        """The episode holding the frame of global index `index`."""
        position = bisect.bisect_right(self._starts, index) - 1
        if position >= 0:
            episode = self.episodes[position]
            if index < episode.dataset_to_index:
                return episode
        raise IndexError(f"frame {index} is not in {self.root.display}")

    def episode_stats(self, episode_index: int) -> dict[str, Stats] | None:
        """The statistics stored for one episode (None when the dataset has none)."""
        position = self._positions[self.episode(episode_index).episode_index]
        source = self._episode_stats
        if source is None:
            return None
        if not isinstance(source, list):  # v3.0: convert the stats columns once, on first use
            source = [_stats_from_row(row) for row in source.to_pylist()]
            self._episode_stats = source
        return source[position]


def _stats_from_row(row: Mapping[str, Any]) -> dict[str, Stats]:
    stats: dict[str, Stats] = {}
    for column, value in row.items():
        name, _, key = column.removeprefix("stats/").rpartition("/")
        if value is not None and name:
            stats.setdefault(name, {})[key] = np.atleast_1d(np.asarray(value))
    return stats


def load_metadata(root: Location) -> DatasetMetadata:
    """Read and check the metadata of the dataset at `root` (UserError on anything wrong)."""
    info_location = root.child(fmt.INFO_PATH)
    try:
        info = read_json(info_location, "LeRobot info.json")
    except NotFoundError:
        raise NotFoundError(
            f"{root.display} is not a LeRobot dataset: {fmt.INFO_PATH} does not exist"
        ) from None
    where = info_location.display
    if not isinstance(info, dict):
        raise UserError(f"{where} is not a valid LeRobot info.json: not a JSON object")
    version = info.get("codebase_version")
    if version not in fmt.READABLE_VERSIONS:
        raise UserError(
            f"{where}: codebase_version {version!r} is not supported "
            f"(readable: {', '.join(fmt.READABLE_VERSIONS)})"
        )
    fps = info.get("fps")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or fps <= 0 or fps != int(fps):
        raise UserError(f"{where}: fps must be a positive integer, got {fps!r}")
    features = parse_features(info.get("features"), where, strict=False)
    if version == fmt.CODEBASE_VERSION:
        return _load_v3(root, info, features, int(fps))
    return _load_v2(root, info, features, int(fps))


def _template(info: dict[str, Any], key: str, where: str) -> str:
    value = info.get(key)
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: {key!r} must be a path template")
    return value


def _format(template: str, where: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"{where}: path template {template!r} cannot be filled ({exc})") from None


def _column(table: pa.Table, name: str, where: str) -> list[Any]:
    if name not in table.column_names:
        raise UserError(f"{where} has no column {name!r}")
    values: list[Any] = table.column(name).to_pylist()
    return values


def _load_stats_json(root: Location) -> dict[str, Stats] | None:
    location = root.child(fmt.STATS_PATH)
    if not exists(location):
        return None
    document = read_json(location, "LeRobot stats.json")
    if not isinstance(document, dict):
        raise UserError(f"{location.display} is not a valid LeRobot stats.json")
    with reading(location.display, "LeRobot stats.json"):
        return from_json(document)


def _load_v3(
    root: Location, info: dict[str, Any], features: dict[str, Feature], fps: int
) -> DatasetMetadata:
    where = root.child(fmt.INFO_PATH).display
    data_template = _template(info, "data_path", where)
    video_keys = [name for name, f in features.items() if f.is_video]
    video_template = _template(info, "video_path", where) if video_keys else ""

    tasks_location = root.child(fmt.TASKS_PATH)
    tasks_table = read_parquet(tasks_location, "LeRobot tasks.parquet")
    tasks = _tasks_from_table(tasks_table, tasks_location.display)

    files = glob(root, f"{fmt.EPISODES_DIR}/*/*.parquet")
    if not files:
        raise UserError(f"{root.display}: no episode metadata under {fmt.EPISODES_DIR}/")
    tables = []
    for relative in files:
        location = root.child(relative)
        table = read_parquet(location, "LeRobot episodes parquet")
        tables.append((location.display, table))
    episodes: list[EpisodeInfo] = []
    stats_tables: list[pa.Table] = []
    for display, table in tables:
        episodes.extend(
            _episodes_from_table(table, display, data_template, video_template, video_keys)
        )
        stats_tables.append(table.select([c for c in table.column_names if c.startswith("stats/")]))
    order = np.argsort([ep.episode_index for ep in episodes], kind="stable")
    episodes = [episodes[i] for i in order]
    episode_stats: pa.Table | None = None
    if stats_tables and stats_tables[0].num_columns:
        with reading(root.display, "LeRobot episodes parquet"):
            combined = pa.concat_tables(stats_tables, promote_options="permissive")
        episode_stats = combined.take(pa.array(order))
    _check_episodes(episodes, root.display)
    return DatasetMetadata(
        root=root,
        version=fmt.CODEBASE_VERSION,
        info=info,
        features=features,
        fps=fps,
        tasks=tasks,
        episodes=episodes,
        stats=_load_stats_json(root),
        _episode_stats=episode_stats,
    )


def _tasks_from_table(table: pa.Table, where: str) -> list[str]:
    indices = _column(table, "task_index", where)
    names = [c for c in table.column_names if c != "task_index"]
    text = "task" if "task" in names else (names[0] if names else "task")
    values = _column(table, text, where)
    tasks = [""] * (max(indices) + 1 if indices else 0)
    for index, task in zip(indices, values, strict=True):
        if not isinstance(index, int) or index < 0 or not isinstance(task, str):
            raise UserError(f"{where}: bad task row ({index!r}, {task!r})")
        tasks[index] = task
    return tasks


def _episodes_from_table(
    table: pa.Table, where: str, data_template: str, video_template: str, video_keys: list[str]
) -> list[EpisodeInfo]:
    columns = {
        name: _column(table, name, where)
        for name in (
            "episode_index",
            "length",
            "tasks",
            "data/chunk_index",
            "data/file_index",
            "dataset_from_index",
            "dataset_to_index",
        )
    }
    for key in video_keys:
        for suffix in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            name = f"videos/{key}/{suffix}"
            columns[name] = _column(table, name, where)
    episodes = []
    for row in range(table.num_rows):
        videos = {
            key: VideoSegment(
                path=_format(
                    video_template,
                    where,
                    video_key=key,
                    chunk_index=columns[f"videos/{key}/chunk_index"][row],
                    file_index=columns[f"videos/{key}/file_index"][row],
                ),
                from_timestamp=float(columns[f"videos/{key}/from_timestamp"][row]),
                to_timestamp=float(columns[f"videos/{key}/to_timestamp"][row]),
            )
            for key in video_keys
        }
        episodes.append(
            EpisodeInfo(
                episode_index=int(columns["episode_index"][row]),
                length=int(columns["length"][row]),
                tasks=tuple(columns["tasks"][row] or ()),
                data_path=_format(
                    data_template,
                    where,
                    chunk_index=columns["data/chunk_index"][row],
                    file_index=columns["data/file_index"][row],
                ),
                dataset_from_index=int(columns["dataset_from_index"][row]),
                dataset_to_index=int(columns["dataset_to_index"][row]),
                videos=videos,
            )
        )
    return episodes


def _load_v2(
    root: Location, info: dict[str, Any], features: dict[str, Feature], fps: int
) -> DatasetMetadata:
    where = root.child(fmt.INFO_PATH).display
    data_template = _template(info, "data_path", where)
    video_keys = [name for name, f in features.items() if f.is_video]
    video_template = _template(info, "video_path", where) if video_keys else ""
    chunks_size = info.get("chunks_size", fmt.DEFAULT_CHUNKS_SIZE)
    if not isinstance(chunks_size, int) or chunks_size <= 0:
        raise UserError(f"{where}: chunks_size must be a positive integer")

    tasks_location = root.child(fmt.LEGACY_TASKS_PATH)
    task_rows = read_jsonl(tasks_location, "LeRobot tasks.jsonl")
    tasks_table = pa.Table.from_pylist(
        [{"task_index": r.get("task_index"), "task": r.get("task")} for r in task_rows]
    )
    tasks = _tasks_from_table(tasks_table, tasks_location.display) if task_rows else []

    episodes_location = root.child(fmt.LEGACY_EPISODES_PATH)
    rows = read_jsonl(episodes_location, "LeRobot episodes.jsonl")
    try:
        rows.sort(key=lambda r: int(r["episode_index"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{episodes_location.display}: every line needs an episode_index") from None
    episodes: list[EpisodeInfo] = []
    start = 0
    for row in rows:
        index, length = row.get("episode_index"), row.get("length")
        if not isinstance(length, int) or length < 0:
            raise UserError(f"{episodes_location.display}: episode {index} has no valid length")
        chunk = int(index) // chunks_size
        names = {"episode_chunk": chunk, "episode_index": int(index), "chunk_index": chunk}
        episodes.append(
            EpisodeInfo(
                episode_index=int(index),
                length=length,
                tasks=tuple(row.get("tasks") or ()),
                data_path=_format(data_template, where, **names),
                dataset_from_index=start,
                dataset_to_index=start + length,
                videos={
                    key: VideoSegment(
                        path=_format(video_template, where, video_key=key, **names),
                        from_timestamp=0.0,
                        to_timestamp=length / fps,
                    )
                    for key in video_keys
                },
            )
        )
        start += length
    _check_episodes(episodes, root.display)

    episode_stats: list[dict[str, Stats]] | None = None
    stats_location = root.child(fmt.LEGACY_EPISODES_STATS_PATH)
    if exists(stats_location):
        by_index: dict[int, dict[str, Stats]] = {}
        with reading(stats_location.display, "LeRobot episodes_stats.jsonl"):
            for item in read_jsonl(stats_location, "LeRobot episodes_stats.jsonl"):
                by_index[int(item["episode_index"])] = from_json(item["stats"])
        episode_stats = [by_index.get(ep.episode_index, {}) for ep in episodes]
    stats = _load_stats_json(root)
    if episode_stats and all(episode_stats):
        stats = aggregate_features(episode_stats)
    return DatasetMetadata(
        root=root,
        version=str(info["codebase_version"]),
        info=info,
        features=features,
        fps=fps,
        tasks=tasks,
        episodes=episodes,
        stats=stats,
        _episode_stats=episode_stats,
    )


def _check_episodes(episodes: list[EpisodeInfo], where: str) -> None:
    seen: set[int] = set()
    previous_end = 0
    for ep in episodes:
        if ep.episode_index in seen:
            raise UserError(f"{where}: episode {ep.episode_index} is listed twice")
        seen.add(ep.episode_index)
        if ep.dataset_to_index - ep.dataset_from_index != ep.length or (
            ep.dataset_from_index < previous_end
        ):
            raise UserError(
                f"{where}: episode {ep.episode_index} has an inconsistent frame range "
                f"[{ep.dataset_from_index}, {ep.dataset_to_index}) for length {ep.length}"
            )
        previous_end = ep.dataset_to_index
