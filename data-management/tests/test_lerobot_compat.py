"""Checks against the real LeRobot client (lerobot 0.6.1), offline.

Our datasets load in `LeRobotDataset`; LeRobot's own datasets (videos or images) read with our
reader; our v2.1 layout converts with LeRobot's v2.1 → v3.0 script and reads the same.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from physai.data_management.lerobot import LeRobotDatasetReader, write_episodes
from physai.data_management.lerobot.synthetic import (
    synthetic_episodes,
    synthetic_features,
    write_v21_dataset,
)

pytestmark = pytest.mark.slow

FPS = 10
CAMERA = "observation.images.front"
FEATURES = synthetic_features(state_dim=4, action_dim=3, cameras=("front",))


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets_config = pytest.importorskip("datasets.config")
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def lerobot_dataset(root: Path, **options: Any) -> Any:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("physai/test", root=root, video_backend="pyav", **options)


def to_hwc_uint8(image: Any) -> np.ndarray:
    return np.asarray((image.numpy().transpose(1, 2, 0) * 255).round(), dtype=np.uint8)


def lerobot_writes(
    root: Path, episodes: list[Any], features: dict[str, Any], **options: Any
) -> Any:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset.create(
        "physai/theirs", fps=FPS, features=features, root=root, **options
    )
    for data, task in episodes:
        for i in range(len(data["action"])):
            dataset.add_frame({**{k: v[i] for k, v in data.items()}, "task": task})
        dataset.save_episode()
    dataset.finalize()
    return dataset


@pytest.mark.parametrize(
    ("codec", "sizes"),
    [
        ("av1", {}),
        ("h264", {}),
        ("av1", {"data_files_size_in_mb": 0.001, "video_files_size_in_mb": 0.006}),
    ],
    ids=["av1", "h264", "av1-many-files"],
)
def test_lerobot_loads_our_dataset(tmp_path: Path, codec: str, sizes: dict[str, float]) -> None:
    episodes = synthetic_episodes(FEATURES, count=3, length=10)
    root = tmp_path / "ours"
    write_episodes(root, episodes, fps=FPS, features=FEATURES, video_codec=codec, **sizes)
    if sizes:
        assert len(list((root / "data").rglob("*.parquet"))) > 1
        assert len(list((root / "videos").rglob("*.mp4"))) > 1
    theirs = lerobot_dataset(root)
    states = np.concatenate([e[0]["observation.state"] for e in episodes])
    images = np.concatenate([e[0][CAMERA] for e in episodes])
    assert len(theirs) == len(states) and theirs.meta.total_episodes == 3
    with LeRobotDatasetReader(root) as ours:
        for i in range(len(theirs)):
            item = theirs[i]
            assert np.array_equal(item["observation.state"].numpy(), states[i])
            assert int(item["index"]) == i
            assert abs(float(item["timestamp"]) - float(ours[i]["timestamp"])) < 1e-4
            assert item["task"] == ours[i]["task"]
            image = to_hwc_uint8(item[CAMERA])
            assert np.abs(image.astype(int) - images[i]).mean() < 8
            assert np.abs(image.astype(int) - ours[i][CAMERA]).max() <= 1
    stats = theirs.meta.stats
    assert set(stats) == set(ours.meta.features)
    assert stats[CAMERA]["mean"].shape == (3, 1, 1)
    assert stats["action"]["q99"].shape == (3,)
    assert set(stats["action"]) == {
        "min",
        "max",
        "mean",
        "std",
        "count",
        "q01",
        "q10",
        "q50",
        "q90",
        "q99",
    }


def test_we_read_lerobots_dataset_and_compute_the_same_stats(tmp_path: Path) -> None:
    episodes = synthetic_episodes(FEATURES, count=3, length=10)
    lerobot_writes(tmp_path / "theirs", episodes, FEATURES)
    write_episodes(tmp_path / "ours", episodes, fps=FPS, features=FEATURES)
    theirs = lerobot_dataset(tmp_path / "theirs")
    with LeRobotDatasetReader(tmp_path / "theirs") as reader:
        assert len(reader) == len(theirs) and reader.version == "v3.0"
        for i in range(len(reader)):
            frame, item = reader[i], theirs[i]
            for key in ("observation.state", "action", "timestamp", "index", "episode_index"):
                assert np.array_equal(frame[key], item[key].numpy())
            assert np.array_equal(frame[CAMERA], to_hwc_uint8(item[CAMERA]))
            assert frame["task"] == item["task"]
    their_stats = json.loads((tmp_path / "theirs/meta/stats.json").read_text())
    our_stats = json.loads((tmp_path / "ours/meta/stats.json").read_text())
    assert their_stats.keys() == our_stats.keys()
    for name, stats in their_stats.items():
        assert stats.keys() == our_stats[name].keys()
        for key, value in stats.items():
            assert np.asarray(value).shape == np.asarray(our_stats[name][key]).shape
            # LeRobot sums pixels in float32 (E[x²] - E[x]²): its image std is off by ~1e-4
            atol = 1e-3 if name == CAMERA else 1e-6
            assert np.allclose(value, our_stats[name][key], rtol=1e-4, atol=atol), (name, key)


def test_we_read_lerobots_image_features(tmp_path: Path) -> None:
    features = {**FEATURES, CAMERA: {**FEATURES[CAMERA], "dtype": "image"}}
    episodes = synthetic_episodes(features, count=2, length=6)
    theirs = lerobot_writes(tmp_path / "theirs", episodes, features, use_videos=False)
    images = np.concatenate([e[0][CAMERA] for e in episodes])
    with LeRobotDatasetReader(tmp_path / "theirs") as reader:
        assert reader.features[CAMERA].is_image
        for i in range(len(reader)):
            assert np.array_equal(reader[i][CAMERA], images[i])  # PNG: lossless
        stats = reader.compute_stats()
    stored = theirs.meta.stats[CAMERA]
    assert np.allclose(stats[CAMERA]["mean"], stored["mean"], atol=1e-6)


def test_our_v21_layout_converts_with_lerobots_script(tmp_path: Path) -> None:
    from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset

    episodes = synthetic_episodes(FEATURES, count=3, length=8)
    write_v21_dataset(tmp_path / "v21", episodes, fps=FPS, features=FEATURES)
    shutil.copytree(tmp_path / "v21", tmp_path / "converted")
    convert_dataset("physai/v21", root=tmp_path / "converted", push_to_hub=False)
    with (
        LeRobotDatasetReader(tmp_path / "v21") as legacy,
        LeRobotDatasetReader(tmp_path / "converted") as converted,
    ):
        assert (legacy.version, converted.version) == ("v2.1", "v3.0")
        assert len(legacy) == len(converted) and legacy.tasks == converted.tasks
        for i in range(len(legacy)):
            a, b = legacy[i], converted[i]
            assert a.keys() == b.keys()
            for key in a:
                assert np.array_equal(a[key], b[key]), key
        assert legacy.stats is not None and converted.stats is not None
        for key in ("min", "max", "mean", "std", "count"):
            assert np.allclose(legacy.stats["action"][key], converted.stats["action"][key])
