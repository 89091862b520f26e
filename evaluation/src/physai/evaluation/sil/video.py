"""Stream rendered frames into an H.264 mp4 with PyAV, one frame at a time (no frame list
held in memory: a 1000-step episode at 480x480 would be ~700 MB of frames)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError

INSTALL_AV = "pip install av (PyAV) to write --video"


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingDependencyError("PyAV", INSTALL_AV) from None
    return av


class Mp4Writer:
    """Write HxWx3 uint8 frames to `path` as H.264 (yuv420p, odd sizes padded by one pixel).

    with Mp4Writer(path, fps=25) as video:
        video.add(frame)
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.av = _av()
        self.path = path
        self.rate = Fraction(fps).limit_denominator(1000)
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None

    def add(self, frame: NDArray[np.uint8]) -> None:
        """Encode one frame (the first one fixes the size)."""
        height, width = frame.shape[:2]
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = self.av.open(str(self.path), "w", format="mp4")
            self._stream = self._container.add_stream("libx264", rate=self.rate)
            self._stream.width, self._stream.height = width + width % 2, height + height % 2
            self._stream.pix_fmt = "yuv420p"
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        image = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(image):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
