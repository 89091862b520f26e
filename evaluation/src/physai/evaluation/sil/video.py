"""Stream rendered frames into an H.264 mp4, one frame at a time (no frame list held in memory:
a 1000-step episode at 480x480 would be ~700 MB of frames), with data-management's episode
encoder and LeRobot's h264 settings."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from physai.data_management import EpisodeEncoder


class Mp4Writer:
    """Write HxWx3 uint8 frames to `path` as H.264 (yuv420p, odd sizes padded by one pixel).

    with Mp4Writer(path, fps=25) as video:
        video.add(frame)
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = round(fps)
        self._encoder: EpisodeEncoder | None = None

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return 0 if self._encoder is None else self._encoder.frames

    def add(self, frame: NDArray[np.uint8]) -> None:
        """Encode one frame (the first one fixes the size)."""
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        if self._encoder is None:
            from physai.data_management import EpisodeEncoder, video_codec

            self._encoder = EpisodeEncoder(
                self.path,
                fps=self.fps,
                width=frame.shape[1],
                height=frame.shape[0],
                codec=video_codec("h264"),
            )
        self._encoder.add(frame)

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
