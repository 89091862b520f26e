"""`physai training package | pipeline`: the local pipeline run for real (2 PPO iterations ->
export -> package -> MLflow registry), and its AzureML / OSMO renderings validated offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.jobs.osmo_schema import WorkflowFile
from physai.core.registry import download_model, resolve_model
from physai.core.settings import Settings
from physai.core.tracking import mlflow_client
from physai.training.cli_release import PipelinePlan, pipeline_dag
from physai.training.register import read_package
from physai.training.runtime import load_policy

load_job = pytest.importorskip("azure.ai.ml").load_job
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:marshmallow.*"),
]
TINY = ["--library", "skrl", "--task", "InvertedPendulum", "--iterations", "2",
        "--num-envs", "2", "--eval-episodes", "0"]  # fmt: skip
IMAGE = "example.azurecr.io/physai-train:0.1"
AZURE = {
    "PHYSAI_PROFILE": "azure",
    "PHYSAI_AZURE_STORAGE_ACCOUNT": "physaidata",
    "PHYSAI_AZUREML_COMPUTE": "gpu-a100",
    "PHYSAI_AZURE_SUBSCRIPTION_ID": "sub-1",
    "PHYSAI_AZURE_RESOURCE_GROUP": "rg-robots",
    "PHYSAI_AZURE_WORKSPACE_NAME": "ws-robots",
    "PHYSAI_OSMO_POOL": "h100",
}


def physai(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, ["training", *args], env={"PHYSAI_PROFILE": "local", **env})


class Pipeline:
    """One local `physai training pipeline` run."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / ".physai"
        self.env = {"PHYSAI_HOME": str(self.home)}
        self.root = tmp / "release"
        self.result = physai(
            self.env, "pipeline", "--name", "pendulum-ppo", "--version", "0.1.0", *TINY,
            "--alias", "candidate", "--output", str(self.root), "--json",
        )  # fmt: skip
        assert self.result.exit_code == 0, self.result.output
        self.summary = json.loads(self.result.stdout)
        self.settings = Settings(home=self.home)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("pipeline"))


