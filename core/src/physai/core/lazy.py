"""Lazy public APIs: a package names what it exports, and each loads on first access.

    # in physai/<domain>/__init__.py
    _PUBLIC = {"curate": "physai.data_management.curation", ...}
    __getattr__ = lazy_exports(__name__, _PUBLIC)

Other domains import a package's public names from its top (`from physai.data_management import
curate`) without paying for its heavy modules until they use one: the CLI stays quick to start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `exports[name]` (a module path) on first access."""

    def attribute(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(module), name)

    return attribute
