"""physai-core: the small shared contracts every physai domain builds on.

Modules: `settings`, `storage`, `tracking`, `registry`, `auth`, `uris`, `jobs`, `contracts`,
`errors`, `logs`, `cli`. Importing this package is cheap (no Azure SDK, MLflow or torch); each
module imports its heavy dependencies only when a function needs them.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("physai-core")
except PackageNotFoundError:  # run from a source tree on PYTHONPATH (e.g. a GPU host)
    __version__ = "0.0.0+source"
