"""Aligning multi-rate streams to one frame clock (pure numpy; times are int nanoseconds).

Policy (specifications/bag-conversion.specification.md):

- The frame clock starts at the latest first sample of all mapped streams (every stream has a
  value from frame 0) and runs at 1/fps up to the earliest last sample.
- Numbers: `last` takes the newest sample at or before the frame time; `linear` interpolates
  between it and the next one (the newest is held after a stream's last sample).
- Images: the sample nearest the frame time, before or after.
- Staleness: for numbers, the age of the newest sample at or before the frame time; for
  images, the distance to the nearest. Above `max_staleness_ms` a frame is stale: the bag
  fails, or (`on_stale: drop`) the frame is dropped and the runs of good frames around it
  become separate episodes, since LeRobot timestamps are frame_index / fps without holes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError

NS = 1_000_000_000


@dataclass(frozen=True)
class Stream:
    """One topic's sample times (int64 ns, increasing) and, for numbers, values (N, D)."""

    topic: str
    times: NDArray[np.int64]
    values: NDArray[np.float64] | None = None


def check_times(stream: Stream) -> None:
    """Times must strictly increase: raise UserError naming the first offending sample."""
    if stream.times.size == 0:
        raise UserError(f"topic {stream.topic} has no messages")
    steps = np.diff(stream.times)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate" if steps[bad[0]] == 0 else "non-monotonic"
        raise UserError(
            f"topic {stream.topic}: {kind} timestamp at t={stream.times[i] / NS:.6f} s "
            f"(message {i}, after t={stream.times[i - 1] / NS:.6f} s)"
        )


def frame_clock(streams: list[Stream], fps: int) -> NDArray[np.int64]:
    """Frame times (ns) covered by every stream: latest first sample to earliest last."""
    start = max(int(s.times[0]) for s in streams)
    end = min(int(s.times[-1]) for s in streams)
    if end < start:
        raise UserError("the mapped topics do not overlap in time: no frame has every stream")
    # 1 us of slack: recorders floor their stamps, so k/fps can land a hair after the last one
    count = (end - start + 1000) * fps // NS + 1
    return start + (np.arange(count, dtype=np.int64) * NS) // fps


def previous_index(times: NDArray[np.int64], clock: NDArray[np.int64]) -> NDArray[np.int64]:
    """Index of the newest sample at or before each frame time (-1: none)."""
    return np.searchsorted(times, clock, side="right").astype(np.int64) - 1


def align_numbers(
    stream: Stream, clock: NDArray[np.int64], method: str
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Values at the frame times (`last` or `linear`) and each frame's staleness (ns)."""
    assert stream.values is not None
    before = previous_index(stream.times, clock)
    safe = np.clip(before, 0, None)
    staleness = np.where(before >= 0, clock - stream.times[safe], np.iinfo(np.int64).max)
    values = stream.values[safe]
    if method == "linear" and stream.times.size > 1:
        after = np.clip(safe + 1, None, stream.times.size - 1)
        span = (stream.times[after] - stream.times[safe]).astype(np.float64)
        weight = np.divide(
            (clock - stream.times[safe]).astype(np.float64),
            span,
            out=np.zeros_like(span),
            where=span > 0,
        )
        weight = np.clip(weight, 0.0, 1.0)[:, None]
        values = values + weight * (stream.values[after] - values)
    return values, staleness


def nearest_index(
    times: NDArray[np.int64], clock: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Index of the sample nearest each frame time, and the distance (ns)."""
    after = np.clip(np.searchsorted(times, clock, side="left"), 0, times.size - 1)
    before = np.clip(after - 1, 0, None)
    pick_before = np.abs(clock - times[before]) <= np.abs(times[after] - clock)
    index = np.where(pick_before, before, after).astype(np.int64)
    return index, np.abs(clock - times[index])


def good_runs(stale: NDArray[np.bool_], min_frames: int = 1) -> list[tuple[int, int]]:
    """[start, stop) runs of frames that are not stale, at least `min_frames` long."""
    good = np.concatenate([[False], ~stale, [False]])
    edges = np.flatnonzero(np.diff(good.astype(np.int8)))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    return [(a, b) for a, b in runs if b - a >= min_frames]
