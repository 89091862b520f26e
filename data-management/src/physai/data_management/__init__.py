"""physai-data-management.

The LeRobot dataset library, validation, quality scores, labels and zero-copy curation.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-data-management")
