"""Parse the URIs physai passes between steps, rejecting unsafe ones with a clear message.

    parse_uri("models:/reacher-ppo@production")  # ModelsUri(name="reacher-ppo", alias=...)
    parse_uri("az://datasets/pick/v3")           # AzBlobUri(container="datasets", ...)
    parse_uri("hf://lerobot/pusht@a1b2c3d")      # HfUri(repo_id="lerobot/pusht", ...)

Accepted forms: a plain path or `file://` URL, `memory://`, `az://CONTAINER/PATH`,
`https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH[?SAS]` (and the emulator's path-style
`http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PATH`), `runs:/RUN_ID/PATH`,
`models:/NAME/VERSION`, `models:/NAME@ALIAS`, `azureml:NAME:VERSION`,
`hf://[datasets/]ORG/NAME@COMMIT[/PATH]`.

Rejected everywhere but local paths: `..` and `.` segments, backslashes, empty segments.
Rejected everywhere: control characters. Remote URLs may not carry user info; only the loopback
emulator may name a port; only a Blob https URL may carry a query, and only a SAS. A SAS is kept
apart from the URL (`BlobHttpsUri.sas`) and never appears in `str()` or in an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from physai.core.errors import UriError
from physai.core.logs import redact

BLOB_HOST_SUFFIX = ".blob.core.windows.net"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_AZUREML_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HF_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
# Query keys a service SAS or account SAS may carry (Azure Storage REST docs).
SAS_KEYS = frozenset(
    {
        "sv",
        "ss",
        "srt",
        "sp",
        "se",
        "st",
        "spr",
        "sip",
        "sr",
        "sig",
        "si",
        "sdd",
        "skoid",
        "sktid",
        "skt",
        "ske",
        "sks",
        "skv",
        "saoid",
        "suoid",
        "scid",
        "rscc",
        "rscd",
        "rsce",
        "rscl",
        "rsct",
        "ses",
        "sduoid",
    }
)


@dataclass(frozen=True)
class LocalPath:
    """A path on this machine (`/data/x`, `./x`, `file:///data/x`)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class MemoryUri:
    """fsspec's in-memory filesystem, for tests: `memory://bucket/x`."""

    path: str

    def __str__(self) -> str:
        return f"memory://{self.path}"


@dataclass(frozen=True)
class AzBlobUri:
    """`az://CONTAINER/PATH`: the storage account comes from settings."""

    container: str
    path: str = ""

    def __str__(self) -> str:
        return f"az://{self.container}/{self.path}".rstrip("/")


@dataclass(frozen=True)
class BlobHttpsUri:
    """`https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH` with an optional SAS (kept apart).

    `endpoint` is the account's Blob endpoint: `https://ACCOUNT.blob.core.windows.net`, or for
    the loopback emulator `http://127.0.0.1:10000/ACCOUNT`.
    """

    account: str
    container: str
    path: str = ""
    endpoint: str = ""
    sas: str | None = field(default=None, repr=False, compare=False)

    def url(self, *, include_sas: bool = False) -> str:
        """The URL; with the SAS appended only when asked (never for logs)."""
        base = f"{self.endpoint}/{self.container}/{self.path}".rstrip("/")
        return f"{base}?{self.sas}" if include_sas and self.sas else base

    def __str__(self) -> str:
        return self.url()


@dataclass(frozen=True)
class RunsUri:
    """`runs:/RUN_ID/PATH`: an artifact path inside a tracked run."""

    run_id: str
    path: str = ""

    def __str__(self) -> str:
        return f"runs:/{self.run_id}/{self.path}".rstrip("/")


@dataclass(frozen=True)
class ModelsUri:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS`: a registered model version."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if (self.version is None) == (self.alias is None):
            raise UriError("a models:/ URI names exactly one of a version or an @alias")

    def __str__(self) -> str:
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


@dataclass(frozen=True)
class AzureMLUri:
    """`azureml:NAME:VERSION`: an AzureML asset (model, data, environment)."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"azureml:{self.name}:{self.version}"


@dataclass(frozen=True)
class HfUri:
    """`hf://[datasets/]ORG/NAME@COMMIT[/PATH]`: a Hugging Face repo pinned to a commit."""

    repo_id: str
    revision: str
    path: str = ""
    repo_type: str = "model"

    def __str__(self) -> str:
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"hf://{prefix}{self.repo_id}@{self.revision}/{self.path}".rstrip("/")


Uri = LocalPath | MemoryUri | AzBlobUri | BlobHttpsUri | RunsUri | ModelsUri | AzureMLUri | HfUri
REMOTE_TYPES = (AzBlobUri, BlobHttpsUri)


