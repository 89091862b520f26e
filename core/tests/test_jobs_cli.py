"""`physai jobs run` and `physai jobs render`, through typer's CliRunner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from physai.core.jobs.cli import app
from physai.core.jobs.osmo_schema import WorkflowFile

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("PHYSAI_CONFIG", "PHYSAI_PROFILE", "PHYSAI_JOB_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PHYSAI_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("PHYSAI_AZURE_STORAGE_ACCOUNT", "physaidata")
    monkeypatch.setenv("PHYSAI_AZUREML_COMPUTE", "cpu-cluster")


def _spec(tmp_path: Path, code: str = "print('hi from the job')") -> Path:
    path = tmp_path / "hello.job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "hello",
                "image": "python:3.12-slim",
                "command": [sys.executable, "-c", code, "${{outputs.out}}"],
                "outputs": {"out": "az://results/hello"},
            }
        )
    )
    return path


def test_run_local(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(_spec(tmp_path)), "--run-id", "cli1"])
    assert result.exit_code == 0, result.output
    assert "hello: succeeded" in result.stdout
    summary = tmp_path / "state" / "jobs" / "cli1" / "summary.json"
    assert json.loads(summary.read_text())["status"] == "succeeded"
    assert "hi from the job" in (tmp_path / "state/jobs/cli1/hello/attempt-1.log").read_text()


def test_failing_job_exits_1_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(_spec(tmp_path, "import sys; sys.exit(4)"))])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run ")
    assert "exit code 4" in lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: Bad Name\ncommand: [x]\n", "job name 'Bad Name' is invalid"),
        ("name: ok\n", "command: Field required"),
        ("name: [unclosed\n", "not valid YAML"),
        (None, "does not exist"),
    ],
)
def test_bad_spec_exits_2_with_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    for argv in (["run", str(path)], ["render", str(path), "--backend", "osmo"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "state" / "jobs").exists()  # a bad spec writes nothing


def test_unknown_backend_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", str(_spec(tmp_path)), "--backend", "slurm"])
    assert result.exit_code == 2
    assert "unknown backend 'slurm'" in result.stderr


def test_render_osmo_prints_a_valid_workflow(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", str(_spec(tmp_path)), "--backend", "osmo"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    WorkflowFile.model_validate(doc)
    assert doc["workflow"]["tasks"][0]["outputs"] == [{"url": "azure://physaidata/results/hello"}]
    out = tmp_path / "wf.yaml"
    result = runner.invoke(app, ["render", str(_spec(tmp_path)), "-b", "osmo", "-o", str(out)])
    assert result.exit_code == 0 and yaml.safe_load(out.read_text()) == doc


def test_run_dry_run_azureml_prints_job_yaml(tmp_path: Path) -> None:
    load_job = pytest.importorskip("azure.ai.ml").load_job
    result = runner.invoke(app, ["run", str(_spec(tmp_path)), "--backend", "azureml", "--dry-run"])
    assert result.exit_code == 0, result.output
    (tmp_path / "job.yaml").write_text(result.stdout)
    job = load_job(tmp_path / "job.yaml")
    assert job.compute == "cpu-cluster"
    assert job.outputs["out"]._data.path == "https://physaidata.blob.core.windows.net/results/hello"
    assert not (tmp_path / "state" / "jobs").exists()  # a dry run runs nothing


def test_run_dry_run_local_prints_the_plan(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(_spec(tmp_path)), "--dry-run", "--run-id", "p"])
    assert result.exit_code == 0, result.output
    plan = yaml.safe_load(result.stdout)
    assert plan["jobs"][0]["argv"][-1] == str(tmp_path / "state/jobs/p/hello/outputs/out")


def test_submit_azureml_without_workspace_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(_spec(tmp_path)), "--backend", "azureml"])
    assert result.exit_code == 2
    assert "azure_subscription_id" in result.stderr


def test_help_has_examples() -> None:
    for argv in (["--help"], ["run", "--help"], ["render", "--help"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0
        assert "Example: physai jobs" in result.stdout
