"""A real Azurite Blob service for tests: the `azurite` pytest fixture and `start_azurite`.

    def test_upload(azurite):
        container = azurite.create_container()
        settings = azurite.settings()               # az:// URLs now reach this Azurite
        write_bytes(f"az://{container}/x.bin", b"hello", settings=settings)

Azurite is the Azure Storage emulator (npm `azurite@3.35`). The fixture finds `azurite-blob` on
PATH, at `$AZURITE_BIN`, or through `npx --no-install azurite-blob`, starts it on a free
loopback port with `--disableTelemetry`, waits until the port answers, and stops it when the
session ends. When Azurite is not installed the fixture fails (it does not skip): CI installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from physai.core.testing.services import free_port, port_answers, run_service

if TYPE_CHECKING:
    from physai.core.settings import Settings

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
INSTALL_HINT = "npm install -g azurite@3.35"
START_TIMEOUT_S = 30.0


class AzuriteNotInstalledError(RuntimeError):
    """No azurite-blob executable could be found."""


@dataclass
class Azurite:
    """A running Azurite Blob service on 127.0.0.1."""

    host: str
    port: int
    location: Path
    account_name: str = ACCOUNT_NAME
    account_key: str = field(default=ACCOUNT_KEY, repr=False)

    @property
    def blob_endpoint(self) -> str:
        """The account's Blob endpoint (path-style): `http://127.0.0.1:PORT/devstoreaccount1`."""
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        """A connection string for this Azurite (account key included)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def settings(self, **overrides: Any) -> Settings:
        """Settings whose `az://` URLs reach this Azurite (through its connection string)."""
        from physai.core.settings import load_settings

        values: dict[str, Any] = {
            "azure_storage_account": self.account_name,
            "azure_storage_connection_string": self.connection_string,
            "azure_blob_endpoint": self.blob_endpoint,
        }
        values.update(overrides)
        return load_settings(**values)

    def service_client(self) -> Any:
        """A synchronous `azure.storage.blob.BlobServiceClient` for this Azurite."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, name: str | None = None) -> str:
        """Create a container (a fresh unique name unless given) and return its name."""
        name = name or f"t{uuid.uuid4().hex[:20]}"
        with self.service_client() as client:
            client.create_container(name)
        return name

    def container_sas(
        self,
        container: str,
        *,
        permission: str = "racwdl",
        expiry: timedelta = timedelta(hours=1),
    ) -> str:
        """A real container SAS (query string, no leading '?'), signed with the account key."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return str(
            generate_container_sas(
                account_name=self.account_name,
                container_name=container,
                account_key=self.account_key,
                permission=ContainerSasPermissions.from_string(permission),
                expiry=datetime.now(UTC) + expiry,
            )
        )

    def sas_url(self, container: str, path: str = "", **sas_options: Any) -> str:
        """`http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/PATH?SAS` with a container SAS."""
        base = f"{self.blob_endpoint}/{container}/{path}".rstrip("/")
        return f"{base}?{self.container_sas(container, **sas_options)}"


def find_azurite() -> list[str]:
    """The command that runs `azurite-blob`, or AzuriteNotInstalledError saying how to install."""
    explicit = os.environ.get("AZURITE_BIN")
    if explicit:
        if shutil.which(explicit) is None:
            raise AzuriteNotInstalledError(
                f"AZURITE_BIN={explicit!r} is not an executable; install Azurite with "
                f"`{INSTALL_HINT}` or fix AZURITE_BIN"
            )
        return [explicit]
    found = shutil.which("azurite-blob")
    if found:
        return [found]
    npx = shutil.which("npx")
    if npx and _npx_has_azurite(npx):
        return [npx, "--no-install", "azurite-blob"]
    raise AzuriteNotInstalledError(
        f"Azurite (the Azure Storage emulator) is not installed: run `{INSTALL_HINT}` "
        "(or set AZURITE_BIN to the azurite-blob executable)"
    )


def _npx_has_azurite(npx: str) -> bool:
    try:
        probe = subprocess.run(
            [npx, "--no-install", "azurite-blob", "--version"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@contextmanager
def start_azurite(
    location: Path | None = None,
    *,
    host: str = "127.0.0.1",
    timeout: float = START_TIMEOUT_S,
) -> Iterator[Azurite]:
    """Run Azurite's Blob service on a free port while the block runs; stop it afterwards."""
    command = find_azurite()
    with tempfile.TemporaryDirectory(prefix="azurite-") as scratch:
        root = location or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        log_path = root / "azurite.log"
        port = free_port(host)
        args = [
            *command,
            "--blobHost", host,
            "--blobPort", str(port),
            "--location", str(root / "data"),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]  # fmt: skip
        with run_service(
            "Azurite",
            args,
            ready=lambda: port_answers(host, port),
            log_path=log_path,
            timeout_s=timeout,
            poll_s=0.1,
        ):
            yield Azurite(host=host, port=port, location=root)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A real Azurite Blob service for the whole test session (fails if not installed)."""
    try:
        find_azurite()
    except AzuriteNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    with start_azurite(tmp_path_factory.mktemp("azurite")) as service:
        yield service
