"""LeRobot dataset format facts: versions, file layout, path templates, size defaults.

Taken from lerobot 0.6.1 (`lerobot/datasets/utils.py`, `dataset_metadata.py`, the v2.1 → v3.0
conversion script): a v3.0 dataset packs many episodes per parquet/MP4 file under
`chunk-XXX/file-XXX`; a v2.x dataset has one parquet and one MP4 per episode.
"""

from __future__ import annotations

from typing import Any, Final

CODEBASE_VERSION: Final = "v3.0"
LEGACY_VERSIONS: Final = ("v2.0", "v2.1")
READABLE_VERSIONS: Final = (*LEGACY_VERSIONS, CODEBASE_VERSION)

# Layout (v3.0).
INFO_PATH: Final = "meta/info.json"
STATS_PATH: Final = "meta/stats.json"
TASKS_PATH: Final = "meta/tasks.parquet"
EPISODES_DIR: Final = "meta/episodes"
CHUNK_FILE: Final = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH: Final = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DATA_PATH: Final = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH: Final = "videos/{video_key}/" + CHUNK_FILE + ".mp4"

# Layout (v2.x): one file per episode, `episode_chunk = episode_index // chunks_size`.
LEGACY_EPISODES_PATH: Final = "meta/episodes.jsonl"
LEGACY_EPISODES_STATS_PATH: Final = "meta/episodes_stats.jsonl"
LEGACY_TASKS_PATH: Final = "meta/tasks.jsonl"
LEGACY_DATA_PATH: Final = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
LEGACY_VIDEO_PATH: Final = (
    "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
)

# Packing limits (info.json keys of the same names).
DEFAULT_CHUNKS_SIZE: Final = 1000
DEFAULT_DATA_FILES_SIZE_IN_MB: Final = 100
DEFAULT_VIDEO_FILES_SIZE_IN_MB: Final = 200

# Columns every frame has, appended after the user's features in info.json.
DEFAULT_FEATURES: Final[dict[str, dict[str, Any]]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

# Default statistics quantiles and their keys (q01 ... q99).
QUANTILES: Final = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS: Final = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS: Final = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)

MB: Final = 1024 * 1024


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after this one: a chunk holds `chunks_size` files."""
    if file_index == chunks_size - 1:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def data_path(chunk_index: int, file_index: int) -> str:
    """`data/chunk-XXX/file-XXX.parquet`."""
    return DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def video_path(video_key: str, chunk_index: int, file_index: int) -> str:
    """`videos/<camera>/chunk-XXX/file-XXX.mp4`."""
    return VIDEO_PATH.format(video_key=video_key, chunk_index=chunk_index, file_index=file_index)


def episodes_path(chunk_index: int, file_index: int) -> str:
    """`meta/episodes/chunk-XXX/file-XXX.parquet`."""
    return EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)
