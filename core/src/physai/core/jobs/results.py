"""Typed results of running jobs: `JobResult` per job, `RunSummary` per run, `JobFailedError`."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from physai.core.errors import JobError

JobStatus = Literal["succeeded", "failed", "cancelled", "skipped"]
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
SUMMARY_FILE = "summary.json"


class JobResult(BaseModel):
    """What happened to one job. `skipped`: an upstream job did not succeed."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: JobStatus
    exit_code: int | None = None
    attempts: int = 0
    log_path: Path | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    reason: str | None = None
    outputs: dict[str, str] = {}
    command: list[str] = []

    @property
    def ok(self) -> bool:
        """True when the job succeeded."""
        return self.status == "succeeded"


class RunSummary(BaseModel):
    """One run of one or more jobs; written as `summary.json` in the run directory."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    name: str
    backend: Literal["local"] = "local"
    run_dir: Path
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float = 0.0
    jobs: dict[str, JobResult]

    @property
    def ok(self) -> bool:
        """True when every job succeeded."""
        return self.status == "succeeded"

    @property
    def summary_path(self) -> Path:
        """Where this summary is written."""
        return self.run_dir / SUMMARY_FILE

    def write(self) -> Path:
        """Write `summary.json` atomically (readers never see half a file)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.summary_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n", "utf-8")
        os.replace(tmp, self.summary_path)
        return self.summary_path

    @classmethod
    def read(cls, run_dir: str | Path) -> RunSummary:
        """Read the summary of a finished (or running) run."""
        path = Path(run_dir) / SUMMARY_FILE
        return cls.model_validate_json(path.read_text("utf-8"))


class JobFailedError(JobError):
    """A job failed or was cancelled; `summary` holds every job's result."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary
        bad = [r for r in summary.jobs.values() if r.status in ("failed", "cancelled")]
        parts = [f"{r.name} {r.status} ({r.reason or 'no reason'}; log {r.log_path})" for r in bad]
        head = (
            f"run {summary.run_id}: {len(bad)} of {len(summary.jobs)} job(s) did not succeed"
            if len(summary.jobs) > 1
            else f"run {summary.run_id}:"
        )
        super().__init__(f"{head} {'; '.join(parts)}; summary {summary.summary_path}")
