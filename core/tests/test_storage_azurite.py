"""physai.core.storage against a real Azure Blob service (Azurite, started by the fixture)."""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from physai.core.errors import NotFoundError, PhysaiError, StorageError, UserError
from physai.core.settings import Settings
from physai.core.storage import (
    MANIFEST_NAME,
    copy_tree,
    exists,
    exists_published,
    join_url,
    ls,
    open_fs,
    publish,
    read_bytes,
    read_text,
    resolve,
    rm,
    verify_manifest,
    walk_files,
    write_bytes,
    write_manifest,
    write_text,
)
from physai.core.testing.azurite import Azurite

pytestmark = pytest.mark.integration

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


def _tree(root: Path, files: int, size: int = 1000) -> dict[str, bytes]:
    content = {}
    for i in range(files):
        name = f"sub{i % 2}/f{i:03d}.bin" if i % 3 else f"f{i:03d}.bin"
        content[name] = os.urandom(size + i)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content[name])
    return content


def _journaled(home: Path) -> set[str]:
    lines = [
        ln for j in (home / "copy-journals").glob("*.jsonl") for ln in j.read_text().split("\n")
    ]
    return {json.loads(ln)["path"] for ln in lines if ln.strip() and '"path"' in ln}


def _killed_copy(src: str, dst: str, env: dict[str, str], after: int) -> set[str]:
    """Run copy_tree in a child process; SIGKILL it once `after` files are journaled."""
    home = Path(env["PHYSAI_HOME"])
    proc = subprocess.Popen([sys.executable, "-c", COPY_CHILD, src, dst], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(_journaled(home)) < after:
            assert proc.poll() is None, f"the copy exited early ({proc.returncode})"
            assert time.monotonic() < deadline, "the copy journaled nothing in 60 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    return _journaled(home)


@pytest.fixture
def settings(azurite: Azurite, tmp_path: Path) -> Settings:
    return azurite.settings(home=str(tmp_path / "home"))


@pytest.fixture
def container(azurite: Azurite) -> str:
    return azurite.create_container()


def test_fixture_answers(azurite: Azurite) -> None:
    assert azurite.blob_endpoint.startswith("http://127.0.0.1:")
    assert azurite.account_name == "devstoreaccount1"
    assert f"BlobEndpoint={azurite.blob_endpoint}" in azurite.connection_string


def test_az_helpers_round_trip(settings: Settings, container: str) -> None:
    root = f"az://{container}/data"
    fs, path = open_fs(root, settings)
    assert type(fs).__name__ == "AzureBlobFileSystem" and path == f"{container}/data"
    write_text(f"{root}/a.txt", "hello", settings)
    write_bytes(f"{root}/d/e/b.bin", b"\x00" * 10, settings)
    assert read_text(f"{root}/a.txt", settings) == "hello"
    assert exists(f"{root}/d", settings) and not exists(f"{root}/nope", settings)
    assert ls(root, settings) == ["a.txt", "d"]
    assert walk_files(root, settings) == ["a.txt", "d/e/b.bin"]
    with pytest.raises(NotFoundError):
        read_bytes(f"{root}/nope", settings)
    rm(f"{root}/d", settings, recursive=True)
    assert walk_files(root, settings) == ["a.txt"]


def test_sas_url_is_used_and_never_shown(azurite: Azurite, container: str, tmp_path: Path) -> None:
    url = azurite.sas_url(container, "x")
    sig = parse_qs(url.split("?", 1)[1])["sig"][0]
    write_text(join_url(url, "a.txt"), "via sas")
    assert read_text(join_url(url, "a.txt")) == "via sas"
    location = resolve(url)
    assert sig not in str(location) and sig not in repr(location)
    assert location.url() == url  # the SAS travels on for composing URLs
    # The same blob through the connection-string settings:
    assert read_text(f"az://{container}/x/a.txt", azurite.settings(home=str(tmp_path))) == "via sas"


def test_sas_connection_string_serves_only_its_own_endpoint(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    from physai.core.logs import redact
    from physai.core.settings import load_settings

    sas = azurite.container_sas(container)
    sig = parse_qs(sas)["sig"][0]
    settings = load_settings(
        home=str(tmp_path),
        azure_storage_connection_string=(
            f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"
        ),
    )
    own = f"{azurite.blob_endpoint}/{container}/cs/a.txt"  # this account, no SAS in the URL
    write_text(own, "via the connection string", settings)
    assert read_text(own, settings) == "via the connection string"
    assert sig not in redact(f"token {sig}")  # its SAS was registered as a secret
    # Another account's URL must not be sent to the connection string's endpoint.
    fs, path = open_fs(f"https://otheraccount.blob.core.windows.net/{container}/cs", settings)
    assert fs.service_client.url.startswith("https://otheraccount.blob.core.windows.net/")
    assert path == f"{container}/cs"


def test_listing_a_blob_or_nothing(settings: Settings, container: str, tmp_path: Path) -> None:
    root = f"az://{container}/l"
    write_text(f"{root}/a.txt", "a", settings)
    assert walk_files(f"{root}/nope", settings) == []
    assert walk_files("az://nosuchcontainer/x", settings) == []
    with pytest.raises(StorageError, match="is a file"):
        walk_files(f"{root}/a.txt", settings)
    with pytest.raises(UserError, match="is a file"):
        copy_tree(f"{root}/a.txt", str(tmp_path / "x"), settings, progress=False)
    with pytest.raises(NotFoundError, match="does not exist"):
        copy_tree(f"{root}/nope", str(tmp_path / "x"), settings, progress=False)


# -- publish ----------------------------------------------------------------------------------


def test_publish_blob_commits_with_marker(settings: Settings, container: str) -> None:
    dest = f"az://{container}/models/v1"
    with publish(dest, settings) as staging:
        assert staging.url.startswith(f"az://{container}/models/.v1.staging-")
        staging.write_text("config.json", "{}")
        with staging.open("weights/w.bin") as handle:
            handle.write(os.urandom(3000))
        assert not exists(dest, settings) and not exists_published(dest, settings)
    assert exists_published(dest, settings)
    assert walk_files(dest, settings) == ["config.json", MANIFEST_NAME, "weights/w.bin"]
    assert ls(f"az://{container}/models", settings) == ["v1"]  # staging deleted
    assert verify_manifest(dest, settings) == []
    with pytest.raises(UserError, match="already published"), publish(dest, settings):
        pass  # pragma: no cover
    with publish(dest, settings, overwrite=True) as staging:
        staging.write_text("other.txt", "x")
    assert walk_files(dest, settings) == [MANIFEST_NAME, "other.txt"]


def test_publish_blob_failure_leaves_nothing(settings: Settings, container: str) -> None:
    dest = f"az://{container}/models/v1"

    def failing_publish() -> None:
        with publish(dest, settings) as staging:
            staging.write_bytes("a.bin", b"a" * 1000)
            assert exists(staging.join("a.bin"), settings)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_publish()
    assert not exists(dest, settings) and not exists_published(dest, settings)
    assert ls(f"az://{container}", settings) == []  # the staging prefix is gone too


def test_publish_blob_failed_overwrite_keeps_the_old_files(
    settings: Settings, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_module = importlib.import_module("physai.core.storage.publish")  # not the function
    dest = f"az://{container}/models/v1"
    with publish(dest, settings) as staging:
        staging.write_text("a.txt", "old a")
        staging.write_text("b.txt", "old b")
    real = publish_module.server_side_copy

    def copy(fs: object, source: str, target: str) -> None:
        if target.endswith("/c.txt"):
            raise OSError(errno.EIO, "copy failed")
        real(fs, source, target)

    def overwrite() -> None:
        with publish(dest, settings, overwrite=True, workers=1) as staging:
            staging.write_text("a.txt", "new a")
            staging.write_text("c.txt", "new c")

    monkeypatch.setattr(publish_module, "server_side_copy", copy)
    with pytest.raises(StorageError, match="copy failed"):
        overwrite()
    monkeypatch.undo()
    assert not exists_published(dest, settings)
    assert read_text(f"{dest}/b.txt", settings) == "old b"  # not deleted before the copy
    assert ls(f"az://{container}/models", settings) == ["v1"]  # staging deleted
    overwrite()
    assert exists_published(dest, settings) and verify_manifest(dest, settings) == []
    assert walk_files(dest, settings) == ["a.txt", "c.txt", MANIFEST_NAME]  # b.txt removed


def test_publish_through_a_sas_url(azurite: Azurite, container: str, tmp_path: Path) -> None:
    src = tmp_path / "ckpt"
    _tree(src, files=3)
    dest = azurite.sas_url(container, "runs/r1")
    with publish(dest) as staging:
        staging.put(src / "f000.bin")
        copy_tree(str(src), staging.url, load_settings_home(tmp_path), progress=False)
    assert exists_published(dest) and verify_manifest(dest) == []
    assert sorted(walk_files(dest)) == sorted([*(p for p in walk_src(src)), MANIFEST_NAME])


def load_settings_home(tmp_path: Path) -> Settings:
    from physai.core.settings import load_settings

    return load_settings(home=str(tmp_path / "home"))


def walk_src(src: Path) -> list[str]:
    return [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()]


# -- resumable copy ---------------------------------------------------------------------------


def test_copy_local_to_blob_resumes_after_kill_and_round_trips(
    azurite: Azurite, settings: Settings, container: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    content = _tree(src, files=16, size=50_000)
    write_manifest(str(src))
    dst = f"az://{container}/ds/v1"
    env = {
        **os.environ,
        "PHYSAI_HOME": str(settings.state_dir),
        "PHYSAI_AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    done = _killed_copy(str(src), dst, env, after=3)
    assert 3 <= len(done) < 17
    report = copy_tree(str(src), dst, settings, workers=4, progress=False)
    assert set(report.skipped) == done
    assert set(report.copied) == (set(content) | {MANIFEST_NAME}) - done
    assert verify_manifest(dst, settings) == []
    assert not [n for n in walk_files(dst, settings) if "physai-part" in n]

    # Blob → Blob (another container, through a SAS URL) and Blob → local.
    other = azurite.create_container()
    sas_dst = azurite.sas_url(other, "copy")
    assert len(copy_tree(dst, sas_dst, settings, progress=True).copied) == 17
    assert verify_manifest(sas_dst) == []
    local = tmp_path / "back"
    copy_tree(sas_dst, str(local), settings, workers=2, progress=False)
    assert verify_manifest(str(local)) == []
    assert {n: (local / n).read_bytes() for n in content} == content


def test_copy_to_a_read_only_sas_names_the_destination(
    azurite: Azurite, settings: Settings, container: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src, files=2)
    dst = azurite.sas_url(container, "ro", permission="rl")
    with pytest.raises(StorageError, match="AuthorizationPermissionMismatch") as failed:
        copy_tree(str(src), dst, settings, progress=False)
    message = failed.value.message
    assert f"cannot write {azurite.blob_endpoint}/{container}/ro/" in message
    assert "cannot read" not in message
    assert walk_files(dst) == []


# -- secrets ----------------------------------------------------------------------------------


class _Collect(logging.Handler):
    """Every record, formatted with its traceback, as any handler would print it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[_Collect]:
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "adlfs", "fsspec"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield handler
    root.removeHandler(handler)


def _assert_clean(texts: list[str], *secrets: str) -> None:
    for secret in secrets:
        leaks = [t for t in texts if secret in t]
        assert leaks == [], f"secret found in {len(leaks)} line(s): {leaks[0][:200]}"


def _exc_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_no_secret_in_logs_of_a_successful_read(
    azurite: Azurite, container: str, captured: _Collect, caplog: pytest.LogCaptureFixture
) -> None:
    url = azurite.sas_url(container, "s")
    sig = parse_qs(url.split("?", 1)[1])["sig"][0]
    write_text(join_url(url, "a.txt"), "secret-free")
    assert read_text(join_url(url, "a.txt")) == "secret-free"
    assert walk_files(url) == ["a.txt"]
    # A library logger made after storage was first used, logging the raw URL:
    logging.getLogger("azure.storage.blob.physai_probe").debug("GET %s", url)
    logging.getLogger("adlfs.physai_probe").info("key %s", azurite.connection_string)
    texts = [r.getMessage() for r in caplog.records] + captured.lines
    assert any(r.name.startswith("azure.") for r in caplog.records)  # DEBUG logging did run
    assert any(r.name.startswith("adlfs") for r in caplog.records)
    _assert_clean(texts, sig, azurite.account_key)


def test_no_secret_in_errors_or_logs(
    azurite: Azurite, container: str, captured: _Collect, caplog: pytest.LogCaptureFixture
) -> None:
    good = azurite.sas_url(container, "e")
    expired = azurite.sas_url(container, "e", expiry=timedelta(hours=-1))
    base, _, query = good.partition("?")
    kept = "&".join(p for p in query.split("&") if not p.startswith("sig="))
    tampered = f"{base}?{kept}&sig={quote('A' * 43 + '=', safe='')}"
    sigs = [parse_qs(u.split("?", 1)[1])["sig"][0] for u in (good, expired, tampered)]
    errors: list[PhysaiError] = []
    with pytest.raises(NotFoundError) as missing:
        read_bytes(join_url(good, "missing.bin"))
    errors.append(missing.value)
    for url in (expired, tampered):
        with pytest.raises(StorageError, match="access denied") as denied:
            read_bytes(join_url(url, "a.bin"))
        errors.append(denied.value)
        with pytest.raises(StorageError, match="access denied") as denied_write:
            write_bytes(join_url(url, "a.bin"), b"x")
        errors.append(denied_write.value)
    with pytest.raises(PhysaiError) as no_container:
        read_bytes("az://nosuchcontainer/x", azurite.settings())
    errors.append(no_container.value)
    for exc in errors:
        assert exc.__cause__ is None and exc.__suppress_context__
    texts = [t for e in errors for t in _exc_texts(e)]
    texts += [r.getMessage() for r in caplog.records] + captured.lines
    assert any("AuthenticationFailed" in t or "AuthorizationFailure" in t for t in texts)
    _assert_clean(texts, *sigs, azurite.account_key)
