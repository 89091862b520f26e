"""physai-infrastructure.

Terraform modules, cluster setup, and Terraform outputs turned into physai settings.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-infrastructure")
