"""physai's settings, from four sources.

Precedence, highest first: keyword arguments (what CLI flags pass) > `PHYSAI_*` environment
variables > `physai.toml` > a Terraform outputs JSON file (`terraform output -json`). Two
profiles: `local` (the default: every piece of state under `.physai/`) and `azure`.

    settings = load_settings()                      # ./physai.toml if present
    settings = load_settings(profile="azure")       # what `--profile azure` does
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from physai.core.errors import ConfigError
from physai.core.logs import register_secret

Profile = Literal["local", "azure"]
JobBackendName = Literal["local", "azureml", "osmo"]

CONFIG_FILE_ENV = "PHYSAI_CONFIG"
DEFAULT_CONFIG_FILE = "physai.toml"

# Terraform output names (as infrastructure/ emits them) → settings fields. An output whose name
# is already a field name is taken as it is.
TERRAFORM_OUTPUTS: dict[str, str] = {
    "subscription_id": "azure_subscription_id",
    "tenant_id": "azure_tenant_id",
    "resource_group_name": "azure_resource_group",
    "location": "azure_location",
    "azureml_workspace_name": "azure_workspace_name",
    "azureml_compute_name": "azureml_compute",
    "storage_account_name": "azure_storage_account",
    "storage_container_name": "azure_storage_container",
    "managed_identity_client_id": "azure_client_id",
    "osmo_pool": "osmo_pool",
}


class Settings(BaseSettings):
    """Every setting physai reads. Environment variables are `PHYSAI_<FIELD>` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="PHYSAI_", extra="ignore", frozen=True)

    profile: Profile = "local"
    home: Path = Field(Path(".physai"), description="Directory for local state.")
    storage_root: str | None = Field(
        None, description="Where datasets, checkpoints and models go (a path or URL)."
    )
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; derived if unset.")
    job_backend: JobBackendName = "local"
    terraform_outputs: Path | None = Field(
        None, description="`terraform output -json` file to read settings from."
    )

    azure_subscription_id: str | None = None
    azure_tenant_id: str | None = None
    azure_resource_group: str | None = None
    azure_workspace_name: str | None = None
    azure_location: str | None = None
    azure_client_id: str | None = None
    azure_storage_account: str | None = None
    azure_storage_container: str | None = None
    azure_storage_connection_string: SecretStr | None = None
    azure_storage_sas_token: SecretStr | None = None
    azure_blob_endpoint: str | None = Field(
        None, description="Blob endpoint override (an emulator or a sovereign cloud)."
    )
    azureml_compute: str | None = None
    osmo_pool: str | None = None

    def model_post_init(self, __context: Any) -> None:
        for secret in (self.azure_storage_connection_string, self.azure_storage_sas_token):
            if secret is not None:
                register_secret(secret.get_secret_value())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = _file_values.get()
        return (init_settings, env_settings, *(_DictSource(settings_cls, v) for v in files))

    # Derived values -----------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """Absolute directory for local state (`.physai/` by default)."""
        return self.home.expanduser().resolve()

    @property
    def resolved_storage_root(self) -> str:
        """`storage_root`, or the profile's default: `.physai/storage` or `az://<container>`."""
        if self.storage_root:
            return self.storage_root
        if self.profile == "azure":
            return f"az://{self.require('azure_storage_container')}"
        return str(self.state_dir / "storage")

    def require_all(self, fields: Sequence[str], purpose: str) -> list[str]:
        """The values of settings `purpose` needs, or one ConfigError naming each missing one."""
        missing = [f for f in fields if getattr(self, f) in (None, "")]
        if missing:
            env = ", ".join(f"PHYSAI_{f.upper()}" for f in missing)
            raise ConfigError(
                f"{purpose} needs {', '.join(missing)}: set {env}, the [azure] table in "
                f"{DEFAULT_CONFIG_FILE}, or terraform_outputs"
            )
        return [self.require(f) for f in fields]

    def require(self, field: str) -> str:
        """The value of a setting that must be set, or a ConfigError saying how to set it."""
        value = getattr(self, field)
        if value is None or value == "":
            raise ConfigError(
                f"setting {field!r} is required for this operation: set PHYSAI_{field.upper()}, "
                f"or {field} = ... in {DEFAULT_CONFIG_FILE}"
            )
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return str(value)


class _DictSource(PydanticBaseSettingsSource):
    """A settings source over an already-parsed mapping (physai.toml or Terraform outputs)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


# The parsed physai.toml and Terraform outputs of the `load_settings` call in progress, lowest
# precedence last. Pydantic-settings asks for sources at class level, hence a context variable.
_file_values: ContextVar[tuple[dict[str, Any], ...]] = ContextVar(
    "physai_settings_files", default=()
)


def read_toml(path: Path) -> dict[str, Any]:
    """Read physai.toml: top-level keys are settings; an `[azure]` table may hold azure_* keys."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    azure = data.pop("azure", None)
    if isinstance(azure, dict):
        for key, value in azure.items():
            data[key if key.startswith("azure") else f"azure_{key}"] = value
    _reject_unknown(data, str(path))
    return data


def read_terraform_outputs(path: Path) -> dict[str, Any]:
    """Map a `terraform output -json` document onto settings fields."""
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Terraform outputs file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not a `terraform output -json` document: {exc}") from None
    if not isinstance(outputs, dict):
        raise ConfigError(f"{path} is not a `terraform output -json` document (not an object)")
    values: dict[str, Any] = {}
    for name, output in outputs.items():
        field = TERRAFORM_OUTPUTS.get(name, name)
        if field not in Settings.model_fields:
            continue  # outputs physai does not use (cluster ids, ...) are fine
        value = output.get("value") if isinstance(output, dict) else None
        if value is not None:
            values[field] = value
    return values


def _reject_unknown(values: dict[str, Any], where: str) -> None:
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} in {where}")


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from overrides > env > physai.toml > Terraform outputs.

    `config_file` defaults to `$PHYSAI_CONFIG`, then `./physai.toml` (skipped if absent).
    Overrides whose value is None are ignored, so CLI options can be passed straight through.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _reject_unknown(overrides, "arguments")
    explicit = config_file or os.environ.get(CONFIG_FILE_ENV)
    toml_path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if explicit and not toml_path.is_file():
        raise ConfigError(f"config file {toml_path} does not exist")
    toml = read_toml(toml_path) if toml_path.is_file() else {}

    terraform_path = (
        overrides.get("terraform_outputs")
        or os.environ.get("PHYSAI_TERRAFORM_OUTPUTS")
        or toml.get("terraform_outputs")
    )
    terraform = read_terraform_outputs(Path(terraform_path)) if terraform_path else {}
    token = _file_values.set((toml, terraform))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
    finally:
        _file_values.reset(token)


def settings_or_default(settings: Settings | None) -> Settings:
    """`settings` when given, else `load_settings()`: what every API's `settings=None` means."""
    return settings if settings is not None else load_settings()
