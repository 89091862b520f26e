"""Helpers for tests that break a real MLflow store on purpose and check what leaks."""

from __future__ import annotations

import sqlite3
import traceback
from pathlib import Path

from physai.core.settings import Settings


def fresh_mlflow_store(tmp_path: Path) -> Settings:
    """Settings with a new sqlite MLflow store under `tmp_path` (its tables created)."""
    from physai.core.tracking import mlflow_client

    settings = Settings(home=tmp_path / ".physai")
    mlflow_client(settings).search_experiments()
    return settings


def run_sql(settings: Settings, script: str) -> None:
    """Run SQL on the store's sqlite database itself (triggers make the real store fail)."""
    from physai.core.tracking import tracking_uri

    db = sqlite3.connect(tracking_uri(settings).removeprefix("sqlite:///"))
    try:
        db.executescript(script)
    finally:
        db.close()


def assert_no_secret(exc: BaseException, secret: str = "SECRET") -> None:
    """The error keeps its message with `sig=***`, and nothing in its chain holds `secret`."""
    assert "sig=***" in str(exc)  # the underlying message is kept...
    assert secret not in str(exc)  # ...redacted
    assert exc.__cause__ is None
    assert secret not in "".join(traceback.format_exception(exc))
