"""physai-data-management curation: label and score a dataset, keep the good episodes, split them.

    uv run python data-management/examples/curate_dataset.py

The same as the command line:

    physai data-management curate DATASET --out CURATED --outcome success \
        --where 'quality.idle_fraction < 0.5' --split train=0.8 --split val=0.2 --seed 0

Video is copied packet for packet, so every curated frame is the source's frame.
"""

from __future__ import annotations

import json
import time

import numpy as np

from physai.core.settings import load_settings
from physai.core.storage import join_url, read_text
from physai.data_management.curation import Selection, curate
from physai.data_management.labels import Annotations, store_quality
from physai.data_management.lerobot import LeRobotDatasetReader, write_episodes
from physai.data_management.lerobot.synthetic import synthetic_episodes, synthetic_features
from physai.data_management.quality import EpisodeArrays, score_episodes

CAMERA = "observation.images.front"


def main() -> None:
    settings = load_settings()
    base = join_url(settings.resolved_storage_root, "datasets", f"curation-demo-{time.time_ns()}")
    source, curated = join_url(base, "raw"), join_url(base, "curated")

    # A recorded dataset: 10 episodes of two tasks, one camera.
    features = synthetic_features(cameras=("front",), height=48, width=64)
    write_episodes(
        source,
        synthetic_episodes(features, count=10, length=24),
        fps=30,
        features=features,
        settings=settings,
    )

    # Reviewers label outcomes; quality scores are computed and stored beside the data.
    notes = Annotations(source, settings, author="reviewer")
    for episode in range(10):
        notes.set_outcome(episode, "failure" if episode in (3, 7) else "success")
    with LeRobotDatasetReader(source, settings=settings) as reader:
        arrays = [
            EpisodeArrays.from_columns(reader.episode_data(e.episode_index))
            for e in reader.episodes
        ]
    store_quality(source, score_episodes(arrays), settings)

    # Keep successful, mostly moving episodes; split them 80/20 with a fixed seed.
    report = curate(
        [source],
        curated,
        selection=Selection(outcomes=["success"], where="quality.idle_fraction < 0.5"),
        split=["train=0.8", "val=0.2"],
        seed=0,
        settings=settings,
    )
    for output in report.outputs:
        print(
            f"{output.name}: {output.episodes} episodes, {output.frames} frames at {output.url} "
            f"(video copied for {output.copied_episodes} episodes)"
        )
    print(
        f"kept {report.selected_episodes} of {report.source_episodes} episodes "
        f"in {report.seconds:.2f} s"
    )

    # The curated frames are the source's frames, bit for bit; meta/curation.json says which.
    origin = json.loads(read_text(join_url(curated, "train", "meta/curation.json"), settings))
    source_episode = origin["episodes"][0]["source_episode_index"]
    with (
        LeRobotDatasetReader(join_url(curated, "train"), settings=settings) as train,
        LeRobotDatasetReader(source, settings=settings) as raw,
    ):
        start = raw.meta.episode(source_episode).dataset_from_index
        same = np.array_equal(train[0][CAMERA], raw[start][CAMERA])
        print(f"train episode 0 is source episode {source_episode}; first frames identical: {same}")
        assert same


if __name__ == "__main__":
    main()
