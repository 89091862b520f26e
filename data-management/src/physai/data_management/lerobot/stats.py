"""Feature statistics the way LeRobot computes them (min/max/mean/std/count + quantiles).

Per episode (lerobot 0.6.1 `compute_stats.py`): numeric features over all frames, per last
dimension; cameras over a sample of frames (`sample_indices`), downsampled when a side reaches
300 px, per channel, scaled to [0, 1], shape (C, 1, 1), `count` = frames sampled. Quantiles come
from a 5000-bin histogram between min and max. Episodes combine by count-weighted mean, the
parallel variance formula and count-weighted quantiles (`aggregate`).

Camera statistics are built from per-channel counts of the 256 uint8 values (`PixelCounts`),
so a sampled frame costs 768 integers, not its pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.data_management.lerobot.format import QUANTILE_KEYS, QUANTILES

HISTOGRAM_BINS = 5000
_EDGE_PAD = 1e-10

Stats = dict[str, NDArray[Any]]


def num_samples(length: int, low: int = 100, high: int = 10_000, power: float = 0.75) -> int:
    """How many frames of a `length`-frame episode LeRobot samples for camera statistics."""
    low = min(low, length)
    return max(low, min(int(length**power), high))


def sample_indices(length: int) -> NDArray[Any]:
    """The frame indices LeRobot samples for camera statistics (evenly spaced, rounded)."""
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.round(np.linspace(0, length - 1, num_samples(length))).astype(np.int64)


def downsample_step(height: int, width: int, target: int = 150, threshold: int = 300) -> int:
    """LeRobot's stride for camera statistics: 1 below `threshold` px, else ~`target` px wide."""
    if max(height, width) < threshold:
        return 1
    return max(1, int((width if width > height else height) / target))


def _quantile(hist: NDArray[Any], edges: NDArray[Any], target: float) -> float:
    cumsum = np.cumsum(hist)
    idx = int(np.searchsorted(cumsum, target))
    if idx == 0:
        return float(edges[0])
    if idx >= len(cumsum):
        return float(edges[-1])
    before = cumsum[idx - 1]
    in_bin = cumsum[idx] - before
    if in_bin == 0:
        return float(edges[idx])
    return float(edges[idx] + (target - before) / in_bin * (edges[idx + 1] - edges[idx]))


def _histogram_quantiles(
    values: NDArray[Any], low: Any, high: Any, count: int, weights: NDArray[Any] | None = None
) -> list[float]:
    if not (np.isfinite(low) and np.isfinite(high)):
        return [float("nan")] * len(QUANTILES)
    edges = np.linspace(low - _EDGE_PAD, high + _EDGE_PAD, HISTOGRAM_BINS + 1)
    edges = edges.astype(np.result_type(low), copy=False)
    hist, _ = np.histogram(values, bins=edges, weights=weights)
    return [_quantile(hist, edges, q * count) for q in QUANTILES]


def numeric_stats(values: NDArray[Any]) -> Stats:
    """Statistics of one episode's numeric feature, `values` of shape (frames, *shape)."""
    array = np.asarray(values)
    frames = int(array.shape[0])
    rows = array.reshape(-1, 1) if array.ndim == 1 else array.reshape(-1, array.shape[-1])
    if rows.shape[0] < 2 or (rows.size and bool(np.all(rows == rows[0]))):
        mean = rows.mean(axis=0)  # one frame, or a constant column: every quantile is the value
        stats: Stats = {
            "min": rows.min(axis=0),
            "max": rows.max(axis=0),
            "mean": mean,
            "std": rows.std(axis=0),
            "count": np.array([frames]),
        }
        stats.update({key: mean.copy() for key in QUANTILE_KEYS})
    else:
        data = rows.astype(np.result_type(rows.dtype, np.float32), copy=False)
        low, high = data.min(axis=0), data.max(axis=0)
        mean = data.mean(axis=0)
        variance = (data**2).mean(axis=0) - mean**2
        stats = {
            "min": low,
            "max": high,
            "mean": mean,
            "std": np.sqrt(np.maximum(0, variance)),
            "count": np.array([frames]),
        }
        per_dim = [
            _histogram_quantiles(data[:, i], low[i], high[i], data.shape[0])
            for i in range(data.shape[1])
        ]
        for k, key in enumerate(QUANTILE_KEYS):
            stats[key] = np.array([dim[k] for dim in per_dim])
    if array.ndim == 1:
        stats = {k: (v if k == "count" else np.asarray(v).reshape(1)) for k, v in stats.items()}
    return stats


