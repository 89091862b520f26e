"""Resumable, verified, concurrent directory copy between any two storage URLs.

    report = copy_tree("/data/pick/v3", "az://datasets/pick/v3")   # local → Blob
    report = copy_tree("az://datasets/pick/v3", "/scratch/pick")    # Blob → local; rerun resumes

Each file is streamed in chunks (never whole in memory) and hashed on the way. It is written
atomically: locally to `.NAME.<random>.physai-part`, fsynced, then renamed; to Blob as staged
blocks that become the blob only when the block list is committed at the end (a failed or
killed upload commits nothing). A file counts as copied when the bytes written equal the source
size and, when the source has a `manifest.json`, their sha256 equals the manifest's. Each copied
file is then appended to a journal (`<state_dir>/copy-journals/<hash of the two URLs>.jsonl`); a
rerun skips journaled files whose destination still has the journaled size and whose source
still has that size (and the same manifest hash). Resume granularity is one file. Interrupted
(KeyboardInterrupt), the copies not yet started are cancelled.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from physai.core.errors import NotFoundError, StorageError, UserError
from physai.core.logs import get_logger
from physai.core.storage.filesystems import (
    CHUNK_SIZE,
    PART_SUFFIX,
    Location,
    list_files,
    resolve,
    scan,
    storage_errors,
    thread_pool,
    to_storage_error,
    write_chunks_at,
)
from physai.core.storage.manifest import MANIFEST_NAME, FileEntry, Manifest, _read_manifest_at

if TYPE_CHECKING:
    from physai.core.settings import Settings

JOURNAL_VERSION = 1
_log = get_logger("physai.core.storage.copy")


@dataclass
class CopyReport:
    """What a `copy_tree` run did."""

    source: str
    destination: str
    journal: Path
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    seconds: float = 0.0
    entries: dict[str, FileEntry] = field(default_factory=dict)
    """sha256 and size of each file copied by this run."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "source": self.source,
            "destination": self.destination,
            "journal": str(self.journal),
            "copied": len(self.copied),
            "skipped": len(self.skipped),
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
        }


def journal_path(src: Location, dst: Location, settings: Settings) -> Path:
    """Where the journal of a copy from `src` to `dst` lives (under the state directory)."""
    key = hashlib.sha256(f"{src.display}\0{dst.display}".encode()).hexdigest()[:32]
    return settings.state_dir / "copy-journals" / f"{key}.jsonl"


def copy_tree(
    src_url: str,
    dst_url: str,
    settings: Settings | None = None,
    *,
    workers: int = 4,
    progress: bool = True,
    fresh: bool = False,
    journal: str | os.PathLike[str] | None = None,
    manifest: Manifest | None = None,
) -> CopyReport:
    """Copy every file under `src_url` to `dst_url`, resuming a previous interrupted run.

    `fresh=True` ignores (and restarts) the journal. `manifest` checks the files against these
    hashes instead of the source's own manifest.json. Raises StorageError naming the failed
    files when some could not be copied; the others stay journaled, so a rerun copies only the
    rest.
    """
    from physai.core.settings import settings_or_default

    started = time.monotonic()
    resolved = settings_or_default(settings)
    src = resolve(src_url, resolved)
    dst = resolve(dst_url, resolved)
    sources, is_file = scan(src)
    if is_file:
        raise UserError(f"{src.display} is a file: copy_tree copies directories")
    if not sources:  # an empty directory, or nothing there
        with storage_errors("read", src.display):
            if not src.fs.exists(src.path):
                raise NotFoundError(f"{src.display} does not exist")
    if manifest is None:
        manifest = _read_manifest_at(src)
    plan = {
        name: _Source(src.child(name), size, _expected(manifest, name))
        for name, size in sources.items()
    }
    path = Path(journal) if journal is not None else journal_path(src, dst, resolved)
    return _copy_plan(plan, src.display, dst, path, workers, progress, fresh, started)


