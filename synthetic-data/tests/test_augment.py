"""Seeded image augmentation of a dataset: counts, copied features, the direction of each
augmentation, determinism by seed, labels, LeRobot compatibility and config errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.data_management import Annotations, LeRobotDatasetReader, LeRobotDatasetWriter
from physai.synthetic_data.augment import (
    AugmentConfig,
    AugmentReport,
    augment_dataset,
    episode_params,
    load_config,
)

CAM = "observation.images.front"
H, W, N, EPISODES = 48, 64, 20, 3


def _frames(episode: int) -> Iterator[NDArray[np.uint8]]:
    """A colour gradient with a white 8x8 square moving right."""
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), np.full_like(xx, 96)], -1)
    for i in range(N):
        frame = base.astype(np.uint8)
        x = 8 + i + 4 * episode
        frame[16:24, x : x + 8] = 255
        yield frame


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("augment") / "source")
    features = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": None},
        "action": {"dtype": "float32", "shape": [3], "names": None},
        CAM: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
    }
    with LeRobotDatasetWriter(url, fps=10, features=features) as writer:
        for episode in range(EPISODES):
            rng = np.random.default_rng(episode)
            writer.add_episode(
                {
                    "observation.state": rng.normal(size=(N, 3)).astype(np.float32),
                    "action": rng.normal(size=(N, 3)).astype(np.float32),
                    CAM: _frames(episode),
                },
                f"task {episode % 2}",
                length=N,
            )
    return url


def _images(url: str, episode: int) -> NDArray[np.uint8]:
    with LeRobotDatasetReader(url) as reader:
        return np.stack([f[CAM] for f in reader.episode_frames(episode)])


def _square_centre(images: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Mean (row, column) of the white pixels of every frame."""
    white = (images > 230).all(axis=-1)
    centres = [np.argwhere(mask).mean(axis=0) for mask in white]
    return np.asarray(centres)


def _edge_sharpness(images: NDArray[np.uint8]) -> float:
    """The steepest left-right step of green in the square's rows (green only changes with the
    row elsewhere), averaged over frames: high for a sharp edge, low when blurred."""
    green = images[:, 17:23, :, 1].astype(np.float64)
    return float(np.abs(np.diff(green, axis=2)).max(axis=(1, 2)).mean())


def _augment(source: str, tmp_path: Path, name: str, seed: int = 3, **config: Any) -> str:
    out = str(tmp_path / name)
    report = augment_dataset(source, out, AugmentConfig(**config), seed=seed)
    assert isinstance(report, AugmentReport)
    return out


