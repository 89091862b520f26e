"""Registration: a real skrl policy (2 PPO iterations, tracked in MLflow) exported, packaged
and registered in MLflow's registry (sqlite under tmp_path); AzureML's entity checked offline."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_presets import TINY_RL
from typer.testing import CliRunner

from physai.core import registry
from physai.core.cli import app
from physai.core.errors import NotFoundError, UserError
from physai.core.registry import LINEAGE_FILE, download_model, resolve_model
from physai.core.settings import Settings
from physai.core.storage import publish, published_info
from physai.core.tracking import Tracker, mlflow_client, tracking_uri
from physai.training.export import export_policy
from physai.training.package import PackageResult, package_policy
from physai.training.policy_card import PolicyCard
from physai.training.register import (
    ONNX_FLAVOR_TAG,
    build_azureml_policy_model,
    read_package,
    register_policy,
)
from physai.training.rl import RLConfig, train_rl

ort = pytest.importorskip("onnxruntime")
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
    # azure-ai-ml's marshmallow schemas use options marshmallow 4 removes.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:marshmallow.*"),
]
POLICY_FILES = {"policy.json", "policy.onnx", "policy.pt"}


class Trained:
    """One tracked training run, its export (from the run's runs:/ checkpoint) and package."""

    def __init__(self, root: Path) -> None:
        self.settings = Settings(home=root / ".physai")
        with Tracker(self.settings).start("physai-rl", run_name="tiny") as tracker:
            config = RLConfig(library="skrl", checkpoint_url=str(root / "ckpt"), **TINY_RL)
            train_rl(config, tracker=tracker, settings=self.settings)
            self.run_id = tracker.run_id
        self.policy = root / "policy"
        export_policy(
            f"runs:/{self.run_id}/checkpoints",
            str(self.policy),
            name="pendulum",
            settings=self.settings,
        )
        self.card = PolicyCard.read(self.policy)
        self.package: PackageResult = package_policy(
            self.policy, root / "package", name="policies/pendulum", version="1.0.0"
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return Trained(tmp_path_factory.mktemp("register"))


def cli(trained: Trained, *args: str) -> Any:
    env = {"PHYSAI_HOME": str(trained.settings.home), "PHYSAI_PROFILE": "local"}
    return CliRunner().invoke(app, ["training", *args], env=env)


def registration_runs(trained: Trained) -> int:
    client = mlflow_client(trained.settings)
    experiment = client.get_experiment_by_name(registry.REGISTRY_EXPERIMENT)
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


def test_register_policy_records_lineage_files_and_an_onnx_flavor(
    trained: Trained, tmp_path: Path
) -> None:
    registered = register_policy(
        trained.policy,
        "pendulum-ppo",
        package=trained.package,
        settings=trained.settings,
        aliases=("staging",),
    )
    assert (registered.uri, registered.backend) == ("models:/pendulum-ppo/1", "mlflow")
    resolved = resolve_model("models:/pendulum-ppo/1", settings=trained.settings)
    tags = resolved.tags
    # The training run comes from the card (its checkpoint was runs:/<id>/checkpoints).
    assert trained.card.source.checkpoint.startswith(f"runs:/{trained.run_id}/")
    assert tags["physai.run_id"] == trained.run_id
    assert tags["physai.extra.training_run"] == f"runs:/{trained.run_id}"
    assert tags["physai.task"] == "InvertedPendulum"
    card_sha = hashlib.sha256((trained.policy / "policy.json").read_bytes()).hexdigest()
    assert tags["physai.extra.policy.sha256"] == card_sha
    for fmt, parity in trained.card.parity.items():
        assert float(tags[f"physai.extra.parity.{fmt}.max_abs_error"]) == parity.max_abs_error
        assert float(tags[f"physai.extra.parity.{fmt}.tolerance"]) == parity.tolerance
    assert tags["physai.extra.package.manifest_digest"] == trained.package.manifest_digest
    assert tags["physai.extra.package.layer_digest"] == trained.package.layer_digest
    assert tags["physai.extra.package.ref"] == "policies/pendulum:1.0.0"
    alias = resolve_model("models:/pendulum-ppo@staging", settings=trained.settings)
    assert alias.version == 1

    # lineage.json beside exactly the card and the files it lists, each verified on download.
    local = download_model("models:/pendulum-ppo/1", tmp_path / "dl", settings=trained.settings)
    assert {p.name for p in local.iterdir()} == POLICY_FILES | {LINEAGE_FILE}
    lineage = json.loads((local / LINEAGE_FILE).read_text())
    assert set(lineage["files"]) == POLICY_FILES
    assert lineage["run_id"] == trained.run_id
    assert lineage["extra"]["package.manifest_digest"] == trained.package.manifest_digest
    assert (
        lineage["extra"]["parity.onnx.max_abs_error"] == trained.card.parity["onnx"].max_abs_error
    )

    # The ONNX file as MLflow's onnx flavor: pyfunc serves what onnxruntime computes.
    import mlflow.artifacts
    import mlflow.pyfunc

    flavor = mlflow.artifacts.download_artifacts(
        artifact_uri=tags[ONNX_FLAVOR_TAG],
        dst_path=str(tmp_path / "flavor"),
        tracking_uri=tracking_uri(trained.settings),
    )
    assert tags[ONNX_FLAVOR_TAG] == f"runs:/{registered.run_id}/onnx"
    model = mlflow.pyfunc.load_model(flavor)
    assert model.metadata.signature.inputs.input_names() == ["obs"]
    obs = np.random.default_rng(0).normal(size=(3, trained.card.inputs[0].shape[1]))
    obs = obs.astype(np.float32)
    expected = ort.InferenceSession(str(trained.policy / "policy.onnx")).run(None, {"obs": obs})
    served = model.predict({"obs": obs})
    np.testing.assert_allclose(served["actions"], expected[0], rtol=0, atol=1e-6)


def test_register_cli_reads_the_package_folder_and_tar(trained: Trained, tmp_path: Path) -> None:
    tar = package_policy(
        trained.policy, tmp_path / "p.tar", name="policies/pendulum", version="1.0.0", tar=True
    )
    ignored = {"path", "tar"}
    for written in (trained.package, tar):
        read = read_package(written.path)
        assert read.tar == written.tar
        assert {k: v for k, v in read.to_dict().items() if k not in ignored} == {
            k: v for k, v in written.to_dict().items() if k not in ignored
        }
    result = cli(
        trained,
        "register",
        str(trained.policy),
        "--name",
        "pendulum-cli",
        "--package",
        str(tmp_path / "p.tar"),
        "--alias",
        "candidate",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["uri"] == "models:/pendulum-cli/1"
    assert summary["lineage"]["extra"]["package.manifest_digest"] == tar.manifest_digest
    resolved = resolve_model("models:/pendulum-cli@candidate", settings=trained.settings)
    assert resolved.tags["physai.extra.package.layer_digest"] == tar.layer_digest


def test_bad_input_is_one_line_exit_2_and_registers_nothing(
    trained: Trained, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(trained.policy, tampered)
    with (tampered / "policy.onnx").open("ab") as f:
        f.write(b"\0")
    onnx_only = tmp_path / "onnx-only"  # the same policy, less its TorchScript file
    shutil.copytree(trained.policy, onnx_only)
    card = trained.card.model_copy(
        update={
            "files": {"onnx": trained.card.files["onnx"]},
            "parity": {"onnx": trained.card.parity["onnx"]},
        }
    )
    (onnx_only / "policy.json").write_text(card.to_json())
    before = registration_runs(trained)
    cases = [
        ([str(tampered), "--name", "never"], "does not match the sha256"),
        ([str(tmp_path / "nowhere"), "--name", "never"], "does not exist"),
        ([str(trained.policy), "--name", "bad name!"], "invalid model name"),
        ([str(trained.policy), "--name", "never", "--alias", "latest"], "reserved"),
        ([str(trained.policy), "--name", "never", "--package", str(tmp_path)], "not a physai"),
        ([str(onnx_only), "--name", "never", "--package", trained.package.path], "another policy"),
        ([str(trained.policy), "--name", "never", "--training-run", "runs:/"], "training run"),
    ]
    for args, message in cases:
        result = cli(trained, "register", *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert registration_runs(trained) == before
    with pytest.raises(NotFoundError):
        resolve_model("models:/never/1", settings=trained.settings)
    with pytest.raises(UserError, match="does not match"):
        register_policy(tampered, "never", settings=trained.settings)


def test_a_published_dataset_is_recorded_with_its_digest(trained: Trained, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    with publish(str(dataset)) as staging:
        staging.write_bytes("meta/info.json", b'{"fps": 25}')
    digest = published_info(str(dataset))["manifest_sha256"]  # type: ignore[index]
    policy = tmp_path / "policy"
    shutil.copytree(trained.policy, policy)
    source = trained.card.source.model_copy(update={"dataset": str(dataset)})
    (policy / "policy.json").write_text(
        trained.card.model_copy(update={"source": source}).to_json()
    )
    registered = register_policy(
        policy, "pendulum-data", settings=trained.settings, onnx_flavor=False
    )
    tags = resolve_model(registered.uri, settings=trained.settings).tags
    assert (tags["physai.dataset.0.uri"], tags["physai.dataset.0.sha256"]) == (str(dataset), digest)
    assert ONNX_FLAVOR_TAG not in tags
    with pytest.raises(UserError, match="names no dataset"):
        register_policy(trained.policy, "never", settings=trained.settings, dataset_sha256="0" * 64)


def test_azureml_model_is_validated_offline_and_carries_the_lineage(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml import load_model

    entity = build_azureml_policy_model(
        trained.policy,
        "pendulum-ppo",
        staging_dir=tmp_path,
        package=trained.package.path,
        version=3,
        settings=trained.settings,
    )
    assert (entity.type, entity.version) == ("custom_model", "3")
    tags = entity.tags or {}
    assert tags["physai.extra.package.manifest_digest"] == trained.package.manifest_digest
    assert tags["physai.run_id"] == trained.run_id
    staged = Path(str(entity.path))
    assert {p.name for p in staged.iterdir()} == POLICY_FILES | {LINEAGE_FILE}
    assert json.loads((staged / LINEAGE_FILE).read_text())["extra"]["policy.name"] == "pendulum"
    entity.dump(tmp_path / "model.yml")
    loaded = load_model(tmp_path / "model.yml")
    assert (loaded.name, loaded.version, loaded.tags) == ("pendulum-ppo", "3", entity.tags)

    # The azure profile registers through core's AzureML path (its client stands in for the
    # workspace, which cannot be reached from here); no MLflow flavor is attempted there.
    sent: list[Any] = []

    class Models:
        def create_or_update(self, model: Any) -> Any:
            sent.append(json.loads((Path(str(model.path)) / LINEAGE_FILE).read_text()))
            model.version = "7"
            return model

    class Client:
        models = Models()

    monkeypatch.setattr(registry, "azureml_ml_client", lambda settings: Client())
    azure = Settings(profile="azure", home=tmp_path / ".physai")
    registered = register_policy(
        trained.policy, "pendulum-ppo", package=trained.package, settings=azure
    )
    assert (registered.backend, registered.version) == ("azureml", 7)
    assert sent[0]["extra"]["package.layer_digest"] == trained.package.layer_digest
    assert sent[0]["run_id"] == trained.run_id
    assert not (tmp_path / ".physai" / "mlflow.db").exists()
