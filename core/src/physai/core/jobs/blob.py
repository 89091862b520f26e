"""Blob locations as the cloud backends see them: read and written with the service's identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from physai.core.errors import UserError
from physai.core.uris import AzBlobUri, BlobHttpsUri

if TYPE_CHECKING:
    from physai.core.settings import Settings


def cloud_blob(
    job: str, what: str, uri: Any, settings: Settings, *, service: str, identity: str
) -> tuple[str, str, str] | None:
    """(account, container, path) of a Blob URI a cloud `service` can reach, or None if not Blob.

    A SAS or an emulator URL is a UserError: the service reads storage with `identity`, and a
    loopback emulator is out of its reach.
    """
    if isinstance(uri, AzBlobUri):
        return settings.require("azure_storage_account"), uri.container, uri.path
    if not isinstance(uri, BlobHttpsUri):
        return None
    if uri.sas:
        raise UserError(
            f"job {job!r}: {what} carries a SAS; {service} reads Blob storage with {identity}: "
            "drop the SAS from the URL"
        )
    if not uri.endpoint.startswith("https://"):
        raise UserError(f"job {job!r}: {what} {uri} is a local emulator URL {service} cannot reach")
    return uri.account, uri.container, uri.path
