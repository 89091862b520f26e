"""physai-data-management.

The LeRobot dataset library, validation, quality scores, labels and zero-copy curation.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from physai.core.lazy import lazy_exports

if TYPE_CHECKING:  # the real types for checkers; at run time they load on first use
    from physai.data_management.curation import curate
    from physai.data_management.labels import Annotations, annotation_snapshot
    from physai.data_management.lerobot import LeRobotDatasetReader, LeRobotDatasetWriter
    from physai.data_management.lerobot.files import skip_pandas_in_pyarrow
    from physai.data_management.lerobot.video_encode import EpisodeEncoder, video_codec
    from physai.data_management.validate import validate_dataset

__version__ = _version("physai-data-management")

# The public API other domains use, imported on first access (the CLI stays quick to start).
_PUBLIC = {
    "Annotations": "physai.data_management.labels",
    "EpisodeEncoder": "physai.data_management.lerobot.video_encode",
    "annotation_snapshot": "physai.data_management.labels",
    "LeRobotDatasetReader": "physai.data_management.lerobot",
    "LeRobotDatasetWriter": "physai.data_management.lerobot",
    "curate": "physai.data_management.curation",
    "skip_pandas_in_pyarrow": "physai.data_management.lerobot.files",
    "validate_dataset": "physai.data_management.validate",
    "video_codec": "physai.data_management.lerobot.video_encode",
}
__all__ = [
    "Annotations",
    "EpisodeEncoder",
    "LeRobotDatasetReader",
    "LeRobotDatasetWriter",
    "__version__",
    "annotation_snapshot",
    "curate",
    "skip_pandas_in_pyarrow",
    "validate_dataset",
    "video_codec",
]

__getattr__ = lazy_exports(__name__, _PUBLIC)
