"""physai-training.

RL (skrl, RSL-RL) and IL/VLA (LeRobot) training, export, packaging and registration.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-training")
