"""The episodes curation chooses from: one record per episode of every source dataset.

A record joins what is known about an episode: its metadata (`meta/episodes`), its
annotations (outcome, labels, instructions, notes) and its stored quality scores. Its
`fields()` are what filter expressions see:

    source          position of the dataset in the source list (0, 1, ...)
    dataset         the source dataset's URL
    episode_index   the episode's index in its source
    length          frames;  duration_s: length / fps
    task            the episode's first task;  tasks: all of them
    outcome         "success" | "failure" | "partial" | None
    labels          {key: value} custom labels;  instructions: [text, ...];  notes: [text, ...]
    quality         the stored quality scores ({} when the dataset was not scored)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from physai.core.errors import NotFoundError, UserError
from physai.core.storage import Location, resolve
from physai.data_management.labels import Annotations, Edit, load_quality
from physai.data_management.lerobot.features import Feature
from physai.data_management.lerobot.metadata import DatasetMetadata, EpisodeInfo, load_metadata
from physai.data_management.quality import EpisodeQuality

if TYPE_CHECKING:
    from physai.core.settings import Settings

FIELD_NAMES = frozenset(
    {
        "source",
        "dataset",
        "episode_index",
        "length",
        "duration_s",
        "task",
        "tasks",
        "outcome",
        "labels",
        "instructions",
        "notes",
        "quality",
    }
)


@dataclass(frozen=True)
class EpisodeRecord:
    """One source episode and what is known about it."""

    source: int
    info: EpisodeInfo
    fps: int
    dataset: str
    outcome: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    instructions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    quality: EpisodeQuality | None = None

    @property
    def episode_index(self) -> int:
        """The episode's index in its source dataset."""
        return self.info.episode_index

    @property
    def key(self) -> tuple[int, int]:
        """(source, episode_index): unique over all sources."""
        return self.source, self.info.episode_index

    def fields(self) -> dict[str, Any]:
        """The values filter expressions see (module doc)."""
        tasks = list(self.info.tasks)
        return {
            "source": self.source,
            "dataset": self.dataset,
            "episode_index": self.info.episode_index,
            "length": self.info.length,
            "duration_s": self.info.length / self.fps,
            "task": tasks[0] if tasks else None,
            "tasks": tasks,
            "outcome": self.outcome,
            "labels": dict(self.labels),
            "instructions": list(self.instructions),
            "notes": list(self.notes),
            "quality": self.quality.model_dump(mode="json") if self.quality else {},
        }


@dataclass
class SourceDataset:
    """One source dataset: its location, metadata, annotation edits and quality scores."""

    position: int
    url: str
    root: Location
    meta: DatasetMetadata
    edits: list[Edit]
    quality: list[EpisodeQuality]


@dataclass
class Catalog:
    """Every episode of every source, in source order then episode order."""

    sources: list[SourceDataset]
    records: list[EpisodeRecord]

    @property
    def features(self) -> dict[str, Feature]:
        """The features every source shares (the first source's declarations)."""
        return self.sources[0].meta.features

    @property
    def fps(self) -> int:
        """The frame rate every source shares."""
        return self.sources[0].meta.fps


VIDEO_KEYS = ("video.codec", "video.pix_fmt", "video.height", "video.width")


def video_difference(catalog: Catalog) -> str | None:
    """How the sources' cameras are encoded differently (codec, pixel format, size), if so."""
    first = catalog.sources[0]
    for other in catalog.sources[1:]:
        for name, feature in first.meta.features.items():
            if not feature.is_video:
                continue
            mine = {k: (feature.info or {}).get(k) for k in VIDEO_KEYS}
            theirs = {k: (other.meta.features[name].info or {}).get(k) for k in VIDEO_KEYS}
            if mine != theirs:
                key = next(k for k in VIDEO_KEYS if mine[k] != theirs[k])
                return (
                    f"camera {name!r} has {key} {mine[key]!r} in {first.root.display} but "
                    f"{theirs[key]!r} in {other.root.display}"
                )
    return None


def load_catalog(urls: Sequence[str], settings: Settings | None = None) -> Catalog:
    """Read the metadata, annotations and quality scores of every source dataset."""
    if not urls:
        raise UserError("curation needs at least one source dataset")
    sources: list[SourceDataset] = []
    records: list[EpisodeRecord] = []
    seen: dict[str, int] = {}
    for position, url in enumerate(urls):
        root = resolve(url, settings)
        if root.display in seen:
            raise UserError(f"{root.display} is given twice as a source")
        seen[root.display] = position
        meta = load_metadata(root)
        edits = Annotations(url, settings, writer="curate").edits()
        try:
            quality = load_quality(url, settings)
        except NotFoundError:
            quality = []
        source = SourceDataset(position, url, root, meta, edits, quality)
        if sources:
            _check_compatible(sources[0], source)
        sources.append(source)
        records.extend(_records(source))
    return Catalog(sources, records)


def _records(source: SourceDataset) -> list[EpisodeRecord]:
    from physai.data_management.labels import fold

    views = fold(source.edits)
    scores = {q.episode_index: q for q in source.quality}
    records = []
    for info in source.meta.episodes:
        view = views.get(info.episode_index)
        records.append(
            EpisodeRecord(
                source=source.position,
                info=info,
                fps=source.meta.fps,
                dataset=source.root.display,
                outcome=view.outcome if view else None,
                labels=dict(view.labels) if view else {},
                instructions=tuple(view.instructions) if view else (),
                notes=tuple(n.text for n in view.notes) if view else (),
                quality=scores.get(info.episode_index),
            )
        )
    return records


def _check_compatible(first: SourceDataset, other: SourceDataset) -> None:
    """Merged sources need the same fps and the same features (name, dtype, shape)."""
    a, b = first.meta, other.meta
    if a.fps != b.fps:
        raise UserError(
            f"cannot merge {other.root.display} (fps {b.fps}) with {first.root.display} "
            f"(fps {a.fps})"
        )
    shape_a = {n: (f.dtype, f.shape) for n, f in a.features.items()}
    shape_b = {n: (f.dtype, f.shape) for n, f in b.features.items()}
    if shape_a != shape_b:
        differ = sorted(set(shape_a.items()) ^ set(shape_b.items()))
        name = differ[0][0] if differ else "?"
        raise UserError(
            f"cannot merge {other.root.display} with {first.root.display}: their features "
            f"differ (first difference: {name!r})"
        )
