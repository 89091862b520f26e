"""`import physai.core` stays cheap: no Azure SDK, MLflow or torch, and under 0.3 s."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("azure", "adlfs", "mlflow", "torch")
PROBE = """
import json, sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
print(json.dumps({{"elapsed": elapsed, "modules": sorted(sys.modules)}}))
"""


def _probe(module: str) -> tuple[float, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    return data["elapsed"], data["modules"]


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


def test_import_physai_core_is_light_and_fast() -> None:
    timings = []
    for _ in range(3):  # best of three: the first run may pay for a cold disk cache
        elapsed, modules = _probe("physai.core")
        timings.append(elapsed)
        assert _heavy(modules) == []
    assert min(timings) < 0.3, f"import physai.core took {min(timings):.3f}s"


def test_core_modules_import_no_heavy_stack() -> None:
    for module in (
        "physai.core.settings",
        "physai.core.uris",
        "physai.core.auth",
        "physai.core.storage",
        "physai.core.tracking",
        "physai.core.registry",
        "physai.core.jobs",
        "physai.core.contracts",
    ):
        _, modules = _probe(module)
        assert _heavy(modules) == [], f"{module} imports {_heavy(modules)}"
