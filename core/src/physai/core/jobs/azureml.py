"""The `azureml` backend: a JobSpec becomes an azure-ai-ml command job, a JobDag a pipeline job.

    job = render(spec, settings)        # azure.ai.ml.entities.CommandJob (PipelineJob for a DAG)
    validate(job)                       # the SDK's own offline validation
    print(to_yaml(job))                 # what `az ml job create -f` would take
    submit(spec, settings)              # MLClient + the credential from physai.core.auth

What maps to what: image -> an anonymous `Environment(image=...)` (or a registered
`azureml:NAME:VERSION` environment); compute -> `settings.azureml_compute`, with
`resources.instance_type` (serverless when no compute is set); nodes -> `instance_count`;
more than one process -> `PyTorchDistribution(process_count_per_instance=...)`; inputs and
outputs -> `Input`/`Output` of type uri_folder or uri_file (az:// becomes the account's Blob https
URL); runs:/, models:/ and hf:// inputs are passed as literal strings; an input another job of the
DAG writes is bound to that job's output; an `after` edge with no data is bound through a small
control output. The SDK is imported inside functions only: importing this module is cheap.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from physai.core.auth import AZURE_EXTRA_HINT, WORKSPACE_SETTINGS
from physai.core.errors import ConfigError, JobError, MissingDependencyError, UserError
from physai.core.jobs.blob import cloud_blob
from physai.core.jobs.dag import JobDag, Target, as_dag
from physai.core.jobs.spec import IOSpec, JobSpec, canonical, placeholders
from physai.core.settings import Settings
from physai.core.uris import (
    AzureMLUri,
    HfUri,
    LocalPath,
    ModelsUri,
    RunsUri,
    parse_uri,
)

CONTROL_OUTPUT = "physai_done"
_TYPES = {"folder": "uri_folder", "file": "uri_file"}
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,")


def _sdk() -> Any:
    """The `azure.ai.ml` module, or MissingDependencyError saying how to install it."""
    try:
        import azure.ai.ml as ml
    except ImportError:
        raise MissingDependencyError("azure-ai-ml", AZURE_EXTRA_HINT) from None
    return ml


# -- rendering -------------------------------------------------------------------------------


def render(target: Target, settings: Settings, *, experiment: str | None = None) -> Any:
    """A CommandJob for a JobSpec, a PipelineJob for a JobDag (validated offline)."""
    if isinstance(target, JobDag):
        return render_pipeline_job(target, settings, experiment=experiment)
    return render_command_job(target, settings, experiment=experiment)


def render_command_job(spec: JobSpec, settings: Settings, *, experiment: str | None = None) -> Any:
    """Render one JobSpec as an `azure.ai.ml.entities.CommandJob`."""
    node = _node(spec, settings, experiment=experiment or spec.name)
    job = node._to_job()
    validate(job)
    return job


def render_pipeline_job(dag: JobDag, settings: Settings, *, experiment: str | None = None) -> Any:
    """Render a JobDag as an `azure.ai.ml.entities.PipelineJob` (one command node per job)."""
    ml = _sdk()
    from azure.ai.ml.entities import PipelineJob

    keys = _node_keys(dag)
    control = _control_edges(dag)
    needs_done = {up for ups in control.values() for up in ups if not dag.job(up).outputs}
    nodes: dict[str, Any] = {}
    for name in dag.topological_order():
        spec = dag.job(name)
        bound = {n for n, io in spec.inputs.items() if dag.producer(io.uri) is not None}
        extra_in = {f"after_{keys[up]}": ml.Input(type="uri_folder") for up in control[name]}
        extra_out = {CONTROL_OUTPUT: ml.Output(type="uri_folder")} if name in needs_done else {}
        nodes[name] = _node(
            spec, settings, key=keys[name], bound=bound, extra_in=extra_in, extra_out=extra_out
        )
    for name in dag.topological_order():  # bind (attribute assignment is the SDK's binding API)
        spec, node = dag.job(name), nodes[name]
        for in_name, io in spec.inputs.items():
            producer = dag.producer(io.uri)
            if producer is not None:
                setattr(node.inputs, in_name, nodes[producer.job].outputs[producer.output])
        for up in control[name]:
            out = sorted(dag.job(up).outputs)[0] if dag.job(up).outputs else CONTROL_OUTPUT
            setattr(node.inputs, f"after_{keys[up]}", nodes[up].outputs[out])
    job: Any = PipelineJob(
        jobs={keys[n]: node for n, node in nodes.items()},
        display_name=dag.name,
        description=dag.description,
        experiment_name=experiment or dag.name,
        compute=settings.azureml_compute,
        tags={"physai.dag": dag.name},
    )
    job.settings.continue_on_step_failure = False
    if settings.azureml_compute:
        job.settings.default_compute = settings.azureml_compute
    validate(job)
    return job


def _node(
    spec: JobSpec,
    settings: Settings,
    *,
    key: str | None = None,
    experiment: str | None = None,
    bound: set[str] | None = None,
    extra_in: Mapping[str, Any] | None = None,
    extra_out: Mapping[str, Any] | None = None,
) -> Any:
    """One `command()` node; `bound` inputs get their path from an upstream node later."""
    ml = _sdk()
    from azure.ai.ml.entities import Environment

    if not spec.image:
        raise UserError(f"job {spec.name!r}: the azureml backend needs `image` (a container image)")
    environment = spec.image if spec.image.startswith("azureml:") else Environment(image=spec.image)
    inputs: dict[str, Any] = {}
    for name, io in spec.inputs.items():
        if bound and name in bound:
            inputs[name] = ml.Input(type=_TYPES[io.type])
        else:
            inputs[name] = _input(spec.name, name, io, settings)
    inputs.update(extra_in or {})
    outputs = {name: _output(spec.name, name, io, settings) for name, io in spec.outputs.items()}
    outputs.update(extra_out or {})
    res = spec.resources
    compute = settings.azureml_compute
    if compute is None and res.instance_type is None:
        raise ConfigError(
            f"job {spec.name!r} needs an AzureML compute: set PHYSAI_AZUREML_COMPUTE "
            "(azureml_compute in physai.toml) or resources.instance_type for serverless compute"
        )
    kwargs: dict[str, Any] = {}
    if res.world_size > 1:
        kwargs["distribution"] = ml.PyTorchDistribution(
            process_count_per_instance=res.processes_per_node
        )
    if spec.timeout_s:
        kwargs["timeout"] = math.ceil(spec.timeout_s)
    return ml.command(
        name=key,
        display_name=spec.name,
        description=spec.description,
        experiment_name=experiment,
        command=command_line(spec),
        environment=environment,
        environment_variables={**spec.env, "PHYSAI_JOB_NAME": spec.name},
        inputs=inputs,
        outputs=outputs,
        compute=compute,
        instance_count=res.nodes,
        instance_type=res.instance_type,
        tags={"physai.job": spec.name},
        **kwargs,
    )


def command_line(spec: JobSpec) -> str:
    """The argv as one shell line; placeholders stay as AzureML's `${{inputs.NAME}}`."""
    return " ".join(_quote(canonical(arg)) for arg in spec.command)


