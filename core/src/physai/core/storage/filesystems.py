"""Storage URLs → fsspec filesystems, and the small helpers users want, all taking URLs.

    fs, path = open_fs("az://datasets/pick/v3")       # adlfs filesystem, "datasets/pick/v3"
    write_text("memory://tmp/a.txt", "hi")
    walk_files("/data/pick")                          # ["meta/info.json", "data/chunk-000/..."]

Accepted URLs: a plain path or `file://` (local), `memory://` (fsspec's in-memory filesystem, for
tests), `az://CONTAINER/PATH` (the account and its credentials come from settings),
`https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH[?SAS]` and the emulator's path-style
`http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PATH[?SAS]`.

Blob credentials, first match wins: a SAS in the URL; `azure_storage_connection_string`;
`azure_storage_account` + `azure_storage_sas_token`; `azure_storage_account` + the Azure credential
of `physai.core.auth.get_credential` (workload / managed identity / developer login).
`azure_blob_endpoint` points `az://` at an emulator or a sovereign cloud.

Secrets: SAS tokens and account keys are registered with `physai.core.logs.register_secret`,
records of the azure/adlfs/fsspec/aiohttp/urllib3/msal loggers are redacted where they
are made (`install_log_redaction`, whatever handler sees them), and every adlfs/azure
exception is re-raised as a `StorageError` (or `NotFoundError`) whose message is redacted and
which does not chain the original exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

from physai.core.auth import AZURE_EXTRA_HINT
from physai.core.errors import (
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    PhysaiError,
    StorageError,
    UriError,
)
from physai.core.logs import RedactingFilter, redact, register_secret
from physai.core.uris import AzBlobUri, BlobHttpsUri, LocalPath, MemoryUri, parse_uri

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from physai.core.settings import Settings

Backend = Literal["local", "memory", "blob"]

ADLFS_HINT = AZURE_EXTRA_HINT
CHUNK_SIZE = 4 * 1024 * 1024
# Loggers (and their children) whose records may carry request details: a RedactingFilter is
# attached to each, so a record is cleaned at the logger that makes it, before any handler.
REDACTED_LOGGER_ROOTS = ("azure", "adlfs", "fsspec", "aiohttp", "urllib3", "msal")

_redacting_filter = RedactingFilter()
_redaction_lock = threading.Lock()
_factory_installed = False
_credentials: dict[tuple[str | None, str], Any] = {}
_credentials_lock = threading.Lock()


@dataclass(frozen=True)
class Location:
    """A resolved storage URL: its fsspec filesystem, the path on it, and a printable form."""

    fs: AbstractFileSystem = field(repr=False)
    path: str
    backend: Backend
    display: str
    query: str = field(default="", repr=False)

    @property
    def local_path(self) -> Path | None:
        """The path on this machine, for the local backend; else None."""
        return Path(self.path) if self.backend == "local" else None

    def url(self) -> str:
        """A URL that reaches this location again (with its SAS, if it came with one)."""
        return f"{self.display}?{self.query}" if self.query else self.display

    def child(self, relative: str) -> Location:
        """The location `relative` (a '/'-separated path) below this one."""
        relative = relative.strip("/")
        if not relative:
            return self
        if "\\" in relative or any(p in ("..", ".", "") for p in relative.split("/")):
            raise UriError(
                f"{relative!r} is not a relative path below {self.display} "
                "(no '..', '.', '//' or backslashes)"
            )
        return Location(
            self.fs,
            posixpath.join(self.path, relative),
            self.backend,
            posixpath.join(self.display, relative),
            self.query,
        )

    def parent(self) -> Location:
        """The location one level up (same filesystem)."""
        return Location(
            self.fs,
            posixpath.dirname(self.path.rstrip("/")),
            self.backend,
            posixpath.dirname(self.display.rstrip("/")),
            self.query,
        )

    @property
    def name(self) -> str:
        """The last path segment."""
        return posixpath.basename(self.path.rstrip("/"))

    def __str__(self) -> str:
        return self.display


# -- resolving URLs --------------------------------------------------------------------------


def resolve(url: str | os.PathLike[str], settings: Settings | None = None) -> Location:
    """Resolve a storage URL into a `Location` (filesystem, path, printable URL)."""
    install_log_redaction()
    uri = parse_uri(os.fspath(url))
    match uri:
        case LocalPath():
            from fsspec.implementations.local import LocalFileSystem

            path = str(Path(uri.path).expanduser().absolute())
            return Location(LocalFileSystem(), path, "local", path)
        case MemoryUri():
            from fsspec.implementations.memory import MemoryFileSystem

            return Location(MemoryFileSystem(), f"/{uri.path}", "memory", str(uri))
        case AzBlobUri():
            from physai.core.settings import settings_or_default

            fs = _az_filesystem(settings_or_default(settings))
            path = f"{uri.container}/{uri.path}".rstrip("/")
            return Location(fs, path, "blob", str(uri))
        case BlobHttpsUri():
            fs = _https_filesystem(uri, settings)
            path = f"{uri.container}/{uri.path}".rstrip("/")
            return Location(fs, path, "blob", uri.url(), uri.sas or "")
    raise UriError(
        f"{uri} is not a storage URL: use a path, file://, memory://, az:// or a Blob https URL"
    )


def open_fs(
    url: str | os.PathLike[str], settings: Settings | None = None
) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem for `url` and the path on it (local, memory or Azure Blob)."""
    location = resolve(url, settings)
    return location.fs, location.path


