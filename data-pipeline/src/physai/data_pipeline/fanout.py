"""Many bags as one job per shard (`physai data-pipeline fan-out`), through `physai.core.jobs`.

    dag = conversion_dag("az://raw/pick", "az://config/arm.yaml", "az://datasets/pick/v1", 8,
                         image="myregistry.azurecr.io/physai:0.1")
    print(render(dag, "osmo", settings))           # or "azureml", or "local" (the plan)
    run_local(conversion_dag("bags/", "arm.yaml", "datasets/pick/v1", 4))

The DAG has N shard jobs `convert-<k>`, each running
`physai data-pipeline convert BAGS --mapping MAPPING --out SHARD --shard k/N --overwrite`, made
with core's `fan_out` (shard k writes `<shards_url>/shard-<k>`), and one `merge` job running
`physai data-management curate SHARD_0 ... SHARD_N-1 --out OUT --overwrite`, which copies the
shards' encoded video into one dataset (no re-encoding). The merge's inputs are the shards'
output URIs, so every backend wires them as data edges.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from physai.core.errors import UserError
from physai.core.jobs import IOSpec, JobDag, JobResult, JobSpec, LocalRunner, Resources, fan_out
from physai.core.jobs.backends import check_backend, render_text, submit_cloud
from physai.core.jobs.results import RunSummary
from physai.core.settings import Settings, settings_or_default
from physai.core.storage import ls
from physai.core.uris import BlobHttpsUri, LocalPath, parse_uri

SHARD_JOB = "convert"
MERGE_JOB = "merge"
DATASET = "dataset"  # the output of every job, and the merged dataset
DEFAULT_NAME = "convert-bags"


def default_shards_url(out: str) -> str:
    """Where shard datasets go unless told: `<out>-shards` (a Blob URL's query stays last)."""
    base, sep, query = (
        out.partition("?") if isinstance(parse_uri(out), BlobHttpsUri) else (out, "", "")
    )
    return f"{base.rstrip('/')}-shards{sep}{query}"


def conversion_dag(
    bags_url: str,
    mapping_file: str | os.PathLike[str],
    out: str,
    shards: int,
    *,
    task: str | None = None,
    image: str | None = None,
    shards_url: str | None = None,
    workers: int | None = None,
    resources: Resources | None = None,
    env: Mapping[str, str] | None = None,
    executable: Sequence[str] = ("physai",),
    name: str = DEFAULT_NAME,
) -> JobDag:
    """The conversion of the bags under `bags_url` as `shards` shard jobs and one merge job.

    `bags_url` (a folder of bags) and `mapping_file` are inputs; shard k writes its dataset to
    `<shards_url>/shard-<k>` (default `<out>-shards/shard-<k>`); the merge job writes `out`.
    `workers` is each shard's number of parallel bags, `resources` each shard job's needs,
    `executable` the argv that starts the `physai` CLI where the jobs run. A local `bags_url`
    and mapping are checked now (the bags must be at least as many as the shards).
    """
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise UserError(f"shards must be a whole number of at least 1, got {shards!r}")
    mapping_url = os.fspath(mapping_file)
    _check_local_inputs(bags_url, mapping_url, shards)
    cli = list(executable)
    if not cli:
        raise UserError("executable must name the physai command")
    command = [
        *cli,
        "data-pipeline",
        "convert",
        "${{inputs.bags}}",
        "--mapping",
        "${{inputs.mapping}}",
        "--out",
        "${{outputs.dataset}}",
        "--overwrite",  # the backend creates the (empty) output folder before the job starts
    ]
    if task is not None:
        command += ["--task", task]
    if workers is not None:
        command += ["--workers", str(workers)]
    base = JobSpec(
        name=SHARD_JOB,
        command=command,
        image=image,
        resources=resources or Resources(),
        inputs={
            "bags": IOSpec(uri=bags_url, type="folder"),
            "mapping": IOSpec(uri=mapping_url, type="file"),
        },
        # AzureML: write to local disk, uploaded at the end (publishing renames the folder,
        # which a blobfuse mount does not allow); other backends ignore the mode.
        outputs={DATASET: IOSpec(uri=shards_url or default_shards_url(out), mode="upload")},
        env=dict(env or {}),
        description="Convert one shard of the bags to a LeRobot dataset.",
    )
    jobs = [
        JobSpec.model_validate(
            {**job.model_dump(), "command": [*job.command, "--shard", f"{index}/{shards}"]}
        )
        for index, job in enumerate(fan_out(base, shards))
    ]
    width = len(str(shards - 1))
    inputs = {
        f"shard_{index:0{width}d}": IOSpec(uri=job.outputs[DATASET].uri, type="folder")
        for index, job in enumerate(jobs)
    }
    merge = JobSpec(
        name=MERGE_JOB,
        command=[
            *cli,
            "data-management",
            "curate",
            *(f"${{{{inputs.{key}}}}}" for key in inputs),
            "--out",
            "${{outputs.dataset}}",
            "--overwrite",
        ],
        image=image,
        inputs=inputs,
        outputs={DATASET: IOSpec(uri=out, mode="upload")},
        env=dict(env or {}),
        description="Merge the shard datasets into one (video copied, not re-encoded).",
    )
    return JobDag(
        name=name,
        jobs=[*jobs, merge],
        description=f"Convert the bags of {bags_url} into {out} in {shards} shard(s).",
    )


def _check_local_inputs(bags_url: str, mapping_url: str, shards: int) -> None:
    from physai.data_pipeline.bags import find_bags
    from physai.data_pipeline.mapping import load_mapping

    if isinstance(parse_uri(mapping_url), LocalPath):
        load_mapping(mapping_url)
    if isinstance(parse_uri(bags_url), LocalPath):
        count = len(find_bags([bags_url]))
        if shards > count:
            raise UserError(
                f"{shards} shards for {count} bag(s) in {bags_url}: use at most {count} shard(s)"
            )


def local_executable() -> list[str]:
    """The argv of this environment's `physai` CLI (beside the running Python, else on PATH)."""
    beside = Path(sys.executable).with_name("physai")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("physai")
    if found is None:
        raise UserError("the physai command is not installed here: install physai-core")
    return [found]


def _parts(dag: JobDag) -> tuple[str, list[str]]:
    """The merged output URI and the shard output URIs of a `conversion_dag`."""
    names = {job.name for job in dag.jobs}
    if MERGE_JOB not in names:
        raise UserError(f"DAG {dag.name!r} is not a conversion DAG: make it with conversion_dag")
    shard_outs = [
        str(io.uri)
        for job in dag.jobs
        if job.name != MERGE_JOB and (io := job.outputs.get(DATASET)) and io.uri is not None
    ]
    return str(dag.job(MERGE_JOB).outputs[DATASET].uri), shard_outs


def run_local(
    dag: JobDag,
    settings: Settings | None = None,
    *,
    overwrite: bool = False,
    keep_shards: bool = False,
    max_workers: int | None = None,
    run_id: str | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> RunSummary:
    """Run a `conversion_dag` on this machine: shards in parallel processes, then the merge.

    Bags, mapping, shards and `out` must be local paths (the local backend neither downloads
    nor uploads). An existing `out` is refused unless `overwrite`. The shard datasets are
    removed after a successful merge unless `keep_shards`. Raises `JobFailedError` (with the
    run summary and each job's log) when a job fails.
    """
    chosen = settings_or_default(settings)
    out, shard_outs = _parts(dag)
    remote = [
        f"{job.name}: {kind[:-1]} {key}={io.uri}"
        for job in dag.jobs
        for kind, ios in (("inputs", job.inputs), ("outputs", job.outputs))
        for key, io in ios.items()
        if io.uri is not None and not isinstance(parse_uri(io.uri), LocalPath)
    ]
    if remote:
        raise UserError(
            f"the local backend reads and writes local paths only ({remote[0]}): use local "
            "paths (then `physai data-pipeline upload`), or --backend azureml | osmo"
        )
    if not overwrite and ls(out, chosen):
        raise UserError(f"{out} exists: pass --overwrite to replace it")
    # The jobs are separate processes: give them this run's state directory and profile.
    env = {"PHYSAI_HOME": str(chosen.state_dir), "PHYSAI_PROFILE": chosen.profile}
    jobs = [
        JobSpec.model_validate({**job.model_dump(), "env": {**env, **job.env}}) for job in dag.jobs
    ]
    runnable = JobDag(name=dag.name, jobs=jobs, description=dag.description)
    runner = LocalRunner(chosen, run_id=run_id, max_workers=max_workers, on_result=on_result)
    summary = runner.run(runnable)
    if not keep_shards:
        for shard in shard_outs:
            shutil.rmtree(shard, ignore_errors=True)
        parents = {Path(shard).parent for shard in shard_outs}
        for parent in parents:
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    return summary


def render(dag: JobDag, backend: str, settings: Settings | None = None) -> str:
    """What `backend` would run for `dag`: the AzureML pipeline job YAML or the OSMO workflow
    YAML (both validated offline with the vendor's SDK or schema), or the local plan."""
    return render_text(dag, backend, settings_or_default(settings))


def submit(
    dag: JobDag, backend: str, settings: Settings | None = None, *, pool: str | None = None
) -> str:
    """Submit `dag` to AzureML or OSMO; returns one line naming what was submitted."""
    if check_backend(backend) == "local":
        raise UserError("submit sends to azureml or osmo: run the local backend with run_local")
    return submit_cloud(dag, backend, settings_or_default(settings), pool=pool)
