"""Settings precedence: overrides > PHYSAI_* env > physai.toml > Terraform outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from physai.core.errors import ConfigError
from physai.core.logs import redact
from physai.core.settings import load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("PHYSAI_"):
            monkeypatch.delenv(key)


def _terraform(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "outputs.json"
    doc = {k: {"sensitive": False, "type": "string", "value": v} for k, v in values.items()}
    path.write_text(json.dumps(doc))
    return path


def test_defaults_are_local_under_dot_physai(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.profile == "local"
    assert settings.state_dir == (tmp_path / ".physai").resolve()
    assert settings.resolved_storage_root == str(tmp_path / ".physai" / "storage")
    assert settings.job_backend == "local"


def test_each_source_overrides_the_one_below(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = _terraform(
        tmp_path,
        resource_group_name="rg-terraform",
        azureml_workspace_name="ws-terraform",
        storage_account_name="acctterraform",
        location="westeurope",
    )
    (tmp_path / "physai.toml").write_text(
        f'terraform_outputs = "{outputs}"\n'
        '[azure]\nworkspace_name = "ws-toml"\nstorage_account = "accttoml"\n'
        'resource_group = "rg-toml"\n'
    )
    monkeypatch.setenv("PHYSAI_AZURE_STORAGE_ACCOUNT", "acctenv")
    monkeypatch.setenv("PHYSAI_AZURE_RESOURCE_GROUP", "rg-env")

    settings = load_settings(azure_resource_group="rg-cli")

    assert settings.azure_resource_group == "rg-cli"  # CLI beats env, toml, terraform
    assert settings.azure_storage_account == "acctenv"  # env beats toml, terraform
    assert settings.azure_workspace_name == "ws-toml"  # toml beats terraform
    assert settings.azure_location == "westeurope"  # terraform fills the rest


def test_none_overrides_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHYSAI_PROFILE", "azure")
    assert load_settings(profile=None).profile == "azure"


def test_explicit_config_file_and_env_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "other.toml"
    cfg.write_text('job_backend = "osmo"\n')
    assert load_settings(cfg).job_backend == "osmo"
    monkeypatch.setenv("PHYSAI_CONFIG", str(cfg))
    assert load_settings().job_backend == "osmo"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("profile = 'cloud'\n", "invalid setting profile"),
        ("not toml = = 1\n", "is not valid TOML"),
        ("colour = 'blue'\n", "unknown setting(s) colour"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "physai.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings()


def test_missing_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="Terraform outputs file"):
        load_settings(terraform_outputs=tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a `terraform output -json` document"):
        load_settings(terraform_outputs=bad)


def test_require_names_env_var_and_toml_key() -> None:
    settings = load_settings(profile="azure")
    with pytest.raises(ConfigError, match="PHYSAI_AZURE_STORAGE_CONTAINER"):
        _ = settings.resolved_storage_root
    assert load_settings(profile="azure", azure_storage_container="data").resolved_storage_root == (
        "az://data"
    )


def test_secrets_from_settings_are_redacted_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw=="
    monkeypatch.setenv("PHYSAI_AZURE_STORAGE_SAS_TOKEN", key)
    settings = load_settings()
    assert key not in repr(settings)
    assert key not in redact(f"request failed with token {key} in it")


def test_read_terraform_outputs_maps_names_and_skips_unused(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps(
            {
                "storage_account_name": {"sensitive": False, "type": "string", "value": "acct1"},
                "azure_storage_sas_token": {"sensitive": True, "type": "string", "value": "s3cr"},
                "aks_cluster_id": {"sensitive": False, "type": "string", "value": "/subs/x"},
                "osmo_pool": {"sensitive": False, "type": "string", "value": None},
            }
        )
    )
    from physai.core.settings import read_terraform_outputs

    assert read_terraform_outputs(path) == {
        "azure_storage_account": "acct1",
        "azure_storage_sas_token": "s3cr",
    }
