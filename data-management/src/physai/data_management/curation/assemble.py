"""Writing one curated dataset: chosen episodes of the sources, video copied, not re-encoded.

For each chosen episode, in order: its parquet rows are sliced out of the source data file
(every column kept as stored; `episode_index`, `index` and `task_index` renumbered), each
camera's packets are cut out of the source's packed MP4 by the episode's time window and
appended to the output's packed MP4 (`lerobot.video_remux`), and its camera statistics are
carried over (but those of the renumbered index columns, recomputed). Only when
asked (`reencode=True`), or when a window cannot be copied (it does not start on a keyframe),
is an episode's video decoded and encoded again. Annotations and quality scores of the chosen
episodes follow them under their new indices; `meta/curation.json` records where every
episode came from.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from physai.core.errors import UserError
from physai.core.storage import resolve
from physai.data_management.curation.catalog import Catalog, EpisodeRecord, SourceDataset
from physai.data_management.labels import (
    ANNOTATIONS_DIR,
    QUALITY_FILE,
    quality_document,
    renumbered_snapshot,
)
from physai.data_management.lerobot import format as fmt
from physai.data_management.lerobot.features import Feature
from physai.data_management.lerobot.files import read_parquet
from physai.data_management.lerobot.reader import LeRobotDatasetReader
from physai.data_management.lerobot.stats import Stats
from physai.data_management.lerobot.video_encode import (
    CODECS,
    EpisodeEncoder,
    VideoCodec,
    probe_video_info,
    video_codec,
)
from physai.data_management.lerobot.video_remux import FilePart, SourceVideos, VideoWindow
from physai.data_management.lerobot.writer import LeRobotDatasetWriter

if TYPE_CHECKING:
    from physai.core.settings import Settings

CURATION_PATH: Final = "meta/curation.json"
CURATION_FORMAT: Final = "physai.curation"
RENUMBERED: Final = frozenset({"episode_index", "index", "task_index"})


@dataclass(frozen=True)
class Retask:
    """New task strings: one for every episode (`set_task`), or old → new renames."""

    set_task: str | None = None
    rename: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, task: str) -> str:
        if self.set_task is not None:
            return self.set_task
        return self.rename.get(task, task)

    def check(self, records: Sequence[EpisodeRecord]) -> None:
        """Reject empty tasks and renames of tasks no chosen episode has (typos)."""
        for text in [self.set_task, *self.rename.values()]:
            if text is not None and not text.strip():
                raise UserError("a new task must not be empty")
        present = {t for r in records for t in r.info.tasks}
        for old in self.rename:
            if old not in present:
                raise UserError(f"--rename-task: no chosen episode has the task {old!r}")


@dataclass
class WrittenDataset:
    """What `write_dataset` published."""

    url: str
    episodes: int
    frames: int
    copied_episodes: int
    reencoded_episodes: int


class _SourceRows:
    """Parquet data files of the sources as arrow tables (a few kept, LRU)."""

    def __init__(self, max_files: int = 4) -> None:
        self._max = max_files
        self._tables: OrderedDict[tuple[int, str], tuple[pa.Table, dict[int, int]]] = OrderedDict()

    def episode(self, source: SourceDataset, record: EpisodeRecord) -> pa.Table:
        key = (source.position, record.info.data_path)
        cached = self._tables.get(key)
        location = source.root.child(record.info.data_path)
        if cached is None:
            table = read_parquet(location, "LeRobot data parquet")
            if "episode_index" not in table.column_names:
                raise UserError(f"{location.display} has no episode_index column")
            values = np.asarray(table.column("episode_index").to_numpy(zero_copy_only=False))
            found, first = np.unique(values, return_index=True)
            cached = (table, {int(v): int(i) for v, i in zip(found, first, strict=True)})
            self._tables[key] = cached
            while len(self._tables) > self._max:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        table, starts = cached
        start = starts.get(record.episode_index)
        length = record.info.length
        rows = None if start is None else table.slice(start, length)
        if rows is None or rows.num_rows != length:
            raise UserError(
                f"{location.display} does not hold the {length} rows of episode "
                f"{record.episode_index} in one run"
            )
        column = np.asarray(rows.column("episode_index").to_numpy(zero_copy_only=False))
        if not np.all(column == record.episode_index):
            raise UserError(
                f"{location.display}: the rows of episode {record.episode_index} are not contiguous"
            )
        return rows


def write_dataset(
    url: str,
    catalog: Catalog,
    records: Sequence[EpisodeRecord],
    *,
    retask: Retask | None = None,
    reencode: bool = False,
    codec: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
    progress: Callable[[EpisodeRecord], None] | None = None,
) -> WrittenDataset:
    """Publish `records` as a new LeRobot v3.0 dataset at `url` (module doc)."""
    if not records:
        raise UserError(f"no episodes chosen for {url}")
    retask = retask or Retask()
    first = catalog.sources[0].meta
    features = dict(catalog.features)
    forced = video_codec(codec) if codec else None
    writer = LeRobotDatasetWriter(
        url,
        fps=catalog.fps,
        features=features,
        robot_type=first.info.get("robot_type"),
        video_codec=forced.name if forced else "av1",
        chunks_size=int(first.info.get("chunks_size") or fmt.DEFAULT_CHUNKS_SIZE),
        data_files_size_in_mb=float(
            first.info.get("data_files_size_in_mb") or fmt.DEFAULT_DATA_FILES_SIZE_IN_MB
        ),
        video_files_size_in_mb=float(
            first.info.get("video_files_size_in_mb") or fmt.DEFAULT_VIDEO_FILES_SIZE_IN_MB
        ),
        overwrite=overwrite,
        settings=settings,
    )
    copier = _EpisodeCopier(
        catalog,
        writer,
        reencode=reencode,
        codec=forced,
        settings=settings,
        whole_files={} if reencode else whole_files(catalog, records),
    )
    try:
        origin: list[dict[str, Any]] = []
        for record in records:
            source = catalog.sources[record.source]
            how = copier.add(source, record, retask)
            origin.append(
                {
                    "episode_index": len(origin),
                    "source": record.source,
                    "source_episode_index": record.episode_index,
                    "video": how,
                }
            )
            if progress is not None:
                progress(record)
        _add_annotations(writer, catalog, records)
        document = {
            "format": CURATION_FORMAT,
            "version": 1,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "sources": [
                {
                    "url": s.root.display,
                    "codebase_version": s.meta.version,
                    "total_episodes": len(s.meta.episodes),
                }
                for s in catalog.sources
            ],
            **(provenance or {}),
            "episodes": origin,
        }
        writer.add_file(CURATION_PATH, (json.dumps(document, indent=1) + "\n").encode())
    except BaseException:
        writer.abort()
        raise
    finally:
        copier.close()
    summary = writer.finish()
    return WrittenDataset(
        summary.url,
        summary.total_episodes,
        summary.total_frames,
        copier.copied,
        copier.reencoded,
    )


class _EpisodeCopier:
    """Adds source episodes to a writer: rows sliced, video windows copied or re-encoded."""

    def __init__(
        self,
        catalog: Catalog,
        writer: LeRobotDatasetWriter,
        *,
        reencode: bool,
        codec: VideoCodec | None,
        settings: Settings | None,
        whole_files: dict[tuple[int, int, str], WholeFile],
    ) -> None:
        self._catalog = catalog
        self._whole = whole_files
        self._writer = writer
        self._reencode = reencode
        self._codec = codec
        self._settings = settings
        self._rows = _SourceRows()
        self._videos = SourceVideos()
        self._readers: dict[int, LeRobotDatasetReader] = {}
        self._scratch = Path(tempfile.mkdtemp(prefix="physai-curate-"))
        self._probed: set[str] = set()
        self.copied = 0
        self.reencoded = 0

    def add(self, source: SourceDataset, record: EpisodeRecord, retask: Retask) -> str:
        """Add one episode; how its video got there: copied | reencoded | none (no cameras)."""
        rows = self._rows.episode(source, record)
        tasks = self._tasks(source, record, rows)
        keys = [n for n, f in self._catalog.features.items() if f.is_video]
        windows: dict[str, VideoWindow | FilePart] = {}
        if not self._reencode:
            for key in keys:
                segment = record.info.videos[key]
                whole = self._whole.get((record.source, record.episode_index, key))
                if (
                    whole is not None
                    and whole.first
                    and not self._tail_intact(source, segment.path, whole)
                ):
                    self._drop_whole(record.source, key, segment.path)
                    whole = None
                if whole is not None:
                    windows[key] = FilePart(
                        source.root.child(segment.path),
                        segment.from_timestamp,
                        segment.to_timestamp,
                        first=whole.first,
                        last=whole.last,
                    )
                    continue
                window = self._videos.window(
                    source.root.child(segment.path),
                    segment.from_timestamp,
                    segment.to_timestamp,
                    record.info.length,
                )
                if window is None:
                    break
                windows[key] = window
        reencoded = len(windows) < len(keys)
        encoded = SourceVideos()
        try:
            if reencoded:
                windows = self._encode(source, record, keys, encoded)
            self._writer.add_packed_episode(
                rows,
                [retask(t) for t in tasks],
                windows,
                self._carried_stats(source, record, keys),
            )
        finally:
            encoded.close()
            for path in self._scratch.iterdir():
                path.unlink(missing_ok=True)
        if not keys:
            return "none"
        if reencoded:
            self.reencoded += 1
            return "reencoded"
        self.copied += 1
        return "copied"

    def _tail_intact(self, source: SourceDataset, path: str, whole: WholeFile) -> bool:
        """Before copying a file whole: its last episode's packets are all there (a truncated
        file is caught here; the packet path then reports it)."""
        window = self._videos.window(source.root.child(path), *whole.tail)
        return window is not None

    def _drop_whole(self, source: int, key: str, path: str) -> None:
        stale = [
            k for k, w in self._whole.items() if k[0] == source and k[2] == key and w.path == path
        ]
        for k in stale:
            del self._whole[k]

    def _tasks(self, source: SourceDataset, record: EpisodeRecord, rows: pa.Table) -> list[str]:
        names = source.meta.tasks
        if "task_index" not in rows.column_names:
            if len(record.info.tasks) != 1:
                raise UserError(
                    f"episode {record.episode_index} of {source.root.display} has no "
                    "task_index column and not exactly one task"
                )
            return [record.info.tasks[0]] * rows.num_rows
        indices = rows.column("task_index").to_pylist()
        bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < len(names)]
        if bad:
            raise UserError(
                f"episode {record.episode_index} of {source.root.display} names task_index "
                f"{bad[0]}, which meta/tasks does not list"
            )
        return [names[i] for i in indices]

    def _reader(self, source: SourceDataset) -> LeRobotDatasetReader:
        reader = self._readers.get(source.position)
        if reader is None:
            reader = LeRobotDatasetReader(source.url, settings=self._settings)
            self._readers[source.position] = reader
        return reader

    def _encode(
        self,
        source: SourceDataset,
        record: EpisodeRecord,
        keys: list[str],
        encoded: SourceVideos,
    ) -> dict[str, VideoWindow | FilePart]:
        """Decode the episode's frames and encode them again, one MP4 per camera."""
        features = self._catalog.features
        encoders: dict[str, tuple[EpisodeEncoder, VideoCodec]] = {}
        for key in keys:
            codec = self._codec or _source_codec(features[key], source)
            height, width, _ = features[key].frame_shape
            encoders[key] = (
                EpisodeEncoder(
                    self._scratch / f"{len(encoders)}.mp4",
                    fps=self._catalog.fps,
                    width=width,
                    height=height,
                    codec=codec,
                ),
                codec,
            )
        try:
            for frame in self._reader(source).episode_frames(record.episode_index):
                for key, (encoder, _) in encoders.items():
                    encoder.add(frame[key])
            for encoder, _ in encoders.values():
                encoder.close()
        except BaseException:
            for encoder, _ in encoders.values():
                encoder.abort()
            raise
        windows: dict[str, VideoWindow | FilePart] = {}
        length = record.info.length
        for key, (encoder, codec) in encoders.items():
            location = resolve(str(encoder.path))
            window = encoded.window(location, 0.0, length / self._catalog.fps, length)
            if window is None:
                raise UserError(f"re-encoding episode {record.episode_index}: unusable output")
            windows[key] = window
            if self._codec is not None and key not in self._probed:
                self._probed.add(key)
                info = {**probe_video_info(encoder.path), **codec.info(), "is_depth_map": False}
                old = self._writer.features[key]
                self._writer.features[key] = Feature(key, "video", old.shape, old.names, info)
        return windows

    def _carried_stats(
        self, source: SourceDataset, record: EpisodeRecord, keys: list[str]
    ) -> dict[str, Stats]:
        """The source's statistics of this episode that stay true in the output: every
        complete one but the renumbered columns'; cameras without one are computed."""
        stored = source.meta.episode_stats(record.episode_index) or {}
        stats = {
            name: value
            for name, value in stored.items()
            if name not in RENUMBERED and all(k in value for k in fmt.STAT_KEYS)
        }
        missing = [key for key in keys if key not in stats]
        if missing:
            computed = self._reader(source).compute_episode_stats(record.episode_index)
            stats.update({key: computed[key] for key in missing})
        return stats

    def close(self) -> None:
        self._videos.close()
        for reader in self._readers.values():
            reader.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


