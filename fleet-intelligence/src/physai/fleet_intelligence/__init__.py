"""physai-fleet-intelligence.

Fleet telemetry, its store, drift detection, dashboards and retraining triggers.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-fleet-intelligence")
