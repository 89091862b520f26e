"""Convert ROS 2 bags into a LeRobot v3.0 dataset, with no robot and no ROS install.

Writes two short episodes as MCAP bags (500 Hz joint states, 30 Hz commands and camera),
lists what is in one of them (`physai data-pipeline inspect`), converts both with a mapping
(`physai data-pipeline convert`) and reads a frame back.

    uv run python data-pipeline/examples/convert_bags.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from physai.data_management.lerobot import LeRobotDatasetReader
from physai.data_pipeline.bag_writer import EpisodeBagWriter
from physai.data_pipeline.bags import inspect_bag
from physai.data_pipeline.convert import convert_bags
from physai.data_pipeline.mapping import ConversionMapping

JOINTS = [f"joint_{i}" for i in range(6)]

MAPPING = """
fps: 30
robot_type: six_dof_arm
features:
  observation.state:
    - topic: /joint_states
      field: position
      names: [joint_0, joint_1, joint_2, joint_3, joint_4, joint_5]
  action:
    - {topic: /arm/command, field: data}
  observation.images.wrist:
    topic: /camera/wrist/image_raw
align: {numbers: linear, max_staleness_ms: 100, on_stale: fail}
"""


def record_episode(path: Path, seed: int) -> None:
    """Two seconds of a reaching motion, written the way a recorder would."""
    rng = np.random.default_rng(seed)
    goal = rng.uniform(-1, 1, size=len(JOINTS))
    start_ns = 1_700_000_000 * 10**9
    with EpisodeBagWriter(path, metadata={"task": "reach the goal", "robot_id": "arm-1"}) as bag:
        for i in range(1000):  # 500 Hz for 2 s
            t = start_ns + i * 2_000_000
            phase = min(1.0, i / 800)
            bag.joint_state(t, JOINTS, goal * phase)
            if i % 16 == 0:  # ~30 Hz
                bag.array(t, "/arm/command", goal * min(1.0, phase + 0.05))
                image = np.zeros((96, 128, 3), np.uint8)
                x = int(10 + 100 * phase)
                image[40:56, x : x + 16] = (230, 80, 40)  # the gripper moving across the view
                bag.image(t, "/camera/wrist/image_raw", image)


def main(work: Path) -> None:
    bags = work / "bags"
    for episode in range(2):
        record_episode(bags / f"episode_{episode:06d}", seed=episode)
    for topic in inspect_bag(bags / "episode_000000"):
        print(f"{topic.topic:28} {topic.msgtype:34} {topic.count:5} msgs {topic.rate_hz:6.1f} Hz")

    mapping_file = work / "mapping.yaml"
    mapping_file.write_text(MAPPING)
    mapping = ConversionMapping.from_yaml(mapping_file)
    report = convert_bags([bags], mapping, work / "dataset", work_dir=work / "parts")
    print(f"converted {len(report.bags)} bags: {report.episodes} episodes, {report.frames} frames")

    with LeRobotDatasetReader(work / "dataset") as dataset:
        frame = dataset[45]
        print("frame 45:", frame["task"], np.round(frame["observation.state"], 3))
        print("camera:", frame["observation.images.wrist"].shape)
        assert dataset.num_episodes == 2


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
