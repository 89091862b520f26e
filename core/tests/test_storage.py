"""physai.core.storage on local paths and memory:// (Azure Blob is in test_storage_azurite.py)."""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from physai.core.errors import (
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    StorageError,
    UriError,
    UserError,
)
from physai.core.settings import load_settings
from physai.core.storage import (
    MANIFEST_NAME,
    FileEntry,
    compute_manifest,
    copy_files,
    copy_tree,
    exists,
    exists_published,
    install_log_redaction,
    join_url,
    ls,
    open_fs,
    publish,
    publish_tree,
    published_info,
    read_bytes,
    read_manifest,
    read_text,
    require_published,
    rm,
    verify_manifest,
    walk_files,
    write_bytes,
    write_manifest,
    write_text,
)
from physai.core.storage.filesystems import MARKER_NAME, is_internal

HEAVY = ("azure", "adlfs")


def _tree(root: Path, files: int = 5, size: int = 1000) -> dict[str, bytes]:
    """Write `files` files (some nested) under root; return {relative: content}."""
    content = {}
    for i in range(files):
        name = f"sub{i % 2}/f{i:03d}.bin" if i % 3 else f"f{i:03d}.bin"
        data = os.urandom(size + i)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        content[name] = data
    return content


def _memory_url() -> str:
    return f"memory://t{uuid.uuid4().hex[:12]}"


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PHYSAI_HOME"] = str(tmp_path / "home")
    return env


def _wait_for(
    predicate: object, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"child exited early ({proc.returncode}): {out}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the child process")


# -- import and URL resolution ----------------------------------------------------------------


def test_import_storage_loads_no_azure_sdk_or_fsspec() -> None:
    code = (
        "import sys, json; import physai.core.storage; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('azure', 'adlfs', 'fsspec', 'rich'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_open_fs_local_file_and_memory(tmp_path: Path) -> None:
    fs, path = open_fs(str(tmp_path / "a"))
    assert "file" in fs.protocol and path == str(tmp_path / "a")
    fs2, path2 = open_fs(f"file://{tmp_path}/b")
    assert "file" in fs2.protocol and path2 == str(tmp_path / "b")
    fs3, path3 = open_fs("memory://bucket/x")
    assert "memory" in fs3.protocol and path3 == "/bucket/x"


def test_open_fs_rejects_non_storage_uris() -> None:
    for url in ("runs:/abc123/model", "models:/reacher/3", "hf://org/name@abcdef1"):
        with pytest.raises(UriError, match="not a storage URL"):
            open_fs(url)
    with pytest.raises(UriError):
        open_fs("az://Bad_Container/x")


def test_az_needs_an_account(tmp_path: Path) -> None:
    settings = load_settings(config_file=None, home=str(tmp_path))
    with pytest.raises(ConfigError, match="PHYSAI_AZURE_STORAGE_ACCOUNT"):
        open_fs("az://data/x", settings)


def test_az_with_account_only_uses_the_lazy_azure_credential(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path), azure_storage_account="physaitest")
    fs, path = open_fs("az://data/pick/v3", settings)
    assert path == "data/pick/v3"
    assert fs.account_url == "https://physaitest.blob.core.windows.net"
    assert type(fs.credential).__name__ == "_AsyncCredential"  # wraps auth.get_credential's
    http = load_settings(
        home=str(tmp_path),
        azure_storage_account="physaitest",
        azure_blob_endpoint="http://127.0.0.1:10000/physaitest",
    )
    with pytest.raises(ConfigError, match="not https"):
        open_fs("az://data/x", http)


def test_missing_adlfs_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "adlfs", None)  # `import adlfs` now raises ImportError
    settings = load_settings(home=str(tmp_path), azure_storage_account="physaitest")
    with pytest.raises(MissingDependencyError, match=r"physai-core\[azure\]"):
        open_fs("az://data/x", settings)


