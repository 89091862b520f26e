"""physai-evaluation.

Closed-loop SiL/HiL evaluation, open-loop replay, gates and a policy server.

What this package does, and what it will do, is written in its `specifications/`.
Other domains and notebooks use it through the names below (imported on first use, so that
`import physai.evaluation` stays light):

    from physai.evaluation import evaluate_policy, SilReport
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from physai.core.lazy import lazy_exports

try:
    __version__ = _version("physai-evaluation")
except PackageNotFoundError:  # run from a source tree on PYTHONPATH
    __version__ = "0.0.0+source"

if TYPE_CHECKING:
    from physai.evaluation.sil import EpisodeResult, SilReport, evaluate_policy

# public name -> the module that defines it
_EXPORTS = {
    "EpisodeResult": "physai.evaluation.sil",
    "SilReport": "physai.evaluation.sil",
    "evaluate_policy": "physai.evaluation.sil",
}

__all__ = ["EpisodeResult", "SilReport", "evaluate_policy"]


__getattr__ = lazy_exports(__name__, _EXPORTS)
