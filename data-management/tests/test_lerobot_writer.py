"""LeRobotDatasetWriter: v3.0 layout, packing rules, atomic publish, bad input (no lerobot here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from physai.core.errors import UserError
from physai.core.storage import exists_published
from physai.data_management.lerobot import (
    LeRobotDatasetReader,
    LeRobotDatasetWriter,
    write_episodes,
)
from physai.data_management.lerobot.stats import numeric_stats, sample_indices
from physai.data_management.lerobot.synthetic import (
    synthetic_episode,
    synthetic_episodes,
    synthetic_features,
)

FPS = 10
FEATURES = synthetic_features(state_dim=3, action_dim=2, cameras=("front",))
NUMERIC = {k: v for k, v in FEATURES.items() if v["dtype"] != "video"}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    root = tmp_path_factory.mktemp("writer") / "ds"
    episodes = synthetic_episodes(FEATURES, count=3, length=12)
    write_episodes(root, episodes, fps=FPS, features=FEATURES, robot_type="so101")
    return root, episodes


def test_writes_the_v3_layout(written: tuple[Path, list[Any]]) -> None:
    root, episodes = written
    assert files_under(root) == [
        ".physai-published.json",
        "data/chunk-000/file-000.parquet",
        "manifest.json",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "videos/observation.images.front/chunk-000/file-000.mp4",
    ]
    info = json.loads((root / "meta/info.json").read_text())
    assert list(info) == [
        "codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
        "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path",
        "video_path", "robot_type", "splits",
    ]  # fmt: skip
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3
    assert info["total_frames"] == sum(len(e[0]["action"]) for e in episodes)
    assert info["splits"] == {"train": "0:3"}
    assert info["robot_type"] == "so101"
    assert list(info["features"])[-5:] == [
        "timestamp", "frame_index", "episode_index", "index", "task_index",
    ]  # fmt: skip
    video = info["features"]["observation.images.front"]["info"]
    assert video["video.codec"] == "av1"
    assert video["video.pix_fmt"] == "yuv420p"
    assert (video["video.g"], video["video.crf"], video["video.preset"]) == (2, 30, 12)
    assert (video["video.height"], video["video.width"], video["video.fps"]) == (48, 64, FPS)


def test_parquet_columns_are_lerobots(written: tuple[Path, list[Any]]) -> None:
    root, _ = written
    data = pq.ParquetFile(root / "data/chunk-000/file-000.parquet")
    assert data.metadata.num_row_groups == 1  # episodes batched into row groups (packing.py)
    schema = data.schema_arrow
    assert str(schema.field("observation.state").type) == "fixed_size_list<element: float>[3]"
    assert str(schema.field("timestamp").type) == "float"
    assert b"huggingface" in schema.metadata
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
    names = episodes.column_names
    assert names[:7] == [
        "episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
        "dataset_from_index", "dataset_to_index",
    ]  # fmt: skip
    assert names[-2:] == ["meta/episodes/chunk_index", "meta/episodes/file_index"]
    for key in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
        assert f"videos/observation.images.front/{key}" in names
    for stat in ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"):
        assert f"stats/action/{stat}" in names
        assert f"stats/observation.images.front/{stat}" in names
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pandas()  # task strings as the index
    assert list(tasks.index) == ["pick the cube", "place the cube"]
    assert tasks.loc["place the cube"].task_index == 1


def test_stats_match_lerobots_method(written: tuple[Path, list[Any]]) -> None:
    root, episodes = written
    stats = json.loads((root / "meta/stats.json").read_text())
    actions = np.concatenate([e[0]["action"] for e in episodes])
    assert np.allclose(stats["action"]["min"], actions.min(axis=0))
    assert np.allclose(stats["action"]["mean"], actions.mean(axis=0), atol=1e-6)
    assert np.allclose(stats["action"]["std"], actions.std(axis=0), atol=1e-5)
    assert stats["action"]["count"] == [len(actions)]
    first = numeric_stats(episodes[0][0]["action"])
    assert np.all(first["q01"] <= first["q50"]) and np.all(first["q50"] <= first["q99"])
    image = stats["observation.images.front"]
    assert np.asarray(image["mean"]).shape == (3, 1, 1)
    assert 0.0 <= np.min(image["min"]) <= np.max(image["max"]) <= 1.0
    sampled = sum(len(sample_indices(len(e[0]["action"]))) for e in episodes)
    assert image["count"] == [sampled]


def test_torch_is_never_imported() -> None:
    code = (
        "import sys, physai.data_management.lerobot as m, physai.data_management.lerobot.synthetic;"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_add_frame_streams_the_same_dataset_as_add_episode(tmp_path: Path) -> None:
    data = synthetic_episode(FEATURES, 6, seed=3)
    with LeRobotDatasetWriter(tmp_path / "a", fps=FPS, features=FEATURES) as writer:
        writer.add_episode(data, "t")
    with LeRobotDatasetWriter(tmp_path / "b", fps=FPS, features=FEATURES) as writer:
        for i in range(6):
            writer.add_frame({k: v[i] for k, v in data.items()}, "t")
        assert writer.save_episode() == 0
    with LeRobotDatasetReader(tmp_path / "a") as a, LeRobotDatasetReader(tmp_path / "b") as b:
        for i in range(6):
            fa, fb = a[i], b[i]
            for key in fa:
                assert np.array_equal(fa[key], fb[key])
        assert json.dumps(a.meta.info) == json.dumps(b.meta.info)


def test_camera_frames_may_come_from_a_generator(tmp_path: Path) -> None:
    data = synthetic_episode(FEATURES, 5)
    frames = data.pop("observation.images.front")
    data["observation.images.front"] = (f for f in frames)  # never a whole array in memory
    write_episodes(tmp_path / "ds", [(data, "t")], fps=FPS, features=FEATURES)
    with LeRobotDatasetReader(tmp_path / "ds") as reader:
        assert len(reader) == 5
        assert np.abs(reader[4]["observation.images.front"].astype(int) - frames[4]).mean() < 8


def test_episodes_pack_into_several_files_and_chunks(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    episodes = synthetic_episodes(FEATURES, count=5, length=10)
    write_episodes(
        root,
        episodes,
        fps=FPS,
        features=FEATURES,
        data_files_size_in_mb=0.001,
        video_files_size_in_mb=0.006,
        chunks_size=2,
    )
    files = files_under(root)
    data_files = [f for f in files if f.startswith("data/")]
    video_files = [f for f in files if f.startswith("videos/")]
    assert len(data_files) > 1 and "data/chunk-001/file-000.parquet" in data_files
    assert len(video_files) > 1
    assert all("/file-00" in f and int(f.split("/file-")[1][:3]) < 2 for f in data_files)
    with LeRobotDatasetReader(root) as reader:
        assert {e.data_path for e in reader.episodes} == set(data_files)
        assert {e.videos["observation.images.front"].path for e in reader.episodes} == set(
            video_files
        )
        states = np.concatenate([e[0]["observation.state"] for e in episodes])
        for i in range(len(reader)):
            assert np.array_equal(reader[i]["observation.state"], states[i])
        for ep in reader.episodes:  # a file restarts its timeline; episodes follow each other
            video = ep.videos["observation.images.front"]
            assert video.to_timestamp - video.from_timestamp == pytest.approx(ep.length / FPS)


def test_nothing_is_visible_until_finish(tmp_path: Path) -> None:
    url = tmp_path / "ds"
    writer = LeRobotDatasetWriter(url, fps=FPS, features=NUMERIC)
    writer.add_episode(synthetic_episode(NUMERIC, 4), "t")
    assert not url.exists()
    summary = writer.finish()
    assert exists_published(str(url)) and summary.total_frames == 4


def test_an_exception_in_the_block_publishes_nothing(tmp_path: Path) -> None:
    def record() -> None:
        with LeRobotDatasetWriter(tmp_path / "ds", fps=FPS, features=FEATURES) as writer:
            writer.add_episode(synthetic_episode(FEATURES, 4), "t")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        record()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_destination_is_refused(written: tuple[Path, list[Any]]) -> None:
    root, _ = written
    with pytest.raises(UserError, match="already published"):
        LeRobotDatasetWriter(root, fps=FPS, features=FEATURES)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(action=d["action"][:, :1]), r"'action': shape \(\d+, 1\)"),
        (lambda d: d.update(action=d["action"].astype(np.float64)), r"dtype float64 .* float32"),
        (lambda d: d.pop("action"), r"missing \['action'\]"),
        (lambda d: d.update(extra=d["action"]), r"unknown \['extra'\]"),
        (lambda d: d.update(action=d["action"].tolist()), "expected a numpy array"),
        (
            lambda d: d.update({"observation.images.front": d["observation.images.front"][:, :8]}),
            r"frame shape \(8, 64, 3\)",
        ),
        (
            lambda d: d.update(
                {"observation.images.front": d["observation.images.front"].astype(np.float32)}
            ),
            "dtype float32 is not uint8",
        ),
        (
            lambda d: d.update({"observation.images.front": d["observation.images.front"][:3]}),
            "has 3 frames, the episode 6",
        ),
    ],
    ids=["shape", "dtype", "missing", "extra", "list", "image-shape", "image-dtype", "frames"],
)
def test_bad_episodes_are_refused_and_nothing_is_written(
    tmp_path: Path, change: Any, message: str
) -> None:
    data = synthetic_episode(FEATURES, 6)
    change(data)
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=FPS, features=FEATURES)
    with pytest.raises(UserError, match=message) as caught:
        writer.add_episode(data, "t")
    assert "\n" not in caught.value.message
    assert writer.num_episodes == 0
    with pytest.raises(UserError, match="no episodes were added"):
        writer.finish()
    assert list(tmp_path.iterdir()) == []


def test_add_frame_refuses_a_bad_frame_and_drops_the_episode(tmp_path: Path) -> None:
    data = synthetic_episode(FEATURES, 4)
    frames = [{k: v[i] for k, v in data.items()} for i in range(4)]
    with LeRobotDatasetWriter(tmp_path / "ds", fps=FPS, features=FEATURES) as writer:
        writer.add_frame(frames[0], "t")
        with pytest.raises(UserError, match=r"'observation.state': shape \(2,\)"):
            writer.add_frame({**frames[1], "observation.state": frames[1]["action"][:2]}, "t")
        with pytest.raises(UserError, match="has no frames"):
            writer.save_episode()  # the half-recorded episode went with the bad frame
        for frame in frames:
            writer.add_frame(frame, "t")
        writer.save_episode()
    with LeRobotDatasetReader(tmp_path / "ds") as reader:
        assert reader.num_episodes == 1 and len(reader) == 4


def test_a_bad_frame_mid_stream_drops_only_that_episode(tmp_path: Path) -> None:
    good = synthetic_episode(FEATURES, 5)
    bad = synthetic_episode(FEATURES, 5, seed=1)
    frames = list(bad.pop("observation.images.front"))
    frames[3] = frames[3][:, :, :2]
    bad["observation.images.front"] = iter(frames)
    with LeRobotDatasetWriter(tmp_path / "ds", fps=FPS, features=FEATURES) as writer:
        writer.add_episode(good, "t")
        with pytest.raises(UserError, match="frame shape"):
            writer.add_episode(bad, "t")
        writer.add_episode(good, "t")
    with LeRobotDatasetReader(tmp_path / "ds") as reader:
        assert reader.num_episodes == 2 and len(reader) == 10
    assert not list((tmp_path).glob(".ds.staging-*"))


def test_nan_is_written_and_flagged_in_stats(tmp_path: Path) -> None:
    data = synthetic_episode(NUMERIC, 5)
    data["action"][2, 0] = np.nan
    write_episodes(tmp_path / "ds", [(data, "t")], fps=FPS, features=NUMERIC)
    with LeRobotDatasetReader(tmp_path / "ds") as reader:
        assert np.isnan(reader[2]["action"][0])
        assert reader.stats is not None and np.isnan(reader.stats["action"]["mean"][0])


def test_bad_declarations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dtype 'float'"):
        LeRobotDatasetWriter(
            tmp_path / "a", fps=FPS, features={"x": {"dtype": "float", "shape": [1]}}
        )
    with pytest.raises(UserError, match="written by the writer itself"):
        LeRobotDatasetWriter(tmp_path / "b", fps=FPS, features={"timestamp": NUMERIC["action"]})
    with pytest.raises(UserError, match="video codec 'vp9'"):
        LeRobotDatasetWriter(tmp_path / "c", fps=FPS, features=FEATURES, video_codec="vp9")
    with pytest.raises(UserError, match="fps"):
        LeRobotDatasetWriter(tmp_path / "d", fps=0, features=FEATURES)
    assert list(tmp_path.iterdir()) == []
