"""Turning deserialized ROS messages into numpy: images, numeric fields, header stamps.

Messages are the objects `rosbags` deserializes (attributes named as in the .msg files; uint8[]
fields arrive as numpy arrays). Each function raises `UserError` naming what is wrong; the
caller adds the bag, topic and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")

# bytes per pixel and channels of the raw encodings we decode
_RAW = {
    "rgb8": (3, 3),
    "bgr8": (3, 3),
    "rgba8": (4, 4),
    "bgra8": (4, 4),
    "mono8": (1, 1),
    "8uc1": (1, 1),
    "8uc3": (3, 3),
    "mono16": (2, 1),
    "16uc1": (2, 1),
}


def header_time_ns(message: Any) -> int | None:
    """`header.stamp` in nanoseconds, or None when the message has no header or a zero one."""
    header = getattr(message, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return None
    value = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return value or None


def raw_image(message: Any, depth_range_mm: tuple[float, float] = (0.0, 4000.0)) -> NDArray[Any]:
    """A sensor_msgs Image as HxWx3 uint8 RGB: rgb8/bgr8/rgba8/bgra8 reordered, mono8
    replicated, 16UC1/mono16 depth scaled from `depth_range_mm` to 0..255 grey."""
    encoding = str(message.encoding).lower()
    if encoding not in _RAW:
        raise UserError(f"image encoding {message.encoding!r} is not supported")
    size, channels = _RAW[encoding]
    height, width, step = int(message.height), int(message.width), int(message.step)
    data = np.asarray(message.data, dtype=np.uint8)
    if height <= 0 or width <= 0 or step < width * size or data.size < height * step:
        raise UserError(
            f"image {width}x{height} step {step} does not fit its {data.size} bytes of data"
        )
    rows = data[: height * step].reshape(height, step)[:, : width * size]
    if size == 2:
        dtype = ">u2" if message.is_bigendian else "<u2"
        depth = rows.copy().view(dtype).reshape(height, width).astype(np.float32)
        low, high = depth_range_mm
        grey = np.clip((depth - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    pixels = rows.reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


class CompressedDecoder:
    """Decodes sensor_msgs CompressedImage (JPEG or PNG) to HxWx3 uint8 RGB with FFmpeg."""

    def __init__(self) -> None:
        self._jpeg: Any = None  # one JPEG decoder serves every image

    def decode(self, message: Any) -> NDArray[Any]:
        """One CompressedImage as HxWx3 uint8 RGB."""
        data = bytes(np.asarray(message.data, dtype=np.uint8))
        context: Any
        if data[:3] == b"\xff\xd8\xff":
            if self._jpeg is None:
                self._jpeg = av.CodecContext.create("mjpeg", "r")
            context = self._jpeg
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            # FFmpeg's PNG decoder keeps APNG state between packets: a fresh one per image
            context = av.CodecContext.create("png", "r")
        else:
            raise UserError(f"compressed image format {message.format!r} is not JPEG or PNG")
        try:
            frames = context.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            raise UserError(f"compressed image does not decode: {exc}") from None
        if not frames:
            raise UserError("compressed image does not decode to a frame")
        image: NDArray[Any] = frames[0].to_ndarray(format="rgb24")
        return image


def field_values(message: Any, paths: Sequence[str]) -> list[float]:
    """The numbers at `paths` (`position`, `twist.linear.x`), flattened and concatenated."""
    values: list[float] = []
    for path in paths:
        value = message
        for part in path.split("."):
            if not hasattr(value, part):
                raise UserError(f"the message has no field {path!r}")
            value = getattr(value, part)
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise UserError(f"field {path!r} is not numeric")
        values.extend(float(v) for v in array.reshape(-1))
    return values


def joint_values(message: Any, field: str, names: Sequence[str]) -> list[float]:
    """JointState `field` (position, velocity, effort) of the joints `names`, in that order."""
    have = [str(n) for n in message.name]
    array = np.asarray(getattr(message, field, None))
    if array.ndim != 1 or array.size != len(have):
        raise UserError(f"JointState {field} has {array.size} values for {len(have)} joints")
    index = {name: i for i, name in enumerate(have)}
    missing = [n for n in names if n not in index]
    if missing:
        raise UserError(f"JointState has no joints {missing} (it has {have})")
    return [float(array[index[n]]) for n in names]