def join_url(url: str, *parts: str) -> str:
    """Append path segments to a storage URL, keeping a Blob URL's SAS query at the end."""
    uri = parse_uri(url)
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if not tail:
        return url
    if isinstance(uri, LocalPath):
        return os.path.join(url, *tail.split("/"))
    base, sep, query = url.partition("?") if isinstance(uri, BlobHttpsUri) else (url, "", "")
    return f"{base.rstrip('/')}/{tail}{sep}{query}"


def _import_adlfs() -> Any:
    try:
        import adlfs
    except ImportError:
        raise MissingDependencyError("adlfs (Azure Blob support)", ADLFS_HINT) from None
    install_log_redaction()
    return adlfs


def _settings_connection_string(settings: Settings) -> tuple[str, dict[str, str]] | None:
    """The settings' connection string and its `{lower-cased key: value}` parts, or None.

    Its account key and SAS are registered for redaction here, once.
    """
    if settings.azure_storage_connection_string is None:
        return None
    connection_string = settings.azure_storage_connection_string.get_secret_value()
    parts: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            parts[key.strip().lower()] = value.strip()
    if parts.get("accountkey"):
        register_secret(parts["accountkey"])
    if parts.get("sharedaccesssignature"):
        _register_sas(parts["sharedaccesssignature"])
    return connection_string, parts


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _register_sas(sas: str) -> None:
    register_secret(sas.lstrip("?"))
    for key, value in parse_qsl(sas.lstrip("?"), keep_blank_values=True):
        if key == "sig":
            register_secret(value)
    for raw in sas.lstrip("?").split("&"):
        key, _, value = raw.partition("=")
        if key == "sig":
            register_secret(value)  # the percent-encoded form, as it travels in URLs


def _sas_filesystem(endpoint: str, sas: str) -> AbstractFileSystem:
    _register_sas(sas)
    return _connection_string_filesystem(
        f"BlobEndpoint={endpoint};SharedAccessSignature={sas.lstrip('?')}"
    )


def _connection_string_filesystem(connection_string: str) -> AbstractFileSystem:
    """adlfs for a connection string whose secrets the caller has registered."""
    adlfs = _import_adlfs()
    with storage_errors("connect to", "Azure Blob storage"):
        # No listings cache: other processes write the same prefixes (publish, copy, readers).
        return adlfs.AzureBlobFileSystem(
            connection_string=connection_string, use_listings_cache=False
        )