def test_async_credential_adapter_forwards_to_the_sync_credential() -> None:
    import asyncio

    from physai.core.storage.filesystems import _AsyncCredential

    class SyncCredential:  # the shape of azure-identity's synchronous credentials
        def get_token(self, *scopes: str, **kwargs: object) -> tuple[str, tuple[str, ...]]:
            return ("token", scopes)

        def get_token_info(self, *scopes: str, options: object = None) -> str:
            return f"info:{scopes[0]}"

    adapter = _AsyncCredential(SyncCredential())

    async def use() -> tuple[object, object]:
        async with adapter as credential:
            return (
                await credential.get_token("https://storage.azure.com/.default"),
                await credential.get_token_info("scope"),
            )

    token, info = asyncio.run(use())
    assert token == ("token", ("https://storage.azure.com/.default",)) and info == "info:scope"


def test_install_log_redaction_covers_loggers_made_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    name = f"azure.storage.blob.later{uuid.uuid4().hex[:6]}"
    logging.getLogger(name).debug("GET https://a.blob.core.windows.net/c/x?sv=1&sig=s3cr3tvalue")
    logging.getLogger("unrelated.lib").debug("sig=untouched")
    messages = {r.name: r.getMessage() for r in caplog.records}
    assert "s3cr3tvalue" not in messages[name] and "sig=***" in messages[name]
    assert messages["unrelated.lib"] == "sig=untouched"  # other libraries are left alone


def test_join_url_keeps_the_sas_last() -> None:
    url = "https://acct.blob.core.windows.net/c1c/a?sv=1&sig=abc"
    assert (
        join_url(url, "b", "/c.txt")
        == "https://acct.blob.core.windows.net/c1c/a/b/c.txt?sv=1&sig=abc"
    )
    assert join_url("az://c1c/a/", "b") == "az://c1c/a/b"
    assert join_url("/data/x", "y/z") == "/data/x/y/z"


# -- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_helpers_round_trip(backend: str, tmp_path: Path) -> None:
    root = str(tmp_path / "root") if backend == "local" else _memory_url()
    write_text(join_url(root, "a.txt"), "hello")
    write_bytes(join_url(root, "d/e/b.bin"), b"\x00\x01")
    assert read_text(join_url(root, "a.txt")) == "hello"
    assert read_bytes(join_url(root, "d/e/b.bin")) == b"\x00\x01"
    assert exists(join_url(root, "a.txt")) and exists(join_url(root, "d"))
    assert not exists(join_url(root, "nope"))
    assert ls(root) == ["a.txt", "d"]
    assert walk_files(root) == ["a.txt", "d/e/b.bin"]
    assert walk_files(join_url(root, "nope")) == []
    with pytest.raises(StorageError, match="is a file"):
        walk_files(join_url(root, "a.txt"))
    with pytest.raises(NotFoundError, match="does not exist"):
        read_bytes(join_url(root, "nope"))
    with pytest.raises(StorageError, match="recursive=True"):
        rm(join_url(root, "d"))
    rm(join_url(root, "d"), recursive=True)
    rm(join_url(root, "missing"))  # deleting what is not there is fine
    assert walk_files(root) == ["a.txt"]
    assert ls(join_url(root, "missing")) == []


def test_write_bytes_local_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    write_bytes(str(target), b"1" * 10)
    write_bytes(str(target), b"2" * 5)
    assert target.read_bytes() == b"22222"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_internal_names() -> None:
    assert is_internal(MARKER_NAME)
    assert is_internal("a/.b.bin.physai-part")
    assert is_internal(".v3.staging-1-2-3-4/x")
    assert not is_internal("a/.hidden") and not is_internal(f"a/{MARKER_NAME}")


