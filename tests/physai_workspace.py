"""Facts about the workspace the root tests share: where it is and what its packages are."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "core",
    "infrastructure",
    "data-pipeline",
    "data-management",
    "synthetic-data",
    "training",
    "evaluation",
    "fleet-deployment",
    "fleet-intelligence",
]
DOMAINS = PACKAGES[1:]


def module_of(package: str) -> str:
    """`data-pipeline` → `physai.data_pipeline`."""
    return "physai." + package.replace("-", "_")


def pyproject(package: str) -> dict[str, object]:
    """The parsed pyproject.toml of a member package."""
    return tomllib.loads((ROOT / package / "pyproject.toml").read_text())
