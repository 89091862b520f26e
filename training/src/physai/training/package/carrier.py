"""`package_policy`: an exported policy folder as an OCI model-carrier image."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from physai.core.errors import UserError
from physai.core.storage.filesystems import Location, resolve
from physai.training.package.oci import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    REF_NAME,
    TarEntry,
    json_blob,
    layout_files,
    sort_entries,
    tar_chunks,
    write_layer,
    write_layout_dir,
    write_layout_tar,
)
from physai.training.policy_card import CARD_NAME, Format, PolicyCard

POLICY_ROOT = "/policy"
LABEL_PREFIX = "ai.physai.policy"
DEFAULT_PLATFORM = "linux/amd64"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# distribution-spec grammar: a repository path (lower case) and a tag
_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_PLATFORM = re.compile(r"^([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?$")


@dataclass(frozen=True)
class PackageResult:
    """What `package_policy` wrote: where, under which tag, and the digests to pin it by."""

    path: str
    tar: bool
    name: str
    version: str
    tag: str
    platform: str
    created: str
    manifest_digest: str
    manifest_size: int
    config_digest: str
    layer_digest: str
    layer_diff_id: str
    layer_size: int
    layer_media_type: str
    files: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what a CLI prints or writes beside the package)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return out | {"files": list(self.files), "labels": dict(self.labels)}


def package_policy(
    policy_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    tar: bool = False,
    tag: str | None = None,
    platform: str = DEFAULT_PLATFORM,
    compress: bool = True,
    created: datetime | None = None,
    labels: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> PackageResult:
    """Write the policy in `policy_dir` as a model-carrier OCI image at `out`.

    `out` is a folder (an OCI image layout) or, with `tar=True`, one `.tar` file holding that
    layout (an `oci-archive`); a local path or a storage URL. The image has one layer whose
    files are the card and every file it lists, under /policy. `name` is the repository name
    (`org.opencontainers.image.title`), `version` the image version and, unless `tag` is given,
    its tag (the index's ref.name). `compress`: gzip the layer (else a plain tar layer).
    `created` (timezone-aware) defaults to $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z, so
    the same inputs give the same digests. `labels` are added to the config's labels and the
    manifest's annotations. The files are checked against the card's sha256 before anything is
    written (UserError, nothing written); the output appears whole or not at all.
    """
    folder = Path(policy_dir)
    if folder.is_file():
        folder = folder.parent
    card = PolicyCard.read(folder)
    members = _members(card)
    card.verify_files(folder)
    tag = version if tag is None else tag
    check_reference(name, version, tag)
    os_name, arch, variant = _platform(platform)
    when = _created(created)
    stamp, mtime = when.strftime("%Y-%m-%dT%H:%M:%SZ"), int(when.timestamp())
    card_bytes = (folder / CARD_NAME).read_bytes()
    label_map = _labels(card, name, version, stamp, members, labels)
    entries = _layer_entries(folder, card, card_bytes, members)
    dest = resolve(out)
    if dest.fs.exists(dest.path) and not overwrite:
        raise UserError(f"{dest.display} exists: choose another output or overwrite it")

    with _scratch(dest) as scratch:
        layer_file = scratch / "layer"
        layer, diff_id = write_layer(tar_chunks(entries, mtime), layer_file, compress=compress)
        platform_fields = {"architecture": arch, "os": os_name}
        if variant:
            platform_fields["variant"] = variant
        config_blob, config_bytes = json_blob(
            MEDIA_CONFIG,
            {
                "created": stamp,
                **platform_fields,
                "config": {"Labels": label_map},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": stamp, "created_by": "physai training package"}],
            },
        )
        manifest_blob, manifest_bytes = json_blob(
            MEDIA_MANIFEST,
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": config_blob.descriptor(),
                "layers": [layer.descriptor()],
                "annotations": label_map,
            },
        )
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                manifest_blob.descriptor(platform=platform_fields, annotations={REF_NAME: tag})
            ],
        }
        blobs = {config_blob.digest: config_bytes, manifest_blob.digest: manifest_bytes}
        files, _ = layout_files(index, blobs)
        if tar:
            write_layout_tar(dest, files, layer_file, layer, mtime)
        else:
            write_layout_dir(dest, files, layer_file, layer, overwrite=overwrite)

    return PackageResult(
        path=dest.display,
        tar=tar,
        name=name,
        version=version,
        tag=tag,
        platform=platform,
        created=stamp,
        manifest_digest=manifest_blob.digest,
        manifest_size=manifest_blob.size,
        config_digest=config_blob.digest,
        layer_digest=layer.digest,
        layer_diff_id=diff_id,
        layer_size=layer.size,
        layer_media_type=layer.media_type,
        files=tuple(f"/{e.name}" for e in entries if not e.is_dir),
        labels=label_map,
    )


def _members(card: PolicyCard) -> dict[Format, str]:
    """{format: path below the card's folder} for every listed file; UserError if one escapes."""
    members: dict[Format, str] = {}
    for fmt, entry in card.files.items():
        path = PurePosixPath(entry.path)
        bad = "\\" in entry.path or path.is_absolute() or not path.parts or ".." in path.parts
        if bad or path.as_posix() == CARD_NAME:
            raise UserError(
                f"{CARD_NAME} lists {fmt} file {entry.path!r}, which is not a file below the "
                "card's folder: export the policy again"
            )
        members[fmt] = path.as_posix()
    return members


def check_reference(name: str, version: str, tag: str) -> None:
    """UserError unless `name`, `version` and `tag` make a valid image reference."""
    if not _NAME.match(name):
        raise UserError(
            f"image name {name!r} is not a valid repository name: use lower-case letters, "
            "digits and separators (. _ - /), e.g. 'policies/ppo-pendulum'"
        )
    if not version.strip():
        raise UserError("version is empty: give the image a version, e.g. '1.0.0'")
    if not _TAG.match(tag):
        raise UserError(
            f"tag {tag!r} is not a valid image tag: up to 128 of letters, digits, '.', '_' "
            "and '-', not starting with '.' or '-' (pass tag= when the version is not one)"
        )


def _platform(platform: str) -> tuple[str, str, str | None]:
    match = _PLATFORM.match(platform)
    if not match:
        raise UserError(f"platform {platform!r} is not OS/ARCH[/VARIANT], e.g. 'linux/arm64'")
    return match.group(1), match.group(2), match.group(3)


def _created(created: datetime | None) -> datetime:
    if created is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if not epoch:
            return EPOCH
        try:
            created = datetime.fromtimestamp(int(epoch), UTC)
        except (ValueError, OverflowError, OSError):
            raise UserError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time in seconds") from None
    if created.tzinfo is None:
        raise UserError("created must be timezone-aware, e.g. datetime.now(UTC)")
    created = created.astimezone(UTC).replace(microsecond=0)
    if created < EPOCH:
        raise UserError(f"created {created.isoformat()} is before 1970-01-01")
    return created


def _labels(
    card: PolicyCard,
    name: str,
    version: str,
    stamp: str,
    members: Mapping[Format, str],
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": stamp,
        "org.opencontainers.image.description": (
            f"physai policy {card.name} ({card.policy}): a model carrier, files under {POLICY_ROOT}"
        ),
        f"{LABEL_PREFIX}.format": card.format,
        f"{LABEL_PREFIX}.name": card.name,
        f"{LABEL_PREFIX}.kind": card.policy,
        f"{LABEL_PREFIX}.path": POLICY_ROOT,
        f"{LABEL_PREFIX}.source.kind": card.source.kind,
    }
    if card.source.run:
        labels[f"{LABEL_PREFIX}.source.run"] = card.source.run
    for fmt, entry in card.files.items():
        labels[f"{LABEL_PREFIX}.sha256.{fmt}"] = entry.sha256
        labels[f"{LABEL_PREFIX}.file.{fmt}"] = f"{POLICY_ROOT}/{members[fmt]}"
    for key, value in (extra or {}).items():
        if key in labels:
            raise UserError(f"label {key!r} is set by packaging itself: choose another key")
        labels[key] = value
    return dict(sorted(labels.items()))


def _layer_entries(
    folder: Path, card: PolicyCard, card_bytes: bytes, members: Mapping[Format, str]
) -> list[TarEntry]:
    root = POLICY_ROOT.strip("/")
    dirs = {root}
    entries = [TarEntry(f"{root}/{CARD_NAME}", data=card_bytes)]
    seen: set[str] = set()
    for fmt, member in members.items():
        if member in seen:
            continue
        seen.add(member)
        file = folder / member
        dirs.update(f"{root}/{p}" for p in _parents(member))
        entries.append(
            TarEntry(
                f"{root}/{member}",
                file=file,
                size=file.stat().st_size,
                sha256=card.files[fmt].sha256,
            )
        )
    return sort_entries([TarEntry(d) for d in dirs] + entries)


def _parents(member: str) -> list[str]:
    """'a/b/c.onnx' -> ['a', 'a/b']."""
    parents = PurePosixPath(member).parents
    return [p.as_posix() for p in reversed(parents) if p.as_posix() != "."]


@contextlib.contextmanager
def _scratch(dest: Location) -> Iterator[Path]:
    """A temporary folder for the layer: beside a local destination (so it can be renamed in),
    else in the system's temporary folder. Removed afterwards, whatever happens."""
    if dest.local_path is not None:
        parent = dest.local_path.parent
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=parent, prefix=f".{dest.name}.physai-layer-") as tmp:
            yield Path(tmp)
    else:
        with tempfile.TemporaryDirectory(prefix="physai-layer-") as tmp:
            yield Path(tmp)
