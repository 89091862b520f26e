"""The `osmo` backend: a JobSpec or JobDag becomes an NVIDIA OSMO workflow YAML.

    text = render_yaml(dag, settings)       # validated against `osmo_schema.WorkflowFile`
    submit(dag, settings)                   # `osmo workflow submit FILE --pool POOL`

What maps to what: each job is a task (`command` = argv[0], `args` = the rest, `environment`,
`resource` = a resource spec named after the job with cpu/gpu/memory/storage); a multi-node job
is a group of `nodes` tasks `<job>-0..N-1`, task 0 the `lead`, each started through `torchrun`
(`--node-rank`, `--master-addr={{host:<job>-0}}`), as is a job with several processes per node;
a workflow with any group renders every job as a group. Placeholders become OSMO's tokens:
`${{inputs.X}}` -> `{{input:N}}` (N: the index in the task's `inputs`), `${{outputs.X}}` ->
`{{output}}` (or `{{output}}/<leaf>` when a job has several outputs). An input another job writes
is a `task:` input; az:// and Blob https inputs are `url: azure://ACCOUNT/CONTAINER/PATH`;
runs:/, models:/ and hf:// are passed literally. Images are template variables with their values
in `default-values`, so `osmo workflow submit --set image=...` can swap them.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from physai.core.errors import JobError, MissingDependencyError, UserError
from physai.core.jobs.blob import cloud_blob
from physai.core.jobs.dag import JobDag, Target, as_dag
from physai.core.jobs.osmo_schema import WorkflowFile
from physai.core.jobs.spec import IOKind, IOSpec, JobSpec, substitute
from physai.core.logs import redact
from physai.core.settings import Settings
from physai.core.uris import HfUri, ModelsUri, RunsUri, parse_uri

OSMO_INSTALL_HINT = (
    "install the OSMO client (https://nvidia.github.io/OSMO/main/user_guide/getting_started/"
    "install/index.html), then run `osmo login https://<your OSMO URL>/`"
)
MASTER_PORT = 29500


# -- rendering -------------------------------------------------------------------------------


def render_workflow(target: Target, settings: Settings) -> dict[str, Any]:
    """The workflow document (`workflow:` + `default-values:`), validated against the schema."""
    dag = as_dag(target)
    order = dag.topological_order()
    grouped = _grouped(dag)
    image_vars = _image_variables(dag)
    resources: dict[str, Any] = {}
    tasks_by_job: dict[str, list[dict[str, Any]]] = {}
    for name in order:
        job = dag.job(name)
        resources[name] = _resource(job)
        tasks_by_job[name] = _tasks(job, dag, settings, grouped, image_vars[str(job.image)])
    workflow: dict[str, Any] = {"name": dag.name}
    if settings.osmo_pool:
        workflow["pool"] = settings.osmo_pool
    timeout = max((job.timeout_s or 0 for job in dag.jobs), default=0)
    if timeout:
        workflow["timeout"] = {"exec_timeout": f"{math.ceil(timeout)}s"}
    workflow["resources"] = resources
    if grouped:
        workflow["groups"] = [{"name": n, "tasks": tasks_by_job[n]} for n in order]
    else:
        workflow["tasks"] = [tasks_by_job[n][0] for n in order]
    doc = {"workflow": workflow, "default-values": {v: img for img, v in image_vars.items()}}
    validate_workflow(doc)
    return doc


def render_yaml(target: Target, settings: Settings) -> str:
    """The workflow as YAML text, ready for `osmo workflow submit`."""
    return yaml.safe_dump(render_workflow(target, settings), sort_keys=False, width=100)


def validate_workflow(doc: Mapping[str, Any]) -> WorkflowFile:
    """Validate a workflow document against the OSMO schema model; UserError if it fails."""
    try:
        return WorkflowFile.model_validate(dict(doc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"not a valid OSMO workflow: {where}: {msg}") from None


def lead_task(dag: JobDag, name: str) -> str:
    """The task that stands for job `name` (its lead task when the workflow has groups)."""
    return _lead(name, _grouped(dag))


def _grouped(dag: JobDag) -> bool:
    """True when the workflow has groups: some job runs on more than one node."""
    return any(job.resources.nodes > 1 for job in dag.jobs)


def _lead(name: str, grouped: bool) -> str:
    return f"{name}-0" if grouped else name


def _image_variables(dag: JobDag) -> dict[str, str]:
    images: list[str] = []
    for job in dag.jobs:
        if not job.image:
            raise UserError(f"job {job.name!r}: the osmo backend needs `image` (a container image)")
        if job.image not in images:
            images.append(job.image)
    if len(images) == 1:
        return {images[0]: "image"}
    return {img: f"image_{i}" for i, img in enumerate(images, start=1)}


def _resource(job: JobSpec) -> dict[str, Any]:
    res = job.resources
    spec: dict[str, Any] = {}
    if res.cpu is not None:
        spec["cpu"] = res.cpu
    if res.gpu:
        spec["gpu"] = res.gpu
    if res.memory is not None:
        spec["memory"] = res.memory
    if res.storage is not None:
        spec["storage"] = res.storage
    return spec


def _tasks(
    job: JobSpec, dag: JobDag, settings: Settings, grouped: bool, image_var: str
) -> list[dict[str, Any]]:
    inputs: list[dict[str, str]] = []
    values: dict[tuple[IOKind, str], str] = {}

    def index_of(entry: dict[str, str]) -> int:
        if entry not in inputs:
            inputs.append(entry)
        return inputs.index(entry)

    for in_name, io in job.inputs.items():
        producer = dag.producer(io.uri)
        if producer is not None:
            n = index_of({"task": _lead(producer.job, grouped)})
            rel = _output_layout(dag.job(producer.job), settings)[0][producer.output]
            values[("inputs", in_name)] = f"{{{{input:{n}}}}}{rel}"
            continue
        uri = parse_uri(str(io.uri))
        if isinstance(uri, RunsUri | ModelsUri | HfUri):
            values[("inputs", in_name)] = str(io.uri)
            continue
        in_url = _azure_url(job.name, f"input {in_name!r}", uri, settings)
        n = index_of({"url": in_url})
        leaf = "/" + in_url.rsplit("/", 1)[-1] if io.type == "file" else ""
        values[("inputs", in_name)] = f"{{{{input:{n}}}}}{leaf}"
    for up in job.after:  # ordering only: OSMO expresses it as a task input
        index_of({"task": _lead(up, grouped)})
    layout, url = _output_layout(job, settings)
    for out_name, rel in layout.items():
        values[("outputs", out_name)] = "{{output}}" + rel
    argv = [substitute(arg, values) for arg in job.command]
    env = {**job.env, "PHYSAI_JOB_NAME": job.name}
    res = job.resources
    tasks = []
    for rank in range(res.nodes if grouped else 1):
        name = f"{job.name}-{rank}" if grouped else job.name
        full = _launcher(job, rank, f"{job.name}-0") + argv if res.world_size > 1 else argv
        task: dict[str, Any] = {"name": name, "image": f"{{{{ {image_var} }}}}"}
        if grouped and rank == 0:
            task["lead"] = True
        task["command"] = full[:1]
        if full[1:]:
            task["args"] = full[1:]
        task["environment"] = dict(env)
        task["resource"] = job.name
        if inputs:
            task["inputs"] = [dict(i) for i in inputs]
        if url is not None and rank == 0:  # only the lead uploads
            task["outputs"] = [{"url": url}]
        tasks.append(task)
    return tasks


def _launcher(job: JobSpec, rank: int, lead: str) -> list[str]:
    """torchrun, started once per node, runs `processes_per_node` copies of the command."""
    res = job.resources
    if res.nodes == 1:
        return [
            "torchrun",
            "--standalone",
            f"--nproc-per-node={res.processes_per_node}",
            "--no-python",
        ]
    return [
        "torchrun",
        f"--nnodes={res.nodes}",
        f"--nproc-per-node={res.processes_per_node}",
        f"--node-rank={rank}",
        f"--master-addr={{{{host:{lead}}}}}",
        f"--master-port={MASTER_PORT}",
        "--no-python",
    ]


def _output_layout(job: JobSpec, settings: Settings) -> tuple[dict[str, str], str | None]:
    """Where each output lives under `{{output}}`, and the one URL the folder is uploaded to.

    OSMO gives a task one output folder, uploaded whole to each `url`. So: one folder output
    with a URI is the folder itself; several outputs (or a file) live at `{{output}}/<leaf>`
    and must share one parent URI, which the folder is uploaded to; outputs with no URI only
    flow to downstream tasks.
    """
    outs = job.outputs
    with_uri = {n: io for n, io in outs.items() if io.uri is not None}
    if not with_uri:
        if len(outs) == 1:
            ((name, io),) = outs.items()
            return {name: "" if io.type == "folder" else f"/{name}"}, None
        return {n: f"/{n}" for n in outs}, None
    if len(with_uri) != len(outs):
        raise UserError(
            f"job {job.name!r}: on OSMO, give every output a URI or none (a task has one output "
            "folder, uploaded whole)"
        )
    if len(outs) == 1:
        ((name, io),) = outs.items()
        if io.type == "folder":
            return {name: ""}, _azure_url(job.name, f"output {name!r}", io.parsed(), settings)
    parents = {_parent(io): io for io in outs.values()}
    if len(parents) != 1:
        raise UserError(
            f"job {job.name!r}: on OSMO, several outputs must share one parent URI "
            f"(got {', '.join(sorted(parents))}): OSMO uploads a task's one output folder whole"
        )
    (parent,) = parents
    layout = {n: "/" + str(io.uri).rstrip("/").rsplit("/", 1)[-1] for n, io in outs.items()}
    return layout, _azure_url(job.name, "outputs", parse_uri(parent), settings)


def _parent(io: IOSpec) -> str:
    return str(io.uri).rstrip("/").rsplit("/", 1)[0]


def _azure_url(job: str, what: str, uri: Any, settings: Settings) -> str:
    """OSMO's Azure Blob URL form: `azure://ACCOUNT/CONTAINER/PATH`."""
    parts = cloud_blob(
        job,
        what,
        uri,
        settings,
        service="OSMO",
        identity="its own data credentials (`osmo credential set`)",
    )
    if parts is None:
        raise UserError(
            f"job {job!r}: {what} {uri} cannot be used on OSMO: OSMO reads object storage URLs "
            "(use az:// or a Blob https URL; upload local data first)"
        )
    account, container, path = parts
    return f"azure://{account}/{container}/{path}".rstrip("/")


