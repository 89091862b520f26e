"""LeRobotDatasetReader: random and sequential access, v2.1, statistics, Blob, broken input."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from physai.core.errors import NotFoundError, UserError
from physai.core.storage import resolve
from physai.data_management.lerobot import LeRobotDatasetReader, load_metadata, write_episodes
from physai.data_management.lerobot.synthetic import (
    synthetic_episodes,
    synthetic_features,
    write_v21_dataset,
)

FPS = 10
FEATURES = synthetic_features(state_dim=4, action_dim=2, cameras=("front", "wrist"))
CAMERAS = ["observation.images.front", "observation.images.wrist"]


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def concat(episodes: list[Any], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(e[0][key]) for e in episodes])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    root = tmp_path_factory.mktemp("reader") / "ds"
    episodes = synthetic_episodes(FEATURES, count=4, length=14)
    write_episodes(root, episodes, fps=FPS, features=FEATURES, video_files_size_in_mb=0.012)
    return root, episodes


def test_metadata(dataset: tuple[Path, list[Any]]) -> None:
    root, episodes = dataset
    with LeRobotDatasetReader(root) as reader:
        assert reader.version == "v3.0" and reader.fps == FPS
        assert reader.num_episodes == 4
        assert len(reader) == sum(len(e[0]["action"]) for e in episodes)
        assert reader.tasks == ["pick the cube", "place the cube"]
        assert reader.camera_keys == CAMERAS
        assert [e.tasks for e in reader.episodes] == [(task,) for _, task in episodes]
        assert reader.stats is not None and reader.stats["action"]["mean"].shape == (2,)
        assert reader.meta.episode_stats(1)["action"]["count"].tolist() == [
            len(episodes[1][0]["action"])
        ]
        assert len({e.videos[CAMERAS[0]].path for e in reader.episodes}) > 1  # packed in 2+ files


def test_random_access_returns_the_frames_written(dataset: tuple[Path, list[Any]]) -> None:
    root, episodes = dataset
    states, actions = concat(episodes, "observation.state"), concat(episodes, "action")
    images = {key: concat(episodes, key) for key in CAMERAS}
    with LeRobotDatasetReader(root) as reader:
        order = np.random.default_rng(0).permutation(len(reader))
        random_images = {}
        for i in order:
            frame = reader[int(i)]
            assert np.array_equal(frame["observation.state"], states[i])
            assert np.array_equal(frame["action"], actions[i])
            assert int(frame["index"]) == i
            assert frame["task"] in reader.tasks
            for key in CAMERAS:
                assert frame[key].shape == (48, 64, 3) and frame[key].dtype == np.uint8
                assert mean_abs_error(frame[key], images[key][i]) < 8
            random_images[int(i)] = frame[CAMERAS[0]]
        # sequential decoding gives exactly the frames random access gave
        sequential = [f[CAMERAS[0]] for f in reader]
        assert all(np.array_equal(sequential[i], random_images[i]) for i in range(len(reader)))
        assert np.array_equal(reader.get_frame(-1)["action"], actions[-1])
        with pytest.raises(IndexError):
            reader[len(reader)]


def test_random_access_over_h264_with_b_frames(tmp_path: Path) -> None:
    features = synthetic_features(state_dim=2, action_dim=2, cameras=("front",))
    episodes = synthetic_episodes(features, count=3, length=12)
    write_episodes(tmp_path / "ds", episodes, fps=FPS, features=features, video_codec="h264")
    with LeRobotDatasetReader(tmp_path / "ds") as reader:
        sequential = [f[CAMERAS[0]] for f in reader]
        for i in np.random.default_rng(1).permutation(len(reader)):
            assert np.array_equal(reader[int(i)][CAMERAS[0]], sequential[i])
        images = concat(episodes, CAMERAS[0])
        assert max(mean_abs_error(a, b) for a, b in zip(sequential, images, strict=True)) < 8


def test_episode_frames_and_data(dataset: tuple[Path, list[Any]]) -> None:
    root, episodes = dataset
    with LeRobotDatasetReader(root) as reader:
        frames = list(reader.episode_frames(2))
        data = reader.episode_data(2)
        assert len(frames) == len(episodes[2][0]["action"]) == len(data["action"])
        assert np.array_equal(data["action"], episodes[2][0]["action"])
        assert np.allclose(data["timestamp"], np.arange(len(frames)) / FPS)
        assert [int(f["frame_index"]) for f in frames] == list(range(len(frames)))
        assert all(int(f["episode_index"]) == 2 for f in frames)
        with pytest.raises(UserError, match="no episode 9"):
            list(reader.episode_frames(9))


def test_compute_stats_agrees_with_the_written_stats(dataset: tuple[Path, list[Any]]) -> None:
    root, _ = dataset
    with LeRobotDatasetReader(root) as reader:
        assert reader.stats is not None
        computed = reader.compute_stats()
        for name in ("observation.state", "action", "timestamp", "index"):
            for key in ("min", "max", "mean", "std", "count", "q50"):
                assert np.allclose(computed[name][key], reader.stats[name][key], atol=1e-6)
        for name in CAMERAS:  # decoded frames versus the source frames: codec error only
            assert computed[name]["mean"].shape == (3, 1, 1)
            assert np.allclose(computed[name]["mean"], reader.stats[name]["mean"], atol=0.02)
            assert computed[name]["count"].tolist() == reader.stats[name]["count"].tolist()


def test_the_reader_pickles_without_its_open_files(dataset: tuple[Path, list[Any]]) -> None:
    root, _ = dataset
    with LeRobotDatasetReader(root) as reader:
        first = reader[5]
        clone = pickle.loads(pickle.dumps(reader))
        assert np.array_equal(clone[5][CAMERAS[1]], first[CAMERAS[1]])
        clone.close()


def test_reads_a_v21_dataset(tmp_path: Path) -> None:
    features = synthetic_features(state_dim=3, action_dim=3, cameras=("front",))
    episodes = synthetic_episodes(features, count=3, length=9)
    write_v21_dataset(tmp_path / "ds", episodes, fps=FPS, features=features)
    assert (tmp_path / "ds/videos/chunk-000/observation.images.front/episode_000002.mp4").exists()
    assert (tmp_path / "ds/data/chunk-000/episode_000001.parquet").exists()
    with LeRobotDatasetReader(tmp_path / "ds") as reader:
        assert reader.version == "v2.1" and reader.num_episodes == 3
        states, images = concat(episodes, "observation.state"), concat(episodes, CAMERAS[0])
        for i in range(len(reader)):
            frame = reader[i]
            assert np.array_equal(frame["observation.state"], states[i])
            assert mean_abs_error(frame[CAMERAS[0]], images[i]) < 8
        assert reader.stats is not None  # aggregated from episodes_stats.jsonl
        assert reader.stats["action"]["count"].tolist() == [len(reader)]
        assert np.allclose(
            reader.stats["action"]["mean"], concat(episodes, "action").mean(0), atol=1e-6
        )
        assert reader.episodes[1].videos[CAMERAS[0]].from_timestamp == 0.0


def test_writes_and_reads_an_object_store(tmp_path: Path) -> None:
    url = f"memory://lerobot-tests/{tmp_path.name}/ds"  # the upload path Blob uses
    features = synthetic_features(state_dim=2, action_dim=2, cameras=("front",))
    episodes = synthetic_episodes(features, count=2, length=6)
    write_episodes(url, episodes, fps=FPS, features=features)
    with LeRobotDatasetReader(url) as reader:
        assert len(reader) == sum(len(e[0]["action"]) for e in episodes)
        images = concat(episodes, CAMERAS[0])
        assert mean_abs_error(reader[len(reader) - 1][CAMERAS[0]], images[-1]) < 8


@pytest.mark.integration
def test_writes_and_reads_blob_storage(azurite: Any) -> None:
    settings = azurite.settings()
    url = f"az://{azurite.create_container()}/datasets/ds"
    features = synthetic_features(state_dim=2, action_dim=2, cameras=("front",))
    episodes = synthetic_episodes(features, count=3, length=8)
    write_episodes(
        url, episodes, fps=FPS, features=features, settings=settings, video_files_size_in_mb=0.006
    )
    with LeRobotDatasetReader(url, settings=settings) as reader:
        assert reader.num_episodes == 3
        states, images = concat(episodes, "observation.state"), concat(episodes, CAMERAS[0])
        for i in (0, 13, 7, len(reader) - 1):
            frame = reader[i]
            assert np.array_equal(frame["observation.state"], states[i])
            assert mean_abs_error(frame[CAMERAS[0]], images[i]) < 8


# -- broken input --------------------------------------------------------------------------


@pytest.fixture
def copy(dataset: tuple[Path, list[Any]], tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(dataset[0], root)
    return root


def test_features_of_unknown_dtypes_are_carried_not_refused(copy: Path) -> None:
    info = json.loads((copy / "meta/info.json").read_text())
    info["features"]["language_events"] = {"dtype": "language", "shape": [1], "names": None}
    (copy / "meta/info.json").write_text(json.dumps(info))
    with LeRobotDatasetReader(copy) as reader:  # LeRobot 0.6 language columns, say
        assert reader.features["language_events"].is_opaque
        assert "language_events" not in reader[3]  # no such column in the data: skipped


def test_missing_info_json(copy: Path) -> None:
    (copy / "meta/info.json").unlink()
    with pytest.raises(NotFoundError, match=r"is not a LeRobot dataset: meta/info.json does not"):
        LeRobotDatasetReader(copy)
    with pytest.raises(NotFoundError):
        LeRobotDatasetReader(copy.parent / "nothing-here")


def test_corrupt_info_json(copy: Path) -> None:
    (copy / "meta/info.json").write_text('{"codebase_version": "v3.0", ')
    with pytest.raises(UserError, match=r"meta/info.json is not a valid LeRobot info.json"):
        LeRobotDatasetReader(copy)


@pytest.mark.parametrize("version", ["v1.6", "v4.0", None])
def test_unknown_codebase_version(copy: Path, version: str | None) -> None:
    info = json.loads((copy / "meta/info.json").read_text())
    info["codebase_version"] = version
    (copy / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match=rf"codebase_version {version!r} is not supported"):
        load_metadata(resolve(str(copy)))


def test_corrupt_episodes_parquet(copy: Path) -> None:
    (copy / "meta/episodes/chunk-000/file-000.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match=r"file-000.parquet is not a valid LeRobot episodes"):
        LeRobotDatasetReader(copy)


def test_corrupt_data_parquet(copy: Path) -> None:
    path = copy / "data/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with (
        LeRobotDatasetReader(copy) as reader,
        pytest.raises(
            UserError, match=r"data/chunk-000/file-000.parquet is not a valid LeRobot data parquet"
        ) as caught,
    ):
        reader[0]
    assert "\n" not in caught.value.message


def test_truncated_video(copy: Path) -> None:
    video = copy / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size * 2 // 3])
    with LeRobotDatasetReader(copy) as reader:
        with pytest.raises(UserError, match=r"front/chunk-000/file-000.mp4") as caught:
            list(reader)  # the frames of the file's last third are gone
        assert "\n" not in caught.value.message


def test_garbage_video(copy: Path) -> None:
    video = copy / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    video.write_bytes(b"\x00" * 4096)
    with (
        LeRobotDatasetReader(copy) as reader,
        pytest.raises(UserError, match=r"wrist/chunk-000/file-000.mp4: cannot decode video"),
    ):
        reader[0]


def test_missing_video(copy: Path) -> None:
    (copy / "videos/observation.images.front/chunk-000/file-000.mp4").unlink()
    with LeRobotDatasetReader(copy) as reader, pytest.raises(UserError, match="does not exist"):
        reader[0]