# -- manifests --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_manifest_write_and_verify(backend: str, tmp_path: Path) -> None:
    if backend == "local":
        root = str(tmp_path / "ds")
        content = _tree(tmp_path / "ds")
    else:
        root = _memory_url()
        content = {f"x/{i}.bin": bytes([i]) * (10 + i) for i in range(4)}
        for name, data in content.items():
            write_bytes(join_url(root, name), data)
    manifest = write_manifest(root)
    assert sorted(manifest) == sorted(content)
    document = json.loads(read_text(join_url(root, MANIFEST_NAME)))
    assert document["format"] == "physai.manifest" and document["version"] == 1
    assert list(document["files"]) == sorted(content)
    assert read_manifest(root) == manifest == compute_manifest(root)
    assert verify_manifest(root) == []

    names = sorted(content)
    write_bytes(join_url(root, names[0]), b"changed size")
    data = read_bytes(join_url(root, names[1]))
    write_bytes(join_url(root, names[1]), bytes([data[0] ^ 1]) + data[1:])  # same size
    rm(join_url(root, names[-1]))
    write_bytes(join_url(root, "new.bin"), b"n")
    problems = {(p.kind, p.path) for p in verify_manifest(root)}
    assert problems == {
        ("size", names[0]),
        ("sha256", names[1]),
        ("missing", names[-1]),
        ("extra", "new.bin"),
    }


def test_manifest_is_streamed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import physai.core.storage.manifest as manifest_module

    monkeypatch.setattr(manifest_module, "CHUNK_SIZE", 1000)
    (tmp_path / "big.bin").write_bytes(os.urandom(10_500))
    reads: list[int] = []
    original = manifest_module.hash_file

    def spy(location, on_bytes=None):  # type: ignore[no-untyped-def]
        return original(location, on_bytes=reads.append)

    monkeypatch.setattr(manifest_module, "hash_file", spy)
    entry = write_manifest(str(tmp_path))["big.bin"]
    assert entry.size == 10_500 and max(reads) == 1000 and len(reads) == 11


def test_manifest_first_error_cancels_the_queued_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import physai.core.storage.manifest as manifest_module

    root = tmp_path / "ds"
    _tree(root, files=20)
    names = walk_files(str(root))  # the order the files are submitted in
    real = manifest_module.hash_file
    hashed: list[str] = []

    def spy(location, on_bytes=None):  # type: ignore[no-untyped-def]
        relative = location.path.removeprefix(f"{root}/")
        hashed.append(relative)
        if relative == names[0]:
            time.sleep(0.3)  # a big file, still being hashed when the next one fails
        elif relative == names[1]:
            (root / relative).unlink()  # deleted since it was listed: a real NotFoundError
        else:
            time.sleep(0.02)
        return real(location, on_bytes)

    monkeypatch.setattr(manifest_module, "hash_file", spy)
    with pytest.raises(NotFoundError, match=names[1]):
        write_manifest(str(root), workers=2)
    assert len(hashed) <= 4, f"{len(hashed)} of {len(names)} files hashed after the error"
    assert not (root / MANIFEST_NAME).exists()


def test_verify_without_manifest_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="write_manifest"):
        verify_manifest(str(tmp_path))


# -- publish ----------------------------------------------------------------------------------


