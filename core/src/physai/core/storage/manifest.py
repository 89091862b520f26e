"""sha256 manifests: `manifest.json` lists every file under a directory with its size and hash.

    write_manifest("az://datasets/pick/v3")     # hashes every blob (streamed), writes manifest.json
    verify_manifest("az://datasets/pick/v3")    # [] when everything matches

Format (keys sorted, one stable document for the same content):

    {"format": "physai.manifest", "version": 1, "algorithm": "sha256",
     "files": {"data/chunk-000/episode_000000.parquet": {"sha256": "…", "size": 12345}, …}}

Files are read in chunks (`CHUNK_SIZE`), never whole. `manifest.json` itself and physai's
bookkeeping files (the publish marker, partial copies, staging directories) are not listed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from physai.core.errors import NotFoundError, StorageError
from physai.core.storage.filesystems import (
    CHUNK_SIZE,
    Location,
    list_files,
    map_threads,
    resolve,
    storage_errors,
    write_bytes_at,
)

if TYPE_CHECKING:
    from physai.core.settings import Settings

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "physai.manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest."""

    sha256: str
    size: int


Manifest = dict[str, FileEntry]


@dataclass(frozen=True)
class ManifestProblem:
    """One difference between a manifest and the files that are there."""

    kind: Literal["missing", "extra", "size", "sha256"]
    path: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


def hash_file(location: Location, on_bytes: Callable[[int], None] | None = None) -> FileEntry:
    """sha256 and size of one file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with storage_errors("read", location.display), location.fs.open(location.path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return FileEntry(digest.hexdigest(), size)


def compute_manifest(url: str, settings: Settings | None = None, *, workers: int = 4) -> Manifest:
    """{relative path: FileEntry} for every data file under `url` (hashed concurrently)."""
    return compute_manifest_at(resolve(url, settings), workers=workers)


def compute_manifest_at(root: Location, *, workers: int = 4) -> Manifest:
    """`compute_manifest` for an already resolved location."""
    names = [name for name in list_files(root) if name != MANIFEST_NAME]
    return _hash_all(root, names, workers)


def _hash_all(root: Location, names: list[str], workers: int) -> Manifest:
    """Hash `names` concurrently; the first error stops the hashing not yet started."""
    entries = map_threads(lambda n: hash_file(root.child(n)), names, workers)
    return dict(zip(names, entries, strict=True))


def manifest_json(manifest: Manifest) -> str:
    """The manifest as its JSON document (sorted keys, trailing newline)."""
    document = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "algorithm": "sha256",
        "files": {
            name: {"sha256": e.sha256, "size": e.size} for name, e in sorted(manifest.items())
        },
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def parse_manifest(text: str, where: str = MANIFEST_NAME) -> Manifest:
    """Parse a manifest document, or raise StorageError saying what is wrong with it."""
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StorageError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise StorageError(f"{where} is not a physai manifest (format {MANIFEST_FORMAT!r})")
    if document.get("version") != MANIFEST_VERSION or document.get("algorithm") != "sha256":
        raise StorageError(
            f"{where} has version {document.get('version')!r} / algorithm "
            f"{document.get('algorithm')!r}: this physai reads version {MANIFEST_VERSION}, sha256"
        )
    files = document.get("files")
    if not isinstance(files, dict):
        raise StorageError(f"{where} has no 'files' mapping")
    manifest: Manifest = {}
    for name, entry in files.items():
        try:
            manifest[str(name)] = FileEntry(str(entry["sha256"]), int(entry["size"]))
        except (KeyError, TypeError, ValueError):
            raise StorageError(f"{where}: entry {name!r} needs 'sha256' and 'size'") from None
    return manifest


def read_manifest(url: str, settings: Settings | None = None) -> Manifest | None:
    """The manifest under `url`, or None when there is no manifest.json."""
    return _read_manifest_at(resolve(url, settings))


def _read_manifest_at(root: Location) -> Manifest | None:
    location = root.child(MANIFEST_NAME)
    try:
        with storage_errors("read", location.display):
            text = location.fs.cat_file(location.path).decode("utf-8")
    except NotFoundError:
        return None
    return parse_manifest(text, location.display)


def write_manifest(url: str, settings: Settings | None = None, *, workers: int = 4) -> Manifest:
    """Hash every file under `url` and write `manifest.json` there; return the manifest."""
    root = resolve(url, settings)
    return write_manifest_at(root, workers=workers)


def write_manifest_at(root: Location, *, workers: int = 4) -> Manifest:
    """`write_manifest` for an already resolved location."""
    return write_manifest_document_at(root, workers=workers)[0]


def write_manifest_document_at(root: Location, *, workers: int = 4) -> tuple[Manifest, str]:
    """`write_manifest_at`, returning the manifest and the JSON document it wrote."""
    names = [name for name in list_files(root) if name != MANIFEST_NAME]
    manifest = _hash_all(root, names, workers)
    document = manifest_json(manifest)
    write_bytes_at(root.child(MANIFEST_NAME), document.encode("utf-8"))
    return manifest, document


def verify_manifest(
    url: str, settings: Settings | None = None, *, workers: int = 4
) -> list[ManifestProblem]:
    """Compare the files under `url` with its manifest.json; return the problems ([] = intact).

    Raises NotFoundError when there is no manifest.json to verify against.
    """
    root = resolve(url, settings)
    manifest = _read_manifest_at(root)
    if manifest is None:
        raise NotFoundError(
            f"{root.display} has no {MANIFEST_NAME}: write one with write_manifest first"
        )
    present = {n: s for n, s in list_files(root).items() if n != MANIFEST_NAME}
    problems: list[ManifestProblem] = []
    to_hash: list[str] = []
    for name in sorted(set(manifest) | set(present)):
        if name not in present:
            problems.append(ManifestProblem("missing", name))
        elif name not in manifest:
            problems.append(ManifestProblem("extra", name))
        elif present[name] != manifest[name].size:
            problems.append(
                ManifestProblem(
                    "size", name, f"manifest {manifest[name].size}, found {present[name]}"
                )
            )
        else:
            to_hash.append(name)
    hashed = _hash_all(root, to_hash, workers)
    for name, entry in hashed.items():
        if entry.sha256 != manifest[name].sha256:
            problems.append(
                ManifestProblem(
                    "sha256",
                    name,
                    f"manifest {manifest[name].sha256[:12]}…, found {entry.sha256[:12]}…",
                )
            )
    return sorted(problems, key=lambda p: (p.path, p.kind))
