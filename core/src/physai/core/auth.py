"""Azure credentials, built lazily: importing this module imports no Azure SDK.

`get_credential` picks, in order: workload identity (AKS pods with a federated token file),
managed identity (Azure VMs, Arc, AzureML compute, when a client id or identity endpoint is
present), else `DefaultAzureCredential` (developer logins: Azure CLI, VS Code, environment).
Nothing here talks to the network: credentials fetch tokens only when first asked for one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from physai.core.errors import MissingDependencyError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential

    from physai.core.settings import Settings

CredentialKind = Literal["workload", "managed", "default"]

AZURE_EXTRA_HINT = "install the Azure extra: uv pip install 'physai-core[azure]'"
WORKSPACE_SETTINGS = ("azure_subscription_id", "azure_resource_group", "azure_workspace_name")


def credential_kind(settings: Settings | None = None) -> CredentialKind:
    """Which credential `get_credential` would build in this environment."""
    if os.environ.get("AZURE_FEDERATED_TOKEN_FILE") and os.environ.get("AZURE_CLIENT_ID"):
        return "workload"
    client_id = settings.azure_client_id if settings else None
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT") or client_id:
        return "managed"
    return "default"


def get_credential(settings: Settings | None = None) -> TokenCredential:
    """Build the Azure credential for this environment (see `credential_kind`)."""
    try:
        from azure import identity
    except ImportError:
        raise MissingDependencyError("azure-identity", AZURE_EXTRA_HINT) from None
    kind = credential_kind(settings)
    if kind == "workload":
        return identity.WorkloadIdentityCredential()
    client_id = settings.azure_client_id if settings else None
    if kind == "managed":
        return identity.ManagedIdentityCredential(client_id=client_id)
    return identity.DefaultAzureCredential(
        managed_identity_client_id=client_id,
        exclude_interactive_browser_credential=True,
    )


def ml_client(settings: Settings, purpose: str = "AzureML") -> MLClient:
    """An azure-ai-ml `MLClient` for the configured workspace (no network until first used).

    A ConfigError names every missing workspace setting, saying what `purpose` needed them.
    """
    subscription, resource_group, workspace = settings.require_all(WORKSPACE_SETTINGS, purpose)
    try:
        from azure.ai.ml import MLClient
    except ImportError:
        raise MissingDependencyError("azure-ai-ml", AZURE_EXTRA_HINT) from None
    return MLClient(
        credential=get_credential(settings),
        subscription_id=subscription,
        resource_group_name=resource_group,
        workspace_name=workspace,
    )
