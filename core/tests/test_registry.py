"""Model registry on a real MLflow store (sqlite and `mlflow server`); AzureML offline."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from physai.core import registry
from physai.core.errors import ConfigError, NotFoundError, StorageError, UserError
from physai.core.registry import (
    ALIAS_TAG_PREFIX,
    LINEAGE_FILE,
    RegisteredModel,
    ResolvedModel,
    build_azureml_model,
    download_model,
    hash_files,
    pick_aliased_version,
    register_model,
    resolve_model,
    set_alias,
)
from physai.core.settings import Settings
from physai.core.testing.checks import assert_no_secret, fresh_mlflow_store, run_sql
from physai.core.tracking import Lineage, Tracker, TrackingError, mlflow_client

SHA = "b" * 64
LINEAGE = {
    "datasets": [{"uri": "az://datasets/pick/v3", "sha256": SHA}, "hf://lerobot/pusht@a1b2c3d"],
    "task": "pick-cube",
    "policy": "act",  # anything else is kept too
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith(("PHYSAI_", "AZURE_")) or var == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(var)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    assert sorted(p.name for p in cwd.iterdir()) == []  # no ./mlruns, no ./mlflow.db


@pytest.fixture(scope="module")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("state") / ".physai")


def _model_dir(root: Path, seed: int) -> Path:
    model = root / f"policy-{seed}"
    (model / "onnx").mkdir(parents=True)
    (model / "onnx" / "policy.onnx").write_bytes(os.urandom(2048 + seed))
    (model / "config.json").write_text(json.dumps({"seed": seed, "hidden": [64, 64]}))
    return model


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _name(prefix: str = "policy") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _two_versions_alias_resolve_download(settings: Settings, tmp_path: Path) -> None:
    """The round trip both MLflow stores must pass."""
    name = _name()
    first, second = _model_dir(tmp_path, 1), _model_dir(tmp_path, 2)
    v1 = register_model(first, name, LINEAGE, settings=settings, tags={"stage": "dev"})
    v2 = register_model(second, name, Lineage.coerce(LINEAGE), settings=settings)
    assert isinstance(v1, RegisteredModel)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.uri == f"models:/{name}/1"
    assert v1.run_id and v2.run_id and v1.run_id != v2.run_id
    assert v1.lineage.files == hash_files(first)

    set_alias(name, "production", 1, settings=settings)
    by_version = resolve_model(f"models:/{name}/2", settings=settings)
    by_alias = resolve_model(f"models:/{name}@production", settings=settings)
    assert isinstance(by_alias, ResolvedModel)
    assert (by_version.version, by_alias.version) == (2, 1)
    assert by_alias.aliases == ("production",)
    assert by_alias.run_id == v1.run_id
    assert by_alias.tags["stage"] == "dev"
    assert by_alias.tags["physai.dataset.0.sha256"] == SHA
    assert by_alias.lineage is not None
    assert [d.uri for d in by_alias.lineage.datasets] == [
        "az://datasets/pick/v3",
        "hf://lerobot/pusht@a1b2c3d",
    ]
    assert by_alias.lineage.extra == {"policy": "act"}

    for uri, source in ((f"models:/{name}@production", first), (f"models:/{name}/2", second)):
        dest = download_model(uri, tmp_path / "deploy" / uri.replace("/", "_"), settings=settings)
        got = _files(dest)
        lineage = json.loads(got.pop(LINEAGE_FILE))
        assert got == _files(source)  # byte for byte
        assert lineage["datasets"][0] == {"uri": "az://datasets/pick/v3", "sha256": SHA}
        assert lineage["task"] == "pick-cube"
        assert lineage["extra"] == {"policy": "act"}
        assert lineage["run_id"] == (v1.run_id if source is first else v2.run_id)
        assert lineage["files"] == hash_files(source)
        assert "physai-core" in lineage["code"]["packages"]

    # Moving the alias.
    set_alias(name, "production", 2, settings=settings)
    assert resolve_model(f"models:/{name}@production", settings=settings).version == 2


# -- embedded sqlite store ------------------------------------------------------------------------


def test_register_alias_resolve_download_sqlite(local_settings: Settings, tmp_path: Path) -> None:
    _two_versions_alias_resolve_download(local_settings, tmp_path)


def test_register_into_an_existing_training_run(local_settings: Settings, tmp_path: Path) -> None:
    model = _model_dir(tmp_path, 3)
    with Tracker(local_settings).start("training") as tracker:
        tracker.log_metric("train/loss", 0.1)
        run_id = tracker.run_id
        name = _name()
        first = register_model(
            model, name, {"task": "reach"}, settings=local_settings, run_id=run_id
        )
        again = register_model(
            model, name, {"task": "reach"}, settings=local_settings, run_id=run_id
        )
    assert first.run_id == again.run_id == run_id
    assert first.source == f"runs:/{run_id}/model"
    assert again.source == f"runs:/{run_id}/model-2"  # never overwrites the first files
    assert mlflow_client(local_settings).get_run(run_id).info.status == "FINISHED"

    # The run's artifacts resolve too, with lineage.json beside the files.
    resolved = resolve_model(f"runs:/{run_id}/model", settings=local_settings)
    assert resolved.run_id == run_id
    dest = download_model(f"runs:/{run_id}/model", tmp_path / "from-run", settings=local_settings)
    got = _files(dest)
    assert json.loads(got.pop(LINEAGE_FILE))["run_id"] == run_id
    assert got == _files(model)


def test_runs_uri_without_lineage_json_gets_one_from_tags(
    local_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.bin").write_bytes(b"\x00\x01\x02")
    with Tracker(local_settings).start("training") as tracker:
        tracker.set_lineage(datasets=["az://datasets/reach/v1"], task="reach")
        tracker.log_artifacts(tmp_path / "ckpt", "ckpt")
    dest = download_model(f"runs:/{tracker.run_id}/ckpt", tmp_path / "out", settings=local_settings)
    assert (dest / "weights.bin").read_bytes() == b"\x00\x01\x02"
    lineage = json.loads((dest / LINEAGE_FILE).read_text())
    assert lineage["datasets"] == [{"uri": "az://datasets/reach/v1", "sha256": None}]
    assert lineage["run_id"] == tracker.run_id


def test_unknown_model_version_alias_and_run_are_not_found(
    local_settings: Settings, tmp_path: Path
) -> None:
    name = _name()
    register_model(_model_dir(tmp_path, 4), name, {}, settings=local_settings)
    cases = {
        "models:/no-such-model/1": "no registered model named 'no-such-model'",
        f"models:/{name}/7": f"model '{name}' has no version 7 (versions: 1)",
        f"models:/{name}@staging": f"model '{name}' has no alias 'staging' (aliases: none)",
        "runs:/0123456789abcdef0123456789abcdef/model": "run '0123456789abcdef",
    }
    for uri, expected in cases.items():
        with pytest.raises(NotFoundError) as info:
            resolve_model(uri, settings=local_settings)
        assert expected in info.value.message
        assert "\n" not in str(info.value)
    with pytest.raises(NotFoundError, match="has no version 9"):
        set_alias(name, "production", 9, settings=local_settings)
    with pytest.raises(NotFoundError, match="no registered model"):
        download_model("models:/no-such-model@prod", tmp_path / "x", settings=local_settings)
    assert not (tmp_path / "x").exists()
    # `@latest` falls back to the highest version when no such alias was set.
    assert resolve_model(f"models:/{name}@latest", settings=local_settings).version == 1


def test_bad_inputs_are_user_errors(local_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="does not exist"):
        register_model(tmp_path / "missing", "m", {}, settings=local_settings)
    with pytest.raises(UserError, match="holds no files"):
        register_model(tmp_path / "empty", "m", {}, settings=local_settings)
    with pytest.raises(UserError, match="invalid model name"):
        register_model(_model_dir(tmp_path, 5), "bad/name", {}, settings=local_settings)
    with pytest.raises(UserError, match="sha256"):
        register_model(
            _model_dir(tmp_path, 6),
            "m",
            {"datasets": [{"uri": "x", "sha256": "zz"}]},
            settings=local_settings,
        )
    with pytest.raises(UserError, match="not a model URI"):
        resolve_model("az://datasets/pick", settings=local_settings)
    with pytest.raises(UserError, match="is an AzureML asset"):
        resolve_model("azureml:policy:3", settings=local_settings)


def test_download_is_all_or_nothing(local_settings: Settings, tmp_path: Path) -> None:
    name = _name()
    registered = register_model(_model_dir(tmp_path, 7), name, {}, settings=local_settings)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty directory"):
        download_model(registered.uri, busy, settings=local_settings)
    assert _files(busy) == {"keep.txt": b"mine"}

    # Corrupt the stored copy: the digest check refuses it and leaves nothing behind.
    assert registered.run_id is not None
    run = mlflow_client(local_settings).get_run(registered.run_id)
    stored = Path(run.info.artifact_uri.removeprefix("file://")) / "model" / "config.json"
    stored.write_text('{"seed": 666}')
    with pytest.raises(StorageError, match=r"config\.json does not match its sha256"):
        download_model(registered.uri, tmp_path / "deploy" / "policy", settings=local_settings)
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == []


def test_hash_files_is_the_sha256_of_each_model_file(tmp_path: Path) -> None:
    model = _model_dir(tmp_path, 11)
    (model / "manifest.json").write_text("{}")  # a model file like any other here
    (model / LINEAGE_FILE).write_text("{}")  # replaced at registration: not hashed
    expected = {
        rel: hashlib.sha256(data).hexdigest()
        for rel, data in _files(model).items()
        if rel != LINEAGE_FILE
    }
    assert set(expected) == {"config.json", "manifest.json", "onnx/policy.onnx"}
    assert hash_files(model) == expected


def test_store_errors_carry_no_secret(tmp_path: Path) -> None:
    settings = fresh_mlflow_store(tmp_path)
    name = _name()
    register_model(_model_dir(tmp_path, 12), name, {}, settings=settings)
    client = mlflow_client(settings)
    gone = f"file://{tmp_path}/gone/model?sv=1&sig=SECRET"  # a source URL with a SAS
    assert int(client.create_model_version(name, source=gone).version) == 2
    run_sql(
        settings,
        "CREATE TRIGGER refuse_alias BEFORE INSERT ON registered_model_aliases BEGIN "
        "SELECT RAISE(ABORT, 'denied https://acct.blob.core.windows.net/c/x?sv=1&sig=SECRET'); "
        "END;"
        # A store failure other than a constraint (no such table), naming the secret.
        "CREATE TRIGGER refuse_version BEFORE INSERT ON model_versions BEGIN "
        'INSERT INTO "denied?sv=1&sig=SECRET" VALUES (1); END;',
    )
    with pytest.raises(TrackingError, match="setting alias") as info:
        set_alias(name, "production", 1, settings=settings)
    assert_no_secret(info.value)
    with pytest.raises(TrackingError, match="creating a version") as info:
        register_model(_model_dir(tmp_path, 13), name, {}, settings=settings)
    assert_no_secret(info.value)
    with pytest.raises(StorageError, match=f"downloading models:/{name}/2 failed") as info:
        download_model(f"models:/{name}/2", tmp_path / "dl", settings=settings)
    assert_no_secret(info.value)
    assert not (tmp_path / "dl").exists()


def test_a_failing_run_end_does_not_hide_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fresh_mlflow_store(tmp_path)
    run_sql(
        settings,
        "CREATE TRIGGER refuse_version BEFORE INSERT ON model_versions BEGIN "
        "SELECT RAISE(ABORT, 'no versions today'); END;"
        "CREATE TRIGGER refuse_end BEFORE UPDATE ON runs WHEN NEW.status = 'FAILED' BEGIN "
        "SELECT RAISE(ABORT, 'cannot end runs either'); END;",
    )
    with (
        caplog.at_level(logging.WARNING, logger="physai"),
        pytest.raises(TrackingError, match="creating a version of model"),
    ):
        register_model(_model_dir(tmp_path, 14), _name(), {}, settings=settings)
    assert "cannot end runs either" in caplog.text


def test_lineage_json_in_model_dir_is_replaced_not_modified(
    local_settings: Settings, tmp_path: Path
) -> None:
    model = _model_dir(tmp_path, 8)
    (model / LINEAGE_FILE).write_text('{"stale": true}')
    registered = register_model(model, _name(), {"task": "t"}, settings=local_settings)
    dest = download_model(registered.uri, tmp_path / "out", settings=local_settings)
    assert json.loads((dest / LINEAGE_FILE).read_text())["task"] == "t"
    assert (model / LINEAGE_FILE).read_text() == '{"stale": true}'


# -- a real `mlflow server` -----------------------------------------------------------------------


@pytest.mark.integration
def test_register_alias_resolve_download_server(mlflow_server: str, tmp_path: Path) -> None:
    _two_versions_alias_resolve_download(
        Settings(tracking_uri=mlflow_server, home=tmp_path / ".physai"), tmp_path
    )


# -- AzureML, validated offline -------------------------------------------------------------------

# azure-ai-ml's marshmallow schemas use options marshmallow 4 removes.
no_marshmallow_warnings = pytest.mark.filterwarnings("ignore::DeprecationWarning:marshmallow.*")


@no_marshmallow_warnings
def test_azureml_model_entity_validates_and_round_trips_yaml(tmp_path: Path) -> None:
    from azure.ai.ml import load_model

    model = _model_dir(tmp_path, 9)
    (model / LINEAGE_FILE).write_text('{"stale": true}')
    os.link(model / LINEAGE_FILE, tmp_path / "same-inode.json")
    staging = tmp_path / "staging"
    staging.mkdir()
    entity = build_azureml_model(
        model,
        "reacher-ppo",
        LINEAGE,
        staging_dir=staging,
        version=3,
        tags={"owner": "robots"},
        run_id="run-123",
    )
    assert entity.name == "reacher-ppo"
    assert entity.version == "3"
    assert entity.type == "custom_model"
    tags = entity.tags or {}
    assert tags["physai.dataset.0.sha256"] == SHA
    assert tags["physai.run_id"] == "run-123"
    assert tags["owner"] == "robots"
    staged = Path(str(entity.path))
    lineage = json.loads((staged / LINEAGE_FILE).read_text())
    assert lineage["run_id"] == "run-123"
    assert lineage["files"] == hash_files(model)
    # The user's lineage.json (and anything hard-linked to it) is untouched.
    assert (tmp_path / "same-inode.json").read_text() == '{"stale": true}'
    staged_files = _files(staged)
    staged_files.pop(LINEAGE_FILE)
    original = _files(model)
    original.pop(LINEAGE_FILE)
    assert staged_files == original

    entity.dump(tmp_path / "model.yml")
    loaded = load_model(tmp_path / "model.yml")
    assert (loaded.name, loaded.version, loaded.type) == ("reacher-ppo", "3", "custom_model")
    assert loaded.tags == entity.tags
    assert Path(str(loaded.path)) == staged

    auto = build_azureml_model(model, "reacher-ppo", {}, staging_dir=tmp_path / "s2")
    assert auto.version is None  # AzureML assigns the next version


class _FakeAzureModels:
    """Stands in for `MLClient.models` (the Azure SDK; no workspace is reachable here)."""

    def __init__(self) -> None:
        self.sent_lineage: dict[str, Any] = {}

    def create_or_update(self, entity: Any) -> Any:
        self.sent_lineage = json.loads((Path(str(entity.path)) / LINEAGE_FILE).read_text())
        entity.version = "4"
        return entity

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        from azure.ai.ml.entities import Model

        return Model(name=name, version=version or "1", path="azureml://datastores/x/paths/m")

    def download(self, name: str, version: str, download_path: str) -> None:
        from azure.core.exceptions import ServiceRequestError

        raise ServiceRequestError(
            "HTTPSConnectionPool(host='acct.blob.core.windows.net', port=443): Max retries "
            "exceeded with url: /c/m/policy.onnx?sv=2024&sig=SECRET"
        )


class _FakeMLClient:
    def __init__(self) -> None:
        self.models = _FakeAzureModels()


@no_marshmallow_warnings
def test_register_azureml_model_returns_the_recorded_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeMLClient()
    monkeypatch.setattr(registry, "azureml_ml_client", lambda settings: fake)
    settings = Settings(profile="azure", home=tmp_path / ".physai")
    model = _model_dir(tmp_path, 15)
    registered = register_model(model, "reacher-ppo", LINEAGE, settings=settings, run_id="run-9")
    assert (registered.backend, registered.version, registered.run_id) == ("azureml", 4, "run-9")
    assert registered.lineage.files == hash_files(model)
    assert registered.lineage.to_json_dict() == fake.models.sent_lineage  # what was uploaded


@no_marshmallow_warnings
def test_azureml_download_error_carries_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "azureml_ml_client", lambda settings: _FakeMLClient())
    settings = Settings(profile="azure", home=tmp_path / ".physai")
    with pytest.raises(StorageError, match="downloading azureml:policy:3 failed") as info:
        download_model("azureml:policy:3", tmp_path / "dl", settings=settings)
    assert_no_secret(info.value)
    assert not (tmp_path / "dl").exists()


class _FailingUploads(_FakeAzureModels):
    def create_or_update(self, entity: Any) -> Any:
        from azure.core.exceptions import HttpResponseError

        raise HttpResponseError(
            "Upload to https://acct.blob.core.windows.net/c/m/policy.onnx?sv=2024&sig=SECRET "
            "failed: 403 AuthorizationFailure"
        )


@no_marshmallow_warnings
def test_azureml_upload_error_carries_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeMLClient()
    fake.models = _FailingUploads()
    monkeypatch.setattr(registry, "azureml_ml_client", lambda settings: fake)
    settings = Settings(profile="azure", home=tmp_path / ".physai")
    with pytest.raises(StorageError, match="saving AzureML model 'reacher-ppo' failed") as info:
        register_model(_model_dir(tmp_path, 3), "reacher-ppo", LINEAGE, settings=settings)
    assert_no_secret(info.value)


@no_marshmallow_warnings
def test_azureml_without_settings_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(profile="azure", home=tmp_path / ".physai")
    model = _model_dir(tmp_path, 10)
    for call in (
        lambda: register_model(model, "policy", {}, settings=settings),
        lambda: set_alias("policy", "production", 1, settings=settings),
        lambda: resolve_model("models:/policy/1", settings=settings),
        lambda: download_model("azureml:policy:1", tmp_path / "x", settings=settings),
    ):
        with pytest.raises(ConfigError) as info:
            call()
        for name in ("azure_subscription_id", "azure_resource_group", "azure_workspace_name"):
            assert name in info.value.message
    partial = Settings(profile="azure", azure_subscription_id="sub", home=tmp_path / ".physai")
    with pytest.raises(ConfigError) as info:
        register_model(model, "policy", {}, settings=partial)
    assert "azure_subscription_id" not in info.value.message.split(":")[0]


@no_marshmallow_warnings
def test_azureml_aliases_are_tags(tmp_path: Path) -> None:
    from azure.ai.ml.entities import Model

    def version(number: int, **tags: Any) -> Any:
        return Model(name="policy", version=str(number), path=str(tmp_path), tags=tags)

    tag = f"{ALIAS_TAG_PREFIX}production"
    models = [version(1, **{tag: "true"}), version(2), version(3, **{tag: "true"})]
    picked = pick_aliased_version(models, "production")
    assert picked is not None and picked.version == "3"
    assert pick_aliased_version(models, "staging") is None
