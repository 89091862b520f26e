"""Validate a LeRobot dataset (v3.0, v2.x) at any storage URL, without modifying it.

    report = validate_dataset("az://datasets/pick/v3")
    if not report.ok:
        for issue in report.errors:
            print(issue.check, issue.episode, issue.message)

Checks (the `check` of each `Issue`): `info` (info.json schema), `metadata` (episode and task
metadata readable), `schema` (parquet columns, dtypes and shapes against info.json), `index`
(global `index`, `frame_index`, `episode_index`, dataset_from/to_index), `timestamps` (against
`frame_index / fps`), `video_frames` (frames in each episode's video window against its rows),
`decode` (first and last frame of every episode window), `stats` (stats.json against the data),
`finite` (NaN/inf in float columns), `names` (feature names against shapes), `totals`
(info.json totals against the episodes, frames and tasks found). Unusable input (no such URL,
not a dataset) raises `UserError`; everything else becomes an issue.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from physai.core.errors import NotFoundError, UserError
from physai.core.storage import Location, resolve
from physai.data_management.lerobot import format as fmt
from physai.data_management.lerobot.features import (
    KNOWN_DTYPES,
    Feature,
    column_to_numpy,
)
from physai.data_management.lerobot.files import exists, read_json, read_parquet
from physai.data_management.lerobot.metadata import DatasetMetadata, EpisodeInfo, load_metadata
from physai.data_management.lerobot.reader import DEFAULT_TOLERANCE_S
from physai.data_management.lerobot.video_decode import VideoFile

if TYPE_CHECKING:
    from physai.core.settings import Settings

Severity = Literal["error", "warning"]
CHECKS = (
    "info",
    "metadata",
    "schema",
    "index",
    "timestamps",
    "video_frames",
    "decode",
    "stats",
    "finite",
    "names",
    "totals",
)
REQUIRED_INFO_KEYS = ("codebase_version", "fps", "features", "data_path")
TOTAL_KEYS = ("total_episodes", "total_frames", "total_tasks")
STATS_KEYS = ("min", "max", "mean", "std")
# Recomputed statistics must match stats.json within these (numpy.allclose) tolerances.
STATS_RTOL = 1e-3
STATS_ATOL = 1e-4


@dataclass(frozen=True)
class Issue:
    """One problem found: how bad, which check, what, and where (episode, file)."""

    severity: Severity
    check: str
    message: str
    episode: int | None = None
    file: str | None = None


@dataclass
class ValidationReport:
    """Everything `validate_dataset` found in one dataset."""

    url: str
    version: str | None = None
    episodes: int = 0
    frames: int = 0
    checks: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        """Issues of severity error."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Issues of severity warning."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        """One line: verdict, counts, size."""
        verdict = "valid" if self.ok else "INVALID"
        return (
            f"{self.url}: {verdict}: {len(self.errors)} error(s), {len(self.warnings)} "
            f"warning(s); {self.episodes} episode(s), {self.frames} frame(s), "
            f"version {self.version or '?'}"
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form (`--json`, `--report`)."""
        return {
            "url": self.url,
            "version": self.version,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "episodes": self.episodes,
            "frames": self.frames,
            "checks": list(self.checks),
            "issues": [asdict(i) for i in self.issues],
        }


class _Validator:
    def __init__(
        self, root: Location, report: ValidationReport, decode: bool, tolerance_s: float
    ) -> None:
        self.root = root
        self.report = report
        self.decode = decode
        self.tolerance_s = tolerance_s

    def add(
        self,
        check: str,
        message: str,
        *,
        episode: int | None = None,
        file: str | None = None,
        severity: Severity = "error",
    ) -> None:
        self.report.issues.append(Issue(severity, check, message, episode, file))

    # -- info.json -------------------------------------------------------------------------

    def check_info(self, info: Mapping[str, Any]) -> bool:
        """info.json schema; False when the rest cannot be checked."""
        file = fmt.INFO_PATH
        for key in REQUIRED_INFO_KEYS:
            if key not in info:
                self.add("info", f"info.json has no {key!r}", file=file)
        for key in TOTAL_KEYS:
            if not isinstance(info.get(key), int):
                self.add("info", f"info.json has no integer {key!r}", file=file)
        version = info.get("codebase_version")
        if version is not None and version not in fmt.READABLE_VERSIONS:
            self.add(
                "info",
                f"unknown codebase_version {version!r} (known: {', '.join(fmt.READABLE_VERSIONS)})",
                file=file,
            )
            return False
        fps = info.get("fps")
        if not isinstance(fps, int) or isinstance(fps, bool) or fps <= 0:
            self.add("info", f"fps must be a positive integer, got {fps!r}", file=file)
            return False
        features = info.get("features")
        if not isinstance(features, Mapping) or not features:
            self.add("info", "'features' must be a non-empty object", file=file)
            return False
        usable = True
        for name, spec in features.items():
            if not isinstance(spec, Mapping) or "dtype" not in spec or "shape" not in spec:
                self.add("info", f"feature {name!r} needs a dtype and a shape", file=file)
                usable = False
                continue
            shape = spec["shape"]
            if not isinstance(shape, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
            ):
                self.add("info", f"feature {name!r} has a bad shape {shape!r}", file=file)
                usable = False
            if spec["dtype"] not in KNOWN_DTYPES:
                self.add(
                    "info",
                    f"feature {name!r} has dtype {spec['dtype']!r}, not checked",
                    file=file,
                    severity="warning",
                )
            if spec["dtype"] == "video" and not info.get("video_path"):
                self.add("info", f"video feature {name!r} but no video_path", file=file)
        for name in fmt.DEFAULT_FEATURES:
            if name not in features:
                self.add("info", f"default feature {name!r} is not declared", file=file)
        return usable

    def check_names(self, features: Mapping[str, Feature]) -> None:
        """Feature names (a list, or a dict of lists) against the shape."""
        for feature in features.values():
            names = feature.names
            if names is None or feature.is_opaque:
                continue
            lists = list(names.values()) if isinstance(names, Mapping) else [names]
            for value in lists:
                if not isinstance(value, list | tuple):
                    continue
                allowed = {feature.shape[-1], feature.shape[0]}
                if feature.is_visual or len(feature.shape) > 1:
                    allowed.add(len(feature.shape))
                if len(value) not in allowed:
                    self.add(
                        "names",
                        f"feature {feature.name!r} has {len(value)} names for shape "
                        f"{list(feature.shape)}",
                        file=fmt.INFO_PATH,
                    )

    # -- data ------------------------------------------------------------------------------

    def check_data(self, meta: DatasetMetadata) -> dict[str, _Moments]:
        """Schema, index, timestamps and finite checks over every data file; the moments."""
        moments: dict[str, _Moments] = {}
        by_file: dict[str, list[EpisodeInfo]] = {}
        for episode in meta.episodes:
            by_file.setdefault(episode.data_path, []).append(episode)
        known = {ep.episode_index for ep in meta.episodes}
        rows_seen = 0
        for relative, episodes in by_file.items():
            try:
                table = read_parquet(self.root.child(relative), "LeRobot data parquet")
            except UserError as exc:
                self.add("schema", exc.message, file=relative)
                continue
            rows_seen += table.num_rows
            columns = self._columns(table, meta.features, relative)
            episode_column = columns.get("episode_index")
            if episode_column is None:
                continue
            for value in sorted(set(np.unique(episode_column).tolist()) - known):
                self.add(
                    "index",
                    f"rows of episode_index {value} that the episode metadata does not list",
                    file=relative,
                )
            for episode in episodes:
                rows = np.flatnonzero(episode_column == episode.episode_index)
                self._check_episode(meta, episode, rows, columns, relative, moments)
        if rows_seen != meta.total_frames:
            self.add(
                "index",
                f"data files hold {rows_seen} rows, the episodes {meta.total_frames} frames",
            )
        return moments

    def _columns(
        self, table: pa.Table, features: Mapping[str, Feature], file: str
    ) -> dict[str, NDArray[Any]]:
        columns: dict[str, NDArray[Any]] = {}
        for name, feature in features.items():
            if feature.is_video:
                continue
            if name not in table.column_names:
                severity: Severity = "warning" if feature.is_opaque else "error"
                self.add("schema", f"column {name!r} is missing", file=file, severity=severity)
                continue
            if not (feature.is_numeric or feature.dtype == "string"):
                continue
            column = table.column(name)
            leaf = _leaf_type(column.type)
            expected = _leaf_type(feature.arrow_type())
            if leaf != expected:
                self.add(
                    "schema",
                    f"column {name!r} is {leaf}, info.json declares {feature.dtype}",
                    file=file,
                )
            try:
                columns[name] = column_to_numpy(column, feature, file)
            except UserError as exc:
                self.add("schema", _without_prefix(exc.message, file), file=file)
        extra = sorted(set(table.column_names) - set(features))
        if extra:
            self.add(
                "schema",
                f"columns not declared in info.json: {', '.join(extra)}",
                file=file,
                severity="warning",
            )
        return columns

    def _check_episode(
        self,
        meta: DatasetMetadata,
        episode: EpisodeInfo,
        rows: NDArray[Any],
        columns: Mapping[str, NDArray[Any]],
        file: str,
        moments: dict[str, _Moments],
    ) -> None:
        ep = episode.episode_index
        if len(rows) != episode.length:
            self.add(
                "index",
                f"{len(rows)} data rows, the metadata says length {episode.length}",
                episode=ep,
                file=file,
            )
        if len(rows) == 0:
            return
        if rows[-1] - rows[0] + 1 != len(rows):
            self.add("index", "the episode's rows are not contiguous", episode=ep, file=file)
        frame_index = columns.get("frame_index")
        if frame_index is not None:
            values = frame_index[rows]
            if not np.array_equal(values, np.arange(len(rows))):
                self.add(
                    "index",
                    f"frame_index is not 0..{len(rows) - 1} ({_first_gap(values, 0)})",
                    episode=ep,
                    file=file,
                )
        index = columns.get("index")
        if index is not None:
            values = index[rows]
            start = episode.dataset_from_index
            if not np.array_equal(values, np.arange(start, start + len(rows))):
                self.add(
                    "index",
                    f"index is not {start}..{start + len(rows) - 1} ({_first_gap(values, start)})",
                    episode=ep,
                    file=file,
                )
        task_index = columns.get("task_index")
        if task_index is not None:
            bad = task_index[rows][(task_index[rows] < 0) | (task_index[rows] >= len(meta.tasks))]
            if bad.size:
                self.add(
                    "index",
                    f"task_index {int(bad[0])} is not a known task",
                    episode=ep,
                    file=file,
                )
        timestamps = columns.get("timestamp")
        if timestamps is not None:
            expected = np.arange(len(rows), dtype=np.float64) / meta.fps
            drift = np.abs(timestamps[rows].astype(np.float64) - expected)
            worst = int(np.argmax(drift))
            if drift[worst] > self.tolerance_s:
                self.add(
                    "timestamps",
                    f"timestamp of frame {worst} is {float(timestamps[rows][worst]):.6f}s, "
                    f"expected {expected[worst]:.6f}s at {meta.fps} fps "
                    f"(tolerance {self.tolerance_s}s)",
                    episode=ep,
                    file=file,
                )
        for name, values in columns.items():
            feature = meta.features[name]
            if not feature.is_numeric:
                continue
            data = values[rows]
            if np.dtype(feature.dtype).kind == "f":
                bad_count = int(np.count_nonzero(~np.isfinite(data)))
                if bad_count:
                    self.add(
                        "finite",
                        f"column {name!r} has {bad_count} NaN/inf value(s)",
                        episode=ep,
                        file=file,
                    )
            moments.setdefault(name, _Moments()).add(data)

    def check_index_ranges(self, meta: DatasetMetadata) -> None:
        """Episodes cover 0..N-1 without gaps, in episode order."""
        expected = 0
        for episode in meta.episodes:
            if episode.dataset_from_index != expected:
                self.add(
                    "index",
                    f"dataset_from_index is {episode.dataset_from_index}, expected {expected}",
                    episode=episode.episode_index,
                )
            expected = episode.dataset_to_index

    # -- videos ----------------------------------------------------------------------------

    def check_videos(self, meta: DatasetMetadata) -> None:
        """Frames in each episode window against its rows; first/last frame decodable."""
        if not meta.video_keys:
            return
        half = 0.5 / meta.fps
        packet_times: dict[str, NDArray[Any] | None] = {}
        for episode in meta.episodes:
            ep = episode.episode_index
            for key, segment in episode.videos.items():
                window = segment.to_timestamp - segment.from_timestamp
                if round(window * meta.fps) != episode.length:
                    self.add(
                        "video_frames",
                        f"{key}: window [{segment.from_timestamp:.4f}, "
                        f"{segment.to_timestamp:.4f})s is {window * meta.fps:.2f} frames, "
                        f"the episode has {episode.length}",
                        episode=ep,
                        file=segment.path,
                    )
                if segment.path not in packet_times:
                    packet_times[segment.path] = self._packet_times(segment.path)
                times = packet_times[segment.path]
                if times is None:
                    continue
                low = np.searchsorted(times, segment.from_timestamp - half)
                high = np.searchsorted(times, segment.to_timestamp - half)
                if int(high - low) != episode.length:
                    self.add(
                        "video_frames",
                        f"{key}: {int(high - low)} video frames in the episode window, "
                        f"{episode.length} data rows",
                        episode=ep,
                        file=segment.path,
                    )
        if self.decode:
            self._decode_windows(meta, {p for p, t in packet_times.items() if t is not None})

    def _packet_times(self, relative: str) -> NDArray[Any] | None:
        location = self.root.child(relative)
        try:
            with _open_container(location) as container:
                if not container.streams.video:
                    self.add("decode", "no video stream", file=relative)
                    return None
                stream = container.streams.video[0]
                base = float(Fraction(stream.time_base))
                times = [
                    float(packet.pts) * base
                    for packet in container.demux(stream)
                    if packet.pts is not None and packet.size
                ]
        except FileNotFoundError:
            self.add("decode", "video file does not exist", file=relative)
            return None
        except (av.error.FFmpegError, OSError, EOFError, ValueError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            self.add("decode", f"cannot read the video ({detail})", file=relative)
            return None
        return np.sort(np.asarray(times, dtype=np.float64))

    def _decode_windows(self, meta: DatasetMetadata, readable: set[str]) -> None:
        half = 0.5 / meta.fps
        videos: dict[str, VideoFile] = {}
        try:
            for episode in meta.episodes:
                for key, segment in episode.videos.items():
                    if segment.path not in readable or episode.length == 0:
                        continue
                    try:
                        video = videos.get(segment.path)
                        if video is None:
                            video = VideoFile(self.root.child(segment.path))
                            videos[segment.path] = video
                        for row in (0, episode.length - 1):
                            video.frame_at(segment.from_timestamp + row / meta.fps, half)
                    except UserError as exc:
                        detail = _without_prefix(exc.message, self.root.child(segment.path).display)
                        self.add(
                            "decode",
                            f"{key}: {detail}",
                            episode=episode.episode_index,
                            file=segment.path,
                        )
        finally:
            for video in videos.values():
                video.close()

    # -- stats and totals ------------------------------------------------------------------

    def check_stats(self, meta: DatasetMetadata, moments: Mapping[str, _Moments]) -> None:
        """stats.json: every numeric feature, right shapes, ordered, and equal to the data."""
        file = fmt.STATS_PATH
        stats = meta.stats
        if stats is None:
            self.add("stats", "the dataset has no statistics", file=file, severity="warning")
            return
        for name, feature in meta.features.items():
            if not (feature.is_numeric or feature.is_visual):
                continue
            entry = stats.get(name)
            if entry is None:
                severity: Severity = "warning" if name in fmt.DEFAULT_FEATURES else "error"
                self.add("stats", f"no statistics for {name!r}", file=file, severity=severity)
                continue
            shapes = (
                {(feature.frame_shape[2], 1, 1)}
                if feature.is_visual
                else {(feature.shape[-1],), feature.shape}
            )
            values: dict[str, NDArray[Any]] = {}
            for key in STATS_KEYS:
                if key not in entry:
                    self.add("stats", f"{name!r} has no {key!r}", file=file)
                elif entry[key].shape not in shapes:
                    self.add(
                        "stats",
                        f"{name!r} {key} has shape {list(entry[key].shape)}, expected "
                        f"{' or '.join(str(list(s)) for s in sorted(shapes))}",
                        file=file,
                    )
                else:
                    values[key] = np.asarray(entry[key], dtype=np.float64)
            if len(values) != len(STATS_KEYS):
                continue
            low, high, mean, std = (values[k] for k in STATS_KEYS)
            eps = 1e-6 * np.maximum(1.0, np.abs(high - low))
            if np.any(low > mean + eps) or np.any(mean > high + eps):
                self.add("stats", f"{name!r}: min <= mean <= max does not hold", file=file)
            if np.any(std < 0):
                self.add("stats", f"{name!r}: std is negative", file=file)
            counted = moments.get(name)
            if counted is None or counted.count == 0 or feature.is_visual:
                continue
            recomputed = counted.stats()
            for key in STATS_KEYS:
                stored = values[key].reshape(-1)
                fresh = recomputed[key]
                if stored.shape != fresh.shape:
                    continue
                if not np.allclose(stored, fresh, rtol=STATS_RTOL, atol=STATS_ATOL):
                    worst = int(np.argmax(np.abs(stored - fresh)))
                    self.add(
                        "stats",
                        f"{name!r} {key}[{worst}] is {stored[worst]:.6g} in stats.json, "
                        f"{fresh[worst]:.6g} recomputed from the data",
                        file=file,
                        severity="warning" if name in fmt.DEFAULT_FEATURES else "error",
                    )

    def check_totals(self, meta: DatasetMetadata) -> None:
        """info.json totals against the episodes, frames and tasks found."""
        found = {
            "total_episodes": len(meta.episodes),
            "total_frames": meta.total_frames,
            "total_tasks": len(meta.tasks),
        }
        for key, actual in found.items():
            declared = meta.info.get(key)
            if isinstance(declared, int) and declared != actual:
                self.add(
                    "totals",
                    f"info.json {key} is {declared}, the dataset has {actual}",
                    file=fmt.INFO_PATH,
                )


class _Moments:
    """Running count, sum, sum of squares, min and max per last dimension (float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.total: NDArray[Any] | None = None
        self.squares: NDArray[Any] | None = None
        self.low: NDArray[Any] | None = None
        self.high: NDArray[Any] | None = None

    def add(self, values: NDArray[Any]) -> None:
        data = np.asarray(values, dtype=np.float64)
        rows = data.reshape(-1, 1) if data.ndim == 1 else data.reshape(-1, data.shape[-1])
        if rows.shape[0] == 0:
            return
        low, high = rows.min(axis=0), rows.max(axis=0)
        total, squares = rows.sum(axis=0), (rows**2).sum(axis=0)
        if self.total is None or self.squares is None or self.low is None or self.high is None:
            self.total, self.squares, self.low, self.high = total, squares, low, high
        else:
            self.total, self.squares = self.total + total, self.squares + squares
            self.low, self.high = np.minimum(self.low, low), np.maximum(self.high, high)
        self.count += rows.shape[0]

    def stats(self) -> dict[str, NDArray[Any]]:
        assert self.total is not None and self.squares is not None
        assert self.low is not None and self.high is not None
        mean = self.total / self.count
        variance = np.maximum(0.0, self.squares / self.count - mean**2)
        return {"min": self.low, "max": self.high, "mean": mean, "std": np.sqrt(variance)}


class _open_container:  # noqa: N801 - used as a context manager
    def __init__(self, location: Location) -> None:
        self._handle: Any = None
        if location.local_path is not None:
            self._container: Any = av.open(str(location.local_path), "r")
        else:
            self._handle = location.fs.open(location.path, "rb", block_size=4 * 1024 * 1024)
            self._container = av.open(self._handle, "r")

    def __enter__(self) -> Any:
        return self._container

    def __exit__(self, *exc: object) -> None:
        self._container.close()
        if self._handle is not None:
            self._handle.close()


def _leaf_type(data_type: pa.DataType) -> pa.DataType:
    while (
        pa.types.is_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
        or pa.types.is_large_list(data_type)
    ):
        data_type = data_type.value_type
    if pa.types.is_large_string(data_type):
        return pa.string()
    return data_type


def _first_gap(values: NDArray[Any], start: int) -> str:
    expected = np.arange(start, start + len(values))
    where = int(np.flatnonzero(values != expected)[0]) if len(values) else 0
    return f"row {where} has {int(values[where])}, expected {int(expected[where])}"


def _without_prefix(message: str, where: str) -> str:
    return message.removeprefix(f"{where}: ")


def _metadata_check(message: str) -> str:
    return "index" if "frame range" in message or "listed twice" in message else "metadata"


def validate_dataset(
    url: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    decode_videos: bool = True,
    tolerance_s: float | None = None,
) -> ValidationReport:
    """Check the LeRobot dataset at `url`; never writes to it.

    `tolerance_s` bounds the timestamp drift (default 1e-4 s, the reader's own tolerance for
    finding a video frame by timestamp). `decode_videos=False` skips the `decode` check.
    Raises `UserError` when `url` is unusable (missing, not a LeRobot dataset).
    """
    text = os.fspath(url)
    root = resolve(text, settings)
    info_location = root.child(fmt.INFO_PATH)
    if not exists(info_location):
        if not exists(root):
            raise NotFoundError(f"{root.display} does not exist")
        raise NotFoundError(
            f"{root.display} is not a LeRobot dataset: {fmt.INFO_PATH} does not exist"
        )
    info = read_json(info_location, "LeRobot info.json")
    if not isinstance(info, dict):
        raise UserError(f"{info_location.display} is not a LeRobot info.json: not an object")
    report = ValidationReport(url=root.display, version=_str_or_none(info.get("codebase_version")))
    validator = _Validator(
        root, report, decode_videos, DEFAULT_TOLERANCE_S if tolerance_s is None else tolerance_s
    )
    report.checks = [c for c in CHECKS if decode_videos or c != "decode"]
    if not validator.check_info(info):
        return report
    try:
        meta = load_metadata(root)
    except UserError as exc:
        validator.add(_metadata_check(exc.message), exc.message)
        return report
    report.episodes, report.frames = len(meta.episodes), meta.total_frames
    validator.check_names(meta.features)
    validator.check_totals(meta)
    validator.check_index_ranges(meta)
    moments = validator.check_data(meta)
    validator.check_stats(meta, moments)
    validator.check_videos(meta)
    return report


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def report_json(report: ValidationReport) -> str:
    """The report as indented JSON text."""
    return json.dumps(report.to_json(), indent=2)


def issue_rows(issues: Iterable[Issue]) -> list[tuple[str, str, str, str]]:
    """(check, severity, episode, message) rows for a table; the file prefixes the message."""
    return [
        (
            i.check,
            i.severity,
            "" if i.episode is None else str(i.episode),
            f"{i.file}: {i.message}" if i.file else i.message,
        )
        for i in issues
    ]
