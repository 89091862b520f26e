"""One spec, three renderings: the same JobSpec and DAG run locally, for AzureML and for OSMO."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from physai.core.jobs import JobDag, JobSpec, run_dag
from physai.core.jobs.backends import render_text
from physai.core.jobs.osmo_schema import WorkflowFile
from physai.core.settings import Settings

load_job = pytest.importorskip("azure.ai.ml").load_job
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")

PY = sys.executable
IMAGE = "python:3.12-slim"
PREP = "import pathlib, sys; pathlib.Path(sys.argv[1], 'rows.txt').write_text('1\\n2\\n3\\n')"
TRAIN = (
    "import pathlib, sys; rows = pathlib.Path(sys.argv[1], 'rows.txt').read_text().split();"
    "total = sum(map(int, rows));"
    "pathlib.Path(sys.argv[3], 'model.json').write_text(f'{total} {sys.argv[2]}')"
)
EVALUATE = (
    "import json, pathlib, sys; m = pathlib.Path(sys.argv[1], 'model.json').read_text();"
    "pathlib.Path(sys.argv[2]).write_text(json.dumps({'model': m}))"
)
BASE = "hf://lerobot/pi0@0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "state",
        azure_storage_account="physaidata",
        azureml_compute="gpu-a100",
        osmo_pool="h100",
    )


def _train() -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "train",
            "image": IMAGE,
            "command": [
                PY,
                "-c",
                TRAIN,
                "${{inputs.data}}",
                "${{inputs.base}}",
                "${{outputs.model}}",
            ],
            "inputs": {"data": "az://datasets/demo/v1", "base": BASE},
            "outputs": {"model": "az://models/demo"},
            "resources": {"cpu": 2, "memory": "4Gi", "gpu": 1},
            "env": {"SEED": "7"},
            "timeout_s": 600,
        }
    )


def _dag() -> JobDag:
    prep = {
        "name": "prep",
        "image": IMAGE,
        "command": [PY, "-c", PREP, "${{outputs.data}}"],
        "outputs": {"data": "az://datasets/demo/v1"},
    }
    evaluate = {
        "name": "evaluate",
        "image": IMAGE,
        "command": [PY, "-c", EVALUATE, "${{inputs.model}}", "${{outputs.report}}"],
        "inputs": {"model": "az://models/demo"},
        "outputs": {"report": {"uri": "az://reports/demo/report.json", "type": "file"}},
    }
    return JobDag.model_validate({"name": "demo", "jobs": [evaluate, _train(), prep]})


def test_one_job_three_renderings(settings: Settings, tmp_path: Path) -> None:
    spec = _train()
    local = yaml.safe_load(render_text(spec, "local", settings, run_id="r"))
    (planned,) = local["jobs"]
    run_dir = settings.state_dir / "jobs" / "r"
    assert planned["argv"][3:] == [
        "az://datasets/demo/v1",
        BASE,
        str(run_dir / "train/outputs/model"),
    ]

    aml_text = render_text(spec, "azureml", settings)
    (tmp_path / "job.yaml").write_text(aml_text)
    job = load_job(tmp_path / "job.yaml")
    assert job.command.endswith("${{inputs.data}} ${{inputs.base}} ${{outputs.model}}")
    assert job.compute == "gpu-a100"
    assert (
        job.inputs["data"]._data.path == "https://physaidata.blob.core.windows.net/datasets/demo/v1"
    )
    assert job.environment_variables["SEED"] == "7"

    osmo_doc = yaml.safe_load(render_text(spec, "osmo", settings))
    WorkflowFile.model_validate(osmo_doc)
    (task,) = osmo_doc["workflow"]["tasks"]
    assert task["command"] == [PY]
    assert task["args"][2:] == ["{{input:0}}", BASE, "{{output}}"]
    assert task["inputs"] == [{"url": "azure://physaidata/datasets/demo/v1"}]
    assert task["outputs"] == [{"url": "azure://physaidata/models/demo"}]
    assert osmo_doc["workflow"]["resources"]["train"] == {"cpu": 2, "gpu": 1, "memory": "4Gi"}
    assert task["environment"]["SEED"] == "7"


def _bound(node_input: Any) -> Any:
    data = node_input._data  # the SDK keeps a binding as a string or as an object with .path
    return data if isinstance(data, str) else data.path


def test_one_dag_three_renderings(settings: Settings, tmp_path: Path) -> None:
    dag = _dag()
    assert dag.topological_order() == ["prep", "train", "evaluate"]

    # local: it really runs, data flowing along the URI edges
    summary = run_dag(dag, settings, run_id="demo")
    report = json.loads(Path(summary.jobs["evaluate"].outputs["report"]).read_text())
    assert report == {"model": f"6 {BASE}"}

    # azureml: a pipeline the SDK validates, reloaded from its YAML
    (tmp_path / "pipeline.yaml").write_text(render_text(dag, "azureml", settings))
    pipeline = load_job(tmp_path / "pipeline.yaml")
    assert pipeline._validate().passed
    assert set(pipeline.jobs) == {"prep", "train", "evaluate"}
    assert _bound(pipeline.jobs["train"].inputs["data"]) == "${{parent.jobs.prep.outputs.data}}"
    assert (
        _bound(pipeline.jobs["evaluate"].inputs["model"]) == "${{parent.jobs.train.outputs.model}}"
    )
    report_out = pipeline.jobs["evaluate"].outputs["report"]._data
    assert (report_out.type, report_out.path) == (
        "uri_file",
        "https://physaidata.blob.core.windows.net/reports/demo/report.json",
    )

    # osmo: a workflow valid against the schema model, task inputs wired by name
    doc = yaml.safe_load(render_text(dag, "osmo", settings))
    wf = WorkflowFile.model_validate(doc).workflow
    assert [t.name for t in wf.tasks] == ["prep", "train", "evaluate"]
    prep, train, evaluate = doc["workflow"]["tasks"]
    assert train["inputs"] == [{"task": "prep"}]
    assert evaluate["inputs"] == [{"task": "train"}]
    assert evaluate["args"][2:] == ["{{input:0}}", "{{output}}/report.json"]
    assert evaluate["outputs"] == [{"url": "azure://physaidata/reports/demo"}]
    assert prep["outputs"] == [{"url": "azure://physaidata/datasets/demo/v1"}]
    assert doc["workflow"]["pool"] == "h100"
