"""Writing ROS 2 bags without ROS: the simulated robot's MCAP mode, tests and benchmarks.

    with EpisodeBagWriter(Path("bags/episode_000001"), task="reach the target") as bag:
        bag.joint_state(t_ns, names, position, velocity)
        bag.image(t_ns, "/camera/image_raw", rgb)      # HxWx3 uint8
        bag.array(t_ns, "/arm/command", action)

A rosbag2 folder (metadata.yaml + one .mcap or .db3 file, through `rosbags`) with the episode
metadata in `episode.json` beside it, which the converter reads for the task.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from physai.core.errors import UserError

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
FLOAT_ARRAY = "std_msgs/msg/Float64MultiArray"


def _stamp(t_ns: int) -> Any:
    types = TYPESTORE.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](
            sec=int(t_ns // 1_000_000_000), nanosec=int(t_ns % 1_000_000_000)
        ),
        frame_id="",
    )


class EpisodeBagWriter:
    """One episode as a rosbag2 folder (MCAP by default); the folder must not exist."""

    def __init__(
        self,
        path: Path,
        *,
        storage: Literal["mcap", "sqlite3"] = "mcap",
        compress: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if path.exists():
            raise UserError(f"{path} exists: bags are never overwritten")
        self.path = path
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(path, version=9, storage_plugin=plugin)
        if compress:
            mode = CompressionMode.STORAGE if storage == "mcap" else CompressionMode.MESSAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        self.metadata = dict(metadata or {})
        """Written to episode.json when the bag closes (add to it while recording)."""
        self._connections: dict[str, Connection] = {}
        self._types = TYPESTORE.types
        self.messages = 0

    def __enter__(self) -> EpisodeBagWriter:
        self._writer.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._writer.close()
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if self.metadata:
            (self.path / "episode.json").write_text(json.dumps(self.metadata, indent=1))

    def write(self, topic: str, msgtype: str, t_ns: int, message: Any) -> None:
        """Serialize and write any message at receive time `t_ns`."""
        self.write_raw(topic, msgtype, t_ns, TYPESTORE.serialize_cdr(message, msgtype))

    def write_raw(self, topic: str, msgtype: str, t_ns: int, data: bytes | memoryview) -> None:
        """Write an already serialized (CDR) message."""
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            self._connections[topic] = connection
        self._writer.write(connection, int(t_ns), data)
        self.messages += 1

    def joint_state(
        self,
        t_ns: int,
        names: Sequence[str],
        position: NDArray[Any],
        velocity: NDArray[Any] | None = None,
        effort: NDArray[Any] | None = None,
        *,
        topic: str = "/joint_states",
        stamp_ns: int | None = None,
    ) -> None:
        """A sensor_msgs/JointState (header stamp `stamp_ns`, default `t_ns`)."""
        empty = np.zeros(0, dtype=np.float64)
        message = self._types[JOINT_STATE](
            header=_stamp(t_ns if stamp_ns is None else stamp_ns),
            name=list(names),
            position=np.asarray(position, dtype=np.float64),
            velocity=empty if velocity is None else np.asarray(velocity, dtype=np.float64),
            effort=empty if effort is None else np.asarray(effort, dtype=np.float64),
        )
        self.write(topic, JOINT_STATE, t_ns, message)

    def image(
        self,
        t_ns: int,
        topic: str,
        rgb: NDArray[np.uint8],
        *,
        encoding: str = "rgb8",
        stamp_ns: int | None = None,
    ) -> None:
        """A sensor_msgs/Image from HxWx3 RGB (or HxW for mono8 / 16UC1 given as such)."""
        data = np.ascontiguousarray(rgb)
        if encoding == "bgr8":
            data = np.ascontiguousarray(data[:, :, ::-1])
        height, width = data.shape[:2]
        step = data.strides[0]
        message = self._types[IMAGE](
            header=_stamp(t_ns if stamp_ns is None else stamp_ns),
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=0,
            step=step,
            data=data.reshape(-1).view(np.uint8),
        )
        self.write(topic, IMAGE, t_ns, message)

    def compressed_image(self, t_ns: int, topic: str, data: bytes, fmt: str = "jpeg") -> None:
        """A sensor_msgs/CompressedImage holding JPEG or PNG bytes."""
        message = self._types[COMPRESSED_IMAGE](
            header=_stamp(t_ns), format=fmt, data=np.frombuffer(data, dtype=np.uint8)
        )
        self.write(topic, COMPRESSED_IMAGE, t_ns, message)

    def array(self, t_ns: int, topic: str, values: NDArray[Any]) -> None:
        """A std_msgs/Float64MultiArray (no header: aligned on receive time)."""
        types = self._types
        message = types[FLOAT_ARRAY](
            layout=types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
            data=np.asarray(values, dtype=np.float64),
        )
        self.write(topic, FLOAT_ARRAY, t_ns, message)
