"""Run the simulated robot with no ROS: MuJoCo pusher arm, offscreen camera, scripted expert.

Writes three episodes as MCAP bags plus the mapping that converts them, converts them to a
LeRobot dataset, and saves the first, middle and last camera frames of episode 0 as one PNG.

    uv run python data-pipeline/examples/sim_robot.py [WORK_DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from physai.data_management import LeRobotDatasetReader
from physai.data_pipeline.convert import convert_bags
from physai.data_pipeline.mapping import load_mapping
from physai.data_pipeline.sim_robot import write_episodes


def main(work: Path) -> None:
    bags = write_episodes(work / "bags", "pusher", episodes=3, seconds=2.0, width=160, height=120)
    for bag in bags:
        meta = json.loads((bag / "episode.json").read_text())
        print(f"{bag.name}: seed {meta['seed']}, expert success {meta['success']}")

    mapping = load_mapping(work / "bags" / "mapping.yaml")
    report = convert_bags(bags, mapping, work / "dataset", work_dir=work / "parts")
    print(f"dataset: {report.episodes} episodes, {report.frames} frames at {mapping.fps} fps")

    with LeRobotDatasetReader(work / "dataset") as dataset:
        frames = [dataset[i]["observation.images.front"] for i in (0, 30, 59)]
        state = dataset[59]["observation.state"]
    strip = np.concatenate(frames, axis=1)  # three 120x160 frames side by side
    av.VideoFrame.from_ndarray(strip, format="rgb24").to_image().save(work / "episode0.png")
    print("joint positions at the end of episode 0:", np.round(state, 2))
    print("frames saved to", work / "episode0.png")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
