"""A typed model of the NVIDIA OSMO workflow specification, for offline validation.

OSMO publishes no Python SDK on PyPI, so this models the documented schema (user guide,
"Workflows > Specification": Workflow, Task, Group, Inputs and Outputs, Resources, Timeouts,
File Injection, Templates and Special Tokens, Storage URLs) and the rules OSMO's own service
models enforce on submission (NVIDIA/OSMO `src/utils/job/task.py` and `workflow.py`):

- names match `[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?`, unique across tasks and groups once
  lower-cased with `_` read as `-` (Kubernetes names);
- a workflow has `tasks` or `groups`, never both; a group has exactly one `lead` task (a group
  of one task leads itself);
- a `task:` input names a task of the workflow, and (with groups) its group comes earlier;
- a task's `resource` names an entry of `resources` (`default` when omitted);
- `{{input:N}}` needs an N-th input, `{{host:T}}` a task T, and every other `{{ var }}` a
  `default-values` entry (OSMO fails the submission otherwise);
- timeouts are `<integer><s|m|h|d>`; URLs use `s3://`, `gs://`, `azure://ACCOUNT/CONTAINER/...`,
  `tos://` or `swift://`; injected files may not live under `/osmo`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_REGEX = r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$"
URL_SCHEMES = ("s3://", "gs://", "azure://", "tos://", "swift://")
TIMEOUT_REGEX = r"^[0-9]+[smhd]$"
QUANTITY_REGEX = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$"
# `{{ ... }}` expressions: OSMO's special tokens, or Jinja variables from default-values.
TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
SPECIAL = re.compile(
    r"^(output|workflow_id|input:[0-9]+|input:[A-Za-z][\w-]*|host:[A-Za-z][\w-]*)$"
)
_AZURE_URL = re.compile(r"^azure://[a-z0-9]{3,24}/[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}(/.*)?$")


def k8s_name(name: str) -> str:
    """The name OSMO compares for uniqueness: lower case, `_` read as `-`."""
    return name.lower().replace("_", "-")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_regex(value: str) -> str:
    if value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return value


class TaskInput(_Strict):
    """`- task: NAME`: the upstream task's output folder, and a dependency on it."""

    task: str = Field(pattern=r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?(:[a-zA-Z][\w-]*)?$")
    regex: str = ""

    _regex = field_validator("regex")(_check_regex)


class UrlIO(_Strict):
    """`- url: SCHEME://...`: download from (input) or upload to (output) object storage."""

    url: str
    regex: str = ""

    _regex = field_validator("regex")(_check_regex)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if TOKEN.search(value):
            return value  # a template variable, checked once default-values are applied
        if not value.startswith(URL_SCHEMES):
            raise ValueError(f"storage URL {value!r} must start with one of {URL_SCHEMES}")
        if value.startswith("azure://") and not _AZURE_URL.match(value):
            raise ValueError(f"Azure URL {value!r} must be azure://ACCOUNT/CONTAINER[/PATH]")
        return value


class DatasetRef(_Strict):
    """An OSMO dataset (`name[:tag]`), a folder inside it, filters."""

    name: str
    path: str = ""
    metadata: list[str] = []
    labels: list[str] = []
    regex: str = ""
    localpath: str | None = None


class DatasetIO(_Strict):
    """`- dataset: {name: ...}`."""

    dataset: DatasetRef


class UpdateDatasetRef(_Strict):
    """The dataset an `update_dataset` output adds to."""

    name: str
    paths: list[str] = []
    metadata: list[str] = []
    labels: list[str] = []


class UpdateDatasetOutput(_Strict):
    """`- update_dataset: {name: ...}`."""

    update_dataset: UpdateDatasetRef


Input = TaskInput | UrlIO | DatasetIO
Output = UrlIO | DatasetIO | UpdateDatasetOutput


class File(_Strict):
    """A file injected into the container: inline `contents` or a `localpath` beside the spec."""

    path: str
    contents: str | None = None
    localpath: str | None = None
    base64: bool = False

    @model_validator(mode="after")
    def _check(self) -> File:
        parts = [p for p in self.path.split("/") if p]
        if not parts or parts[0] == "osmo":
            raise ValueError(f"file path {self.path!r} is empty or under /osmo")
        if (self.contents is None) == (self.localpath is None):
            raise ValueError(f"file {self.path!r} needs exactly one of contents or localpath")
        return self


class TopologyRequirement(_Strict):
    """Co-location of tasks on a topology key."""

    key: str
    group: str = "default"
    requirementType: str = Field("required", pattern="^(required|preferred)$")  # noqa: N815


class ResourceSpec(_Strict):
    """A named resource spec: what each task using it requests."""

    cpu: int | None = Field(None, ge=1)
    gpu: int | None = Field(None, ge=0)
    memory: str | None = Field(None, pattern=QUANTITY_REGEX)
    storage: str | None = Field(None, pattern=QUANTITY_REGEX)
    platform: str | None = None
    nodesExcluded: list[str] = []  # noqa: N815
    topology: list[TopologyRequirement] = []


class Task(_Strict):
    """One container."""

    name: str = Field(pattern=NAME_REGEX)
    image: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    args: list[str] = []
    lead: bool = False
    environment: dict[str, str] = {}
    credentials: dict[str, str | dict[str, str]] = {}
    inputs: list[Input] = []
    outputs: list[Output] = []
    files: list[File] = []
    resource: str = "default"
    volumeMounts: list[str] = []  # noqa: N815
    exitActions: dict[str, str] = {}  # noqa: N815
    checkpoint: list[dict[str, Any]] = []
    privileged: bool = False
    hostNetwork: bool = False  # noqa: N815
    downloadType: str | None = None  # noqa: N815
    cacheSize: str | None = None  # noqa: N815

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if k8s_name(value) == "osmo-ctrl":
            raise ValueError("a task may not be named osmo-ctrl")
        return value

    @field_validator("files")
    @classmethod
    def _unique_files(cls, value: list[File]) -> list[File]:
        paths = [f.path for f in value]
        if len(paths) != len(set(paths)):
            raise ValueError("two injected files share one path")
        return value

    @field_validator("exitActions")
    @classmethod
    def _exit_actions(cls, value: dict[str, str]) -> dict[str, str]:
        for action, codes in value.items():
            if action.upper() not in ("COMPLETE", "FAIL", "RESCHEDULE"):
                raise ValueError(f"unknown exit action {action!r}")
            if not re.fullmatch(r"^(\d+(-\d+)?)(,\d+(-\d+)?)*$", codes):
                raise ValueError(f"invalid exit codes {codes!r}")
        return value

    def strings(self) -> Iterator[str]:
        """Every string OSMO substitutes tokens in (command, args, env, files)."""
        yield from self.command
        yield from self.args
        yield from self.environment.values()
        yield from (f.contents for f in self.files if f.contents is not None)


class Group(_Strict):
    """Tasks scheduled together on a private network, with one lead."""

    name: str = Field(pattern=NAME_REGEX)
    barrier: bool = True
    ignoreNonleadStatus: bool = True  # noqa: N815
    tasks: list[Task] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_lead(self) -> Group:
        leads = sum(1 for t in self.tasks if t.lead)
        if len(self.tasks) > 1 and leads != 1:
            raise ValueError(f"group {self.name!r} has {leads} lead task(s); it needs exactly one")
        return self


class Timeout(_Strict):
    """Per-group execution and queueing limits."""

    exec_timeout: str | None = Field(None, pattern=TIMEOUT_REGEX)
    queue_timeout: str | None = Field(None, pattern=TIMEOUT_REGEX)


class Workflow(_Strict):
    """The `workflow:` section."""

    name: str = Field(pattern=NAME_REGEX)
    pool: str | None = None
    labels: dict[str, str] = {}
    timeout: Timeout | None = None
    resources: dict[str, ResourceSpec] = {}
    tasks: list[Task] = []
    groups: list[Group] = []

    @model_validator(mode="after")
    def _rules(self) -> Workflow:
        if self.tasks and self.groups:
            raise ValueError("a workflow has tasks or groups, not both")
        if not self.tasks and not self.groups:
            raise ValueError("a workflow needs at least one task or group")
        if len(self.labels) > 16:
            raise ValueError("a workflow may have at most 16 labels")
        groups = self.groups or [Group(name=f"{t.name}-group", tasks=[t]) for t in self.tasks]
        seen: dict[str, str] = {}
        names = [g.name for g in self.groups] + [t.name for g in groups for t in g.tasks]
        for name in names:
            if k8s_name(name) in seen:
                raise ValueError(
                    f"names {seen[k8s_name(name)]!r} and {name!r} collide (OSMO compares them "
                    "lower-cased, with '_' read as '-')"
                )
            seen[k8s_name(name)] = name
        task_group = {t.name: g.name for g in groups for t in g.tasks}
        earlier: set[str] = set()
        for group in groups:
            for task in group.tasks:
                if task.resource not in self.resources and not (
                    task.resource == "default" and not self.resources
                ):
                    raise ValueError(
                        f"task {task.name!r} uses undefined resource {task.resource!r}"
                    )
                self._check_inputs(task, task_group, earlier, group)
                self._check_tokens(task, group)
            earlier.add(group.name)
        return self

    @staticmethod
    def _check_inputs(
        task: Task, task_group: dict[str, str], earlier: set[str], group: Group
    ) -> None:
        for inp in task.inputs:
            if not isinstance(inp, TaskInput) or ":" in inp.task:
                continue  # `workflow_id:task` names a task of an earlier workflow
            if inp.task not in task_group:
                raise ValueError(f"task {task.name!r} reads unknown task {inp.task!r}")
            if task_group[inp.task] == group.name or task_group[inp.task] not in earlier:
                raise ValueError(
                    f"task {task.name!r} reads task {inp.task!r}, whose group must come earlier"
                )

    @staticmethod
    def _check_tokens(task: Task, group: Group) -> None:
        in_group = {t.name for t in group.tasks}
        for text in task.strings():
            for token in TOKEN.findall(text):
                if token.startswith("input:") and token[6:].isdigit():
                    if int(token[6:]) >= len(task.inputs):
                        raise ValueError(
                            f"task {task.name!r} uses {{{{{token}}}}} but has "
                            f"{len(task.inputs)} input(s)"
                        )
                elif token.startswith("host:") and token[5:] not in in_group:
                    raise ValueError(f"task {task.name!r}: {{{{{token}}}}} is not in its group")

    def all_tasks(self) -> list[Task]:
        """Every task, in declaration order."""
        return self.tasks or [t for g in self.groups for t in g.tasks]


class WorkflowFile(_Strict):
    """A whole workflow file: `workflow:` plus optional `default-values:` for `{{ }}` variables."""

    version: int | None = None
    workflow: Workflow
    default_values: dict[str, Any] = Field(default_factory=dict, alias="default-values")

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Substitute `{{ var }}` from default-values (as OSMO does), refusing unknown ones."""
        if not isinstance(data, dict):
            return data
        defaults = data.get("default-values") or data.get("default_values") or {}
        if not isinstance(defaults, dict):
            raise ValueError("default-values must be a mapping")
        workflow = _substitute(data.get("workflow"), defaults)
        return {**data, "workflow": workflow}


def _substitute(node: Any, defaults: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, defaults) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, defaults) for v in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        if SPECIAL.match(token):
            return match.group(0)  # filled in by OSMO at run time
        if token not in defaults:
            raise ValueError(f"template variable {{{{ {token} }}}} has no default-values entry")
        return str(defaults[token])

    whole = TOKEN.fullmatch(node.strip())
    if whole and not SPECIAL.match(whole.group(1)) and whole.group(1) in defaults:
        return defaults[whole.group(1)]  # keep the default's type (an int stays an int)
    return TOKEN.sub(one, node)