def test_local_pipeline_trains_exports_packages_and_registers(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    summary = pipeline.summary
    assert json.loads((pipeline.root / "pipeline.json").read_text()) == summary
    run_id = summary["train"]["run_id"]
    run = mlflow_client(pipeline.settings).get_run(run_id)  # the training run is real
    assert run.data.tags["physai.rl.library"] == "skrl"
    assert summary["export"]["output"] == str(pipeline.root / "policy")
    package = read_package(pipeline.root / "package")
    assert (package.name, package.tag) == ("policies/pendulum-ppo", "0.1.0")
    assert package.manifest_digest == summary["package"]["manifest_digest"]

    resolved = resolve_model("models:/pendulum-ppo/1", settings=pipeline.settings)
    assert resolved.aliases == ("candidate",)
    tags = resolved.tags
    assert tags["physai.run_id"] == run_id
    assert tags["physai.extra.training_run"] == f"runs:/{run_id}"
    assert tags["physai.extra.package.manifest_digest"] == package.manifest_digest
    assert tags["physai.extra.package.layer_digest"] == package.layer_digest
    assert float(tags["physai.extra.parity.onnx.max_abs_error"]) <= 1e-4

    local = download_model(
        "models:/pendulum-ppo@candidate", tmp_path / "m", settings=pipeline.settings
    )
    policy = load_policy(local, device="cpu", warmup=0)
    obs_size, action_size = policy.card.inputs[0].shape[1], policy.card.outputs[0].shape[1]
    actions = policy(np.zeros((1, obs_size), dtype=np.float32))
    assert np.asarray(actions).shape == (1, action_size)


def test_package_command_writes_a_folder_or_a_tar(pipeline: Pipeline, tmp_path: Path) -> None:
    policy = str(pipeline.root / "policy")
    common = ["package", policy, "--name", "policies/pendulum", "--version", "2.0.0"]
    folder = physai(pipeline.env, *common, "--output", str(tmp_path / "oci"), "--json")
    assert folder.exit_code == 0, folder.output
    written = json.loads(folder.stdout)
    assert read_package(tmp_path / "oci").manifest_digest == written["manifest_digest"]
    tar = physai(pipeline.env, *common, "--tar", "--output", str(tmp_path / "p.tar"))
    assert tar.exit_code == 0, tar.output
    assert written["manifest_digest"] in tar.stdout  # the same inputs, the same image
    again = physai(pipeline.env, *common, "--output", str(tmp_path / "oci"))
    assert again.exit_code == 2 and "exists" in again.stderr
    bad = physai(pipeline.env, "package", policy, "--name", "Policies/X", "--version", "1",
                 "--output", str(tmp_path / "bad"))  # fmt: skip
    assert bad.exit_code == 2 and "not a valid repository name" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_azureml_dry_run_is_a_validated_pipeline_of_four_wired_jobs(tmp_path: Path) -> None:
    env = {"PHYSAI_HOME": str(tmp_path / ".physai"), **AZURE}
    result = physai(
        env, "pipeline", "--name", "pendulum-ppo", *TINY, "--output", "az://runs/pendulum",
        "--backend", "azureml", "--image", IMAGE, "--gpus", "1", "--alias", "candidate",
        "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (tmp_path / "pipeline.yaml").write_text(result.stdout)
    job = load_job(tmp_path / "pipeline.yaml")
    assert type(job).__name__ == "PipelineJob" and job._validate().passed
    assert sorted(job.jobs) == ["export", "package", "register", "train"]
    bound = {
        (node, name): str(value.path)
        for node, step in job.jobs.items()
        for name, value in step.inputs.items()
    }
    assert bound == {
        ("export", "checkpoints"): "${{parent.jobs.train.outputs.checkpoints}}",
        ("package", "policy"): "${{parent.jobs.export.outputs.policy}}",
        ("register", "policy"): "${{parent.jobs.export.outputs.policy}}",
        ("register", "package"): "${{parent.jobs.package.outputs.package}}",
    }
    train, register = job.jobs["train"], job.jobs["register"]
    assert "--checkpoint-url ${{outputs.checkpoints}}" in train.command
    assert "--iterations 2" in train.command
    assert register.command.startswith("physai training register ${{inputs.policy}}")
    assert (
        "--package ${{inputs.package}}" in register.command
        and "--alias candidate" in register.command
    )
    assert register.environment_variables["PHYSAI_PROFILE"] == "azure"
    assert register.environment_variables["PHYSAI_AZURE_WORKSPACE_NAME"] == "ws-robots"
    assert not (tmp_path / ".physai").exists()  # nothing ran, nothing was written


def test_osmo_dry_run_is_a_valid_workflow_with_dependencies(tmp_path: Path) -> None:
    env = {"PHYSAI_HOME": str(tmp_path / ".physai"), **AZURE}
    result = physai(
        env, "pipeline", "--name", "pendulum-ppo", *TINY, "--output", "az://runs/pendulum",
        "--backend", "osmo", "--image", IMAGE, "--tar", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    WorkflowFile.model_validate(document)
    tasks = {t["name"]: t for t in document["workflow"]["tasks"]}
    assert list(tasks) == ["train", "export", "package", "register"]
    needs = {name: [i.get("task") for i in t.get("inputs", [])] for name, t in tasks.items()}
    assert needs == {
        "train": [],
        "export": ["train"],
        "package": ["export"],
        "register": ["export", "package"],
    }
    assert tasks["train"]["outputs"] == [{"url": "azure://physaidata/runs/pendulum/checkpoints"}]
    assert "{{input:1}}/pendulum-ppo.tar" in tasks["register"]["args"]
    assert "--tar" in tasks["package"]["args"]
    assert not (tmp_path / ".physai").exists()


def test_pipeline_dag_in_python_matches_the_plan() -> None:
    settings = Settings(**{k.removeprefix("PHYSAI_").lower(): v for k, v in AZURE.items()})
    plan = PipelinePlan(
        name="pendulum-ppo", version="1.0.0", repository="policies/p", root="az://runs/p"
    )
    dag = pipeline_dag(plan, settings, image=IMAGE)
    assert dag.edges() == [
        ("train", "export"),
        ("export", "package"),
        ("export", "register"),
        ("package", "register"),
    ]


def test_bad_pipeline_input_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / ".physai"
    local = {"PHYSAI_HOME": str(home)}
    azure = {**local, **AZURE}
    cloud = ["--output", "az://runs/p", "--backend", "azureml", "--dry-run"]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("x")
    cases = [
        (local, ["--name", "bad name!"], "invalid model name"),
        (local, ["--name", "ok", "--alias", "v1"], "reserved"),
        (local, ["--name", "ok", "--task", "NoSuchTask"], "NoSuchTask"),
        (local, ["--name", "ok", "--format", "onnx,jpeg"], "unknown export format"),
        (local, ["--name", "ok", "--repository", "Bad/Repo"], "repository name"),
        (local, ["--name", "ok", "--output", str(occupied)], "not empty"),
        (local, ["--name", "ok", "--output", "az://runs/p"], "local folder"),
        (azure, ["--name", "ok", "--backend", "osmo", "--image", IMAGE], "needs --output"),
        (azure, ["--name", "ok", *cloud], "--image"),
        (local, ["--name", "ok", *cloud, "--image", IMAGE], "shared registry"),
        (local, ["--name", "ok", "--backend", "slurm"], "unknown backend"),
    ]
    for env, args, message in cases:
        result = physai(env, "pipeline", *TINY, *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, lines)
    assert not home.exists()  # no run, no registry, no checkpoints
    assert [p.name for p in occupied.iterdir()] == ["x"]


def test_the_release_module_imports_first_without_a_cycle() -> None:
    """Importing cli_release before the CLI (as the example does) still mounts every command."""
    code = (
        "import json\n"
        "import physai.training.cli_release\n"
        "from physai.core.cli import app\n"
        "from typer.main import get_command\n"
        "group = get_command(app).commands['training']\n"
        "print(json.dumps(sorted(group.commands)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "unavailable" not in done.stderr
    assert {"package", "register", "pipeline"} <= set(json.loads(done.stdout))
