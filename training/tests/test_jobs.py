"""Training commands as cloud jobs: AzureML and OSMO renderings validated offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.core.jobs.backends import render_text
from physai.core.jobs.osmo_schema import WorkflowFile
from physai.core.settings import Settings
from physai.training.jobs import training_job

load_job = pytest.importorskip("azure.ai.ml").load_job
IMAGE = "example.azurecr.io/physai-train:0.1"
IL = ["--policy", "act", "--dataset", "az://datasets/pick/v3", "--output", "az://runs/act",
      "--steps", "20000"]  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "state",
        azure_storage_account="physaidata",
        azureml_compute="gpu-a100",
        osmo_pool="h100",
    )


def azureml_job(spec: object, settings: Settings, tmp_path: Path) -> object:
    path = tmp_path / "job.yaml"
    path.write_text(render_text(spec, "azureml", settings))  # type: ignore[arg-type]
    job = load_job(path)
    assert job._validate().passed
    return job


def test_single_gpu_rl_job(settings: Settings, tmp_path: Path) -> None:
    spec = training_job(
        "rl",
        ["--library", "rsl_rl", "--checkpoint-url", "az://runs/ppo", "--iterations", "500"],
        image=IMAGE,
        gpus=1,
    )
    assert spec.command[:3] == ["physai", "training", "rl"]
    job: object = azureml_job(spec, settings, tmp_path)
    assert "--checkpoint-url ${{outputs.checkpoints}}" in job.command  # type: ignore[attr-defined]
    workflow = WorkflowFile.model_validate(yaml.safe_load(render_text(spec, "osmo", settings)))
    assert workflow.workflow.resources  # the GPU request reached the workflow


def test_multi_gpu_il_job_uses_accelerate(settings: Settings, tmp_path: Path) -> None:
    spec = training_job("il", IL, image=IMAGE, gpus=4)
    assert spec.command[:6] == ["accelerate", "launch", "--multi_gpu", "--num_processes", "4", "-m"]
    assert spec.inputs["dataset"].uri == "az://datasets/pick/v3"
    assert spec.outputs["run"].mode == "upload"
    job = azureml_job(spec, settings, tmp_path)
    command = job.command  # type: ignore[attr-defined]
    assert "-m physai.training il" in command and "--dataset ${{inputs.dataset}}" in command


def test_multi_node_il_job_is_distributed(settings: Settings, tmp_path: Path) -> None:
    spec = training_job("il", IL, image=IMAGE, gpus=2, nodes=3)
    assert spec.resources.world_size == 6
    job = azureml_job(spec, settings, tmp_path)
    assert job.distribution.process_count_per_instance == 2  # type: ignore[attr-defined]
    assert job.resources.instance_count == 3  # type: ignore[attr-defined]
    document = yaml.safe_load(render_text(spec, "osmo", settings))
    WorkflowFile.model_validate(document)
    tasks = document["workflow"]["groups"][0]["tasks"]
    assert len(tasks) == 3 and tasks[0]["lead"] is True
    assert "--nnodes=3" in tasks[0]["args"] and "physai.training" in tasks[0]["args"]


def test_bad_job_requests_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="--image"):
        training_job("il", IL, image=None)
    with pytest.raises(UserError, match="--output"):
        training_job("il", IL[:4], image=IMAGE)
    with pytest.raises(UserError, match="needs GPUs"):
        training_job("rl", [], image=IMAGE, nodes=2)


def test_cli_dry_run_prints_the_job_and_runs_nothing(tmp_path: Path) -> None:
    env = {"PHYSAI_HOME": str(tmp_path / "home"), "PHYSAI_AZURE_STORAGE_ACCOUNT": "physaidata"}
    result = CliRunner().invoke(
        app,
        ["training", "il", *IL, "--backend", "osmo", "--image", IMAGE, "--gpus", "1",
         "--dry-run"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.output)
    WorkflowFile.model_validate(document)
    args = document["workflow"]["tasks"][0]["args"]
    assert args[:2] == ["training", "il"] and "--steps" in args and "--backend" not in args
    assert not (tmp_path / "home" / "runs").exists()
    missing = CliRunner().invoke(
        app, ["training", "rl", "--backend", "azureml", "--dry-run"], env=env
    )
    assert missing.exit_code == 2 and "--image" in missing.output