# -- submission ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OsmoSubmission:
    """What `osmo workflow submit` answered."""

    workflow_id: str | None
    spec_path: Path
    output: str


def osmo_executable(name: str = "osmo") -> str:
    """The path of the OSMO CLI, or MissingDependencyError saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise MissingDependencyError("the OSMO CLI (`osmo`)", OSMO_INSTALL_HINT)
    return found


def submit(
    target: Target, settings: Settings, *, pool: str | None = None, timeout_s: float = 300
) -> OsmoSubmission:
    """Render the workflow, write it under the state dir and submit it with the OSMO CLI."""
    exe = osmo_executable()
    text = render_yaml(target, settings)
    folder = settings.state_dir / "jobs" / "osmo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{as_dag(target).name}-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}.yaml"
    path.write_text(text, encoding="utf-8")
    argv = [exe, "workflow", "submit", str(path)]
    chosen = pool or settings.osmo_pool
    if chosen:
        argv += ["--pool", chosen]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise JobError(f"osmo workflow submit did not answer within {timeout_s:g}s") from None
    output = redact(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = " ".join(output.strip().splitlines()[-3:]) or "no output"
        raise JobError(f"osmo workflow submit failed (exit code {proc.returncode}): {tail}")
    match = re.search(r"Workflow ID\s*-\s*(\S+)", output)
    return OsmoSubmission(match.group(1) if match else None, path, output)
