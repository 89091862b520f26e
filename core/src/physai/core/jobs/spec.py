"""`JobSpec`: one command to run somewhere, with its image, resources, inputs, outputs and env.

A spec is backend-neutral. Its `command` is an argv list that may name inputs and outputs with
AzureML's own placeholder syntax, `${{inputs.NAME}}` and `${{outputs.NAME}}`; each backend
substitutes them its own way (a local path, an AzureML binding, an OSMO `{{input:N}}` token).

    spec = JobSpec.from_yaml("train.job.yaml")
    print(spec.to_yaml())

Bad specs raise `UserError` (from the YAML loaders) naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from physai.core.errors import UriError, UserError
from physai.core.uris import Uri, parse_uri

# Job names: lowercase letters, digits, '-' and '_'; a letter first, no separator last, 63 at
# most. That is the intersection of what Kubernetes (OSMO) and AzureML accept.
NAME_PATTERN = r"^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$"
# Input and output names become `${{inputs.NAME}}` and Python identifiers in AzureML.
IO_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$")

IOType = Literal["folder", "file"]
InputMode = Literal["ro_mount", "download", "direct"]
OutputMode = Literal["rw_mount", "upload", "direct"]
IOKind = Literal["inputs", "outputs"]


class IOSpec(BaseModel):
    """An input or output: a URI (a path, az://, Blob https, runs:/, models:/, hf://, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str | None = Field(None, description="Where the data is; outputs may leave it unset.")
    type: IOType = "folder"
    mode: Literal["ro_mount", "download", "direct", "rw_mount", "upload"] | None = Field(
        None, description="AzureML data mode; other backends ignore it."
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_uri(value)
            except UriError as exc:
                raise UserError(exc.message) from None
        return value

    def parsed(self) -> Uri | None:
        """The URI parsed with `physai.core.uris.parse_uri` (None when unset)."""
        return parse_uri(self.uri) if self.uri is not None else None


class Resources(BaseModel):
    """What a job needs. Backends use what they can express (see the jobs specification)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: int | None = Field(None, ge=1, description="CPU cores per node.")
    memory: str | None = Field(None, description="Memory per node, e.g. 8Gi.")
    storage: str | None = Field(None, description="Scratch disk per node, e.g. 50Gi (OSMO).")
    gpu: int = Field(0, ge=0, description="GPUs per node.")
    nodes: int = Field(1, ge=1, le=512)
    processes_per_node: int = Field(1, ge=1, le=64)
    instance_type: str | None = Field(None, description="AzureML instance type (VM size).")

    @field_validator("memory", "storage")
    @classmethod
    def _check_quantity(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.match(value):
            raise UserError(f"{value!r} is not a quantity: write e.g. 512Mi, 8Gi or 1Ti")
        return value

    @property
    def world_size(self) -> int:
        """How many processes the job runs in all (nodes x processes per node)."""
        return self.nodes * self.processes_per_node


def _io_map(value: Any) -> Any:
    """Accept `name: URI` shorthand for `name: {uri: URI}`."""
    if isinstance(value, Mapping):
        return {k: {"uri": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


class YamlModel(BaseModel):
    """A model kept in YAML files: loaders whose every failure is one line naming the source."""

    yaml_kind: ClassVar[str] = "spec"

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Self:
        """Validate a parsed mapping; a bad one raises UserError naming `source` and the field."""
        return validate_model(cls, data, source or cls.yaml_kind)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Load from a YAML file."""
        return cls.from_dict(read_yaml(Path(path)), source=str(path))

    @classmethod
    def parse_yaml(cls, text: str, *, source: str | None = None) -> Self:
        """Load from YAML text."""
        source = source or cls.yaml_kind
        return cls.from_dict(parse_yaml_text(text, source), source=source)


class JobSpec(YamlModel):
    """One job: an argv command, where it runs, what it reads and writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    yaml_kind: ClassVar[str] = "job spec"

    name: str
    command: list[str] = Field(min_length=1)
    image: str | None = Field(None, description="Container image (cloud backends).")
    resources: Resources = Field(default_factory=Resources)
    inputs: dict[str, IOSpec] = Field(default_factory=dict)
    outputs: dict[str, IOSpec] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(0, ge=0, le=20)
    timeout_s: float | None = Field(None, gt=0)
    working_dir: str | None = Field(None, description="Local backend only: where to run.")
    after: list[str] = Field(default_factory=list, description="Jobs (of a DAG) to run after.")
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name(value, "job")

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _io_map(value)

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        # YAML turns `DEBUG: 1` into an int; an environment only holds strings.
        if isinstance(value, Mapping):
            return {str(k): v if isinstance(v, str) else _scalar(k, v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        for kind, ios in (("inputs", self.inputs), ("outputs", self.outputs)):
            for io_name, io in ios.items():
                _check_io(self.name, kind, io_name, io)
        both = set(self.inputs) & set(self.outputs)
        if both:
            raise UserError(f"job {self.name!r}: {sorted(both)} named both input and output")
        for arg in self.command:
            for kind, io_name in placeholders(arg):
                if io_name not in (self.inputs if kind == "inputs" else self.outputs):
                    declared = ", ".join(sorted(self.inputs if kind == "inputs" else self.outputs))
                    raise UserError(
                        f"job {self.name!r}: command uses ${{{{{kind}.{io_name}}}}} but no "
                        f"{kind[:-1]} {io_name!r} is declared (declared: {declared or 'none'})"
                    )
        for key, value in self.env.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise UserError(f"job {self.name!r}: {key!r} is not an environment variable name")
            if PLACEHOLDER.search(value):
                raise UserError(
                    f"job {self.name!r}: env {key} uses a placeholder; placeholders work in "
                    "`command` only (pass the path as an argument)"
                )
        if self.name in self.after:
            raise UserError(f"job {self.name!r} cannot run after itself")
        return self

    # -- YAML ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (defaults left out, `name: URI` shorthand where it fits)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["name"] = self.name
        data["command"] = list(self.command)
        for kind in ("inputs", "outputs"):
            if kind in data:
                data[kind] = {
                    k: v["uri"] if set(v) == {"uri"} else v for k, v in data[kind].items()
                }
        return data

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The spec as YAML; also written to `path` when one is given."""
        return dump_yaml(self.to_dict(), path)

    # -- helpers ---------------------------------------------------------------------------

    def io(self, kind: IOKind, name: str) -> IOSpec:
        """The input or output called `name`."""
        return (self.inputs if kind == "inputs" else self.outputs)[name]


def check_name(value: str, what: str) -> str:
    """Raise UserError unless `value` is a valid job or DAG name."""
    if not isinstance(value, str) or not re.match(NAME_PATTERN, value):
        raise UserError(
            f"{what} name {value!r} is invalid: use 1-63 lowercase letters, digits, '-' and '_', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def _check_io(job: str, kind: str, name: str, io: IOSpec) -> None:
    if not re.match(IO_NAME_PATTERN, name):
        raise UserError(
            f"job {job!r}: {kind[:-1]} name {name!r} is invalid: use letters, digits and '_' "
            "(a valid identifier)"
        )
    if kind == "inputs":
        if io.uri is None:
            raise UserError(f"job {job!r}: input {name!r} has no uri")
        if io.mode not in (None, "ro_mount", "download", "direct"):
            raise UserError(f"job {job!r}: input {name!r} mode must be ro_mount|download|direct")
    elif io.mode not in (None, "rw_mount", "upload", "direct"):
        raise UserError(f"job {job!r}: output {name!r} mode must be rw_mount|upload|direct")


def _scalar(key: Any, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise UserError(f"env {key}: values must be strings or numbers, not {type(value).__name__}")


def placeholders(arg: str) -> Iterator[tuple[IOKind, str]]:
    """The (kind, name) of each `${{inputs.NAME}}` / `${{outputs.NAME}}` in `arg`."""
    for match in PLACEHOLDER.finditer(arg):
        kind: IOKind = "inputs" if match.group(1) == "inputs" else "outputs"
        yield kind, match.group(2)


def substitute(arg: str, values: Mapping[tuple[IOKind, str], str]) -> str:
    """Replace each placeholder in `arg` with `values[(kind, name)]`."""

    def one(match: re.Match[str]) -> str:
        kind: IOKind = "inputs" if match.group(1) == "inputs" else "outputs"
        return values[(kind, match.group(2))]

    return PLACEHOLDER.sub(one, arg)


def canonical(arg: str) -> str:
    """`arg` with every placeholder written exactly `${{kind.name}}` (no inner spaces)."""
    return PLACEHOLDER.sub(lambda m: "${{" + f"{m.group(1)}.{m.group(2)}" + "}}", arg)


# -- YAML and validation shared with dag.py ------------------------------------------------


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, or raise UserError saying why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"spec file {path} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read spec file {path}: {exc}") from None
    return parse_yaml_text(text, str(path))


def parse_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text, or raise UserError naming `source` and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{source} is not valid YAML{where}: {problem}") from None


def validate_model[M: BaseModel](cls: type[M], data: Any, source: str) -> M:
    """`cls.model_validate(data)` with every failure turned into a one-line UserError."""
    if not isinstance(data, Mapping):
        raise UserError(f"{source}: expected a mapping at the top level, got {_kind(data)}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise UserError(f"{source}: {where}: {first['msg']}{more}") from None
    except UserError as exc:
        raise UserError(f"{source}: {exc.message}") from None


def _kind(data: Any) -> str:
    return "nothing (empty file)" if data is None else type(data).__name__


def dump_yaml(data: Any, path: str | Path | None = None) -> str:
    """YAML text for `data` (keys in insertion order); written to `path` too when given."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
