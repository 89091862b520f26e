"""Synthetic LeRobot episodes and datasets, for tests, examples and benchmarks.

    features = synthetic_features(cameras=("front",), height=48, width=64)
    episodes = synthetic_episodes(features, count=3, length=20)
    write_episodes("/tmp/ds", episodes, fps=10, features=features)
    write_v21_dataset(Path("/tmp/ds21"), episodes, fps=10, features=features)   # legacy layout

Images are smooth gradients with a moving square (what a video codec keeps well); numeric
features are seeded random walks. Everything is deterministic given the seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from physai.data_management.lerobot import format as fmt
from physai.data_management.lerobot.features import declare_features, numpy_to_arrow
from physai.data_management.lerobot.stats import PixelCounts, numeric_stats, sample_indices
from physai.data_management.lerobot.stats import to_json as stats_to_json
from physai.data_management.lerobot.video_encode import (
    EpisodeEncoder,
    probe_video_info,
    video_codec,
)

Episode = tuple[dict[str, Any], str]


def synthetic_features(
    *,
    state_dim: int = 6,
    action_dim: int = 6,
    cameras: Sequence[str] = ("front",),
    height: int = 48,
    width: int = 64,
) -> dict[str, dict[str, Any]]:
    """Feature declarations: `observation.state`, `action`, `observation.images.<camera>`."""
    features: dict[str, dict[str, Any]] = {
        "observation.state": {
            "dtype": "float32",
            "shape": [state_dim],
            "names": [f"joint_{i}" for i in range(state_dim)],
        },
        "action": {
            "dtype": "float32",
            "shape": [action_dim],
            "names": [f"joint_{i}" for i in range(action_dim)],
        },
    }
    for camera in cameras:
        features[f"observation.images.{camera}"] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        }
    return features


def synthetic_image(height: int, width: int, t: int, seed: int = 0) -> NDArray[np.uint8]:
    """A smooth RGB frame: gradients plus a square moving with `t`."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (x * 200 // max(1, width - 1) + 20).astype(np.uint8)
    image[..., 1] = (y * 200 // max(1, height - 1) + 20).astype(np.uint8)
    image[..., 2] = np.uint8((40 + 30 * seed) % 200 + 20)
    side = max(2, min(height, width) // 4)
    top = (t * 2 + seed * 5) % max(1, height - side)
    left = (t * 3 + seed * 7) % max(1, width - side)
    image[top : top + side, left : left + side] = (230, 230, 40)
    return image


def synthetic_episode(
    features: Mapping[str, Mapping[str, Any]], length: int, *, seed: int = 0
) -> dict[str, Any]:
    """One episode's data for `features`: arrays of (length, *shape), cameras (length, H, W, 3)."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for name, spec in features.items():
        dtype, shape = spec["dtype"], tuple(spec["shape"])
        if dtype in ("video", "image"):
            h, w = shape[0], shape[1]
            data[name] = np.stack([synthetic_image(h, w, t, seed) for t in range(length)])
        elif dtype == "string":
            data[name] = [f"{name} {t}" for t in range(length)]
        else:
            steps = rng.normal(0.0, 0.1, size=(length, *shape))
            walk = np.cumsum(steps, axis=0)
            values = walk if np.dtype(dtype).kind == "f" else np.round(walk * 10)
            array = values.astype(dtype)
            data[name] = array.reshape(length) if shape == (1,) else array
    return data


def synthetic_episodes(
    features: Mapping[str, Mapping[str, Any]],
    *,
    count: int = 3,
    length: int = 20,
    tasks: Sequence[str] = ("pick the cube", "place the cube"),
    seed: int = 0,
) -> list[Episode]:
    """`count` (data, task) episodes; lengths vary a little around `length`."""
    return [
        (
            synthetic_episode(features, max(2, length + (i % 3) - 1), seed=seed + i),
            tasks[i % len(tasks)],
        )
        for i in range(count)
    ]


def write_v21_dataset(
    root: Path,
    episodes: Sequence[Episode],
    *,
    fps: int,
    features: Mapping[str, Mapping[str, Any]],
    codec: str = "av1",
    chunks_size: int = fmt.DEFAULT_CHUNKS_SIZE,
) -> None:
    """Write `episodes` in the LeRobot v2.1 layout under the local directory `root`.

    One parquet per episode (`data/chunk-000/episode_000000.parquet`), one MP4 per episode and
    camera (`videos/chunk-000/<camera>/episode_000000.mp4`), `meta/episodes.jsonl`,
    `meta/tasks.jsonl`, `meta/episodes_stats.jsonl` and `meta/info.json` (v2.1).
    """
    declared = declare_features(features)
    encoder_settings = video_codec(codec)
    tasks: dict[str, int] = {}
    episode_lines, stats_lines = [], []
    total = 0
    video_info: dict[str, dict[str, Any]] = {}
    schema = pa.schema([pa.field(n, f.arrow_type()) for n, f in declared.items() if not f.is_video])
    for episode_index, (data, task) in enumerate(episodes):
        length = len(next(iter(data.values())))
        task_index = tasks.setdefault(task, len(tasks))
        frame_index = np.arange(length, dtype=np.int64)
        columns = {
            **{n: data[n] for n, f in declared.items() if not f.is_video and n in data},
            "timestamp": (frame_index / fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, episode_index, dtype=np.int64),
            "index": np.arange(total, total + length, dtype=np.int64),
            "task_index": np.full(length, task_index, dtype=np.int64),
        }
        names = {"episode_chunk": episode_index // chunks_size, "episode_index": episode_index}
        table = pa.table({n: numpy_to_arrow(columns[n], declared[n]) for n in schema.names})
        data_file = root / fmt.LEGACY_DATA_PATH.format(**names)
        data_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.cast(schema), data_file)
        stats: dict[str, Any] = {}
        for name, feature in declared.items():
            if feature.is_video:
                path = root / fmt.LEGACY_VIDEO_PATH.format(video_key=name, **names)
                h, w, _ = feature.frame_shape
                encoder = EpisodeEncoder(path, fps=fps, width=w, height=h, codec=encoder_settings)
                for frame in data[name]:
                    encoder.add(frame)
                encoder.close()
                video_info.setdefault(name, probe_video_info(path))
                counts = PixelCounts()
                for i in sample_indices(length):
                    counts.add(np.asarray(data[name][int(i)]))
                stats[name] = counts.stats()
            elif feature.is_numeric:
                stats[name] = numeric_stats(columns[name])
        keep = ("min", "max", "mean", "std", "count")
        stats_lines.append(
            {
                "episode_index": episode_index,
                "stats": {
                    n: {k: v for k, v in s.items() if k in keep}
                    for n, s in stats_to_json(stats).items()
                },
            }
        )
        episode_lines.append({"episode_index": episode_index, "tasks": [task], "length": length})
        total += length
    feature_specs = {}
    for name, feature in declared.items():
        spec = feature.to_json()
        if feature.is_video:
            spec["info"] = {**video_info.get(name, {}), "video.is_depth_map": False}
        feature_specs[name] = spec
    cameras = [n for n, f in declared.items() if f.is_video]
    info = {
        "codebase_version": "v2.1",
        "robot_type": None,
        "total_episodes": len(episodes),
        "total_frames": total,
        "total_tasks": len(tasks),
        "total_videos": len(episodes) * len(cameras),
        "total_chunks": (len(episodes) - 1) // chunks_size + 1 if episodes else 0,
        "chunks_size": chunks_size,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": fmt.LEGACY_DATA_PATH,
        "video_path": fmt.LEGACY_VIDEO_PATH if cameras else None,
        "features": feature_specs,
    }
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "info.json").write_text(json.dumps(info, indent=4) + "\n")
    _write_jsonl(meta / "episodes.jsonl", episode_lines)
    _write_jsonl(meta / "episodes_stats.jsonl", stats_lines)
    _write_jsonl(meta / "tasks.jsonl", [{"task_index": i, "task": t} for t, i in tasks.items()])


def _write_jsonl(path: Path, lines: Sequence[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
