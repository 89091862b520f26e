"""The bag → LeRobot script a user would write today (the benchmark's reference).

    python benchmarks/lerobot_bag_script.py BAG OUT [--streaming]

rosbags' AnyReader walks the bag in time order; the newest joint state and action are kept,
and every camera image becomes one frame (`LeRobotDataset.create` + `add_frame` +
`save_episode` + `finalize`, lerobot's defaults; `--streaming` turns streaming encoding on, its
fastest setting). Written as a user would: no physai import.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bag", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--streaming", action="store_true")
    parser.add_argument(
        "--task", default="move the arm over the white puck, then over the red target"
    )
    args = parser.parse_args()

    with AnyReader([args.bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        connections = {c.topic: c for c in reader.connections}
        image = connections["/camera/image_raw"]
        _, _, raw = next(reader.messages([image]))
        first = reader.deserialize(raw, image.msgtype)
        joints = connections["/joint_states"]
        _, _, raw = next(reader.messages([joints]))
        names = list(reader.deserialize(raw, joints.msgtype).name)
        features = {
            "observation.state": {"dtype": "float32", "shape": [len(names)], "names": names},
            "action": {"dtype": "float32", "shape": [len(names)], "names": names},
            "observation.images.front": {
                "dtype": "video",
                "shape": [first.height, first.width, 3],
                "names": ["height", "width", "channels"],
            },
        }
        dataset = LeRobotDataset.create(
            "user/bag", 30, features, root=args.out, use_videos=True,
            streaming_encoding=args.streaming,
        )  # fmt: skip
        state = action = None
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic == "/joint_states":
                state = np.asarray(message.position, np.float32)
            elif connection.topic == "/arm/command":
                action = np.asarray(message.data, np.float32)
            elif (
                connection.topic == "/camera/image_raw" and state is not None and action is not None
            ):
                frame = np.frombuffer(message.data, np.uint8).reshape(
                    message.height, message.width, 3
                )
                dataset.add_frame(
                    {
                        "observation.state": state,
                        "action": action,
                        "observation.images.front": frame,
                        "task": args.task,
                    }
                )
        dataset.save_episode()
        dataset.finalize()


if __name__ == "__main__":
    main()
