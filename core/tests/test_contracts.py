"""The specification checks can fail: a spec naming what does not exist is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from physai.core.cli import app
from physai.core.contracts import (
    check_entrypoints,
    check_exercised,
    find_specifications,
    parse_specification,
    resolve_cli,
    resolve_python,
    specifications_dir,
)
from physai.core.errors import UserError

SPEC = """---
id: demo.capability
domain: demo
status: implemented
entrypoints:
  cli: [{cli}]
  python: [{python}]
inputs: [a thing]
outputs: [another thing]
config: {{fps: "target rate"}}
---
# A demo capability
Prose.
"""


def _write(tmp_path: Path, cli: str, python: str) -> Path:
    path = tmp_path / "demo.specification.md"
    path.write_text(SPEC.format(cli=cli, python=python))
    return path


def test_existing_entrypoints_pass(tmp_path: Path) -> None:
    spec = parse_specification(_write(tmp_path, "physai info", "physai.core.uris.parse_uri"))
    assert spec.title == "A demo capability"
    assert spec.front.config == {"fps": "target rate"}
    assert check_entrypoints(spec, app) == []
    assert check_exercised(spec, ["parse_uri('x')", 'invoke(app, ["info"])']) == []


def test_missing_entrypoints_are_reported(tmp_path: Path) -> None:
    spec = parse_specification(
        _write(tmp_path, "physai training teleport", "physai.core.uris.no_such_function")
    )
    problems = check_entrypoints(spec, app)
    assert len(problems) == 2
    assert "no_such_function" in problems[0] and "teleport" in problems[1]
    assert len(check_exercised(spec, ["nothing here"])) == 2


def test_resolvers() -> None:
    assert resolve_python("physai.core.contracts.Specification.title") is not None
    with pytest.raises(ImportError):
        resolve_python("physai.nonexistent.thing")
    assert resolve_cli("physai training specs", app)
    assert not resolve_cli("physai training specs extra", app)
    assert not resolve_cli("python -m physai", app)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no front matter\n", "no YAML front matter"),
        ("---\nid: [unclosed\n---\n", "not valid YAML"),
        ("---\nid: x.y\ndomain: d\nstatus: done\n---\n", "status"),
        ("---\nid: x.y\ndomain: d\nstatus: planned\nowner: me\n---\n", "owner"),
    ],
)
def test_malformed_specs_are_user_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.specification.md"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        parse_specification(path)


def test_core_specs_are_found_from_the_package() -> None:
    specs = find_specifications([specifications_dir("physai.core")])
    assert {s.front.id for s in specs} >= {"core.settings", "core.uris", "core.cli"}