def _quote(arg: str) -> str:
    """Quote for the shell AzureML runs the command in, leaving bare placeholders readable."""
    bare = arg
    for kind, name in placeholders(arg):
        bare = bare.replace("${{" + f"{kind}.{name}" + "}}", "x")
    if bare and all(c in _SAFE for c in bare):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _input(job: str, name: str, io: IOSpec, settings: Settings) -> Any:
    ml = _sdk()
    uri = parse_uri(str(io.uri))
    kind = _TYPES[io.type]
    if isinstance(uri, RunsUri | ModelsUri | HfUri):
        return str(io.uri)  # a literal string input: the command resolves it
    if isinstance(uri, AzureMLUri):
        return ml.Input(type=kind, path=str(uri), mode=io.mode)
    if isinstance(uri, LocalPath):
        path = uri.path.expanduser().absolute()
        if not path.exists():
            raise UserError(
                f"job {job!r}: input {name!r} {path} does not exist (nothing to upload)"
            )
        return ml.Input(type=kind, path=str(path), mode=io.mode)
    return ml.Input(type=kind, path=_blob_url(job, f"input {name!r}", uri, settings), mode=io.mode)


def _output(job: str, name: str, io: IOSpec, settings: Settings) -> Any:
    ml = _sdk()
    kind = _TYPES[io.type]
    if io.uri is None:
        return ml.Output(type=kind, mode=io.mode)  # the workspace's default datastore
    uri = parse_uri(io.uri)
    return ml.Output(
        type=kind, path=_blob_url(job, f"output {name!r}", uri, settings), mode=io.mode
    )