def _credential_filesystem(account: str, endpoint: str, settings: Settings) -> AbstractFileSystem:
    if not endpoint.startswith("https://"):
        raise ConfigError(
            f"Blob endpoint {endpoint!r} is not https: Azure AD credentials need https; "
            "for an emulator set PHYSAI_AZURE_STORAGE_CONNECTION_STRING or use a SAS URL"
        )
    adlfs = _import_adlfs()
    key = (settings.azure_client_id, account)
    with _credentials_lock:
        credential = _credentials.get(key)
        if credential is None:
            from physai.core.auth import get_credential

            credential = _AsyncCredential(get_credential(settings))
            _credentials[key] = credential
    with storage_errors("connect to", endpoint):
        return adlfs.AzureBlobFileSystem(
            account_name=account,
            credential=credential,
            account_host=endpoint.removeprefix("https://").rstrip("/"),
            use_listings_cache=False,
        )


def _az_filesystem(settings: Settings) -> AbstractFileSystem:
    account = settings.azure_storage_account
    endpoint = settings.azure_blob_endpoint
    configured = _settings_connection_string(settings)
    if configured is not None:
        connection_string, parts = configured
        if endpoint and "blobendpoint" not in parts:
            connection_string = f"{connection_string.rstrip(';')};BlobEndpoint={endpoint}"
        return _connection_string_filesystem(connection_string)
    if not account:
        raise ConfigError(
            "az:// URLs need a storage account: set PHYSAI_AZURE_STORAGE_ACCOUNT (or "
            "PHYSAI_AZURE_STORAGE_CONNECTION_STRING), or use a Blob https URL"
        )
    endpoint = (endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
    if settings.azure_storage_sas_token is not None:
        return _sas_filesystem(endpoint, settings.azure_storage_sas_token.get_secret_value())
    return _credential_filesystem(account, endpoint, settings)


def _https_filesystem(uri: BlobHttpsUri, settings: Settings | None) -> AbstractFileSystem:
    if uri.sas:
        return _sas_filesystem(uri.endpoint, uri.sas)
    from physai.core.settings import settings_or_default

    resolved = settings_or_default(settings)
    configured = _settings_connection_string(resolved)
    if configured is not None:
        connection_string, parts = configured
        named, endpoint = parts.get("accountname"), parts.get("blobendpoint")
        # Without an AccountName (the SAS form), only its own BlobEndpoint says which account
        # it is for: it serves this URL only when that endpoint is absent or the URL's.
        if named == uri.account or (
            named is None and (endpoint is None or _same_endpoint(endpoint, uri.endpoint))
        ):
            if endpoint is None:
                connection_string = f"{connection_string.rstrip(';')};BlobEndpoint={uri.endpoint}"
            return _connection_string_filesystem(connection_string)
    if resolved.azure_storage_account == uri.account and resolved.azure_storage_sas_token:
        return _sas_filesystem(uri.endpoint, resolved.azure_storage_sas_token.get_secret_value())
    return _credential_filesystem(uri.account, uri.endpoint, resolved)


class _AsyncCredential:
    """Adapt a synchronous azure-identity credential to the async protocol adlfs needs."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        if hasattr(credential, "get_token_info"):
            self.get_token_info = self._get_token_info

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def _get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return await asyncio.to_thread(self._credential.get_token_info, *scopes, options=options)

    async def close(self) -> None:
        """Kept open: the credential is shared by every filesystem of this process."""

    async def __aenter__(self) -> _AsyncCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


# -- secrets and errors ----------------------------------------------------------------------


def install_log_redaction() -> None:
    """Redact every log record of the azure/adlfs/fsspec/aiohttp/urllib3/msal loggers.

    Installed once as a log-record factory (chained to the previous one), so records are cleaned
    where they are made, before any logger filter or handler (pytest's caplog included) sees
    them, and loggers created later are covered too.
    """
    global _factory_installed
    with _redaction_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if record.name.split(".", 1)[0] in REDACTED_LOGGER_ROOTS:
                try:
                    _redacting_filter.filter(record)
                except Exception:  # a record whose arguments do not format: drop its text
                    record.msg, record.args = "(unformattable log record dropped)", None
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keep = [lines[0]] if lines else []
    keep += [line for line in lines[1:] if line.startswith("ErrorCode:")]
    return redact(" ".join(keep))[:400]


def to_storage_error(op: str, where: str, exc: BaseException) -> PhysaiError:
    """Map any exception from fsspec/adlfs/azure onto physai's family, redacted."""
    if isinstance(exc, PhysaiError):
        return exc
    where = redact(where)
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{where} does not exist (while trying to {op} it)")
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    detail = _error_text(exc)
    if name == "ResourceNotFoundError" or status == 404:
        return NotFoundError(f"cannot {op} {where}: not found ({detail})")
    if name == "ClientAuthenticationError" or status in (401, 403):
        return StorageError(
            f"cannot {op} {where}: access denied ({detail}); check the SAS token (expiry, "
            "permissions) or the credentials in settings"
        )
    return StorageError(f"cannot {op} {where}: {name}: {detail}")


@contextlib.contextmanager
def storage_errors(op: str, where: str) -> Iterator[None]:
    """Re-raise exceptions from the block as redacted StorageError/NotFoundError (unchained)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except PhysaiError:
        raise
    except Exception as exc:
        raise to_storage_error(op, where, exc) from None


# -- threads ---------------------------------------------------------------------------------


@contextlib.contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor of `workers` threads (at least 1).

    Left by an exception (KeyboardInterrupt included), it cancels every task not yet started,
    waits for the running ones and re-raises, where `with ThreadPoolExecutor()` would run
    every queued task first.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def map_threads[T, R](fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """`[fn(item) for item in items]` on `workers` threads; the first exception to happen (in
    time, not in `items` order) cancels the tasks not yet started and is re-raised."""
    if not items:
        return []
    with thread_pool(workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                future.result()  # re-raises it
        return [future.result() for future in futures]


# -- helpers taking URLs ---------------------------------------------------------------------

# Names never listed, hashed or copied as data: the publish marker, temporary parts, staging.
MARKER_NAME = ".physai-published.json"
PART_SUFFIX = ".physai-part"
STAGING_INFIX = ".staging-"


def is_internal(relative: str) -> bool:
    """True for physai's bookkeeping files (publish marker, partial copies, staging dirs)."""
    parts = relative.split("/")
    if relative == MARKER_NAME or parts[-1].endswith(PART_SUFFIX):
        return True
    return any(p.startswith(".") and STAGING_INFIX in p for p in parts)


def list_files(location: Location) -> dict[str, int]:
    """{relative path: size} of every data file under `location` (physai's own files left out).

    {} when nothing is there; StorageError when `location` is a file.
    """
    files, is_file = scan(location)
    if is_file:
        raise StorageError(f"{location.display} is a file, not a directory")
    return files


def scan(location: Location, *, internal: bool = False) -> tuple[dict[str, int], bool]:
    """One listing call: ({relative path: size} of the files under `location`, whether
    `location` is itself a file). physai's own files are left out unless `internal`.

    A missing location lists as ({}, False), like an empty directory.
    """
    with storage_errors("list", location.display):
        found: Any = location.fs.find(location.path, detail=True, withdirs=False)
    if not isinstance(found, dict):  # adlfs answers a blob's own path with a bare list
        found = {str(name): {"type": "file"} for name in found}
    root = location.path.rstrip("/")
    if root and found.get(root, {}).get("type") == "file":
        return {}, True
    base = root + "/"
    files: dict[str, int] = {}
    for name, info in found.items():
        if info.get("type") != "file" or not name.startswith(base):
            continue
        relative = name[len(base) :]
        if relative and (internal or not is_internal(relative)):
            files[relative] = int(info.get("size") or 0)
    return dict(sorted(files.items())), False


def exists(url: str, settings: Settings | None = None) -> bool:
    """True when a file or a non-empty directory (prefix) exists at `url`."""
    location = resolve(url, settings)
    with storage_errors("check", location.display):
        return bool(location.fs.exists(location.path))


def read_bytes(url: str, settings: Settings | None = None) -> bytes:
    """The whole content of the file at `url` (for small files: use `open_fs` for streams)."""
    location = resolve(url, settings)
    with storage_errors("read", location.display):
        return bytes(location.fs.cat_file(location.path))


def read_text(url: str, settings: Settings | None = None, *, encoding: str = "utf-8") -> str:
    """The file at `url` decoded as text."""
    return read_bytes(url, settings).decode(encoding)


def write_bytes(url: str, data: bytes, settings: Settings | None = None) -> None:
    """Write `data` to the file at `url`, replacing it; readers never see a partial file."""
    write_bytes_at(resolve(url, settings), data)


def write_text(
    url: str, text: str, settings: Settings | None = None, *, encoding: str = "utf-8"
) -> None:
    """Write `text` to the file at `url` (see `write_bytes`)."""
    write_bytes(url, text.encode(encoding), settings)


def write_bytes_at(location: Location, data: bytes) -> None:
    """Local: temporary sibling + fsync + os.replace. Blob: one upload (commits whole)."""
    if location.local_path is not None:
        write_chunks_at(location, [data])
        return
    with storage_errors("write", location.display):
        location.fs.pipe_file(location.path, data)


def write_chunks_at(location: Location, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `location`, replacing it; readers never see a partial file.

    Local: to a temporary sibling `.NAME.<random>.physai-part`, fsynced, then `os.replace`d
    over the target. Other filesystems: streamed (Blob: as staged blocks) and committed in one
    request when the file is closed. An exception from iterating `chunks` propagates as it is
    and commits nothing; failures of the writing itself are StorageErrors naming `location`.
    """
    local = location.local_path
    if local is not None:
        part = local.with_name(f".{local.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        with storage_errors("write", location.display):
            local.parent.mkdir(parents=True, exist_ok=True)
            handle = part.open("wb")
        try:
            with handle:
                _write_all(handle, chunks, location)
                with storage_errors("write", location.display):
                    handle.flush()
                    os.fsync(handle.fileno())
            with storage_errors("write", location.display):
                os.replace(part, local)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            raise
        return
    with storage_errors("write", location.display):
        writer = location.fs.open(location.path, "wb")
    try:
        _write_all(writer, chunks, location)
    except BaseException:
        _abandon(writer, location)
        raise
    with storage_errors("write", location.display):
        writer.close()  # commits the blob (its block list) in one request


def _write_all(handle: IO[bytes], chunks: Iterable[bytes], location: Location) -> None:
    for chunk in chunks:  # the source's own errors propagate as they are
        with storage_errors("write", location.display):
            handle.write(chunk)


def _abandon(writer: Any, location: Location) -> None:
    """Drop a half-written remote file without committing it."""
    from fsspec.spec import AbstractBufferedFile

    if isinstance(writer, AbstractBufferedFile):
        writer.closed = True  # skip the final flush: staged blocks are never committed
        return
    with contextlib.suppress(Exception):
        writer.close()
    with contextlib.suppress(Exception):
        location.fs.rm_file(location.path)


def ls(url: str, settings: Settings | None = None) -> list[str]:
    """Names directly under `url` (files and directories), sorted; [] when nothing is there."""
    location = resolve(url, settings)
    with storage_errors("list", location.display):
        if not location.fs.exists(location.path):
            return []
        entries = location.fs.ls(location.path, detail=False)
    base = location.path.rstrip("/") + "/"
    names = {str(e).rstrip("/").removeprefix(base) for e in entries}
    return sorted(n for n in names if n and "/" not in n)


def walk_files(url: str, settings: Settings | None = None) -> list[str]:
    """Relative paths ('/'-separated, sorted) of every file under `url`."""
    return list(list_files(resolve(url, settings)))


def rm(url: str, settings: Settings | None = None, *, recursive: bool = False) -> None:
    """Delete the file at `url` (or everything under it with `recursive=True`); missing is fine."""
    location = resolve(url, settings)
    with storage_errors("delete", location.display):
        if not location.fs.exists(location.path):
            return
        if location.fs.isdir(location.path) and not recursive:
            raise StorageError(f"{location.display} is a directory: pass recursive=True")
        location.fs.rm(location.path, recursive=recursive)
