"""LeRobot datasets on pyarrow + PyAV, without torch: write v3.0, read v3.0 and v2.x.

    from physai.data_management.lerobot import LeRobotDatasetReader, LeRobotDatasetWriter

    with LeRobotDatasetWriter("az://datasets/pick/v3", fps=30, features=features) as writer:
        writer.add_episode({"observation.state": states, "observation.images.front": frames},
                           task="pick the cube")
    with LeRobotDatasetReader("az://datasets/pick/v3") as dataset:
        frame = dataset[10]     # numpy arrays, camera images as HxWx3 uint8, "task"

Format facts follow lerobot 0.6.1; the contract is specifications/lerobot-dataset.specification.md.
"""

from physai.data_management.lerobot.features import Feature
from physai.data_management.lerobot.format import CODEBASE_VERSION, READABLE_VERSIONS
from physai.data_management.lerobot.metadata import (
    DatasetMetadata,
    EpisodeInfo,
    VideoSegment,
    load_metadata,
)
from physai.data_management.lerobot.reader import LeRobotDatasetReader
from physai.data_management.lerobot.stats import aggregate_features
from physai.data_management.lerobot.writer import (
    LeRobotDatasetWriter,
    WriteSummary,
    write_episodes,
)

__all__ = [
    "CODEBASE_VERSION",
    "READABLE_VERSIONS",
    "DatasetMetadata",
    "EpisodeInfo",
    "Feature",
    "LeRobotDatasetReader",
    "LeRobotDatasetWriter",
    "VideoSegment",
    "WriteSummary",
    "aggregate_features",
    "load_metadata",
    "write_episodes",
]
