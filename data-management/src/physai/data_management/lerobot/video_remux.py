"""Encoded video windows: one episode's packets cut out of a packed MP4 without decoding.

A LeRobot writer encodes each episode on its own and packs the encoded episodes one after the
other, so every episode starts on a keyframe and owns a disjoint pts range. `SourceVideos`
reads the packets of one episode's window `[from_timestamp, to_timestamp)` (seek to the
keyframe before it, keep packets whose pts fall inside it), and `PackedVideo.append_window`
(video_encode.py) copies them into a new file behind what it holds. Packets keep their bytes,
so the frames decode identically; only the time offset changes.

A window is not reusable (None) when it does not start on a keyframe or does not hold one
packet per frame; callers re-encode that episode instead.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from physai.core.errors import UserError
from physai.core.storage import Location

_DEMUX_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, EOFError)


@dataclass(frozen=True)
class StreamSignature:
    """What two streams must share for their packets to live in one MP4 stream."""

    codec: str
    width: int
    height: int
    pix_fmt: str | None
    extradata: bytes
    time_base: Fraction


def stream_signature(stream: Any) -> StreamSignature:
    """The signature of an open PyAV video stream."""
    context = stream.codec_context
    return StreamSignature(
        codec=context.codec.canonical_name,
        width=int(context.width),
        height=int(context.height),
        pix_fmt=stream.pix_fmt,
        extradata=bytes(context.extradata or b""),
        time_base=Fraction(stream.time_base),
    )


@dataclass
class VideoWindow:
    """An episode's encoded packets, with the stream they came from (the output's template).

    `start` and `duration` are in `signature.time_base` ticks; packets keep their source pts.
    """

    stream: Any
    signature: StreamSignature
    packets: list[Any]
    start: int
    duration: int

    @property
    def payload_bytes(self) -> int:
        """Bytes of encoded data in the window."""
        return sum(int(p.size) for p in self.packets)


@dataclass(frozen=True)
class FilePart:
    """An episode of a source MP4 that is copied whole: its window stays as it is.

    `first` on the file's first episode (the file is copied then), `last` on its last.
    """

    location: Location
    from_timestamp: float
    to_timestamp: float
    first: bool
    last: bool


class _Source:
    """One open MP4 for demuxing (a local path or a remote file handle)."""

    def __init__(self, location: Location) -> None:
        self.display = location.display
        self._handle: Any = None
        try:
            if location.local_path is not None:
                self.container: Any = av.open(str(location.local_path), "r")
            else:
                self._handle = location.fs.open(location.path, "rb", block_size=4 * 1024 * 1024)
                self.container = av.open(self._handle, "r")
        except FileNotFoundError:
            raise UserError(f"{self.display} does not exist (a video the episodes name)") from None
        except _DEMUX_ERRORS as exc:
            self.close()
            raise UserError(f"{self.display}: cannot read video ({_detail(exc)})") from None
        if not self.container.streams.video:
            self.close()
            raise UserError(f"{self.display} has no video stream")
        self.stream = self.container.streams.video[0]
        self.signature = stream_signature(self.stream)

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()


def _detail(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class SourceVideos:
    """Packet windows out of packed MP4 files, keeping up to `max_open` files open (LRU)."""

    def __init__(self, max_open: int = 16) -> None:
        self.max_open = max_open
        self._open: OrderedDict[str, _Source] = OrderedDict()

    def window(
        self, location: Location, from_timestamp: float, to_timestamp: float, frames: int
    ) -> VideoWindow | None:
        """The packets of `[from_timestamp, to_timestamp)` in the file at `location`.

        None when the window cannot be copied as is (no keyframe at its start, or not one
        packet per frame); a `UserError` when the file cannot be read.
        """
        source = self._source(location)
        base = source.signature.time_base
        start = round(Fraction(from_timestamp) / base)
        end = round(Fraction(to_timestamp) / base)
        half_frame = (end - start) / max(1, 2 * frames)  # in ticks; a frame can be one tick
        packets: list[Any] = []
        try:
            source.container.seek(
                max(0, start), backward=True, any_frame=False, stream=source.stream
            )
            for packet in source.container.demux(source.stream):
                if packet.dts is None or packet.pts is None:
                    continue  # the demuxer's end-of-stream flush packet
                if packet.dts >= end - half_frame:
                    break
                if start - half_frame <= packet.pts < end - half_frame:
                    packets.append(packet)
        except _DEMUX_ERRORS as exc:
            self._drop(location)
            raise UserError(
                f"{source.display}: cannot read video ({_detail(exc)}): "
                "the file is broken or truncated"
            ) from None
        if len(packets) != frames or not packets[0].is_keyframe:
            return None
        return VideoWindow(source.stream, source.signature, packets, start, end - start)

    def _source(self, location: Location) -> _Source:
        key = location.display
        source = self._open.get(key)
        if source is not None:
            self._open.move_to_end(key)
            return source
        source = _Source(location)
        self._open[key] = source
        while len(self._open) > self.max_open:
            _, evicted = self._open.popitem(last=False)
            evicted.close()
        return source

    def _drop(self, location: Location) -> None:
        source = self._open.pop(location.display, None)
        if source is not None:
            source.close()

    def close(self) -> None:
        """Close every open file."""
        while self._open:
            _, source = self._open.popitem()
            source.close()

    def __enter__(self) -> SourceVideos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
