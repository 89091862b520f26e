"""The jobs specification names entry points that exist and that the jobs tests exercise."""

from __future__ import annotations

from pathlib import Path

import typer

from physai.core.contracts import (
    check_entrypoints,
    check_exercised,
    parse_specification,
    specifications_dir,
)
from physai.core.jobs.cli import app

SPEC = specifications_dir("physai.core") / "jobs.specification.md"


def test_jobs_specification_is_implemented_and_exercised() -> None:
    spec = parse_specification(SPEC)
    assert (spec.front.id, spec.front.status) == ("core.jobs", "implemented")
    root = typer.Typer()
    root.add_typer(app, name="jobs")  # how the physai CLI mounts it
    assert check_entrypoints(spec, root) == []
    tests = [p.read_text() for p in Path(__file__).parent.glob("test_jobs_*.py")]
    assert check_exercised(spec, tests) == []
