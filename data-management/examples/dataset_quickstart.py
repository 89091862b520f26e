"""physai-data-management quick start: write a LeRobot v3.0 dataset, read it, score and label it.

    uv run python data-management/examples/dataset_quickstart.py

The dataset lands under the storage root (`.physai/storage/` by default) and loads in LeRobot's
own `LeRobotDataset` as it is.
"""

from __future__ import annotations

import time

from physai.core.settings import load_settings
from physai.core.storage import join_url
from physai.data_management.labels import Annotations, load_quality, store_quality
from physai.data_management.lerobot import LeRobotDatasetReader, write_episodes
from physai.data_management.lerobot.synthetic import synthetic_episodes, synthetic_features
from physai.data_management.quality import EpisodeArrays, score_episodes


def main() -> None:
    settings = load_settings()
    url = join_url(settings.resolved_storage_root, "datasets", "demo", f"v{time.time_ns()}")

    # Write: one 64x48 camera, 6-dim state and action, AV1 video packed like LeRobot's.
    features = synthetic_features(cameras=("front",), height=48, width=64)
    episodes = synthetic_episodes(features, count=4, length=30)
    summary = write_episodes(url, episodes, fps=30, features=features, settings=settings)
    print(f"wrote {summary.total_episodes} episodes, {summary.total_frames} frames to {url}")

    # Read: metadata, random access to one frame (decodes only that frame's window).
    reader = LeRobotDatasetReader(url, settings=settings)
    frame = reader[len(reader) // 2]
    image = frame["observation.images.front"]
    print(f"{reader.version} at {reader.fps} fps, {reader.camera_keys}: image {image.shape}")

    # Score every episode and store the scores beside the dataset.
    arrays = [
        EpisodeArrays.from_columns(reader.episode_data(ep.episode_index), ep.episode_index)
        for ep in reader.episodes
    ]
    scores = score_episodes(arrays)
    store_quality(url, scores, settings=settings)
    print("path lengths:", [round(s.path_length, 2) for s in load_quality(url, settings=settings)])

    # Label: edits are immutable files, so concurrent labelers never lose one.
    notes = Annotations(url, settings=settings, author="quickstart")
    notes.set_outcome(0, "success")
    notes.set_outcome(1, "failure", note="dropped the cube")
    notes.set_label(1, "operator", "alice")
    print({ep: a.outcome for ep, a in notes.all().items()})
    assert notes.get(1).labels == {"operator": "alice"}
    reader.close()


if __name__ == "__main__":
    main()
