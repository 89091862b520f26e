"""physai-evaluation.

Closed-loop SiL/HiL evaluation, open-loop replay, gates and a policy server.

What this package does, and what it will do, is written in its `specifications/`.
"""

from importlib.metadata import version as _version

__version__ = _version("physai-evaluation")