class PixelCounts:
    """Per-channel counts of the 256 uint8 values over the frames added (downsampled)."""

    def __init__(self, channels: int = 3) -> None:
        self.counts = np.zeros((channels, 256), dtype=np.int64)
        self.frames = 0

    @staticmethod
    def of_frame(frame: NDArray[Any]) -> NDArray[Any]:
        """(channels, 256) value counts of one HWC uint8 frame, downsampled like LeRobot."""
        step = downsample_step(frame.shape[0], frame.shape[1])
        view = frame[::step, ::step] if step > 1 else frame
        return np.stack(
            [np.bincount(view[..., c].ravel(), minlength=256) for c in range(view.shape[2])]
        )

    def add_counts(self, counts: NDArray[Any]) -> None:
        """Add the counts of one frame (from `of_frame`)."""
        self.counts += counts
        self.frames += 1

    def add(self, frame: NDArray[Any]) -> None:
        """Add one HWC uint8 frame."""
        self.add_counts(self.of_frame(frame))

    def stats(self) -> Stats:
        """Camera statistics in [0, 1], shape (C, 1, 1); `count` is the number of frames."""
        levels = np.arange(256, dtype=np.float64)
        per_channel: list[dict[str, float]] = []
        for counts in self.counts:
            total = int(counts.sum())
            present = np.nonzero(counts)[0]
            if total == 0:
                per_channel.append({k: float("nan") for k in ("min", "max", "mean", "std")})
                per_channel[-1].update({k: float("nan") for k in QUANTILE_KEYS})
                continue
            low, high = np.float32(present[0]), np.float32(present[-1])
            mean = float((levels * counts).sum() / total)
            square = float((levels**2 * counts).sum() / total)
            row = {
                "min": float(low),
                "max": float(high),
                "mean": mean,
                "std": float(np.sqrt(max(0.0, square - mean**2))),
            }
            quantiles = _histogram_quantiles(
                levels[present], low, high, total, weights=counts[present].astype(np.float64)
            )
            row.update(zip(QUANTILE_KEYS, quantiles, strict=True))
            per_channel.append(row)
        stats: Stats = {
            key: np.array([row[key] for row in per_channel]).reshape(-1, 1, 1) / 255.0
            for key in ("min", "max", "mean", "std", *QUANTILE_KEYS)
        }
        stats["count"] = np.array([self.frames])
        return stats


def camera_stats(frames: Iterable[NDArray[Any]]) -> Stats:
    """Statistics of already-sampled HWC uint8 frames."""
    counts = PixelCounts()
    for frame in frames:
        counts.add(frame)
    return counts.stats()


def aggregate(stats_list: Sequence[Mapping[str, NDArray[Any]]]) -> Stats:
    """Combine one feature's statistics of several episodes (or datasets) into one."""
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in stats_list])
    variances = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in stats_list])
    counts = np.stack([np.asarray(s["count"]) for s in stats_list])
    total = counts.sum(axis=0)
    weights = counts.astype(np.float64)
    while weights.ndim < means.ndim:
        weights = weights[..., np.newaxis]
    mean = (means * weights).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * weights).sum(axis=0) / total
    result: Stats = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in stats_list]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in stats_list]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": total,
    }
    first = stats_list[0]
    for key in first:
        if key[:1] == "q" and key[1:].isdigit() and all(key in s for s in stats_list):
            values = np.stack([np.asarray(s[key], dtype=np.float64) for s in stats_list])
            result[key] = (values * weights).sum(axis=0) / total
    return result


def aggregate_features(
    per_episode: Sequence[Mapping[str, Mapping[str, NDArray[Any]]]],
) -> dict[str, Stats]:
    """Combine {feature: stats} of several episodes, feature by feature (union of features)."""
    names: list[str] = []
    for stats in per_episode:
        names.extend(n for n in stats if n not in names)
    return {
        name: aggregate([stats[name] for stats in per_episode if name in stats]) for name in names
    }


def to_json(stats: Mapping[str, Mapping[str, NDArray[Any]]]) -> dict[str, dict[str, Any]]:
    """{feature: {stat: nested lists}} for stats.json."""
    return {
        name: {key: np.asarray(value).tolist() for key, value in feature.items()}
        for name, feature in stats.items()
    }


def from_json(document: Mapping[str, Any]) -> dict[str, Stats]:
    """stats.json (or an episodes_stats.jsonl entry) → {feature: {stat: array (≥1-D)}}."""
    return {
        str(name): {str(k): np.atleast_1d(np.asarray(v)) for k, v in feature.items()}
        for name, feature in document.items()
        if isinstance(feature, Mapping)
    }
