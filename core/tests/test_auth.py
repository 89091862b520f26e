"""Azure credentials are chosen by environment and built only when asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from physai.core.auth import credential_kind, get_credential
from physai.core.settings import load_settings

AZURE_VARS = ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in AZURE_VARS:
        monkeypatch.delenv(var, raising=False)


def test_importing_auth_imports_no_azure_sdk() -> None:
    code = "import physai.core.auth, sys; print(any(m.startswith('azure') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_credential_for_developers() -> None:
    from azure.identity import DefaultAzureCredential

    assert credential_kind() == "default"
    assert isinstance(get_credential(), DefaultAzureCredential)


def test_workload_identity_on_aks(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from azure.identity import WorkloadIdentityCredential

    token = __import__("pathlib").Path(str(tmp_path)) / "token"
    token.write_text("federated-token")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token))
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000002")
    assert credential_kind() == "workload"
    assert isinstance(get_credential(), WorkloadIdentityCredential)


def test_managed_identity_with_client_id_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from azure.identity import ManagedIdentityCredential

    monkeypatch.chdir(str(tmp_path))
    settings = load_settings(azure_client_id="00000000-0000-0000-0000-000000000003")
    assert credential_kind(settings) == "managed"
    assert isinstance(get_credential(settings), ManagedIdentityCredential)


def test_ml_client_names_every_missing_setting_then_builds_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from azure.ai.ml import MLClient

    from physai.core.auth import ml_client
    from physai.core.errors import ConfigError

    monkeypatch.chdir(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        ml_client(load_settings(azure_subscription_id="sub"), "the test")
    assert info.value.message.startswith(
        "the test needs azure_resource_group, azure_workspace_name: set "
        "PHYSAI_AZURE_RESOURCE_GROUP, PHYSAI_AZURE_WORKSPACE_NAME"
    )
    settings = load_settings(
        azure_subscription_id="00000000-0000-0000-0000-000000000004",
        azure_resource_group="rg",
        azure_workspace_name="ws",
    )
    client = ml_client(settings)
    assert isinstance(client, MLClient)
    assert (client.resource_group_name, client.workspace_name) == ("rg", "ws")
