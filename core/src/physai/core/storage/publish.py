"""Atomic publish: write a directory at a staging location, then commit it in one step.

    with publish("az://models/reacher/v7") as staging:
        staging.write_text("config.json", "{...}")
        copy_tree("/tmp/ckpt", staging.url)           # any writer that takes a URL
    exists_published("az://models/reacher/v7")        # True only after a complete commit

What "visible" means:

- local paths: the directory exists at the destination. Staging is a hidden sibling directory
  (`.NAME.staging-*`) on the same filesystem, committed with one `rename`, so the destination
  appears whole or not at all. A kill at any moment leaves only the hidden sibling.
- Blob and memory:// (object stores: no atomic rename of a prefix): the commit marker
  `DEST/.physai-published.json` exists. Files are written under a staging prefix (a hidden
  sibling `.NAME.staging-*`), then copied server-side to the destination, checked (every size),
  and the marker is uploaded last; the staging prefix is then deleted. A kill during the commit
  can leave blobs at the destination *without a marker*: readers that call `exists_published`
  (or `require_published`) treat that as "not published", and the next `publish` to that
  destination refuses it unless `overwrite=True`. An overwrite deletes the old marker first,
  copies the new files over the old ones, then deletes the old files the new version lacks; a
  failed overwrite leaves the destination unpublished, old files not yet replaced included.

Both backends get `manifest.json` (sha256 of every file) and the marker before the commit.
Staging left behind by a killed process is removed by the next publish to the same destination
(when its process is gone from this host, or after `stale_after` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from physai.core.errors import NotFoundError, StorageError, UserError
from physai.core.logs import get_logger, redact
from physai.core.storage.copy import CopyReport
from physai.core.storage.filesystems import (
    MARKER_NAME,
    STAGING_INFIX,
    Location,
    list_files,
    map_threads,
    resolve,
    scan,
    storage_errors,
    write_bytes_at,
)
from physai.core.storage.manifest import (
    MANIFEST_NAME,
    compute_manifest_at,
    manifest_json,
    parse_manifest,
    write_manifest_document_at,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from physai.core.settings import Settings

MARKER_FORMAT = "physai.published"
DEFAULT_STALE_AFTER_S = 24 * 3600.0

_log = get_logger("physai.core.storage.publish")
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Staging:
    """Where the body of a `publish` block writes: a hidden staging directory or prefix."""

    location: Location

    @property
    def url(self) -> str:
        """A URL of the staging directory, usable with every storage function."""
        return self.location.url()

    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem the staging directory lives on."""
        return self.location.fs

    @property
    def path(self) -> str:
        """The staging directory's path on `fs`."""
        return self.location.path

    @property
    def local_path(self) -> Path | None:
        """The staging directory on this machine (local destinations), else None."""
        return self.location.local_path

    def join(self, relative: str) -> str:
        """The URL of `relative` inside the staging directory."""
        return self.location.child(relative).url()

    def open(self, relative: str, mode: str = "wb") -> IO[Any]:
        """Open a file inside the staging directory (parents are created as needed)."""
        target = self.location.child(relative)
        with storage_errors("open", target.display):
            if target.local_path is not None:
                target.local_path.parent.mkdir(parents=True, exist_ok=True)
            return target.fs.open(target.path, mode)  # type: ignore[no-any-return]

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write one file inside the staging directory."""
        write_bytes_at(self.location.child(relative), data)

    def write_text(self, relative: str, text: str, encoding: str = "utf-8") -> None:
        """Write one text file inside the staging directory."""
        self.write_bytes(relative, text.encode(encoding))

    def put(self, local: str | os.PathLike[str], relative: str = "") -> None:
        """Upload a local file or directory (recursively) into the staging directory."""
        source = Path(local)
        target = self.location.child(relative or source.name)
        with storage_errors("upload to", target.display):
            if target.local_path is not None:
                target.local_path.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    shutil.copytree(source, target.local_path, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, target.local_path)
            else:
                target.fs.put(str(source), target.path, recursive=source.is_dir())

    def __str__(self) -> str:
        return self.location.display


@contextlib.contextmanager
def publish(
    dest_url: str,
    settings: Settings | None = None,
    *,
    overwrite: bool = False,
    manifest: bool = True,
    workers: int = 8,
    stale_after: float = DEFAULT_STALE_AFTER_S,
) -> Iterator[Staging]:
    """Stage writes, then commit them to `dest_url` atomically (see the module docstring).

    Raises UserError (before the block runs) when the destination exists and `overwrite` is
    False. If the block raises, or the commit fails, staging is deleted and nothing appears.
    """
    dest = resolve(dest_url, settings)
    if not dest.name or (dest.backend == "blob" and "/" not in dest.path):
        raise UserError(f"cannot publish to {dest.display}: name a directory below the root")
    _check_destination(dest, overwrite)
    parent = dest.parent()
    _remove_stale_staging(parent, dest.name, stale_after)
    stamp = f"{int(time.time())}-{_HOST_TAG}-{os.getpid()}-{secrets.token_hex(3)}"
    staging = parent.child(f".{dest.name}{STAGING_INFIX}{stamp}")
    if staging.local_path is not None:
        with storage_errors("create", staging.display):
            staging.local_path.mkdir(parents=True)
    _log.debug("publishing %s through %s", dest.display, staging.display)
    try:
        yield Staging(staging)
        _commit(staging, dest, overwrite=overwrite, manifest=manifest, workers=workers)
    except BaseException:
        _discard(staging)
        raise


def exists_published(url: str, settings: Settings | None = None) -> bool:
    """True when a publish to `url` completed (its commit marker is there)."""
    location = resolve(url, settings).child(MARKER_NAME)
    with storage_errors("check", location.display):
        return bool(location.fs.exists(location.path))


def published_info(url: str, settings: Settings | None = None) -> dict[str, Any] | None:
    """The commit marker of a published directory (time, file count, manifest hash), or None."""
    location = resolve(url, settings).child(MARKER_NAME)
    try:
        with storage_errors("read", location.display):
            data = location.fs.cat_file(location.path)
    except NotFoundError:
        return None
    try:
        info: Any = json.loads(data)
    except ValueError:
        info = None
    if not isinstance(info, dict) or info.get("format") != MARKER_FORMAT:
        raise StorageError(f"{location.display} is not a physai commit marker")
    return info


def require_published(url: str, settings: Settings | None = None) -> dict[str, Any]:
    """The commit marker of `url`, or NotFoundError when it was never (completely) published."""
    info = published_info(url, settings)
    if info is None:
        raise NotFoundError(
            f"{redact(url.split('?', 1)[0])} is not published (no {MARKER_NAME}): it does not "
            "exist, or a publish to it did not complete"
        )
    return info


def publish_tree(
    src_url: str,
    dest_url: str,
    settings: Settings | None = None,
    *,
    workers: int = 4,
    progress: bool = True,
    manifest: str | None = None,
) -> CopyReport:
    """Copy a directory to `dest_url` and publish it there, resuming an interrupted run.

    `manifest`: the source's manifest text when the caller already has it (`source_manifest`),
    so that a source without a manifest.json is not hashed twice.

    For uploads too large to stage twice: files go straight to their final place on object
    stores (a hidden sibling that is renamed at the end on local disks) through the resumable,
    journaled `copy_tree`, each checked against the source's sha256 manifest (computed when the
    source has none). The commit marker is written last, so readers that check it never see a
    partial upload. Publishing the same content again is a no-op; other content at a published
    destination is refused.
    """
    from physai.core.settings import settings_or_default
    from physai.core.storage.copy import copy_tree, journal_path

    resolved = settings_or_default(settings)
    src, dest = resolve(src_url, resolved), resolve(dest_url, resolved)
    if not dest.name or (dest.backend == "blob" and "/" not in dest.path):
        raise UserError(f"cannot publish to {dest.display}: name a directory below the root")
    manifest_text = manifest if manifest is not None else _manifest_of(src, workers)
    manifest_hash = hashlib.sha256(manifest_text.encode()).hexdigest()
    info = published_info(dest.url(), resolved)
    if info is not None:
        if info.get("manifest_sha256") == manifest_hash:
            _log.info("%s is already published with this content", dest.display)
            return CopyReport(src.display, dest.display, journal_path(src, dest, resolved))
        raise UserError(f"{dest.display} is already published with other content")
    if dest.backend == "local":
        key = journal_path(src, dest, resolved).stem[:16]
        target = dest.parent().child(f".{dest.name}{STAGING_INFIX}upload-{key}")
        _check_destination(dest, overwrite=False)
    else:
        target = dest
    entries = parse_manifest(manifest_text, f"{src.display}/{MANIFEST_NAME}")
    report = copy_tree(
        src.url(), target.url(), resolved, workers=workers, progress=progress, manifest=entries
    )
    if not src.fs.exists(src.child(MANIFEST_NAME).path):
        write_bytes_at(target.child(MANIFEST_NAME), manifest_text.encode("utf-8"))
    landed = list_files(target)
    wanted = {name: entry.size for name, entry in entries.items()}
    wrong = sorted(
        name
        for name in set(wanted) | set(landed) - {MANIFEST_NAME}
        if landed.get(name) != wanted.get(name)
    )
    if wrong:
        raise StorageError(
            f"{dest.display} does not match the manifest of {src.display} after the copy "
            f"({len(wrong)} file(s), first: {wrong[0]}): files were changed or added there"
        )
    marker = _marker(manifest_text, wanted)
    if target is dest:
        write_bytes_at(dest.child(MARKER_NAME), marker)
    else:
        _commit_local(target, dest, overwrite=False, marker=marker)
    _log.info("published %s from %s (%d files)", dest.display, src.display, len(wanted))
    return report


def source_manifest(src_url: str, settings: Settings | None = None, *, workers: int = 4) -> str:
    """The text of a directory's manifest.json, or a new manifest of it (not written there)."""
    from physai.core.settings import settings_or_default

    return _manifest_of(resolve(src_url, settings_or_default(settings)), workers)