def parse_uri(text: str) -> Uri:
    """Parse `text` into one of the URI types above, or raise UriError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise UriError("empty URI: give a path or a URL such as az://container/path")
    shown = _shown(text)
    if (m := _CONTROL.search(text)) is not None:
        raise UriError(f"URI {shown} contains a control character at position {m.start()}")
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower() if sep else ""
    if not sep or len(scheme) == 1 or "/" in scheme:  # plain path (or a Windows drive letter)
        return LocalPath(Path(text))
    match scheme:
        case "file":
            return _parse_file(text, shown)
        case "memory":
            return MemoryUri(_clean_path(rest.removeprefix("//"), shown, allow_empty=False))
        case "az" | "abfs":
            return _parse_az(text, shown)
        case "https" | "http":
            return _parse_blob_https(text, shown)
        case "runs":
            return _parse_runs(rest, shown)
        case "models":
            return _parse_models(rest, shown)
        case "azureml":
            return _parse_azureml(rest, shown)
        case "hf":
            return _parse_hf(rest, shown)
    raise UriError(
        f"unsupported URI scheme {scheme!r} in {shown}: use a path, file://, az://, a Blob https "
        "URL, runs:/, models:/, azureml: or hf://"
    )


def is_remote(uri: Uri) -> bool:
    """True for Blob storage URIs (the ones that need credentials)."""
    return isinstance(uri, REMOTE_TYPES)


# -- helpers ---------------------------------------------------------------------------------


def _shown(text: str) -> str:
    """The URI as it may appear in a message: redacted, query dropped, control chars escaped."""
    visible = redact(text.split("?", 1)[0])
    return repr(visible[:200])


def _no_query(text: str, shown: str) -> None:
    if "?" in text or "#" in text:
        raise UriError(
            f"URI {shown} has a query or fragment: only Blob https URLs may carry one (a SAS); "
            "put credentials in settings (PHYSAI_AZURE_STORAGE_SAS_TOKEN), not in the URI"
        )


def _clean_path(path: str, shown: str, *, allow_empty: bool = True) -> str:
    """Validate a remote path: no traversal, no backslashes, no empty segments."""
    path = path.strip("/")
    if not path:
        if allow_empty:
            return ""
        raise UriError(f"URI {shown} has an empty path")
    if "\\" in path:
        raise UriError(f"URI {shown} contains a backslash: use '/' between path segments")
    for segment in path.split("/"):
        if segment in ("..", "."):
            raise UriError(f"URI {shown} contains a '{segment}' segment (path traversal)")
        if segment == "":
            raise UriError(f"URI {shown} contains an empty path segment ('//')")
    return path


def _parse_file(text: str, shown: str) -> LocalPath:
    _no_query(text, shown)
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise UriError(f"file URL {shown} names host {parts.netloc!r}: use file:///absolute/path")
    return LocalPath(Path(unquote(parts.path)))


def _check_container(container: str, shown: str) -> str:
    if not _CONTAINER.match(container):
        raise UriError(
            f"URI {shown}: {container!r} is not a valid Blob container name "
            "(3-63 lowercase letters, digits and single hyphens)"
        )
    return container


def _parse_az(text: str, shown: str) -> AzBlobUri:
    _no_query(text, shown)
    parts = urlsplit(text)
    if "@" in parts.netloc or ":" in parts.netloc:
        raise UriError(
            f"URI {shown}: az:// takes az://CONTAINER/PATH; the account comes from settings "
            "(PHYSAI_AZURE_STORAGE_ACCOUNT), not user info or a port"
        )
    container = _check_container(parts.netloc, shown)
    return AzBlobUri(container, _clean_path(unquote(parts.path), shown))


def _parse_blob_https(text: str, shown: str) -> BlobHttpsUri:
    parts = urlsplit(text)
    if parts.fragment:
        raise UriError(f"Blob URL {shown} has a fragment ('#...'): remove it")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UriError(f"Blob URL {shown} contains user info ('user@'): use a SAS or settings")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise UriError(f"Blob URL {shown} has an invalid port") from None
    loopback = host in LOOPBACK_HOSTS or host == "::1"
    segments = parts.path.lstrip("/").split("/", 2)
    if loopback:
        # The emulator's path-style URL: http://127.0.0.1:10000/ACCOUNT/CONTAINER/PATH
        if len(segments) < 2 or not segments[1]:
            raise UriError(f"emulator URL {shown} must be http://HOST:PORT/ACCOUNT/CONTAINER/PATH")
        account, container = segments[0], segments[1]
        rest = segments[2] if len(segments) > 2 else ""
        endpoint = f"{parts.scheme}://{parts.netloc}/{account}"
    else:
        if parts.scheme != "https":
            raise UriError(f"Blob URL {shown} must use https")
        if port is not None:
            raise UriError(f"Blob URL {shown} names a port: Azure Blob endpoints take none")
        if not host.endswith(BLOB_HOST_SUFFIX):
            raise UriError(
                f"URL {shown} is not an Azure Blob URL (https://ACCOUNT{BLOB_HOST_SUFFIX}/...)"
            )
        account = host.removesuffix(BLOB_HOST_SUFFIX)
        container = segments[0]
        rest = "/".join(segments[1:])
        endpoint = f"https://{host}"
    if not _ACCOUNT.match(account):
        raise UriError(f"Blob URL {shown}: {account!r} is not a valid storage account name")
    _check_container(container, shown)
    path = _clean_path(unquote(rest), shown)
    return BlobHttpsUri(account, container, path, endpoint, _parse_sas(parts.query, shown))


def _parse_sas(query: str, shown: str) -> str | None:
    if not query:
        return None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise UriError(f"Blob URL {shown} has a malformed query") from None
    unknown = sorted({k for k, _ in pairs} - SAS_KEYS)
    if unknown:
        raise UriError(
            f"Blob URL {shown} has query parameter(s) {', '.join(unknown)}: only a SAS is allowed"
        )
    if "sig" not in {k for k, _ in pairs}:
        raise UriError(f"Blob URL {shown} has a SAS query without a signature (sig=)")
    return query


def _parse_runs(rest: str, shown: str) -> RunsUri:
    _no_query(rest, shown)
    body = rest.removeprefix("/")
    if body.startswith("/"):
        raise UriError(f"URI {shown}: write runs:/RUN_ID/PATH (one slash after 'runs:')")
    run_id, _, path = body.partition("/")
    if not _RUN_ID.match(run_id):
        raise UriError(f"URI {shown}: {run_id!r} is not a run id")
    return RunsUri(run_id, _clean_path(path, shown))


def _parse_models(rest: str, shown: str) -> ModelsUri:
    _no_query(rest, shown)
    body = rest.removeprefix("/")
    if "@" in body:
        name, _, alias = body.partition("@")
        _check_model_name(name, shown)
        if not _ALIAS.match(alias):
            raise UriError(f"URI {shown}: {alias!r} is not a model alias (letters, digits, _ -)")
        return ModelsUri(name, alias=alias)
    name, _, version = body.partition("/")
    _check_model_name(name, shown)
    if not version.isdigit() or int(version) < 1 or len(version) > 9:
        raise UriError(f"URI {shown}: write models:/NAME/VERSION (a positive number) or NAME@ALIAS")
    return ModelsUri(name, version=int(version))


def _check_model_name(name: str, shown: str) -> None:
    if not _MODEL_NAME.match(name) or ".." in name:
        raise UriError(f"URI {shown}: {name!r} is not a model name (letters, digits, . _ -)")


def _parse_azureml(rest: str, shown: str) -> AzureMLUri:
    _no_query(rest, shown)
    name, sep, version = rest.partition(":")
    if not sep:
        raise UriError(f"URI {shown}: write azureml:NAME:VERSION (the version is required)")
    _check_model_name(name, shown)
    if not _AZUREML_VERSION.match(version) or ".." in version:
        raise UriError(f"URI {shown}: {version!r} is not an asset version")
    return AzureMLUri(name, version)


def _parse_hf(rest: str, shown: str) -> HfUri:
    _no_query(rest, shown)
    if not rest.startswith("//"):
        raise UriError(f"URI {shown}: write hf://ORG/NAME@COMMIT")
    body = rest[2:]
    repo_type = "model"
    if body.startswith("datasets/"):
        repo_type, body = "dataset", body.removeprefix("datasets/")
    head, sep, tail = body.partition("@")
    if not sep:
        raise UriError(
            f"URI {shown} has no revision: pin a commit, hf://ORG/NAME@COMMIT, so runs reproduce"
        )
    org, slash, name = head.partition("/")
    if not slash or not _HF_PART.match(org) or not _HF_PART.match(name) or ".." in head:
        raise UriError(f"URI {shown}: {head!r} is not a Hugging Face repo id (ORG/NAME)")
    revision, _, path = tail.partition("/")
    if not _COMMIT.match(revision):
        raise UriError(
            f"URI {shown}: revision {revision!r} is not a commit hash (7-40 lowercase hex); "
            "branches and tags move, so pin the commit"
        )
    return HfUri(f"{org}/{name}", revision, _clean_path(path, shown), repo_type)
