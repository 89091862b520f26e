"""The contract format: `specifications/*.specification.md` files and their checks.

Each specification starts with YAML front matter (`id`, `domain`, `status`, `entrypoints`,
`inputs`, `outputs`, `config`) followed by prose. Tools and Copilot Agent Skills read them; the
checks here keep them honest: a spec that says `implemented` must name entry points that exist
(Python callables that import, CLI commands that resolve) and that some test mentions.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from physai.core.errors import UserError

Status = Literal["implemented", "partial", "planned"]
SPEC_SUFFIX = ".specification.md"


class Entrypoints(BaseModel):
    """How a capability is reached: `physai ...` commands and importable Python names."""

    model_config = ConfigDict(extra="forbid")

    cli: list[str] = Field(default_factory=list)
    python: list[str] = Field(default_factory=list)


class FrontMatter(BaseModel):
    """The YAML front matter of a specification."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
    domain: str
    status: Status
    entrypoints: Entrypoints = Field(default_factory=Entrypoints)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Specification:
    """A parsed specification file."""

    path: Path
    front: FrontMatter
    body: str

    @property
    def title(self) -> str:
        """The first Markdown heading of the prose, or the id."""
        for line in self.body.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.front.id


def parse_specification(path: Path) -> Specification:
    """Parse one specification file, or raise UserError naming the file and the problem."""
    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n?(.*)$", text, flags=re.S)
    if not match:
        raise UserError(f"{path}: no YAML front matter (the file must start with '---')")
    try:
        data = yaml.safe_load(match.group(1))
        front = FrontMatter.model_validate(data)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: front matter is not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: front matter field {where!r}: {first['msg']}") from None
    return Specification(path, front, match.group(2))


def find_specifications(roots: Iterable[Path]) -> list[Specification]:
    """Every specification under the given `specifications/` directories, sorted by path."""
    paths = sorted(p for root in roots if root.is_dir() for p in root.glob(f"*{SPEC_SUFFIX}"))
    return [parse_specification(p) for p in paths]


def resolve_python(name: str) -> object:
    """Import `package.module.attr[.attr]` and return the object, or raise ImportError."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: object = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # this prefix is not a module: try a shorter one
            raise
        for attr in parts[split:]:
            if not hasattr(obj, attr):
                raise ImportError(f"{name}: {module_name} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module found for {name!r}")


def resolve_cli(command: str, app: Any) -> bool:
    """True if `physai a b c` names a command of the click/typer tree `app`."""
    import typer
    from typer.core import TyperGroup

    words = command.split()
    if not words or words[0] != "physai":
        return False
    node: Any = typer.main.get_command(app) if isinstance(app, typer.Typer) else app
    for word in words[1:]:
        if not isinstance(node, TyperGroup):
            return False
        node = node.commands.get(word)
        if node is None:
            return False
    return True


def check_entrypoints(spec: Specification, cli_app: Any) -> list[str]:
    """Problems with the entry points of an implemented or partial spec (empty list: fine)."""
    problems: list[str] = []
    for name in spec.front.entrypoints.python:
        try:
            resolve_python(name)
        except ImportError as exc:
            problems.append(f"{spec.front.id}: python entry point {name} does not exist ({exc})")
    for command in spec.front.entrypoints.cli:
        if not resolve_cli(command, cli_app):
            problems.append(f"{spec.front.id}: CLI command {command!r} does not exist")
    return problems


def check_exercised(spec: Specification, test_sources: Sequence[str]) -> list[str]:
    """Entry points of the spec that no test source mentions."""
    corpus = "\n".join(test_sources)
    problems = []
    for name in spec.front.entrypoints.python:
        leaf = name.rsplit(".", 1)[-1]
        if not re.search(rf"\b{re.escape(leaf)}\b", corpus):
            problems.append(f"{spec.front.id}: no test mentions {leaf} ({name})")
    for command in spec.front.entrypoints.cli:
        leaf = command.split()[-1]
        if not re.search(rf"[\"']{re.escape(leaf)}[\"']", corpus):
            problems.append(f"{spec.front.id}: no test invokes {command!r}")
    return problems


def specifications_dir(package: str) -> Path:
    """The `specifications/` folder of an installed physai package (e.g. `physai.training`).

    A wheel carries it inside the package; a source checkout keeps it at `<domain>/`.
    """
    module = importlib.import_module(package)
    here = Path(str(module.__file__)).parent
    inside = here / "specifications"
    return inside if inside.is_dir() else here.parents[2] / "specifications"
