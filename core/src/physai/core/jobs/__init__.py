"""physai jobs: one `JobSpec` (or a `JobDag` of them), three backends.

    from physai.core.jobs import JobSpec, run_job
    spec = JobSpec.from_yaml("train.job.yaml")
    run_job(spec)                                        # local subprocess (the default)

    from physai.core.jobs import azureml, osmo
    azureml.render(spec, settings)                       # azure-ai-ml CommandJob / PipelineJob
    osmo.render_yaml(spec, settings)                     # NVIDIA OSMO workflow YAML

Importing this package imports no Azure SDK; the azureml backend imports it when called.
"""

from physai.core.jobs.dag import JobDag, Target, as_dag, load_spec
from physai.core.jobs.fanout import fan_out
from physai.core.jobs.local import LocalRunner, run_dag, run_job, run_many
from physai.core.jobs.results import JobFailedError, JobResult, RunSummary
from physai.core.jobs.spec import IOSpec, JobSpec, Resources

__all__ = [
    "IOSpec",
    "JobDag",
    "JobFailedError",
    "JobResult",
    "JobSpec",
    "LocalRunner",
    "Resources",
    "RunSummary",
    "Target",
    "as_dag",
    "fan_out",
    "load_spec",
    "run_dag",
    "run_job",
    "run_many",
]