def _manifest_of(src: Location, workers: int) -> str:
    location = src.child(MANIFEST_NAME)
    try:
        with storage_errors("read", location.display):
            return bytes(location.fs.cat_file(location.path)).decode("utf-8")
    except NotFoundError:
        pass
    return manifest_json(compute_manifest_at(src, workers=workers))


# -- internals -------------------------------------------------------------------------------


def _check_destination(dest: Location, overwrite: bool) -> None:
    if overwrite:
        return
    with storage_errors("check", dest.display):
        marker = dest.child(MARKER_NAME)
        if dest.fs.exists(marker.path):
            raise UserError(
                f"{dest.display} is already published: pass overwrite=True to replace it"
            )
        if dest.fs.exists(dest.path):
            what = (
                "exists"
                if dest.backend == "local"
                else "holds files but no commit marker (an interrupted publish, or data not "
                "written by physai)"
            )
            raise UserError(f"{dest.display} {what}: pass overwrite=True to replace it")


def _marker(manifest_text: str | None, files: dict[str, int]) -> bytes:
    document = {
        "format": MARKER_FORMAT,
        "version": 1,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": len(files),
        "bytes": sum(files.values()),
        "manifest_sha256": (
            hashlib.sha256(manifest_text.encode()).hexdigest() if manifest_text else None
        ),
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _commit(
    staging: Location, dest: Location, *, overwrite: bool, manifest: bool, workers: int
) -> None:
    manifest_text: str | None = None
    if manifest:
        entries, manifest_text = write_manifest_document_at(staging, workers=workers)
        data = {name: entry.size for name, entry in entries.items()}
        files = dict(sorted({**data, MANIFEST_NAME: len(manifest_text.encode("utf-8"))}.items()))
    else:
        files = list_files(staging)
        data = {k: v for k, v in files.items() if k != MANIFEST_NAME}
    marker = _marker(manifest_text, data)
    if staging.backend == "local":
        _commit_local(staging, dest, overwrite=overwrite, marker=marker)
    else:
        _commit_object_store(
            staging, dest, files, overwrite=overwrite, marker=marker, workers=workers
        )
    _log.info("published %s (%d files)", dest.display, len(files))


def _commit_local(staging: Location, dest: Location, *, overwrite: bool, marker: bytes) -> None:
    assert staging.local_path is not None and dest.local_path is not None
    write_bytes_at(staging.child(MARKER_NAME), marker)
    target = dest.local_path
    try:
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise UserError(f"{dest.display} appeared while publishing: not replaced")
            # Move the old version aside (hidden, so a kill here leaves nothing half-visible),
            # rename the new one in, then delete the old one.
            aside = staging.local_path.with_name(staging.local_path.name + "-old")
            os.rename(target, aside)
            try:
                os.rename(staging.local_path, target)
            except OSError as exc:
                try:  # put the old version back, or the next publish deletes it as stale
                    os.rename(aside, target)
                except OSError as restore_exc:
                    raise StorageError(
                        f"cannot commit {dest.display}: {exc}; the previous version is at "
                        f"{aside} and could not be moved back: {restore_exc}"
                    ) from None
                raise
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                aside.unlink(missing_ok=True)
        else:
            os.rename(staging.local_path, target)
    except OSError as exc:
        raise StorageError(f"cannot commit {dest.display}: {exc}") from None


def _commit_object_store(
    staging: Location,
    dest: Location,
    files: dict[str, int],
    *,
    overwrite: bool,
    marker: bytes,
    workers: int,
) -> None:
    fs = dest.fs
    marker_location = dest.child(MARKER_NAME)
    replacing = False
    with storage_errors("commit", dest.display):
        if overwrite:
            # The marker goes first: from here on readers see "not published", never a mix.
            # The old files stay until the new ones are copied over them, so a failed commit
            # does not lose the old version's files too.
            if fs.exists(marker_location.path):
                fs.rm_file(marker_location.path)
            replacing = bool(fs.exists(dest.path))
        else:
            _check_destination(dest, overwrite=False)
    try:
        with storage_errors("copy staging to", dest.display):

            def copy(name: str) -> None:
                server_side_copy(fs, staging.child(name).path, dest.child(name).path)

            map_threads(copy, list(files), workers)
            landed, _ = scan(dest, internal=True)
            wrong = sorted(n for n, size in files.items() if landed.get(n) != size)
            if wrong:
                raise StorageError(
                    f"commit of {dest.display} incomplete: {len(wrong)} file(s) did not land "
                    f"with their size (first: {wrong[0]})"
                )
            stale = [n for n in landed if n not in files and n != MARKER_NAME]
            if stale:  # files of the old version that the new one does not have
                base = dest.path.rstrip("/")
                fs.rm([f"{base}/{n}" for n in stale])  # any name, physai's own files included
            write_bytes_at(marker_location, marker)
    except BaseException:
        if not replacing:  # the destination holds only what this commit copied
            with contextlib.suppress(Exception), storage_errors("clean", dest.display):
                if fs.exists(dest.path):
                    fs.rm(dest.path, recursive=True)
        raise
    _discard(staging)


def server_side_copy(fs: AbstractFileSystem, source: str, target: str) -> None:
    """Copy one file within a filesystem; on Blob, server-side, waiting until it completes."""
    if not hasattr(fs, "service_client"):  # not adlfs: the filesystem's own copy
        fs.cp_file(source, target)
        return
    from fsspec.asyn import sync

    sync(fs.loop, _blob_copy, fs, source, target)
    fs.invalidate_cache(target)


async def _blob_copy(fs: Any, source: str, target: str, timeout: float = 3600.0) -> None:
    source_container, source_blob, _ = fs.split_path(source)
    target_container, target_blob, _ = fs.split_path(target)
    source_client = fs.service_client.get_blob_client(source_container, source_blob)
    target_client = fs.service_client.get_blob_client(target_container, target_blob)
    async with source_client, target_client:
        result = await target_client.start_copy_from_url(source_client.url)
        status = result.get("copy_status")
        deadline = time.monotonic() + timeout
        while status == "pending" and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            status = (await target_client.get_blob_properties()).copy.status
    if status != "success":
        raise StorageError(f"server-side copy of {source} to {target} ended as {status!r}")


def _discard(staging: Location) -> None:
    """Delete a staging directory/prefix; a failure is logged, never raised."""
    try:
        with storage_errors("delete", staging.display):
            if staging.local_path is not None:
                if staging.local_path.exists():
                    shutil.rmtree(staging.local_path)
            elif staging.fs.exists(staging.path):
                staging.fs.rm(staging.path, recursive=True)
    except Exception as exc:
        _log.warning("could not delete staging %s: %s", staging.display, exc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(stamp: str, stale_after: float) -> bool:
    """Parse `TIME-HOST-PID-RANDOM[-old]`; stale when old, or when its process left this host."""
    parts = stamp.split("-")
    try:
        created, host, pid = float(parts[0]), parts[1], int(parts[2])
    except (IndexError, ValueError):
        return False  # not ours: leave it alone
    if time.time() - created > stale_after:
        return True
    return host == _HOST_TAG and not _pid_alive(pid)


def _remove_stale_staging(parent: Location, name: str, stale_after: float) -> None:
    prefix = f".{name}{STAGING_INFIX}"
    try:
        with storage_errors("list", parent.display):
            if not parent.fs.exists(parent.path):
                return
            entries = parent.fs.ls(parent.path, detail=False)
    except Exception as exc:
        _log.debug("no stale-staging sweep of %s: %s", parent.display, exc)
        return
    for entry in entries:
        base = str(entry).rstrip("/").rsplit("/", 1)[-1]
        if base.startswith(prefix) and _is_stale(base.removeprefix(prefix), stale_after):
            _log.info("removing stale staging %s", parent.child(base).display)
            _discard(parent.child(base))
