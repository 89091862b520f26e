"""Every specification parses, and what it claims is true: implemented entry points exist and
are exercised by a test. Every domain has a Copilot skill pointing at its specifications."""

from __future__ import annotations

import re

import pytest
import yaml
from physai_workspace import PACKAGES, ROOT

from physai.core.cli import app
from physai.core.contracts import (
    Specification,
    check_entrypoints,
    check_exercised,
    find_specifications,
)

SPECS = find_specifications(ROOT / p / "specifications" for p in PACKAGES)
TEST_SOURCES = [p.read_text() for p in ROOT.glob("*/tests/**/*.py") if ".venv" not in p.parts] + [
    p.read_text() for p in (ROOT / "tests").glob("*.py")
]


def test_specs_exist_and_ids_are_unique() -> None:
    ids = [s.front.id for s in SPECS]
    assert len(ids) == len(set(ids))
    assert {s.front.domain for s in SPECS} == set(PACKAGES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.front.id)
def test_spec_is_consistent(spec: Specification) -> None:
    folder = spec.path.parent.parent.name
    assert spec.front.domain == folder
    assert spec.front.id.startswith(f"{folder}.")
    if spec.front.status != "planned":
        assert check_entrypoints(spec, app) == []
        assert check_exercised(spec, TEST_SOURCES) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_skill_points_at_every_spec(package: str) -> None:
    skill = ROOT / ".github" / "skills" / package / "SKILL.md"
    text = skill.read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, f"{skill} has no front matter"
    front = yaml.safe_load(match.group(1))
    assert front["name"] and front["description"]
    for spec in SPECS:
        if spec.front.domain == package:
            assert f"specifications/{spec.path.name}" in text, f"{skill} misses {spec.path.name}"
            assert spec.front.status in text
