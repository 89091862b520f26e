"""Video decoding by timestamp: seek to the keyframe before, decode forward, match the pts.

A `VideoFile` keeps its container and decoder open between calls: the next frame of a
sequential read continues decoding where the last one stopped (no seek), a jump seeks to the
keyframe at or before the target. `VideoCache` holds a bounded number of open files (LRU).
Decoding errors become `UserError`s naming the file.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.core.storage import Location

# Continue decoding instead of seeking when the target is at most this many frames ahead.
FORWARD_FRAMES = 8
_DECODE_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, EOFError)


def _broken(display: str, exc: BaseException) -> UserError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return UserError(f"{display}: cannot decode video ({detail}): the file is broken or truncated")


class VideoFile:
    """One MP4 opened for frame lookups by timestamp (RGB, HWC uint8)."""

    def __init__(self, location: Location) -> None:
        self.display = location.display
        self._handle: Any = None
        try:
            if location.local_path is not None:
                self._container: Any = av.open(str(location.local_path), "r")
            else:
                self._handle = location.fs.open(location.path, "rb", block_size=4 * 1024 * 1024)
                self._container = av.open(self._handle, "r")
        except FileNotFoundError:
            raise UserError(f"{self.display} does not exist (a video the episodes name)") from None
        except _DECODE_ERRORS as exc:
            self.close()
            raise _broken(self.display, exc) from None
        if not self._container.streams.video:
            self.close()
            raise UserError(f"{self.display} has no video stream")
        self._stream = self._container.streams.video[0]
        self._time_base = Fraction(self._stream.time_base)
        rate = self._stream.average_rate or self._stream.base_rate or self._stream.guessed_rate
        self._frame_ticks = float(1 / (Fraction(rate) * self._time_base)) if rate else 1.0
        self._frames: Iterator[Any] | None = None
        self._pending: Any = None
        self._last_pts: int | None = None
        self._image: NDArray[Any] | None = None
        self._image_pts: int | None = None

    def frame_at(self, timestamp: float, tolerance_s: float) -> NDArray[Any]:
        """The frame whose pts is within `tolerance_s` of `timestamp` (seconds)."""
        target = timestamp / float(self._time_base)
        tolerance = tolerance_s / float(self._time_base)
        if (
            self._image is not None
            and self._image_pts is not None
            and abs(self._image_pts - target) <= tolerance
        ):
            return self._image
        try:
            return self._find(target, tolerance, timestamp, tolerance_s)
        except UserError:
            raise
        except _DECODE_ERRORS as exc:
            self._frames = None
            raise _broken(self.display, exc) from None

    def _find(
        self, target: float, tolerance: float, timestamp: float, tolerance_s: float
    ) -> NDArray[Any]:
        ahead = (
            self._last_pts is not None
            and self._frames is not None
            and (self._last_pts < target <= self._last_pts + FORWARD_FRAMES * self._frame_ticks)
        )
        seek_targets = [target, target - 4 * FORWARD_FRAMES * self._frame_ticks, 0.0]
        if ahead:
            seek_targets.insert(0, math.nan)  # first try: keep decoding from where we are
        last_seen: int | None = None
        for seek_to in seek_targets:
            if not math.isnan(seek_to):
                self._seek(max(0, math.floor(seek_to)))
            first, last_seen, image = self._scan(target, tolerance)
            if image is not None:
                return image
            if first is not None and first <= target + tolerance:
                break  # decoded from before the target and skipped over it: no such frame
        if last_seen is None or last_seen < target - tolerance:
            last = "none" if last_seen is None else f"{last_seen * float(self._time_base):.4f}s"
            raise UserError(
                f"{self.display}: the video ends before t={timestamp:.4f}s (last frame: {last}): "
                "it is truncated or the episode metadata is wrong"
            )
        raise UserError(
            f"{self.display}: no frame within {tolerance_s}s of t={timestamp:.4f}s: the video "
            "and the data timestamps disagree"
        )

    def _seek(self, pts: int) -> None:
        self._container.seek(pts, backward=True, any_frame=False, stream=self._stream)
        self._frames = self._decoded()
        self._pending = None
        self._last_pts = None

    def _decoded(self) -> Iterator[Any]:
        for packet in self._container.demux(self._stream):
            yield from packet.decode()

    def _scan(
        self, target: float, tolerance: float
    ) -> tuple[int | None, int | None, NDArray[Any] | None]:
        """Decode forward to `target`: (first pts seen, last pts seen, image or None)."""
        first: int | None = None
        while True:
            frame = self._pending
            self._pending = None
            if frame is None:
                frame = next(self._frames, None) if self._frames is not None else None
            if frame is None:
                self._frames = None
                return first, self._last_pts, None
            if frame.pts is None:
                continue
            pts = int(frame.pts)
            first = pts if first is None else first
            self._last_pts = pts
            if pts < target - tolerance:
                continue
            if pts > target + tolerance:
                self._pending = frame  # keep it for a later, larger target
                return first, pts, None
            self._image = np.asarray(frame.to_ndarray(format="rgb24"))
            self._image_pts = pts
            return first, pts, self._image

    def close(self) -> None:
        """Close the container (and the remote file handle)."""
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()


class VideoCache:
    """At most `max_open` open `VideoFile`s, least recently used closed first."""

    def __init__(self, max_open: int = 32) -> None:
        self.max_open = max_open
        self._files: OrderedDict[str, VideoFile] = OrderedDict()

    def get(self, key: str, opener: Callable[[], VideoFile]) -> VideoFile:
        """The open file for `key`, opening it with `opener` when needed."""
        video = self._files.get(key)
        if video is not None:
            self._files.move_to_end(key)
            return video
        video = opener()
        self._files[key] = video
        while len(self._files) > self.max_open:
            _, evicted = self._files.popitem(last=False)
            evicted.close()
        return video

    def close(self) -> None:
        """Close every open file."""
        while self._files:
            _, video = self._files.popitem()
            video.close()


def decode_image(data: bytes, where: str) -> NDArray[Any]:
    """PNG/JPEG bytes (an `image` feature's cell) → HWC uint8 RGB."""
    try:
        with av.open(io.BytesIO(data), "r") as container:
            for frame in container.decode(video=0):
                return np.asarray(frame.to_ndarray(format="rgb24"))
    except _DECODE_ERRORS as exc:
        raise UserError(f"{where}: cannot decode an image ({exc})") from None
    raise UserError(f"{where}: an image cell holds no picture")