def copy_files(
    files: Mapping[str, str],
    dst_url: str,
    settings: Settings | None = None,
    *,
    expected: Mapping[str, FileEntry] | None = None,
    workers: int = 4,
    progress: bool = True,
    fresh: bool = False,
) -> CopyReport:
    """Copy single files to names of your choosing below `dst_url`, like `copy_tree` does.

    `files` maps each destination name (relative to `dst_url`) to its source URL; `expected`
    gives the sha256 and size each must have (a source that differs fails, nothing committed).
    The journal is keyed by the whole mapping, so rerunning the same call resumes it.
    """
    from physai.core.settings import settings_or_default

    started = time.monotonic()
    resolved = settings_or_default(settings)
    dst = resolve(dst_url, resolved)
    plan: dict[str, _Source] = {}
    for name, url in sorted(files.items()):
        dst.child(name)  # rejects names that leave dst_url
        location = resolve(url, resolved)
        with storage_errors("read", location.display):
            size = int(location.fs.size(location.path))
        plan[name] = _Source(location, size, (expected or {}).get(name))
    listing = json.dumps(sorted((n, s.location.display) for n, s in plan.items()))
    label = f"files:{hashlib.sha256(listing.encode()).hexdigest()[:32]}"
    key = hashlib.sha256(f"{label}\0{dst.display}".encode()).hexdigest()[:32]
    path = resolved.state_dir / "copy-journals" / f"{key}.jsonl"
    return _copy_plan(plan, label, dst, path, workers, progress, fresh, started)


@dataclass(frozen=True)
class _Source:
    location: Location
    size: int
    expected: FileEntry | None


def _remove_stale_parts(root: Path, names: list[str]) -> None:
    """Delete the partial files (`.NAME.<random>.physai-part`) that a killed run left for the
    files this resumed run copies again: nobody else writes them, and they would stay forever."""
    for name in names:
        target = root / name
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*{PART_SUFFIX}"):
            with contextlib.suppress(OSError):
                stale.unlink()


def _copy_plan(
    plan: dict[str, _Source],
    source: str,
    dst: Location,
    path: Path,
    workers: int,
    progress: bool,
    fresh: bool,
    started: float,
) -> CopyReport:
    """Copy `plan` (destination name → source) to `dst`, skipping what the journal holds."""
    done = {} if fresh else _load_journal(path, source, dst)
    present = list_files(dst) if done else {}

    report = CopyReport(source, dst.display, path)
    todo: list[str] = []
    for name, item in plan.items():
        entry = done.get(name)
        if (
            entry is not None
            and entry.size == item.size
            and present.get(name) == item.size
            and (item.expected is None or item.expected.sha256 == entry.sha256)
        ):
            report.skipped.append(name)
        else:
            todo.append(name)

    if done and dst.local_path is not None:
        _remove_stale_parts(dst.local_path, todo)
    failures: dict[str, str] = {}
    with _Journal(path, source, dst, fresh=fresh or not done) as log, _progress(progress) as bar:
        task = bar.add_task(
            f"copy {len(todo)} file(s)", total=sum(plan[n].size for n in todo) or None
        )

        def advance(n: int) -> None:
            bar.advance(task, n)

        def one(name: str) -> FileEntry:
            item = plan[name]
            return _copy_one(item.location, dst.child(name), item.size, item.expected, advance)

        # An exception leaving this block (KeyboardInterrupt) cancels the queued copies.
        with thread_pool(workers) as pool:
            futures = {pool.submit(one, name): name for name in todo}
            for future in as_completed(futures):
                name = futures[future]
                try:
                    entry = future.result()
                except Exception as exc:
                    where = plan[name].location.display
                    failures[name] = to_storage_error("copy", where, exc).message
                    continue
                log.record(name, entry)
                report.copied.append(name)
                report.bytes_copied += entry.size
                report.entries[name] = entry
    report.copied.sort()
    report.seconds = time.monotonic() - started
    if failures:
        first = sorted(failures)[0]
        raise StorageError(
            f"{len(failures)} of {len(todo)} file(s) could not be copied from {source} to "
            f"{dst.display} (first: {first}: {failures[first]}); rerun to copy only what is "
            "missing"
        )
    _log.info(
        "copied %d file(s) (%d bytes), skipped %d, %s → %s",
        len(report.copied), report.bytes_copied, len(report.skipped), source, dst.display,
    )  # fmt: skip
    return report


