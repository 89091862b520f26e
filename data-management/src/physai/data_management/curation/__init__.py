"""Zero-copy curation: filter, split, merge, delete and re-task episodes into new datasets.

    from physai.data_management.curation import Selection, curate

    report = curate(
        ["az://datasets/pick/v3", "az://datasets/pick-extra/v1"],     # several sources: merge
        "az://datasets/pick-curated/v1",
        selection=Selection(outcomes=["success"], where="quality.idle_fraction < 0.3"),
        split=["train=0.8", "val=0.2"], seed=0,          # outputs <out>/train and <out>/val
    )

Outputs are new LeRobot v3.0 datasets published atomically (all splits at once); the sources
are only read. Video is copied packet for packet (assemble.py), so frames are identical to the
source; `reencode=True` decodes and encodes again instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from physai.core.errors import UserError
from physai.core.storage import join_url, publish, resolve
from physai.data_management.curation.assemble import Retask, WrittenDataset, write_dataset
from physai.data_management.curation.catalog import (
    Catalog,
    EpisodeRecord,
    load_catalog,
    video_difference,
)
from physai.data_management.curation.expressions import FilterExpression
from physai.data_management.curation.selection import (
    Selection,
    assign_split,
    check_name,
    parse_episode_ids,
    parse_split,
)

if TYPE_CHECKING:
    from physai.core.settings import Settings

__all__ = [
    "CurationReport",
    "EpisodeRecord",
    "FilterExpression",
    "OutputReport",
    "Retask",
    "Selection",
    "curate",
    "load_catalog",
    "parse_episode_ids",
    "parse_split",
]


class OutputReport(BaseModel):
    """One published dataset."""

    model_config = ConfigDict(frozen=True)

    name: str | None
    url: str
    episodes: int
    frames: int
    copied_episodes: int
    reencoded_episodes: int


class CurationReport(BaseModel):
    """What `curate` did."""

    model_config = ConfigDict(frozen=True)

    sources: list[str]
    source_episodes: int
    selected_episodes: int
    outputs: list[OutputReport]
    seconds: float


def curate(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    selection: Selection | None = None,
    split: Sequence[str] | None = None,
    seed: int = 0,
    set_task: str | None = None,
    rename_tasks: Mapping[str, str] | None = None,
    reencode: bool = False,
    video_codec: str | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
    progress: Callable[[EpisodeRecord], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> CurationReport:
    """Choose episodes of `sources` and publish them as a new dataset at `out`.

    With `split`, one dataset per part at `<out>/<name>`, all published in one step. Every
    input is checked before anything is written; on any error nothing is published.
    `on_plan(n)` is told how many episodes will be written before the first one is.
    """
    started = time.perf_counter()
    urls = [os.fspath(s) for s in sources]
    out_url = os.fspath(out)
    if video_codec and not reencode:
        raise UserError("a video codec only applies when re-encoding: add --reencode")
    retask = Retask(set_task, dict(rename_tasks or {}))
    parts = parse_split(split) if split else None
    _check_output(out_url, urls, settings)
    catalog = load_catalog(urls, settings)
    difference = video_difference(catalog)
    if difference and not reencode:
        raise UserError(f"cannot merge without re-encoding: {difference}: pass --reencode")
    chosen = (selection or Selection()).apply(catalog.records, len(catalog.sources))
    if not chosen:
        raise UserError(
            f"the selection keeps none of the {len(catalog.records)} source episodes: "
            "nothing to write"
        )
    retask.check(chosen)
    groups = assign_split(chosen, parts, seed) if parts else {None: chosen}
    if on_plan is not None:
        on_plan(sum(len(g) for g in groups.values()))
    provenance = {
        "selection": (selection or Selection()).model_dump(),
        "seed": seed,
        "split": list(split or []),
        "retask": {"set_task": set_task, "rename": dict(rename_tasks or {})},
        "reencode": reencode,
    }

    def write(url: str, records: list[EpisodeRecord], name: str | None) -> OutputReport:
        written: WrittenDataset = write_dataset(
            url,
            catalog,
            records,
            retask=retask,
            reencode=reencode,
            codec=video_codec,
            provenance={**provenance, "part": name},
            overwrite=overwrite and name is None,
            settings=settings,
            progress=progress,
        )
        return OutputReport(
            name=name,
            url=url,
            episodes=written.episodes,
            frames=written.frames,
            copied_episodes=written.copied_episodes,
            reencoded_episodes=written.reencoded_episodes,
        )

    outputs: list[OutputReport] = []
    if parts is None:
        outputs.append(write(out_url, chosen, None))
    else:
        with publish(out_url, settings, overwrite=overwrite) as staging:
            for name, records in groups.items():
                assert name is not None
                report = write(join_url(staging.url, name), records, name)
                outputs.append(report.model_copy(update={"url": join_url(out_url, name)}))
    return CurationReport(
        sources=[s.root.display for s in catalog.sources],
        source_episodes=len(catalog.records),
        selected_episodes=len(chosen),
        outputs=outputs,
        seconds=round(time.perf_counter() - started, 3),
    )


def _check_output(out: str, sources: Sequence[str], settings: Settings | None) -> None:
    """The output must be none of the sources, and neither inside one nor around one."""
    target = resolve(out, settings)
    name = target.path.rstrip("/").rsplit("/", 1)[-1]
    check_name(name, "output dataset name")
    for url in sources:
        source = resolve(url, settings)
        if source.backend != target.backend:
            continue
        local = source.backend == "local"
        a, b = _real(source.path, local), _real(target.path, local)
        if a == b or b.startswith(a + "/") or a.startswith(b + "/"):
            raise UserError(
                f"the output {target.display} overlaps the source {source.display}: "
                "curation never writes into a source"
            )


def _real(path: str, local: bool) -> str:
    return os.path.realpath(path) if local else path.rstrip("/")


def catalog_fields(catalog: Catalog) -> list[dict[str, Any]]:
    """Every source episode's filter fields (what `--where` sees), for listing."""
    return [r.fields() for r in catalog.records]
