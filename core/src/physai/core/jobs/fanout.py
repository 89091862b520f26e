"""Fan-out: one spec, many shards, each a job of its own.

    shards = fan_out(spec, 8)                          # PHYSAI_SHARD_INDEX=0..7
    shards = fan_out(spec, [{"SEED": "1"}, {"SEED": "2"}])
    run_many(shards, max_workers=4)                    # or JobDag.of("sweep", shards)

Each shard is named `<name>-<i>`, gets `PHYSAI_SHARD_INDEX` / `PHYSAI_SHARD_COUNT` (plus its own
env when shards are mappings), and writes its outputs under `<output URI>/shard-<i>` (a file
output `.../<leaf>` becomes `.../shard-<i>/<leaf>`), so shards never overwrite each other. A Blob
URL's SAS query stays at the end of the URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from physai.core.errors import UserError
from physai.core.jobs.spec import IOSpec, JobSpec
from physai.core.storage import join_url
from physai.core.uris import BlobHttpsUri

SHARD_INDEX_ENV = "PHYSAI_SHARD_INDEX"
SHARD_COUNT_ENV = "PHYSAI_SHARD_COUNT"


def fan_out(spec: JobSpec, shards: int | Sequence[Mapping[str, str]]) -> list[JobSpec]:
    """Split `spec` into independent shard jobs (a count, or one env mapping per shard)."""
    envs: list[Mapping[str, str]] = (
        [{} for _ in range(shards)] if isinstance(shards, int) else list(shards)
    )
    if not envs:
        raise UserError(f"fan_out({spec.name!r}): give at least one shard")
    if spec.after:
        raise UserError(f"fan_out({spec.name!r}): a spec with `after` cannot be fanned out")
    count = len(envs)
    width = len(str(count - 1))
    jobs = []
    for index, extra in enumerate(envs):
        suffix = f"{index:0{width}d}"
        env = {**spec.env, **{str(k): str(v) for k, v in extra.items()}}
        env[SHARD_INDEX_ENV] = str(index)
        env[SHARD_COUNT_ENV] = str(count)
        outputs = {name: _shard_output(io, suffix) for name, io in spec.outputs.items()}
        data = spec.model_dump(exclude={"name", "env", "outputs"})
        jobs.append(
            JobSpec.model_validate(
                {**data, "name": f"{spec.name}-{suffix}", "env": env, "outputs": outputs}
            )
        )
    return jobs


def _shard_output(io: IOSpec, suffix: str) -> IOSpec:
    if io.uri is None:
        return io
    shard = f"shard-{suffix}"
    if io.type == "folder":
        return io.model_copy(update={"uri": join_url(io.uri, shard)})
    # A file: the shard folder goes between its parent and its name; a SAS query stays last.
    url, query = io.uri, ""
    if isinstance(io.parsed(), BlobHttpsUri):
        url, sep, rest = url.partition("?")
        query = sep + rest
    head, sep, leaf = url.rstrip("/").rpartition("/")
    uri = join_url(f"{head}/{shard}{query}", leaf) if sep else f"{shard}/{leaf}"
    return io.model_copy(update={"uri": uri})
