"""A real `mlflow server` for tests: sqlite backend, proxied artifacts, on 127.0.0.1.

    def test_roundtrip(mlflow_server: str) -> None:
        settings = load_settings(tracking_uri=mlflow_server)

The server runs once per test session (`mlflow_server` fixture) from this venv's MLflow, with one
worker and MLflow's background job runner switched off. `start_mlflow_server` is the plain
context manager behind it, for scripts and benchmarks.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from physai.core.testing.services import ServiceStartError, free_port, run_service

STARTUP_TIMEOUT_S = 90.0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def start_mlflow_server(
    workdir: str | Path, *, timeout_s: float = STARTUP_TIMEOUT_S
) -> Iterator[str]:
    """Run `mlflow server` with its state under `workdir`; yield its URL; stop it on exit."""
    root = Path(workdir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runner processes
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    with run_service(
        "mlflow server",
        command,
        ready=lambda: _healthy(url),
        log_path=log,
        timeout_s=timeout_s,
        cwd=root,
        env=env,
        poll_s=0.5,
    ):
        yield url


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real MLflow tracking server (sqlite backend, proxied artifacts) for the session."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    try:
        with start_mlflow_server(workdir) as url:
            yield url
    except ServiceStartError as exc:
        pytest.fail(str(exc), pytrace=False)