def _expected(manifest: Manifest | None, name: str) -> FileEntry | None:
    if manifest is None or name == MANIFEST_NAME:
        return None
    return manifest.get(name)


def _copy_one(
    src: Location,
    dst: Location,
    size: int,
    expected: FileEntry | None,
    advance: Callable[[int], None],
) -> FileEntry:
    """Stream one file, hashing it; commit it only when size (and manifest hash) check out."""
    if expected is not None and expected.size != size:
        raise StorageError(
            f"{src.display} has {size} bytes but its manifest says {expected.size}: the source "
            "changed after its manifest was written"
        )
    digest = hashlib.sha256()
    written = 0

    def chunks(reader: Any) -> Iterator[bytes]:
        """The source's chunks, hashed; raises after the last one unless it checks out, so
        the writer commits nothing."""
        nonlocal written
        while True:
            with storage_errors("read", src.display):
                chunk = reader.read(CHUNK_SIZE)
            if not chunk:
                break
            digest.update(chunk)
            written += len(chunk)
            advance(len(chunk))
            yield chunk
        if written != size:
            raise StorageError(f"{src.display} changed while copying ({written} of {size} bytes)")
        if expected is not None and digest.hexdigest() != expected.sha256:
            raise StorageError(f"{src.display} does not match the sha256 in its manifest")

    with storage_errors("read", src.display):
        reader = src.fs.open(src.path, "rb")
    with reader:
        write_chunks_at(dst, chunks(reader))  # write errors name the destination
    return FileEntry(digest.hexdigest(), written)


# -- journal ---------------------------------------------------------------------------------


def _header(source: str, dst: Location) -> dict[str, Any]:
    return {"journal": JOURNAL_VERSION, "source": source, "destination": dst.display}


def _load_journal(path: Path, source: str, dst: Location) -> dict[str, FileEntry]:
    """Entries of a previous run's journal; {} when absent or for another copy."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        _log.warning("ignoring unreadable copy journal %s: %s", path, exc)
        return {}
    entries: dict[str, FileEntry] = {}
    for number, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if number == 0:
            if record != _header(source, dst):
                _log.warning("copy journal %s is for another copy: starting over", path)
                return {}
            continue
        if isinstance(record, dict) and {"path", "size", "sha256"} <= record.keys():
            entries[str(record["path"])] = FileEntry(str(record["sha256"]), int(record["size"]))
    return entries


class _Journal:
    """Append-only JSON lines: a header, then one line per verified file (flushed each)."""

    def __init__(self, path: Path, source: str, dst: Location, *, fresh: bool) -> None:
        self._path, self._header, self._fresh = path, _header(source, dst), fresh
        self._handle: TextIO | None = None

    def __enter__(self) -> _Journal:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._fresh or not self._path.exists():
            self._handle = self._path.open("w", encoding="utf-8")
            self._write(self._header)
        else:
            self._handle = self._path.open("a", encoding="utf-8")
            self._handle.write("\n")  # end a line a kill may have cut short
        return self

    def _write(self, record: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._handle.flush()

    def record(self, name: str, entry: FileEntry) -> None:
        """Journal one verified file."""
        self._write({"path": name, "size": entry.size, "sha256": entry.sha256})

    def __exit__(self, *args: object) -> None:
        if self._handle is not None:
            self._handle.close()


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    ) as bar:
        yield bar
