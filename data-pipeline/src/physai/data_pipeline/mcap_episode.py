"""One episode as a rosbag2 folder holding one MCAP file whose chunks are compressed per topic.

    with McapEpisode(Path("bags/episode_0001"), {"/camera": "none", "/joint_states": "zstd"}) as ep:
        ep.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        ep.write("/joint_states", t_ns, cdr_bytes)       # already serialized (CDR), as received
    # bags/episode_0001/{episode_0001_0.mcap, metadata.yaml, episode.json}

MCAP compresses whole chunks, so each compression (none, lz4, zstd) keeps its own open chunk
and a message goes to its topic's chunk: raw images go uncompressed (they barely compress and
compressing them costs CPU) while joint states and the like are compressed. Chunks of
different compressions overlap in time, which MCAP allows; readers merge them through the
chunk index (rosbags, the mcap library and ros2 bag do). `mcap`'s Writer holds one chunk
builder; this module gives it one per compression by swapping its builder and compression
before each message (pinned to mcap 1.x, and tested).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml
from mcap._chunk_builder import ChunkBuilder
from mcap.writer import CompressionType, Writer
from rosbags.typesys import Stores, get_typestore

from physai.core.errors import UserError
from physai.core.storage import write_text

Compression = Literal["none", "lz4", "zstd"]
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
_TYPES = {"none": CompressionType.NONE, "lz4": CompressionType.LZ4, "zstd": CompressionType.ZSTD}


def check_type(topic: str, msgtype: str) -> str:
    """The .msg definition of `msgtype` (the MCAP schema), or UserError when it is unknown."""
    try:
        definition, _ = TYPESTORE.generate_msgdef(msgtype, ros_version=2)
    except Exception:
        raise UserError(
            f"{topic}: message type {msgtype} is unknown to rosbags' ROS 2 type store "
            "(register custom messages there)"
        ) from None
    return str(definition)


class McapEpisode:
    """Writes one episode; `close()` (or leaving the `with`) finishes the file and its metadata."""

    def __init__(
        self,
        folder: Path,
        compression: dict[str, Compression] | None = None,
        *,
        chunk_size: int = 4 * 1024 * 1024,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if folder.exists():
            raise UserError(f"{folder} exists: bags are never overwritten")
        folder.mkdir(parents=True)
        self.folder = folder
        self.metadata = dict(metadata or {})
        """Written to episode.json when the episode closes (add to it while recording)."""
        self.file = folder / f"{name or folder.name}_0.mcap"  # `name`: the folder's final name
        self._compression = dict(compression or {})
        self._stream = self.file.open("wb")
        self._writer = Writer(self._stream, chunk_size=chunk_size, compression=CompressionType.NONE)
        self._writer.start(profile="ros2", library="physai")
        self._builders: dict[str, Any] = {"none": self._writer._Writer__chunk_builder}  # type: ignore[attr-defined]
        self._channels: dict[str, int] = {}
        self._types: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._first: int | None = None
        self._last = 0
        self._closed = False

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register a topic and its type (the MCAP schema is the type's .msg definition)."""
        if topic in self._channels:
            return
        definition = check_type(topic, msgtype)
        # Schema and channel records go to the data section itself, not into a chunk: a chunk
        # without messages is never written, and a streaming reader needs a channel before
        # the first message of any chunk that uses it.
        writer = self._writer
        current = writer._Writer__chunk_builder  # type: ignore[attr-defined]
        writer._Writer__chunk_builder = None  # type: ignore[attr-defined]
        try:
            schema = writer.register_schema(msgtype, "ros2msg", definition.encode())
            self._channels[topic] = writer.register_channel(
                topic, "cdr", schema, {"offered_qos_profiles": ""}
            )
        finally:
            writer._Writer__chunk_builder = current  # type: ignore[attr-defined]
        self._types[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, t_ns: int, data: bytes | memoryview) -> None:
        """Write one serialized (CDR) message of a registered topic, received at `t_ns`."""
        kind = self._compression.get(topic, "none")
        writer = self._writer
        builder = self._builders.get(kind)
        if builder is None:
            builder = self._builders[kind] = ChunkBuilder()
        writer._Writer__chunk_builder = builder  # type: ignore[attr-defined]
        writer._Writer__compression = _TYPES[kind]  # type: ignore[attr-defined]
        writer.add_message(self._channels[topic], t_ns, bytes(data), t_ns)
        self.counts[topic] += 1
        self._first = t_ns if self._first is None else min(self._first, t_ns)
        self._last = max(self._last, t_ns)

    @property
    def messages(self) -> int:
        """Messages written so far."""
        return sum(self.counts.values())

    def close(self) -> None:
        """Finish every open chunk, the MCAP summary, metadata.yaml and episode.json (fsynced)."""
        if self._closed:
            return
        self._closed = True
        writer = self._writer
        for kind, builder in self._builders.items():  # the last chunk of each compression
            writer._Writer__chunk_builder = builder  # type: ignore[attr-defined]
            writer._Writer__compression = _TYPES[kind]  # type: ignore[attr-defined]
            writer._Writer__finalize_chunk()  # type: ignore[attr-defined]
        writer._Writer__chunk_builder = ChunkBuilder()  # type: ignore[attr-defined]
        writer.finish()  # type: ignore[no-untyped-call]
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        write_text(str(self.folder / "metadata.yaml"), yaml.safe_dump(self._rosbag2_metadata()))
        write_text(str(self.folder / "episode.json"), json.dumps(self.metadata, indent=1) + "\n")

    def _rosbag2_metadata(self) -> dict[str, Any]:
        start = self._first or 0
        duration = self._last - start if self._first is not None else 0
        return {
            "rosbag2_bagfile_information": {
                "version": 9,
                "storage_identifier": "mcap",
                "relative_file_paths": [self.file.name],
                "duration": {"nanoseconds": duration},
                "starting_time": {"nanoseconds_since_epoch": start},
                "message_count": self.messages,
                "topics_with_message_count": [
                    {
                        "topic_metadata": {
                            "name": topic,
                            "type": self._types[topic],
                            "serialization_format": "cdr",
                            "offered_qos_profiles": [],
                            "type_description_hash": "",
                        },
                        "message_count": count,
                    }
                    for topic, count in self.counts.items()
                ],
                "compression_format": "",
                "compression_mode": "",
                "files": [
                    {
                        "path": self.file.name,
                        "starting_time": {"nanoseconds_since_epoch": start},
                        "duration": {"nanoseconds": duration},
                        "message_count": self.messages,
                    }
                ],
                "custom_data": {"writer": "physai"},
                "ros_distro": "physai",
            }
        }

    def __enter__(self) -> McapEpisode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
