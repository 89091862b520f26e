"""Video encoding: one camera's episode streamed into an MP4, episodes packed into one file.

Encoder settings are LeRobot's (`lerobot/configs/video.py`, `RGBEncoderConfig`): AV1 through
libsvtav1 (`g=2`, `crf=30`, `preset=12`, `svtav1-params=fast-decode=0`) or h264 through libx264
(`g=2`, `crf=30`), pixel format yuv420p, time base 1/fps. Frames go to the encoder as they
arrive. Packing copies the encoded packets of each episode behind the previous ones (no
re-encoding), shifted by the duration already in the file, as LeRobot's concatenation does.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.data_management.lerobot.video_remux import (
    StreamSignature,
    VideoWindow,
    stream_signature,
)

PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class VideoCodec:
    """An encoder and LeRobot's settings for it."""

    name: str
    encoder: str
    g: int | None = 2
    crf: int | None = 30
    preset: int | str | None = None
    fast_decode: int = 0
    pix_fmt: str = PIX_FMT
    extra_options: dict[str, Any] = field(default_factory=dict)

    def options(self, threads: int | None = None) -> dict[str, str]:
        """The codec options passed to FFmpeg (as strings)."""
        opts: dict[str, str] = {}
        if self.g is not None:
            opts["g"] = str(self.g)
        if self.crf is not None:
            opts["crf"] = str(self.crf)
        if self.preset is not None:
            opts["preset"] = str(self.preset)
        if self.encoder == "libsvtav1":
            params = [f"fast-decode={max(0, min(2, self.fast_decode))}"]
            if threads is not None:
                params.append(f"lp={threads}")
            opts["svtav1-params"] = ":".join(params)
        else:
            if self.fast_decode:
                opts["tune"] = "fastdecode"
            if threads is not None:
                opts["threads"] = str(threads)
        for key, value in self.extra_options.items():
            opts.setdefault(key, str(value))
        return opts

    def info(self) -> dict[str, Any]:
        """The encoder's `video.*` keys recorded in info.json (as LeRobot records them)."""
        return {
            "video.g": self.g,
            "video.crf": self.crf,
            "video.preset": self.preset,
            "video.fast_decode": self.fast_decode,
            "video.video_backend": "pyav",
            "video.extra_options": dict(self.extra_options),
        }


CODECS: dict[str, VideoCodec] = {
    "av1": VideoCodec(name="av1", encoder="libsvtav1", preset=12),
    "h264": VideoCodec(name="h264", encoder="libx264"),
}
_ALIASES = {"libsvtav1": "av1", "libx264": "h264"}


def video_codec(name: str) -> VideoCodec:
    """`av1` (default, libsvtav1) or `h264` (libx264), with LeRobot's settings."""
    key = _ALIASES.get(name, name)
    if key not in CODECS:
        raise UserError(f"video codec {name!r} is not supported: use 'av1' or 'h264'")
    codec = CODECS[key]
    if codec.encoder not in av.codecs_available:
        raise UserError(f"this PyAV build has no {codec.encoder} encoder (needed for {key})")
    return codec


class EpisodeEncoder:
    """Streams one camera's frames (HWC uint8 RGB) into an MP4 file."""

    def __init__(
        self,
        path: Path,
        *,
        fps: int,
        width: int,
        height: int,
        codec: VideoCodec,
        threads: int | None = None,
    ) -> None:
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole config at level 3
        self.path = path
        self.frames = 0
        self._fps = fps
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container: Any = av.open(str(path), "w", format="mp4")
        try:
            stream: Any = self._container.add_stream(
                codec.encoder, rate=fps, options=codec.options(threads)
            )
            stream.width, stream.height, stream.pix_fmt = width, height, codec.pix_fmt
            stream.time_base = Fraction(1, fps)
        except BaseException:
            self.abort()
            raise
        self._stream = stream

    def add(self, frame: NDArray[Any]) -> None:
        """Encode one frame (HWC uint8 RGB)."""
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames
        video_frame.time_base = Fraction(1, self._fps)
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        """Drop the file."""
        with contextlib.suppress(Exception):
            self._container.close()
        self.path.unlink(missing_ok=True)


class PackedVideo:
    """One `videos/<camera>/chunk-XXX/file-XXX.mp4` receiving whole episodes, one after another."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.bytes = 0
        self.duration_s = 0.0
        self.signature: StreamSignature | None = None
        self._offset = 0  # in the stream's time base
        self._container: Any = av.open(
            str(path), "w", format="mp4", options={"movflags": "faststart"}
        )
        self._stream: Any = None

    def append(self, episode: Path, frames: int, fps: int) -> tuple[float, float]:
        """Copy an episode's MP4 behind what the file holds; its (from, to) timestamps."""
        source: Any
        with av.open(str(episode)) as source:
            stream: Any = source.streams.video[0]
            signature = stream_signature(stream)
            packets = [p for p in source.demux(stream) if p.dts is not None]
            ticks = round(Fraction(frames, fps) / signature.time_base)
            window = VideoWindow(stream, signature, packets, 0, ticks)
            if self.bytes == 0:  # the container's own bytes (headers, index), counted once
                self.bytes = max(0, os.path.getsize(episode) - window.payload_bytes)
            timestamps = self.append_window(window)
        return timestamps

    def accepts(self, window: VideoWindow) -> bool:
        """True when `window`'s packets can join this file's stream (same codec setup)."""
        return self.signature is None or self.signature == window.signature

    def append_window(self, window: VideoWindow) -> tuple[float, float]:
        """Copy a window's packets behind what the file holds; their (from, to) timestamps."""
        if self._stream is None:
            self._stream = self._container.add_stream_from_template(window.stream, opaque=True)
            self._stream.time_base = window.signature.time_base
            self.signature = window.signature
        elif not self.accepts(window):
            raise ValueError(f"{self.path}: a window with other codec parameters")
        shift = self._offset - window.start
        for packet in window.packets:
            packet.pts += shift
            packet.dts += shift
            packet.stream = self._stream
            self._container.mux(packet)
        self.bytes += window.payload_bytes
        time_base = window.signature.time_base
        start = float(self._offset * time_base)
        self._offset += window.duration
        end = float(self._offset * time_base)
        self.duration_s = end
        return start, end

    def close(self) -> None:
        """Finish the file (moov atom moved to the front)."""
        self._container.close()

    def abort(self) -> None:
        """Drop the file."""
        with contextlib.suppress(Exception):
            self._container.close()
        self.path.unlink(missing_ok=True)


def probe_video_info(path: Path) -> dict[str, Any]:
    """The stream-derived `video.*` keys LeRobot records in info.json for a camera."""
    container: Any = av.open(str(path))
    try:
        stream: Any = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.fps": int(stream.base_rate),
            "video.channels": len(av.VideoFormat(stream.pix_fmt).components),
            "has_audio": len(container.streams.audio) > 0,
        }
    finally:
        container.close()