def test_publish_local_commits_whole(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "v1"
    with publish(str(dest)) as staging:
        assert staging.local_path is not None and staging.local_path.parent == dest.parent
        assert staging.local_path.name.startswith(".v1.staging-")
        staging.write_text("a.txt", "a")
        with staging.open("sub/b.bin") as handle:
            handle.write(b"b")
        assert not dest.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["v1"]
    assert (dest / "a.txt").read_text() == "a" and (dest / "sub/b.bin").read_bytes() == b"b"
    assert exists_published(str(dest)) and verify_manifest(str(dest)) == []
    info = require_published(str(dest))
    assert info["files"] == 2 and info["bytes"] == 2 and len(info["manifest_sha256"]) == 64
    with pytest.raises(UserError, match="overwrite=True"), publish(str(dest)):
        pytest.fail("the block must not run")  # pragma: no cover


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_publish_failure_leaves_nothing(backend: str, tmp_path: Path) -> None:
    parent = str(tmp_path / "out") if backend == "local" else _memory_url()
    dest = join_url(parent, "v1")
    seen: list[str] = []

    def failing_publish() -> None:
        with publish(dest) as staging:
            staging.write_bytes("a.bin", b"a" * 100)
            seen.append(staging.url)
            assert exists(join_url(staging.url, "a.bin"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_publish()
    staging_url = seen[0]
    assert not exists(dest) and not exists_published(dest)
    assert not exists(staging_url)
    assert ls(parent) == []
    assert published_info(dest) is None
    with pytest.raises(NotFoundError, match="not published"):
        require_published(dest)


def test_publish_overwrite_replaces_local(tmp_path: Path) -> None:
    dest = tmp_path / "v1"
    with publish(str(dest)) as staging:
        staging.write_text("old.txt", "old")
    with publish(str(dest), overwrite=True) as staging:
        staging.write_text("new.txt", "new")
    assert walk_files(str(dest)) == ["manifest.json", "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_publish_marker_counts_come_from_the_manifest(backend: str, tmp_path: Path) -> None:
    parent = str(tmp_path) if backend == "local" else _memory_url()
    for manifest in (True, False):
        dest = join_url(parent, f"m{int(manifest)}")
        with publish(dest, manifest=manifest) as staging:
            staging.write_text("a.txt", "aaa")
            staging.write_text("b/c.txt", "cc")
        info = require_published(dest)
        assert info["files"] == 2 and info["bytes"] == 5
        if manifest:
            document = read_bytes(join_url(dest, MANIFEST_NAME))
            assert info["manifest_sha256"] == hashlib.sha256(document).hexdigest()
            assert verify_manifest(dest) == []
        else:
            assert info["manifest_sha256"] is None and not exists(join_url(dest, MANIFEST_NAME))


def test_publish_local_overwrite_restores_the_old_version_if_the_swap_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "v1"
    with publish(str(dest)) as staging:
        staging.write_text("old.txt", "old")
    real_rename = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        name = Path(src).name
        if name.startswith(".v1.staging-") and not name.endswith("-old"):
            raise OSError(errno.EIO, "Input/output error")  # the new version cannot move in
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with (
        pytest.raises(StorageError, match="cannot commit"),
        publish(str(dest), overwrite=True) as staging,
    ):
        staging.write_text("new.txt", "new")
    monkeypatch.undo()
    assert walk_files(str(dest)) == ["manifest.json", "old.txt"]
    assert exists_published(str(dest)) and verify_manifest(str(dest)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]  # no staging, nothing aside


def test_publish_object_store_failed_overwrite_keeps_the_old_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish_module = importlib.import_module("physai.core.storage.publish")  # not the function

    parent = _memory_url()
    dest = join_url(parent, "v1")
    with publish(dest) as staging:
        staging.write_text("a.txt", "old a")
        staging.write_text("b.txt", "old b")

    def failing_copy(fs: object, source: str, target: str) -> None:
        raise OSError(errno.EIO, "copy failed")

    def overwrite() -> None:
        with publish(dest, overwrite=True) as staging:
            staging.write_text("a.txt", "new a")
            staging.write_text("c.txt", "new c")

    monkeypatch.setattr(publish_module, "server_side_copy", failing_copy)
    with pytest.raises(StorageError, match="copy failed"):
        overwrite()
    monkeypatch.undo()
    assert not exists_published(dest)  # unpublished, but the old files were not deleted
    assert read_text(join_url(dest, "a.txt")) == "old a"
    assert read_text(join_url(dest, "b.txt")) == "old b"
    assert ls(parent) == ["v1"]  # staging deleted
    with publish(dest, overwrite=True) as staging:
        staging.write_text("c.txt", "c")
    assert walk_files(dest) == ["c.txt", "manifest.json"] and exists_published(dest)


def test_publish_object_store_first_copy_error_cancels_the_queued_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish_module = importlib.import_module("physai.core.storage.publish")  # not the function

    dest = join_url(_memory_url(), "v1")
    real = publish_module.server_side_copy
    copied: list[str] = []

    def copy(fs: Any, source: str, target: str) -> None:
        copied.append(target)
        if len(copied) == 1:
            time.sleep(0.3)  # a big file, still copying when the next one fails
        elif len(copied) == 2:
            fs.rm_file(source)  # a real failure: the staged file is gone
        else:
            time.sleep(0.02)
        real(fs, source, target)

    def publish_20() -> None:
        with publish(dest, workers=2) as staging:
            for i in range(20):
                staging.write_bytes(f"f{i:02d}.bin", b"x" * 10)

    monkeypatch.setattr(publish_module, "server_side_copy", copy)
    with pytest.raises(NotFoundError):
        publish_20()
    assert len(copied) <= 4, f"{len(copied)} of 21 files copied after the error"
    assert not exists(dest) and not exists_published(dest)


def test_publish_object_store_marker_semantics() -> None:
    parent = _memory_url()
    dest = join_url(parent, "v1")
    with publish(dest) as staging:
        staging.write_text("a.txt", "a")
        assert not exists(dest)
    assert exists_published(dest) and ls(parent) == ["v1"]
    assert walk_files(dest) == ["a.txt", "manifest.json"]  # the marker is not a data file
    assert verify_manifest(dest) == []
    # Blobs without a marker (an interrupted commit) are not published and are not overwritten.
    debris = join_url(parent, "v2")
    write_text(join_url(debris, "partial.txt"), "x")
    assert not exists_published(debris)
    with pytest.raises(UserError, match="no commit marker"), publish(debris):
        pass  # pragma: no cover
    with publish(debris, overwrite=True) as staging:
        staging.write_text("b.txt", "b")
    assert walk_files(debris) == ["b.txt", "manifest.json"] and exists_published(debris)


def test_publish_rejects_roots(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="below the root"), publish("/"):
        pass  # pragma: no cover


PUBLISH_CHILD = """
import sys, time
from physai.core.storage import publish
with publish(sys.argv[1]) as staging:
    for i in range(1000):
        staging.write_bytes(f"f{i:04d}.bin", b"x" * 1000)
        if i == 5:
            print("STAGED", flush=True)
        time.sleep(0.01)
"""


def test_publish_killed_midway_leaves_no_destination(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "v1"
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISH_CHILD, str(dest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_child_env(tmp_path),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"STAGED"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not dest.exists()
    leftovers = [p.name for p in dest.parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".v1.staging-")  # hidden
    # The next publish to the same destination removes the dead process's staging.
    with publish(str(dest)) as staging:
        staging.write_text("ok.txt", "ok")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["v1"]
    assert exists_published(str(dest))


# -- resumable copy ---------------------------------------------------------------------------

COPY_CHILD = """
import sys, time
import physai.core.storage.copy as copy_module
real = copy_module._copy_one
def slow(*args, **kwargs):
    entry = real(*args, **kwargs)
    time.sleep(0.15)
    return entry
copy_module._copy_one = slow
copy_module.copy_tree(sys.argv[1], sys.argv[2], workers=1, progress=False)
"""


def _journal_entries(home: Path) -> set[str]:
    entries: set[str] = set()
    for journal in (home / "copy-journals").glob("*.jsonl"):
        for line in journal.read_text().splitlines()[1:]:
            if line.strip():
                entries.add(json.loads(line)["path"])
    return entries


def run_killed_copy(src: str, dst: str, env: dict[str, str], after: int) -> set[str]:
    """Run copy_tree in a child, SIGKILL it once `after` files are journaled; return those."""
    home = Path(env["PHYSAI_HOME"])
    proc = subprocess.Popen(
        [sys.executable, "-c", COPY_CHILD, src, dst],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: len(_journal_entries(home)) >= after, proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    return _journal_entries(home)


def test_copy_tree_local_resumes_after_kill(tmp_path: Path) -> None:
    src = tmp_path / "src"
    content = _tree(src, files=20, size=20_000)
    write_manifest(str(src))
    dst = tmp_path / "dst"
    env = _child_env(tmp_path)
    done = run_killed_copy(str(src), str(dst), env, after=4)
    assert 4 <= len(done) < 21
    # what a kill in the middle of a file leaves (the child may or may not have left one)
    pending = sorted(set(content) - done)[0]
    stale = (dst / pending).with_name(f".{Path(pending).name}.deadbeef.physai-part")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a file")
    settings = load_settings(home=env["PHYSAI_HOME"])
    report = copy_tree(str(src), str(dst), settings, workers=3, progress=False)
    assert set(report.skipped) == done
    assert set(report.copied) == (set(content) | {MANIFEST_NAME}) - done
    assert verify_manifest(str(dst)) == []
    assert not [p for p in dst.rglob("*") if p.name.endswith(".physai-part")]
    again = copy_tree(str(src), str(dst), settings, progress=False)
    assert again.copied == [] and len(again.skipped) == 21


def test_copy_tree_recopies_changed_or_deleted_destination(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, files=4)
    settings = load_settings(home=str(tmp_path / "home"))
    first = copy_tree(str(src), str(dst), settings, progress=True)
    assert len(first.copied) == 4 and first.bytes_copied > 0
    (dst / "f000.bin").unlink()
    (dst / "sub1/f001.bin").write_bytes(b"short")
    second = copy_tree(str(src), str(dst), settings, progress=False)
    assert second.copied == ["f000.bin", "sub1/f001.bin"]
    assert (dst / "sub1/f001.bin").read_bytes() == (src / "sub1/f001.bin").read_bytes()
    assert copy_tree(str(src), str(dst), settings, fresh=True, progress=False).skipped == []


def test_copy_tree_refuses_a_source_that_contradicts_its_manifest(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, files=3)
    write_manifest(str(src))
    data = (src / "f000.bin").read_bytes()
    (src / "f000.bin").write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, other hash
    settings = load_settings(home=str(tmp_path / "home"))
    with pytest.raises(StorageError, match=r"1 of 4 file\(s\).*sha256"):
        copy_tree(str(src), str(dst), settings, progress=False)
    assert not (dst / "f000.bin").exists()
    assert (dst / "sub1/f001.bin").exists()
    assert not [p for p in dst.rglob("*") if p.name.endswith(".physai-part")]


def test_copy_tree_interrupt_cancels_the_queued_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import physai.core.storage.copy as copy_module

    src, dst = tmp_path / "src", tmp_path / "dst"
    content = _tree(src, files=12)
    settings = load_settings(home=str(tmp_path / "home"))
    real = copy_module._copy_one
    started: list[str] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.append(args[0].display)
        time.sleep(0.05)
        return real(*args, **kwargs)

    def interrupt(self: object, name: str, entry: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the main thread journals the first file

    monkeypatch.setattr(copy_module, "_copy_one", slow)
    monkeypatch.setattr(copy_module._Journal, "record", interrupt)
    with pytest.raises(KeyboardInterrupt):
        copy_tree(str(src), str(dst), settings, workers=1, progress=False)
    assert len(started) <= 3, f"{len(started)} of 12 copies ran after the interrupt"
    monkeypatch.undo()
    assert _journal_entries(tmp_path / "home") == set()
    report = copy_tree(str(src), str(dst), settings, progress=False)
    assert sorted(report.copied) == sorted(content)
    assert not [p for p in dst.rglob("*") if p.name.endswith(".physai-part")]


def test_copy_tree_names_the_destination_when_writing_fails(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, files=3)
    (dst / "sub1").parent.mkdir(parents=True)
    (dst / "sub1").write_text("a file where a directory must go")
    settings = load_settings(home=str(tmp_path / "home"))
    with pytest.raises(StorageError, match=r"1 of 3 file\(s\)") as failed:
        copy_tree(str(src), str(dst), settings, progress=False)
    message = failed.value.message
    assert f"cannot write {dst / 'sub1' / 'f001.bin'}" in message
    assert "cannot read" not in message


def test_copy_tree_local_temporaries_are_unique_and_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    content = _tree(src, files=3)
    foreign = dst / ".f000.bin.physai-part"  # another writer's temporary, with the plain name
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"in progress elsewhere")
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    settings = load_settings(home=str(tmp_path / "home"))
    copy_tree(str(src), str(dst), settings, progress=False)
    assert len(synced) >= len(content)  # every file fsynced before its rename
    assert foreign.read_bytes() == b"in progress elsewhere"
    assert {n: (dst / n).read_bytes() for n in content} == content


def test_copy_tree_memory_and_missing_source(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path / "home"))
    src, dst = _memory_url(), str(tmp_path / "dst")
    write_bytes(join_url(src, "a/b.bin"), b"b" * 10)
    write_manifest(src)
    report = copy_tree(src, dst, settings, progress=False)
    assert report.copied == ["a/b.bin", MANIFEST_NAME] and verify_manifest(dst) == []
    back = _memory_url()
    copy_tree(dst, back, settings, progress=False)
    assert verify_manifest(back) == []
    with pytest.raises(NotFoundError):
        copy_tree(str(tmp_path / "nope"), dst, settings, progress=False)
    with pytest.raises(UserError, match="is a file"):
        copy_tree(str(tmp_path / "dst" / MANIFEST_NAME), str(tmp_path / "x"), settings)


# -- the Azurite fixture's discovery ----------------------------------------------------------


def test_find_azurite_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from physai.core.testing.azurite import AzuriteNotInstalledError, find_azurite

    monkeypatch.setenv("AZURITE_BIN", str(tmp_path / "no-such-azurite-blob"))
    with pytest.raises(AzuriteNotInstalledError, match=r"npm install -g azurite@3\.35"):
        find_azurite()
    monkeypatch.delenv("AZURITE_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither azurite-blob nor npx
    with pytest.raises(AzuriteNotInstalledError, match=r"npm install -g azurite@3\.35"):
        find_azurite()


def test_copy_files_renames_verifies_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    content = _tree(src, files=4)
    names = sorted(content)
    plan = {f"robot/day/{i}.bin": str(src / n) for i, n in enumerate(names)}
    expected = {
        f"robot/day/{i}.bin": FileEntry(hashlib.sha256(content[n]).hexdigest(), len(content[n]))
        for i, n in enumerate(names)
    }
    settings = load_settings(home=str(tmp_path / "home"))
    dst = tmp_path / "raw"
    first = copy_files(plan, str(dst), settings, expected=expected, progress=False)
    assert first.copied == sorted(plan) and first.entries == expected
    assert (dst / "robot/day/0.bin").read_bytes() == content[names[0]]
    again = copy_files(plan, str(dst), settings, expected=expected, progress=False)
    assert again.copied == [] and sorted(again.skipped) == sorted(plan)

    bad = dict(expected, **{"robot/day/1.bin": FileEntry("0" * 64, len(content[names[1]]))})
    with pytest.raises(StorageError, match="sha256"):
        copy_files(plan, str(tmp_path / "other"), settings, expected=bad, progress=False)
    assert not (tmp_path / "other/robot/day/1.bin").exists()
    with pytest.raises(UriError):
        copy_files({"../out.bin": str(src / names[0])}, str(dst), settings, progress=False)


def test_publish_tree_local_commits_once_and_refuses_other_content(tmp_path: Path) -> None:
    src = tmp_path / "src"
    content = _tree(src, files=6)
    settings = load_settings(home=str(tmp_path / "home"))
    dest = tmp_path / "datasets/pick/v1"
    report = publish_tree(str(src), str(dest), settings, progress=False)
    assert sorted(report.copied) == sorted(content)  # no manifest at the source: made for it
    assert verify_manifest(str(dest)) == []
    assert require_published(str(dest))["files"] == len(content)
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]
    assert publish_tree(str(src), str(dest), settings, progress=False).copied == []
    (src / "f000.bin").write_bytes(b"changed")
    with pytest.raises(UserError, match="already published with other content"):
        publish_tree(str(src), str(dest), settings, progress=False)