@dataclass(frozen=True)
class WholeFile:
    """An episode in a source video file that is copied whole."""

    path: str
    first: bool
    last: bool
    tail: tuple[float, float, int]  # the file's last episode: from, to, frames


def whole_files(
    catalog: Catalog, records: Sequence[EpisodeRecord]
) -> dict[tuple[int, int, str], WholeFile]:
    """Source video files (v3.0) every episode of which is chosen, consecutively and in order:
    those are copied whole. {(source, episode_index, camera): WholeFile}."""
    position = {r.key: i for i, r in enumerate(records)}
    result: dict[tuple[int, int, str], WholeFile] = {}
    for source in catalog.sources:
        if source.meta.version != fmt.CODEBASE_VERSION:
            continue  # v2.x: one file per episode; packing them is better than copying each
        for key in source.meta.video_keys:
            files: dict[str, list[tuple[float, int]]] = {}
            infos = {info.episode_index: info for info in source.meta.episodes}
            for info in source.meta.episodes:
                segment = info.videos[key]
                files.setdefault(segment.path, []).append(
                    (segment.from_timestamp, info.episode_index)
                )
            for path, episodes in files.items():
                order = [e for _, e in sorted(episodes)]
                places = [position.get((source.position, e)) for e in order]
                if any(p is None for p in places):
                    continue
                first = places[0]
                assert first is not None
                if places != list(range(first, first + len(places))):
                    continue
                last = infos[order[-1]]
                tail = (last.videos[key].from_timestamp, last.videos[key].to_timestamp, last.length)
                for n, episode in enumerate(order):
                    result[(source.position, episode, key)] = WholeFile(
                        path, n == 0, n == len(order) - 1, tail
                    )
    return result


def _source_codec(feature: Feature, source: SourceDataset) -> VideoCodec:
    name = str((feature.info or {}).get("video.codec", "av1"))
    if name not in CODECS and name not in ("libsvtav1", "libx264"):
        raise UserError(
            f"{source.root.display}: a {feature.name!r} window cannot be copied as is and its "
            f"codec {name!r} cannot be re-encoded here: pass a codec (av1 or h264) to re-encode"
        )
    return video_codec(name)


def _add_annotations(
    writer: LeRobotDatasetWriter, catalog: Catalog, records: Sequence[EpisodeRecord]
) -> None:
    """The chosen episodes' annotation edits and quality scores, under their new indices."""
    scores = []
    for source in catalog.sources:
        mapping = {
            r.episode_index: new for new, r in enumerate(records) if r.source == source.position
        }
        if not mapping:
            continue
        snapshot = renumbered_snapshot(source.edits, mapping)
        if snapshot is not None:
            writer.add_file(*snapshot)
        scores += [
            q.model_copy(update={"episode_index": mapping[q.episode_index]})
            for q in source.quality
            if q.episode_index in mapping
        ]
    if scores:
        writer.add_file(f"{ANNOTATIONS_DIR}/{QUALITY_FILE}", quality_document(scores))
