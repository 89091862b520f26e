"""Upload raw bags and LeRobot datasets to storage, in the layout the rest of physai reads.

    upload_bags(["bags/"], "az://robot-data")             # → raw/<robot>/<date>/<episode>.mcap
    upload_dataset("datasets/pick", "az://robot-data")    # → datasets/pick/v<N>/

Layout below a destination root:

    raw/<robot>/<date>/<episode>.mcap    the bag file (split bags: <episode>_<k>.mcap; sqlite3 and
                                         ROS 1 bags keep their .db3 / .bag suffix)
    raw/<robot>/<date>/<episode>.json    uploaded after the bag files, so its presence means the
                                         episode is complete: episode metadata, the bag's start
                                         time, and the sha256 and size of each file
    datasets/<name>/v<N>/                a published dataset (manifest.json, commit marker)

`<robot>` is the `robot_id` of the bag's episode metadata (or `robot=`), `<date>` the UTC day
the bag starts. Every file is hashed first and the copy is checked against that hash, streamed
in chunks, several files at a time, and journaled: a rerun after a kill copies only what is
missing (`physai.core.storage.copy_files` and `publish_tree` do the copying).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from physai.core.errors import NotFoundError, UserError
from physai.core.settings import settings_or_default
from physai.core.storage import (
    FileEntry,
    copy_files,
    join_url,
    ls,
    publish_tree,
    published_info,
    read_text,
    resolve,
    source_manifest,
)
from physai.core.storage.copy import journal_path
from physai.core.storage.manifest import hash_file
from physai.data_pipeline.bags import (
    BAG_SUFFIXES,
    EPISODE_METADATA,
    episode_metadata,
    find_bags,
    open_bag,
)

if TYPE_CHECKING:
    from physai.core.settings import Settings

SIDECAR_FORMAT = "physai.raw-episode"
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_VERSION = re.compile(r"v(\d+)")


class UploadedItem(BaseModel):
    """One bag or dataset that an upload handled."""

    kind: Literal["raw", "dataset"]
    source: str
    url: str
    files_copied: int
    files_skipped: int
    bytes_copied: int


class UploadReport(BaseModel):
    """What an upload did."""

    dest: str
    items: list[UploadedItem]

    @property
    def bytes_copied(self) -> int:
        """Bytes sent by this run (skipped files not counted)."""
        return sum(item.bytes_copied for item in self.items)


@dataclass
class RawEpisode:
    """Where one bag goes: its files under `raw/<robot>/<date>/`, and its sidecar document."""

    bag: Path
    prefix: str
    episode: str
    files: dict[str, Path]
    metadata: dict[str, Any]
    start_ns: int

    def sidecar(self, hashes: dict[str, FileEntry]) -> str:
        """The `<episode>.json` document (deterministic: a rerun writes the same bytes)."""
        document = {
            "format": SIDECAR_FORMAT,
            "version": 1,
            "episode": self.episode,
            "bag": self.bag.name,
            "start_time": datetime.fromtimestamp(self.start_ns / 1e9, UTC).isoformat(),
            "metadata": self.metadata,
            "files": {
                name: {"sha256": hashes[name].sha256, "size": hashes[name].size}
                for name in sorted(self.files)
            },
        }
        return json.dumps(document, indent=1, sort_keys=True) + "\n"


def plan_raw(bag: Path, robot: str | None = None) -> RawEpisode:
    """Where `bag` (a bag file or rosbag2 folder) goes in the raw layout."""
    metadata = episode_metadata(bag)
    robot_id = metadata.get("robot_id") or robot
    if not robot_id:
        raise UserError(f"{bag}: no robot id in its {EPISODE_METADATA}: pass --robot")
    episode = bag.name if bag.is_dir() else bag.stem
    for what, value in (("robot id", robot_id), ("episode name", episode)):
        if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
            raise UserError(f"{bag}: {what} {value!r} is not 1-128 of A-Z a-z 0-9 _ . -")
    stored = (
        sorted(p for p in bag.iterdir() if p.is_file() and p.suffix in BAG_SUFFIXES)
        if bag.is_dir()
        else [bag]
    )
    if not stored:
        raise UserError(f"{bag}: holds no bag file ({', '.join(BAG_SUFFIXES)})")
    with open_bag(bag) as reader:
        if not reader.message_count:
            raise UserError(f"{bag}: the bag is empty: nothing to upload")
        start_ns = int(reader.start_time)
    day = datetime.fromtimestamp(start_ns / 1e9, UTC).strftime("%Y-%m-%d")
    if len(stored) == 1:
        files = {f"{episode}{stored[0].suffix}": stored[0]}
    else:
        files = {f"{episode}_{k}{p.suffix}": p for k, p in enumerate(stored)}
    return RawEpisode(bag, f"{robot_id}/{day}", episode, files, metadata, start_ns)


def upload_bags(
    bags: Sequence[str | os.PathLike[str]],
    dest: str,
    *,
    robot: str | None = None,
    settings: Settings | None = None,
    workers: int = 4,
    progress: bool = True,
) -> UploadReport:
    """Upload bags to `dest`/raw/<robot>/<date>/, resuming an interrupted upload."""
    resolved = settings_or_default(settings)
    raw = join_url(dest, "raw")
    episodes = [plan_raw(bag, robot) for bag in find_bags([str(b) for b in bags])]
    _check_unique(episodes)
    work = _work_dir(raw, resolved)
    shown = resolve(raw, resolved).display  # never the SAS
    hashes = _hash_files(
        {f"{e.prefix}/{n}": p for e in episodes for n, p in e.files.items()}, work / "hashes.json"
    )
    todo: list[RawEpisode] = []
    items: list[UploadedItem] = []
    for episode in episodes:
        own = {n: hashes[f"{episode.prefix}/{n}"] for n in episode.files}
        text = episode.sidecar(own)
        if _uploaded_before(
            join_url(raw, episode.prefix, f"{episode.episode}.json"), text, resolved
        ):
            items.append(_item(episode, shown, 0, len(episode.files) + 1, 0))
        else:
            todo.append(episode)
    if todo:
        data = {f"{e.prefix}/{n}": str(p) for e in todo for n, p in e.files.items()}
        expected = {name: hashes[name] for name in data}
        copied = copy_files(
            data, raw, resolved, expected=expected, workers=workers, progress=progress
        )
        sidecars: dict[str, str] = {}
        for episode in todo:  # written only now: a sidecar at the destination means "complete"
            own = {n: hashes[f"{episode.prefix}/{n}"] for n in episode.files}
            local = work / "sidecars" / episode.prefix / f"{episode.episode}.json"
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(episode.sidecar(own), encoding="utf-8")
            sidecars[f"{episode.prefix}/{episode.episode}.json"] = str(local)
        copy_files(sidecars, raw, resolved, workers=workers, progress=False)
        for episode in todo:
            names = {f"{episode.prefix}/{n}" for n in episode.files}
            sent = [n for n in copied.copied if n in names]
            items.append(
                _item(
                    episode,
                    shown,
                    len(sent) + 1,
                    len(names) - len(sent),
                    sum(copied.entries[n].size for n in sent),
                )
            )
    items.sort(key=lambda item: item.url)
    return UploadReport(dest=resolve(dest, resolved).display, items=items)


def upload_dataset(
    path: str | os.PathLike[str],
    dest: str,
    *,
    name: str | None = None,
    version: int | None = None,
    settings: Settings | None = None,
    workers: int = 4,
    progress: bool = True,
) -> UploadReport:
    """Upload a LeRobot dataset to `dest`/datasets/<name>/v<N>/ and publish it there.

    `version=None` takes the next free version, or the version that already holds this exact
    dataset (nothing is copied then), or the unfinished version an interrupted upload of it left.
    """
    resolved = settings_or_default(settings)
    source = Path(path)
    if not (source / "meta" / "info.json").is_file():
        raise UserError(f"{source}: not a LeRobot dataset (no meta/info.json)")
    if name is None:
        name = source.parent.name if _VERSION.fullmatch(source.name) else source.name
    if not _SEGMENT.fullmatch(name):
        raise UserError(f"dataset name {name!r} is not 1-128 of A-Z a-z 0-9 _ . -")
    root = join_url(dest, "datasets", name)
    manifest = source_manifest(str(source), resolved, workers=workers)  # hashed once
    if version is None:
        version = _pick_version(source, manifest, root, resolved)
    elif version < 1:
        raise UserError(f"version must be 1 or more, not {version}")
    url = join_url(root, f"v{version}")
    copied = publish_tree(
        str(source), url, resolved, workers=workers, progress=progress, manifest=manifest
    )
    item = UploadedItem(
        kind="dataset",
        source=str(source),
        url=resolve(url, resolved).display,
        files_copied=len(copied.copied),
        files_skipped=len(copied.skipped),
        bytes_copied=copied.bytes_copied,
    )
    return UploadReport(dest=resolve(dest, resolved).display, items=[item])


def is_dataset(path: str | os.PathLike[str]) -> bool:
    """True for a LeRobot dataset folder (it has meta/info.json)."""
    return (Path(path) / "meta" / "info.json").is_file()


# -- helpers ---------------------------------------------------------------------------------


def _check_unique(episodes: list[RawEpisode]) -> None:
    seen: dict[str, Path] = {}
    for episode in episodes:
        for name in [*episode.files, f"{episode.episode}.json"]:
            key = f"{episode.prefix}/{name}"
            if key in seen and seen[key] != episode.bag:
                raise UserError(
                    f"{episode.bag} and {seen[key]} would both upload to raw/{key}: rename one"
                )
            seen[key] = episode.bag


def _work_dir(dest: str, settings: Settings) -> Path:
    digest = hashlib.sha256(resolve(dest, settings).display.encode()).hexdigest()[:16]
    return settings.state_dir / "cache" / "upload" / digest


def _hash_files(files: dict[str, Path], cache: Path) -> dict[str, FileEntry]:
    """sha256 of each file; reuses the cached hash of a file whose size and mtime are unchanged."""
    try:
        known: dict[str, Any] = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    hashes: dict[str, FileEntry] = {}
    for name, path in files.items():
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        entry = known.get(key)
        if isinstance(entry, dict) and {"sha256", "size"} <= entry.keys():
            hashes[name] = FileEntry(str(entry["sha256"]), int(entry["size"]))
            continue
        hashed = hash_file(resolve(str(path)))
        known[key] = {"sha256": hashed.sha256, "size": hashed.size}
        hashes[name] = hashed
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
    return hashes


def _uploaded_before(url: str, sidecar: str, settings: Settings) -> bool:
    """True when `url` holds this sidecar; UserError when it holds another episode's."""
    try:
        there = read_text(url, settings)
    except NotFoundError:
        return False
    if there == sidecar:
        return True
    raise UserError(f"{url} already exists with other content: this episode was uploaded before")


def _pick_version(source: Path, manifest: str, root: str, settings: Settings) -> int:
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    try:
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in ls(root, settings)]
    except NotFoundError:
        names = []
    versions = sorted(int(m.group(1)) for n in names if (m := _VERSION.fullmatch(n)))
    for k in reversed(versions):
        info = published_info(join_url(root, f"v{k}"), settings)
        if info is not None and info.get("manifest_sha256") == digest:
            return k
    if versions:
        last = join_url(root, f"v{versions[-1]}")
        unfinished = published_info(last, settings) is None
        src, dst = resolve(str(source), settings), resolve(last, settings)
        if unfinished and journal_path(src, dst, settings).exists():
            return versions[-1]  # an interrupted upload of this dataset: resume it
    return (versions[-1] if versions else 0) + 1


def _item(
    episode: RawEpisode,
    shown: str,
    copied: int,
    skipped: int,
    size: int,
) -> UploadedItem:
    return UploadedItem(
        kind="raw",
        source=str(episode.bag),
        url=f"{shown}/{episode.prefix}/{episode.episode}.json",
        files_copied=copied,
        files_skipped=skipped,
        bytes_copied=size,
    )