def test_copies_keep_every_other_feature_and_brighten(source: str, tmp_path: Path) -> None:
    out = str(tmp_path / "bright")
    report = augment_dataset(source, out, AugmentConfig(brightness=(1.3, 1.5), copies=2), seed=1)
    assert (report.episodes, report.frames, report.cameras) == (
        2 * EPISODES,
        2 * EPISODES * N,
        [CAM],
    )
    with LeRobotDatasetReader(source) as src, LeRobotDatasetReader(out) as dst:
        assert (dst.num_episodes, len(dst)) == (2 * EPISODES, 2 * EPISODES * N)
        assert dst.tasks == src.tasks
        for index in range(dst.num_episodes):
            episode, copy = divmod(index, 2)  # output i * copies + c is copy c of episode i
            assert (report.augmented[index].source_episode, report.augmented[index].copy_index) == (
                episode,
                copy,
            )
            before, after = src.episode_data(episode), dst.episode_data(index)
            for name in ("observation.state", "action", "task_index", "frame_index"):
                np.testing.assert_array_equal(before[name], after[name])
    for index in range(0, 2 * EPISODES, 2):
        original, brighter = _images(source, index // 2), _images(out, index)
        assert brighter.mean() > original.mean() * 1.15
    first, second = report.augmented[0].cameras[CAM], report.augmented[1].cameras[CAM]
    assert first["brightness"] != second["brightness"]  # each copy draws its own setting


def test_blur_softens_edges(source: str, tmp_path: Path) -> None:
    out = _augment(source, tmp_path, "blur", blur_sigma=(1.5, 2.0), blur_probability=1.0)
    for episode in range(EPISODES):
        assert _edge_sharpness(_images(out, episode)) < 0.5 * _edge_sharpness(
            _images(source, episode)
        )


def test_shift_moves_the_square(source: str, tmp_path: Path) -> None:
    out = _augment(source, tmp_path, "shift", shift=(5, 5))
    moved = _square_centre(_images(out, 1)) - _square_centre(_images(source, 1))
    np.testing.assert_allclose(moved, 5.0, atol=0.75)


def test_same_seed_same_frames_other_seed_differs(source: str, tmp_path: Path) -> None:
    config = {
        "brightness": (0.7, 1.3),
        "contrast": (0.7, 1.3),
        "saturation": (0.5, 1.5),
        "hue": (-0.1, 0.1),
        "blur_sigma": (0.5, 1.5),
        "blur_probability": 0.5,
        "noise_std": (2.0, 6.0),
        "crop_scale": (0.8, 1.0),
        "shift": (-3, 3),
    }
    a = _augment(source, tmp_path, "a", seed=11, **config)
    b = _augment(source, tmp_path, "b", seed=11, **config)
    c = _augment(source, tmp_path, "c", seed=12, **config)
    for episode in range(EPISODES):
        first = _images(a, episode)
        assert first.tobytes() == _images(b, episode).tobytes()
        assert first.tobytes() != _images(c, episode).tobytes()
        assert not np.array_equal(first, _images(source, episode))
    parallel = str(tmp_path / "parallel")  # two processes write parts, merged: same bytes
    report = augment_dataset(source, parallel, AugmentConfig(**config), seed=11, workers=2)
    assert report.workers == 2
    for episode in range(EPISODES):
        assert _images(parallel, episode).tobytes() == _images(a, episode).tobytes()
        assert Annotations(parallel).get(episode).labels == Annotations(a).get(episode).labels
    drawn = episode_params(AugmentConfig(**config), [CAM], 11, 2, 0)
    assert Annotations(a).get(2).labels["augment.params"][CAM] == drawn[CAM].to_json()


def test_labels_record_the_draws_and_lerobot_loads_it(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = str(tmp_path / "labelled")
    config = AugmentConfig(hue=(-0.2, 0.2), noise_std=(1.0, 3.0), copies=2)
    report = augment_dataset(source, out, config, seed=5)
    notes = Annotations(out)
    for item in report.augmented:
        labels = notes.get(item.episode).labels
        assert labels["augment.source_episode"] == item.source_episode
        assert labels["augment.copy"] == item.copy_index
        assert labels["augment.seed"] == 5
        assert labels["augment.params"] == item.cameras
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(repo_id="local/x", root=out, video_backend="pyav")
    assert len(dataset) == 2 * EPISODES * N
    item = dataset[N + 3]
    assert tuple(item[CAM].shape) == (3, H, W)
    assert int(item["episode_index"]) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"brightness": [1.5, 1.0]}, "low 1.5 > high 1.0"),
        ({"blur_sigma": [-1, 1]}, ">= 0"),
        ({"hue": [0, 0.7]}, "[-0.5, 0.5]"),
        ({"crop_scale": [0, 1]}, "(0, 1]"),
        ({"bright": [1, 2]}, "bright"),
        ({"copies": 0}, "copies"),
    ],
)
def test_bad_config_is_one_user_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as caught:
        load_config(config)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_config_file_and_bad_inputs_write_nothing(source: str, tmp_path: Path) -> None:
    path = tmp_path / "augment.yaml"
    path.write_text("brightness: [0.9, 1.1]\nshift: [-2, 2]\ncopies: 3\n")
    assert load_config(path) == AugmentConfig(brightness=(0.9, 1.1), shift=(-2, 2), copies=3)
    path.write_text("brightness: [0.9\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(path)
    out = tmp_path / "never"
    for config, seed in (
        (AugmentConfig(cameras=["observation.images.wrist"]), 0),
        (AugmentConfig(shift=(-48, 0)), 0),
        (AugmentConfig(), -1),
    ):
        with pytest.raises(UserError):
            augment_dataset(source, out, config, seed=seed)
        assert not out.exists()


def test_augment_command(source: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from physai.core.cli import app

    config = tmp_path / "aug.yaml"
    config.write_text("brightness: [1.2, 1.4]\nnoise_std: [0, 2]\n")
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["synthetic-data", "augment", source, "--out", str(tmp_path / "out"), "--seed", "3",
         "--config", str(config), "--copies", "2", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["copies"] == 2
    config.write_text("brightness: [2, 1]\n")
    args = ["synthetic-data", "augment", source, "--out", str(tmp_path / "bad")]
    bad = runner.invoke(app, [*args, "--seed", "3", "--config", str(config)])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()
