"""Every example of every package runs: scripts as subprocesses, notebooks through nbclient."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from physai_workspace import PACKAGES, ROOT

SCRIPTS = sorted(p for pkg in PACKAGES for p in (ROOT / pkg / "examples").glob("*.py"))
NOTEBOOKS = sorted(p for pkg in PACKAGES for p in (ROOT / pkg / "examples").glob("*.ipynb"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHYSAI_")}
    env["PHYSAI_HOME"] = str(tmp_path / ".physai")
    env["MPLBACKEND"] = "Agg"
    return env


def test_there_are_examples() -> None:
    assert SCRIPTS and NOTEBOOKS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_script_runs(script: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_notebook_runs(
    notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("PHYSAI_") and k != "PHYSAI_HOME"]:
        monkeypatch.delenv(key)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
