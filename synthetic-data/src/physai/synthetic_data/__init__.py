"""physai-synthetic-data.

Simulated demonstrations, domain randomization, augmentation and Cosmos jobs.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-synthetic-data")