def _blob_url(job: str, what: str, uri: Any, settings: Settings) -> str:
    """The Blob https URL AzureML reads or writes for an az:// or Blob https URI."""
    parts = cloud_blob(
        job, what, uri, settings, service="AzureML", identity="the workspace's identity"
    )
    if parts is None:
        raise UserError(
            f"job {job!r}: {what} {uri} cannot be used on AzureML: use az://, a Blob https URL"
            + (", azureml:NAME:VERSION or a local path (uploaded)" if "input" in what else "")
        )
    account, container, path = parts
    return f"https://{account}.blob.core.windows.net/{container}/{path}".rstrip("/")


def _node_keys(dag: JobDag) -> dict[str, str]:
    """Pipeline node names must be Python identifiers: `train-a` -> `train_a`, no collisions."""
    keys: dict[str, str] = {}
    seen: dict[str, str] = {}
    for job in dag.jobs:
        key = job.name.replace("-", "_")
        if key in seen:
            raise UserError(
                f"DAG {dag.name!r}: jobs {seen[key]!r} and {job.name!r} both become AzureML "
                f"pipeline node {key!r}: rename one"
            )
        seen[key] = job.name
        keys[job.name] = key
    return keys


def _control_edges(dag: JobDag) -> dict[str, list[str]]:
    """For each job, the `after` jobs it has no data edge from (they need a control binding)."""
    edges: dict[str, list[str]] = {}
    for job in dag.jobs:
        fed = {p.job for io in job.inputs.values() if (p := dag.producer(io.uri)) is not None}
        edges[job.name] = [up for up in dict.fromkeys(job.after) if up not in fed]
    return edges


# -- validation and YAML ---------------------------------------------------------------------


def validate(job: Any) -> None:
    """Run the SDK's offline validation; raise JobError with its messages if it fails."""
    _sdk()
    from azure.ai.ml.exceptions import ValidationException

    try:
        result = job._validate()
    except ValidationException as exc:
        raise JobError(f"AzureML rejects the rendered job: {exc.message}") from None
    if result is not None and not result.passed:
        raise JobError(f"AzureML rejects the rendered job: {result.error_messages}")


def to_yaml(job: Any) -> str:
    """The job as AzureML YAML (`job.dump`), with input paths kept exactly as given.

    azure-ai-ml 1.x dumps an input path such as `https://...` as `azureml:https://...` (its
    asset-reference field serializes first), which `load_job` then reads back as an asset name;
    the prefix is removed again here so the file means what the job means.
    """
    with tempfile.TemporaryDirectory(prefix="physai-aml-") as tmp:
        path = Path(tmp) / "job.yaml"
        job.dump(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    _unprefix_inputs(data)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def dump(job: Any, path: str | Path) -> Path:
    """Write `to_yaml(job)` to `path`."""
    target = Path(path)
    target.write_text(to_yaml(job), encoding="utf-8")
    return target


def _unprefix_inputs(data: Any) -> None:
    if not isinstance(data, dict):
        return
    for io in (data.get("inputs") or {}).values():
        path = io.get("path") if isinstance(io, dict) else None
        if isinstance(path, str) and path.startswith("azureml:"):
            rest = path.removeprefix("azureml:")
            if rest.startswith(("https://", "http://", "wasbs://", "abfss://", "/", "file:")):
                io["path"] = rest
    for node in (data.get("jobs") or {}).values():
        _unprefix_inputs(node)


# -- submission ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AzureMLSubmission:
    """What AzureML answered: the job name (its id), status and Studio URL."""

    name: str
    status: str | None
    studio_url: str | None


def workspace(settings: Settings) -> dict[str, str]:
    """Subscription, resource group and workspace name, or ConfigError naming what is missing."""
    values = settings.require_all(WORKSPACE_SETTINGS, "AzureML submission")
    return dict(
        zip(("subscription_id", "resource_group_name", "workspace_name"), values, strict=True)
    )


def ml_client(settings: Settings) -> Any:
    """An `MLClient` for the configured workspace; the credential is built lazily.

    A missing workspace setting is a ConfigError naming each one, a missing SDK a
    MissingDependencyError (both raised by `physai.core.auth.ml_client`).
    """
    from physai.core.auth import ml_client as workspace_client

    return workspace_client(settings, "AzureML submission")


def submit(
    target: Target, settings: Settings, *, experiment: str | None = None
) -> AzureMLSubmission:
    """Render, validate and submit to the configured AzureML workspace."""
    client = ml_client(settings)  # settings and SDK are checked before anything is rendered
    job = render(target, settings, experiment=experiment)
    created = client.jobs.create_or_update(job, experiment_name=experiment or as_dag(target).name)
    return AzureMLSubmission(
        name=str(created.name), status=created.status, studio_url=created.studio_url
    )
