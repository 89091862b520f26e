"""`JobDag`: named JobSpecs and the order they run in.

A job depends on another when it lists it in `after`, or when one of its input URIs equals one
of the other job's output URIs (the data edge every backend turns into its own binding). Unknown
names, two jobs writing the same URI, and cycles are rejected with a `UserError`.

    dag = JobDag.from_yaml("pipeline.yaml")     # {name: ..., jobs: [<JobSpec>, ...]}
    dag.topological_order()                     # ['prep', 'train', 'eval']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from physai.core.errors import UserError
from physai.core.jobs.spec import (
    JobSpec,
    YamlModel,
    check_name,
    dump_yaml,
    read_yaml,
)
from physai.core.uris import parse_uri


def uri_key(uri: str) -> str:
    """A canonical form of a URI, so `az://c/x/` and `az://c/x` compare equal."""
    return str(parse_uri(uri))


class Producer(BaseModel):
    """The job and output name that write a URI."""

    model_config = ConfigDict(frozen=True)

    job: str
    output: str


class JobDag(YamlModel):
    """A directed acyclic graph of jobs (explicit `after` edges plus data edges).

    In YAML: `{name, description, jobs: [job spec, ...]}`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    yaml_kind: ClassVar[str] = "DAG spec"

    name: str
    jobs: list[JobSpec] = Field(min_length=1)
    description: str | None = None

    _by_name: dict[str, JobSpec] = PrivateAttr(default_factory=dict)
    _deps: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)
    _producers: dict[str, Producer] = PrivateAttr(default_factory=dict)
    _uri_keys: dict[str, str] = PrivateAttr(default_factory=dict)  # each URI of a job, parsed once
    _order: list[str] = PrivateAttr(default_factory=list)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name(value, "DAG")

    @model_validator(mode="after")
    def _build(self) -> JobDag:
        names = [job.name for job in self.jobs]
        by_name: dict[str, JobSpec] = {}
        for job in self.jobs:
            if job.name in by_name:
                raise UserError(f"DAG {self.name!r}: two jobs are named {job.name!r}")
            by_name[job.name] = job
        keys: dict[str, str] = {}

        def key_of(uri: str) -> str:
            if uri not in keys:
                keys[uri] = uri_key(uri)
            return keys[uri]

        producers: dict[str, Producer] = {}
        for job in self.jobs:
            for out_name, out in job.outputs.items():
                if out.uri is None:
                    continue
                key = key_of(out.uri)
                if key in producers:
                    other = producers[key]
                    raise UserError(
                        f"DAG {self.name!r}: jobs {other.job!r} and {job.name!r} both write "
                        f"{out.uri}: give each output its own URI"
                    )
                producers[key] = Producer(job=job.name, output=out_name)
        deps: dict[str, tuple[str, ...]] = {}
        for job in self.jobs:
            found: list[str] = []
            for upstream in job.after:
                if upstream not in by_name:
                    raise UserError(
                        f"DAG {self.name!r}: job {job.name!r} runs after unknown job "
                        f"{upstream!r} (jobs: {', '.join(names)})"
                    )
                found.append(upstream)
            for inp in job.inputs.values():
                producer = producers.get(key_of(inp.uri)) if inp.uri else None
                if producer is not None:
                    found.append(producer.job)
            deps[job.name] = tuple(dict.fromkeys(found))
        self._by_name = by_name
        self._deps = deps
        self._producers = producers
        self._uri_keys = keys
        self._order = _topological(names, deps, self.name)
        return self

    # -- queries ---------------------------------------------------------------------------

    def job(self, name: str) -> JobSpec:
        """The job called `name` (KeyError if there is none)."""
        return self._by_name[name]

    def dependencies(self, name: str) -> tuple[str, ...]:
        """The jobs `name` waits for: its `after` list, then the producers of its inputs."""
        return self._deps[name]

    def edges(self) -> list[tuple[str, str]]:
        """Every (upstream, downstream) pair, in topological order of the downstream job."""
        return [(up, name) for name in self._order for up in self._deps[name]]

    def producer(self, uri: str | None) -> Producer | None:
        """Which job of this DAG writes `uri`, if any (the DAG's own URIs are not parsed again)."""
        if not uri:
            return None
        key = self._uri_keys.get(uri)
        return self._producers.get(key if key is not None else uri_key(uri))

    def topological_order(self) -> list[str]:
        """Job names so that every job comes after the jobs it depends on (stable)."""
        return list(self._order)

    def levels(self) -> list[list[str]]:
        """Jobs grouped into waves: each wave depends only on earlier waves."""
        level: dict[str, int] = {}
        for name in self._order:
            level[name] = 1 + max((level[d] for d in self._deps[name]), default=-1)
        waves: list[list[str]] = [[] for _ in range(max(level.values()) + 1)]
        for name in self._order:
            waves[level[name]].append(name)
        return waves

    # -- construction and YAML -------------------------------------------------------------

    @classmethod
    def of(cls, name: str, jobs: Iterable[JobSpec]) -> JobDag:
        """A DAG from jobs built in Python (fan-out shards, say)."""
        return cls(name=name, jobs=list(jobs))

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping for YAML."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["jobs"] = [job.to_dict() for job in self.jobs]
        return data

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The DAG as YAML; also written to `path` when one is given."""
        return dump_yaml(self.to_dict(), path)


def _topological(names: Sequence[str], deps: Mapping[str, Sequence[str]], dag: str) -> list[str]:
    """Kahn's algorithm, stable in declaration order; a cycle raises UserError naming it."""
    remaining = {name: set(deps[name]) for name in names}
    order: list[str] = []
    while remaining:
        ready = [n for n in names if n in remaining and not remaining[n]]
        if not ready:
            raise UserError(f"DAG {dag!r}: jobs form a cycle: {_cycle(remaining)}")
        for name in ready:
            order.append(name)
            del remaining[name]
        for waiting in remaining.values():
            waiting.difference_update(ready)
    return order


def _cycle(remaining: Mapping[str, set[str]]) -> str:
    """One cycle among jobs that never became ready, as `a -> b -> a`."""
    start = next(iter(remaining))
    path = [start]
    while True:
        nxt = sorted(remaining[path[-1]] & set(remaining))[0]
        if nxt in path:
            loop = [*path[path.index(nxt) :], nxt]
            # deps point downstream -> upstream; print in run order (upstream first).
            return " -> ".join(reversed(loop))
        path.append(nxt)


Target = JobSpec | JobDag


def as_dag(target: Target) -> JobDag:
    """A DAG for any target: a single job becomes a one-job DAG of the same name."""
    return target if isinstance(target, JobDag) else JobDag(name=target.name, jobs=[target])


def load_spec(path: str | Path) -> Target:
    """Load a YAML file holding a job spec, or a DAG (a mapping with `jobs:`)."""
    data = read_yaml(Path(path))
    if isinstance(data, Mapping) and "jobs" in data:
        return JobDag.from_dict(data, source=str(path))
    return JobSpec.from_dict(data, source=str(path))
