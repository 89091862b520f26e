"""One entry point over the three backends: render a target as text, or run/submit it.

render_text(dag, "osmo", settings)      # the workflow YAML
render_text(dag, "azureml", settings)   # the pipeline job YAML
render_text(dag, "local", settings)     # the resolved argv of every job (a plan)
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from physai.core.errors import UserError
from physai.core.jobs.dag import Target
from physai.core.jobs.local import LocalRunner
from physai.core.jobs.spec import dump_yaml
from physai.core.logs import redact
from physai.core.settings import Settings

Backend = Literal["local", "azureml", "osmo"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def check_backend(name: str) -> Backend:
    """`name` if it is a backend, else UserError listing them."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name  # type: ignore[return-value]


def render_text(
    target: Target, backend: str, settings: Settings, *, run_id: str | None = None
) -> str:
    """What `backend` would run for `target`, as YAML (validated for azureml and osmo)."""
    chosen = check_backend(backend)
    if chosen == "azureml":
        from physai.core.jobs import azureml

        return azureml.to_yaml(azureml.render(target, settings))
    if chosen == "osmo":
        from physai.core.jobs import osmo

        return osmo.render_yaml(target, settings)
    runner = LocalRunner(settings, run_id=run_id or "dry-run")
    plan: dict[str, Any] = {"run_dir": str(runner.run_dir), "jobs": []}
    for job in runner.plan(target):
        entry: dict[str, Any] = {"name": job.name, "argv": [redact(a) for a in job.argv]}
        if job.cwd is not None:
            entry["cwd"] = str(job.cwd)
        if job.env:
            entry["env"] = {k: redact(v) for k, v in job.env.items()}
        if job.outputs:
            entry["outputs"] = {k: str(v) for k, v in job.outputs.items()}
        if job.world_size > 1:
            entry["processes"] = job.world_size
        if job.missing_inputs:
            entry["missing_inputs"] = job.missing_inputs
        plan["jobs"].append(entry)
    return dump_yaml(plan)


def submit_cloud(
    target: Target, backend: str, settings: Settings, *, pool: str | None = None
) -> str:
    """Submit `target` to AzureML or OSMO; one line saying what was submitted."""
    chosen = check_backend(backend)
    if chosen == "azureml":
        from physai.core.jobs import azureml

        job = azureml.submit(target, settings)
        return f"submitted AzureML job {job.name}: {job.studio_url or ''}".rstrip()
    if chosen == "osmo":
        from physai.core.jobs import osmo

        answer = osmo.submit(target, settings, pool=pool)
        return f"submitted OSMO workflow {answer.workflow_id or '(id not reported)'}"
    raise UserError("only azureml and osmo take submissions: run the local backend instead")
