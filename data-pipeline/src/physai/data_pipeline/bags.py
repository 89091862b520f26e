"""Opening ROS bags with `rosbags`: rosbag2 folders (MCAP or sqlite3, split files), bare .mcap
and .db3 files, and ROS 1 .bag files; every failure is a one-line `UserError` naming the bag.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.typesys import Stores, get_typestore

from physai.core.errors import UserError

BAG_SUFFIXES = (".mcap", ".db3", ".bag")
EPISODE_METADATA = "episode.json"
"""Episode metadata the recorder writes inside a rosbag2 folder (or `<bag file>.episode.json`
beside a bag file): task, robot_id, operator, tags, ..."""


def find_bags(paths: Collection[str | Path]) -> list[Path]:
    """The bags named by `paths`: bag files, rosbag2 folders (with metadata.yaml), or folders
    holding either (one level down, sorted). Raises UserError for a path that holds none."""
    bags: list[Path] = []
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise UserError(f"{path}: no such bag")
        if path.is_file():
            if path.suffix not in BAG_SUFFIXES:
                raise UserError(f"{path}: not a bag (expected {', '.join(BAG_SUFFIXES)})")
            bags.append(path)
        elif (path / "metadata.yaml").exists():
            bags.append(path)
        else:
            found = sorted(  # hidden entries are left out: the recorder's episodes in progress
                p
                for p in path.iterdir()
                if not p.name.startswith(".")
                and ((p.is_file() and p.suffix in BAG_SUFFIXES) or (p / "metadata.yaml").exists())
            )
            if not found:
                raise UserError(f"{path}: holds no bag")
            bags.extend(found)
    return bags


def episode_metadata_path(bag: Path) -> Path:
    """Where a bag's episode metadata is (whether or not it exists)."""
    return bag / EPISODE_METADATA if bag.is_dir() else Path(f"{bag}.{EPISODE_METADATA}")


def episode_metadata(bag: Path) -> dict[str, Any]:
    """A bag's episode metadata ({} when it has none); a one-line UserError when unreadable."""
    meta = episode_metadata_path(bag)
    if not meta.is_file():
        return {}
    try:
        found = json.loads(meta.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{meta}: not valid JSON") from None
    if not isinstance(found, dict):
        raise UserError(f"{meta}: not a JSON object")
    return found


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[AnyReader]:
    """An open `AnyReader` over one bag; failures to open it are one-line UserErrors."""
    default = get_typestore(Stores.ROS1_NOETIC if path.suffix == ".bag" else Stores.ROS2_JAZZY)
    try:
        reader = AnyReader([path], default_typestore=default)
        reader.open()
    except FileNotFoundError:
        raise UserError(f"{path}: no such bag") from None
    except Exception as exc:  # rosbags raises several unrelated types for unreadable files
        raise UserError(f"{path}: not a readable bag ({_reason(exc)})") from None
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def messages(
    reader: AnyReader, path: Path, connections: Collection[Connection] = ()
) -> Iterator[tuple[Connection, int, Any]]:
    """(connection, receive time ns, raw bytes) in time order; a corrupt or truncated part of
    the bag raises UserError naming the bag and the last good time."""
    last = reader.start_time if reader.message_count else 0
    stream = reader.messages(connections=connections)
    while True:
        try:
            item = next(stream)
        except StopIteration:
            return
        except Exception as exc:
            raise UserError(
                f"{path}: corrupt or truncated after t={last / 1e9:.6f} s ({_reason(exc)})"
            ) from None
        last = item[1]
        yield item


def deserialize(reader: AnyReader, path: Path, connection: Connection, raw: Any, t: int) -> Any:
    """One message, or UserError naming bag, topic and time."""
    try:
        return reader.deserialize(raw, connection.msgtype)
    except Exception as exc:
        raise UserError(
            f"{path}: topic {connection.topic} at t={t / 1e9:.6f} s does not deserialize as "
            f"{connection.msgtype} ({_reason(exc)})"
        ) from None


def topic_connections(reader: AnyReader, path: Path, topic: str) -> list[Connection]:
    """The connections of `topic`, or UserError listing the topics the bag has."""
    found = [c for c in reader.connections if c.topic == topic]
    if not found:
        have = sorted({c.topic for c in reader.connections})
        raise UserError(f"{path}: topic {topic} is not in the bag (it has {have})")
    return found


@dataclass(frozen=True)
class TopicSummary:
    """What `physai data-pipeline inspect` shows for one topic."""

    topic: str
    msgtype: str
    count: int
    rate_hz: float | None
    first_s: float | None
    last_s: float | None
    max_gap_s: float | None
    gaps: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return self.__dict__.copy()


def summarize_times(
    topic: str, msgtype: str, times: NDArray[np.int64], gap_factor: float = 3.0
) -> TopicSummary:
    """Counts, mean rate and gaps (steps longer than `gap_factor` x the median step)."""
    count = int(times.size)
    if count == 0:
        return TopicSummary(topic, msgtype, 0, None, None, None, None, 0)
    first, last = float(times[0]) / 1e9, float(times[-1]) / 1e9
    if count < 2:
        return TopicSummary(topic, msgtype, 1, None, first, last, None, 0)
    steps = np.diff(np.sort(times))
    median = float(np.median(steps))
    gaps = int(np.count_nonzero(steps > gap_factor * median)) if median > 0 else 0
    span = float(times[-1] - times[0])
    rate = (count - 1) / (span / 1e9) if span > 0 else None
    return TopicSummary(topic, msgtype, count, rate, first, last, float(steps.max()) / 1e9, gaps)


def inspect_bag(path: Path, gap_factor: float = 3.0) -> list[TopicSummary]:
    """Every topic of one bag: type, count, rate and gaps (receive times; nothing decoded)."""
    with open_bag(path) as reader:
        times: dict[str, list[int]] = {c.topic: [] for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
        for connection, t, _ in messages(reader, path):
            times[connection.topic].append(t)
    return [
        summarize_times(topic, types[topic], np.asarray(times[topic], np.int64), gap_factor)
        for topic in sorted(times)
    ]


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
