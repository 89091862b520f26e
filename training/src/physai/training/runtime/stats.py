"""Per-call latency of a loaded policy: a preallocated ring of nanosecond timings.

Recording a call is one store into a fixed `array('q')` (no allocation, no lock); statistics are
computed only when asked for, over the most recent `capacity` calls.
"""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_CAPACITY = 1 << 16


@dataclass(frozen=True)
class LatencyStats:
    """Latency of `count` calls, in microseconds (wall clock, `time.perf_counter_ns`)."""

    count: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    max_us: float

    @classmethod
    def of(cls, nanoseconds: NDArray[Any]) -> LatencyStats:
        """The statistics of an array of per-call durations in nanoseconds."""
        if nanoseconds.size == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        us = nanoseconds.astype(np.float64) / 1e3
        p50, p90, p99 = np.percentile(us, [50, 90, 99])
        mean, peak = float(us.mean()), float(us.max())
        return cls(int(us.size), float(p50), float(p90), float(p99), mean, peak)

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.count} calls: p50 {self.p50_us:.1f} us, p90 {self.p90_us:.1f} us, "
            f"p99 {self.p99_us:.1f} us, mean {self.mean_us:.1f} us"
        )


class LatencyRecorder:
    """A ring of the last `capacity` durations (a power of two), in nanoseconds."""

    __slots__ = ("calls", "mask", "ring")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two, got {capacity}")
        self.ring = array("q", bytes(8 * capacity))
        self.mask = capacity - 1
        self.calls = 0

    def record(self, nanoseconds: int) -> None:
        """Store one duration (the hot path inlines this)."""
        self.ring[self.calls & self.mask] = nanoseconds
        self.calls += 1

    def clear(self) -> None:
        """Forget every recorded call."""
        self.calls = 0

    def save(self) -> tuple[bytes, int]:
        """The recorded state, for `restore`."""
        return self.ring.tobytes(), self.calls

    def restore(self, saved: tuple[bytes, int]) -> None:
        """Go back to a state from `save` (in place: the ring is not reallocated)."""
        memoryview(self.ring).cast("B")[:] = saved[0]
        self.calls = saved[1]

    def samples(self) -> NDArray[Any]:
        """A copy of the recorded durations (the last `capacity` calls, in no particular order)."""
        kept = min(self.calls, self.mask + 1)
        return np.frombuffer(self.ring, dtype=np.int64, count=kept).copy()

    def stats(self) -> LatencyStats:
        """Statistics over the recorded calls."""
        return LatencyStats.of(self.samples())
