"""URI parsing: round trips for every form (property tests) and hostile inputs rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from physai.core.errors import UriError, UserError
from physai.core.uris import (
    AzBlobUri,
    AzureMLUri,
    BlobHttpsUri,
    HfUri,
    LocalPath,
    MemoryUri,
    ModelsUri,
    RunsUri,
    is_remote,
    parse_uri,
)

segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.=-]{0,15}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
rel_path = st.lists(segment, min_size=0, max_size=4).map("/".join)
container = st.from_regex(r"[a-z0-9]{3,20}(-[a-z0-9]{1,5})?", fullmatch=True)
account = st.from_regex(r"[a-z0-9]{3,24}", fullmatch=True)
model_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}", fullmatch=True)
hf_part = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_-]{0,20}[A-Za-z0-9])?", fullmatch=True)
commit = st.from_regex(r"[0-9a-f]{7,40}", fullmatch=True)


@given(container, rel_path)
def test_az_round_trip(c: str, p: str) -> None:
    uri = parse_uri(f"az://{c}/{p}")
    assert uri == AzBlobUri(c, p)
    assert parse_uri(str(uri)) == uri
    assert is_remote(uri)


@given(account, container, rel_path, st.booleans())
def test_blob_https_round_trip_keeps_sas_apart(a: str, c: str, p: str, with_sas: bool) -> None:
    sas = "sv=2025-01-05&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=S3CRETsig%3D" if with_sas else None
    text = f"https://{a}.blob.core.windows.net/{c}/{p}" + (f"?{sas}" if sas else "")
    uri = parse_uri(text)
    assert isinstance(uri, BlobHttpsUri)
    assert (uri.account, uri.container, uri.path, uri.sas) == (a, c, p.strip("/"), sas)
    assert "S3CRET" not in str(uri) and "S3CRET" not in repr(uri)
    assert parse_uri(uri.url(include_sas=True)).sas == sas


@given(st.from_regex(r"[0-9a-f]{32}", fullmatch=True), rel_path)
def test_runs_round_trip(run_id: str, p: str) -> None:
    uri = parse_uri(f"runs:/{run_id}/{p}")
    assert uri == RunsUri(run_id, p)
    assert parse_uri(str(uri)) == uri


@given(model_name, st.integers(min_value=1, max_value=10**6), model_name)
def test_models_round_trip(name: str, version: int, alias: str) -> None:
    by_version = parse_uri(f"models:/{name}/{version}")
    by_alias = parse_uri(f"models:/{name}@{alias}")
    assert by_version == ModelsUri(name, version=version)
    assert by_alias == ModelsUri(name, alias=alias)
    assert parse_uri(str(by_version)) == by_version
    assert parse_uri(str(by_alias)) == by_alias


@given(model_name, st.from_regex(r"[0-9]{1,4}", fullmatch=True))
def test_azureml_round_trip(name: str, version: str) -> None:
    uri = parse_uri(f"azureml:{name}:{version}")
    assert uri == AzureMLUri(name, version)
    assert parse_uri(str(uri)) == uri


@given(hf_part, hf_part, commit, rel_path, st.booleans())
def test_hf_round_trip(org: str, name: str, rev: str, p: str, dataset: bool) -> None:
    prefix = "datasets/" if dataset else ""
    uri = parse_uri(f"hf://{prefix}{org}/{name}@{rev}/{p}")
    assert uri == HfUri(f"{org}/{name}", rev, p, "dataset" if dataset else "model")
    assert parse_uri(str(uri)) == uri


def test_local_forms() -> None:
    assert parse_uri("/data/x") == LocalPath(Path("/data/x"))
    assert parse_uri("relative/dir") == LocalPath(Path("relative/dir"))
    assert parse_uri("../sibling") == LocalPath(Path("../sibling"))  # the user's own disk
    assert parse_uri("file:///data/x%20y") == LocalPath(Path("/data/x y"))
    assert parse_uri("memory://bucket/x") == MemoryUri("bucket/x")
    assert not is_remote(parse_uri("/data/x"))


def test_emulator_path_style_url() -> None:
    uri = parse_uri("http://127.0.0.1:10000/devstoreaccount1/datasets/pick?sv=1&sig=abc")
    assert isinstance(uri, BlobHttpsUri)
    assert (uri.account, uri.container, uri.path) == ("devstoreaccount1", "datasets", "pick")
    assert uri.endpoint == "http://127.0.0.1:10000/devstoreaccount1"


SAS = "sv=2025-01-05&sp=rwl&sig=TOPSECRETSIGNATURE"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty URI"),
        ("az://datasets/a/../../etc", "path traversal"),
        ("az://datasets/./x", "path traversal"),
        ("az://datasets/a//b", "empty path segment"),
        ("az://datasets/a\\b", "backslash"),
        ("https://acct1.blob.core.windows.net/data/../secret", "path traversal"),
        ("runs:/abc/../other", "path traversal"),
        ("hf://org/name@abcdef1/../x", "path traversal"),
        ("az://datasets/a\x00b", "control character"),
        ("models:/name\n/1", "control character"),
        ("https://acct1.blob.core.windows.net/data/x\x1b[2J", "control character"),
        ("https://user:pw@acct1.blob.core.windows.net/data/x", "user info"),
        ("https://acct1.blob.core.windows.net:8443/data/x", "names a port"),
        ("http://acct1.blob.core.windows.net/data/x", "must use https"),
        ("https://evil.example.com/data/x", "not an Azure Blob URL"),
        (f"az://datasets/x?{SAS}", "only Blob https URLs may carry one"),
        (f"runs:/abc/x?{SAS}", "query or fragment"),
        (f"hf://org/name@abcdef1?{SAS}", "query or fragment"),
        ("az://user@datasets/x", "not user info or a port"),
        ("az://datasets:10000/x", "not user info or a port"),
        ("https://acct1.blob.core.windows.net/data/x?sv=1&redirect=http://evil", "only a SAS"),
        ("https://acct1.blob.core.windows.net/data/x?sv=1&sp=r", "without a signature"),
        ("https://acct1.blob.core.windows.net/data/x#frag", "fragment"),
        ("az://Bad_Container/x", "not a valid Blob container name"),
        ("https://Bad-Account.blob.core.windows.net/data/x", "not a valid storage account"),
        ("models:/name", "positive number"),
        ("models:/name/0", "positive number"),
        ("models:/name/latest", "positive number"),
        ("models:/../x/1", "not a model name"),
        ("models:/name@bad alias", "not a model alias"),
        ("azureml:model", "version is required"),
        ("hf://org/name", "no revision"),
        ("hf://org/name@main", "not a commit hash"),
        ("hf://just-a-name@abcdef1", "not a Hugging Face repo id"),
        ("file://otherhost/etc/passwd", "names host"),
        ("s3://bucket/x", "unsupported URI scheme"),
        ("javascript:alert(1)", "unsupported URI scheme"),
    ],
)
def test_hostile_inputs_are_rejected_clearly(text: str, message: str) -> None:
    with pytest.raises(UriError, match=message) as info:
        parse_uri(text)
    error = info.value
    assert isinstance(error, UserError) and error.exit_code == 2
    assert "TOPSECRET" not in str(error)
    assert "\n" not in error.message and "\x00" not in str(error) and "\x1b" not in str(error)


def test_sas_never_appears_in_errors() -> None:
    with pytest.raises(UriError) as info:
        parse_uri(f"https://acct1.blob.core.windows.net/Bad_Container/x?{SAS}")
    assert "TOPSECRET" not in str(info.value)
