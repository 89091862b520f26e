"""physai-training.

RL (skrl, RSL-RL) and IL/VLA (LeRobot) training, export, packaging and registration.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("physai-training")
except PackageNotFoundError:  # run from a source tree on PYTHONPATH (e.g. a GPU host)
    __version__ = "0.0.0+source"
