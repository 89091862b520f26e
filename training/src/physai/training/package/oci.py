"""OCI image layouts written with the standard library: deterministic tars, blobs, descriptors.

Nothing here knows about policies: `carrier` decides what goes into the image.

- `tar_chunks(entries, mtime)` streams a tar archive whose bytes depend only on the entries and
  `mtime`: uid/gid 0, no user or group names, modes 0644/0755, PAX format (extended headers only
  for what ustar cannot hold), 512-byte blocks padded to a 10 KiB record like tarfile does.
- `write_layer` writes a layer blob (gzip or plain tar) and returns its digest, the digest of the
  uncompressed tar (the config's diff_id) and its size in one pass; gzip uses mtime 0, no file
  name and level 6, so the same zlib gives the same bytes.
- `write_layout` publishes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`)
  as a folder (through core's atomic `publish`) or as one tar file (an `oci-archive`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from physai.core.errors import UserError
from physai.core.storage.filesystems import Location, write_chunks_at
from physai.core.storage.publish import publish

LAYOUT_VERSION = "1.0.0"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
GZIP_LEVEL = 6

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_CHUNK = 1 << 20


@dataclass(frozen=True)
class TarEntry:
    """One member of a tar stream: a directory, in-memory bytes, or a local file.

    A file entry's bytes are checked while they are read: they must add up to `size` and, when
    `sha256` is given, hash to it (a file that changed after it was verified is an error).
    """

    name: str
    data: bytes | None = None
    file: Path | None = None
    size: int = 0
    sha256: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.data is None and self.file is None


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob: its descriptor fields."""

    media_type: str
    digest: str
    size: int

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """The OCI descriptor of this blob (mediaType, digest, size, then `extra`)."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size} | extra


def json_blob(media_type: str, document: Mapping[str, Any]) -> tuple[Blob, bytes]:
    """A JSON document as compact ASCII bytes (key order as given) and its blob descriptor."""
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()
    return Blob(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data)), data


def sort_entries(entries: Iterable[TarEntry]) -> list[TarEntry]:
    """Entries in path order, each directory before what it holds."""
    return sorted(entries, key=lambda e: PurePosixPath(e.name).parts)


def tar_chunks(entries: Iterable[TarEntry], mtime: int) -> Iterator[bytes]:
    """Stream a reproducible tar archive of `entries`, in the order given."""
    written = 0
    for entry in entries:
        info = tarfile.TarInfo(entry.name)
        info.mtime = mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if entry.is_dir:
            info.type, info.mode, info.size = tarfile.DIRTYPE, 0o755, 0
        else:
            size = len(entry.data) if entry.data is not None else entry.size
            info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, size
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        yield header
        written += len(header)
        if entry.data is not None:
            yield entry.data
        elif entry.file is not None:
            yield from _file_chunks(entry)
        pad = -info.size % _BLOCK
        if pad:
            yield bytes(pad)
        written += info.size + pad
    end = 2 * _BLOCK
    end += -(written + end) % _RECORD
    yield bytes(end)


def _file_chunks(entry: TarEntry) -> Iterator[bytes]:
    assert entry.file is not None
    digest = hashlib.sha256()
    read = 0
    with entry.file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            read += len(chunk)
            if read > entry.size:
                break
            digest.update(chunk)
            yield chunk
    if read != entry.size or (entry.sha256 and digest.hexdigest() != entry.sha256):
        raise UserError(f"{entry.file} changed while it was being packaged: package it again")


class _Counting:
    """A writable that hashes and counts what passes through it to `target`."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def write_layer(chunks: Iterable[bytes], dest: Path, *, compress: bool) -> tuple[Blob, str]:
    """Write a layer blob to the local file `dest`: (its blob, the uncompressed tar's digest)."""
    diff = hashlib.sha256()
    with dest.open("wb") as raw:
        out = _Counting(raw)
        if compress:
            with gzip.GzipFile(
                filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=out, mtime=0
            ) as zipped:
                for chunk in chunks:
                    diff.update(chunk)
                    zipped.write(chunk)
        else:
            for chunk in chunks:
                diff.update(chunk)
                out.write(chunk)
        raw.flush()
        os.fsync(raw.fileno())
    media_type = MEDIA_LAYER_GZIP if compress else MEDIA_LAYER_TAR
    return Blob(media_type, "sha256:" + out.sha.hexdigest(), out.size), "sha256:" + diff.hexdigest()


def layout_files(
    index: Mapping[str, Any], blobs: Mapping[str, bytes]
) -> tuple[dict[str, bytes], bytes]:
    """The small files of a layout: {relative path: bytes} for `oci-layout`, `index.json` and
    the in-memory blobs (keyed by digest), plus index.json's bytes."""
    index_bytes = (json.dumps(index, indent=2, ensure_ascii=True) + "\n").encode()
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode(),
        "index.json": index_bytes,
    }
    for digest, data in blobs.items():
        files["blobs/sha256/" + digest.removeprefix("sha256:")] = data
    return files, index_bytes


def write_layout_dir(
    dest: Location, files: Mapping[str, bytes], layer: Path, layer_blob: Blob, *, overwrite: bool
) -> None:
    """Publish a layout folder at `dest` atomically (core's `publish`, no manifest.json: that
    name means something else to `docker load`); the layer file is moved (or uploaded) in."""
    with publish(dest.url(), overwrite=overwrite, manifest=False) as staging:
        target = "blobs/sha256/" + layer_blob.hex
        if staging.local_path is not None:
            (staging.local_path / "blobs" / "sha256").mkdir(parents=True)
            os.replace(layer, staging.local_path / target)
        else:
            staging.put(layer, target)
        for relative, data in files.items():
            staging.write_bytes(relative, data)


def write_layout_tar(
    dest: Location, files: Mapping[str, bytes], layer: Path, layer_blob: Blob, mtime: int
) -> None:
    """Write the layout as one tar file at `dest` (what `oci-archive:` readers take), atomically."""
    entries = [TarEntry("blobs"), TarEntry("blobs/sha256")]
    entries += [TarEntry(name, data=data) for name, data in files.items()]
    entries.append(TarEntry("blobs/sha256/" + layer_blob.hex, file=layer, size=layer_blob.size))
    write_chunks_at(dest, tar_chunks(sort_entries(entries), mtime))
