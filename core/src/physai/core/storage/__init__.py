"""Storage: fsspec URLs everywhere, atomic publish, sha256 manifests, resumable copy.

    from physai.core.storage import copy_tree, publish, verify_manifest

    with publish("az://models/reacher/v7") as staging:      # nothing visible until the commit
        staging.write_text("config.json", "{}")
    copy_tree("az://models/reacher/v7", "/tmp/reacher")       # rerun after a kill resumes
    assert verify_manifest("/tmp/reacher") == []

URLs: a plain path or `file://`, `memory://`, `az://CONTAINER/PATH`, Blob https URLs (with an
optional SAS) and the emulator's `http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PATH`. Importing this
package imports neither fsspec nor any Azure SDK: they load on first use.
"""

from physai.core.storage.copy import CopyReport, copy_files, copy_tree
from physai.core.storage.filesystems import (
    Location,
    exists,
    install_log_redaction,
    join_url,
    ls,
    open_fs,
    read_bytes,
    read_text,
    resolve,
    rm,
    walk_files,
    write_bytes,
    write_text,
)
from physai.core.storage.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ManifestProblem,
    compute_manifest,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from physai.core.storage.publish import (
    Staging,
    exists_published,
    publish,
    publish_tree,
    published_info,
    require_published,
    source_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "CopyReport",
    "FileEntry",
    "Location",
    "Manifest",
    "ManifestProblem",
    "Staging",
    "compute_manifest",
    "copy_files",
    "copy_tree",
    "exists",
    "exists_published",
    "install_log_redaction",
    "join_url",
    "ls",
    "open_fs",
    "publish",
    "publish_tree",
    "published_info",
    "read_bytes",
    "read_manifest",
    "read_text",
    "require_published",
    "resolve",
    "rm",
    "source_manifest",
    "verify_manifest",
    "walk_files",
    "write_bytes",
    "write_manifest",
    "write_text",
]
