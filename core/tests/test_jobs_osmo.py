"""The osmo backend: renderings validated against the typed OSMO workflow schema."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from physai.core.errors import ConfigError, JobError, MissingDependencyError, UserError
from physai.core.jobs import JobDag, JobSpec, osmo
from physai.core.jobs.osmo_schema import WorkflowFile, k8s_name
from physai.core.settings import Settings

IMAGE = "nvcr.io/nvidia/pytorch:25.01-py3"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "state", azure_storage_account="physaidata", osmo_pool="gpu")


def _dag(**train: Any) -> JobDag:
    return JobDag.model_validate(
        {
            "name": "pick-pipeline",
            "jobs": [
                {
                    "name": "prep",
                    "image": "python:3.12",
                    "command": ["python", "prep.py", "${{inputs.raw}}", "${{outputs.out}}"],
                    "inputs": {"raw": "https://physaidata.blob.core.windows.net/raw/pick"},
                    "outputs": {"out": "az://datasets/pick/v4"},
                    "resources": {"cpu": 4, "memory": "16Gi"},
                },
                {"name": "notify", "image": "python:3.12", "command": ["echo", "start"]},
                {
                    "name": "train",
                    "image": IMAGE,
                    "after": ["notify"],
                    "command": [
                        "python",
                        "train.py",
                        "--data=${{inputs.data}}",
                        "--base",
                        "${{inputs.base}}",
                        "--cfg",
                        "${{inputs.cfg}}",
                        "--out",
                        "${{outputs.model}}",
                    ],
                    "inputs": {
                        "data": "az://datasets/pick/v4",
                        "base": "hf://lerobot/pi0@0123456789abcdef",
                        "cfg": {"uri": "az://configs/pick/train.yaml", "type": "file"},
                    },
                    "outputs": {"model": "az://models/pick"},
                    "resources": {"cpu": 16, "gpu": 8, "memory": "200Gi", "storage": "500Gi"},
                    "env": {"EPOCHS": "10"},
                    "timeout_s": 7200,
                    **train,
                },
            ],
        }
    )


def _round_trip(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    WorkflowFile.model_validate(doc)  # every rendering is valid against the schema model
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc
    return doc  # type: ignore[no-any-return]


def test_dag_renders_tasks_with_tokens_urls_and_dependencies(settings: Settings) -> None:
    doc = _round_trip(osmo.render_yaml(_dag(), settings))
    wf = doc["workflow"]
    assert (wf["name"], wf["pool"]) == ("pick-pipeline", "gpu")
    assert wf["timeout"] == {"exec_timeout": "7200s"}
    assert wf["resources"]["train"] == {"cpu": 16, "gpu": 8, "memory": "200Gi", "storage": "500Gi"}
    assert "groups" not in wf
    prep, notify, train = wf["tasks"]
    assert [t["name"] for t in wf["tasks"]] == ["prep", "notify", "train"]  # upstream first
    assert prep["inputs"] == [{"url": "azure://physaidata/raw/pick"}]
    assert prep["outputs"] == [{"url": "azure://physaidata/datasets/pick/v4"}]
    assert prep["args"] == ["prep.py", "{{input:0}}", "{{output}}"]
    assert train["command"] == ["python"]
    assert train["inputs"] == [
        {"task": "prep"},  # data edge: the producer's output folder
        {"url": "azure://physaidata/configs/pick/train.yaml"},
        {"task": "notify"},  # `after` edge
    ]
    assert train["args"] == [
        "train.py",
        "--data={{input:0}}",
        "--base",
        "hf://lerobot/pi0@0123456789abcdef",
        "--cfg",
        "{{input:1}}/train.yaml",
        "--out",
        "{{output}}",
    ]
    assert train["environment"] == {"EPOCHS": "10", "PHYSAI_JOB_NAME": "train"}
    assert train["resource"] == "train" and notify["resource"] == "notify"
    assert train["image"] == "{{ image_2 }}" and prep["image"] == "{{ image_1 }}"
    assert doc["default-values"] == {"image_1": "python:3.12", "image_2": IMAGE}


def test_multi_node_job_becomes_lead_group_with_torchrun(settings: Settings) -> None:
    dag = _dag(resources={"gpu": 8, "nodes": 3, "processes_per_node": 8})
    doc = _round_trip(osmo.render_yaml(dag, settings))
    wf = doc["workflow"]
    assert "tasks" not in wf  # OSMO does not mix tasks and groups
    assert [g["name"] for g in wf["groups"]] == ["prep", "notify", "train"]
    train = wf["groups"][2]["tasks"]
    assert [t["name"] for t in train] == ["train-0", "train-1", "train-2"]
    assert [t.get("lead", False) for t in train] == [True, False, False]
    assert "outputs" in train[0] and "outputs" not in train[1]  # only the lead uploads
    assert train[2]["command"] == ["torchrun"]
    assert train[2]["args"][:7] == [
        "--nnodes=3",
        "--nproc-per-node=8",
        "--node-rank=2",
        "--master-addr={{host:train-0}}",
        "--master-port=29500",
        "--no-python",
        "python",
    ]
    assert train[1]["inputs"][0] == {"task": "prep-0"}
    assert osmo.lead_task(dag, "prep") == "prep-0"


def test_single_job_with_several_processes_uses_standalone_torchrun(settings: Settings) -> None:
    spec = _dag(resources={"gpu": 4, "processes_per_node": 4}).job("train")
    doc = _round_trip(osmo.render_yaml(spec.model_copy(update={"after": []}), settings))
    (task,) = doc["workflow"]["tasks"]
    assert task["command"] == ["torchrun"]
    assert task["args"][:3] == ["--standalone", "--nproc-per-node=4", "--no-python"]
    # a lone job cannot read another job's output: data is then a plain URL input
    assert task["inputs"][0] == {"url": "azure://physaidata/datasets/pick/v4"}


def test_several_outputs_share_the_output_folder(settings: Settings) -> None:
    spec = JobSpec.model_validate(
        {
            "name": "ev",
            "image": IMAGE,
            "command": ["ev", "${{outputs.report}}", "${{outputs.videos}}"],
            "outputs": {
                "report": {"uri": "az://evals/run7/report.json", "type": "file"},
                "videos": "az://evals/run7/videos",
            },
        }
    )
    (task,) = _round_trip(osmo.render_yaml(spec, settings))["workflow"]["tasks"]
    assert task["args"] == ["{{output}}/report.json", "{{output}}/videos"]
    assert task["outputs"] == [{"url": "azure://physaidata/evals/run7"}]
    apart = spec.model_copy(
        update={
            "outputs": {
                **spec.outputs,
                "videos": spec.outputs["videos"].model_copy(update={"uri": "az://other/videos"}),
            }
        }
    )
    with pytest.raises(UserError, match="several outputs must share one parent URI"):
        osmo.render_yaml(apart, settings)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"data": "./local/data"}, "upload local data first"),
        ({"data": "azureml:pick:3"}, "cannot be used on OSMO"),
        ({"data": "https://physaidata.blob.core.windows.net/c0t/x?sv=1&sig=s3cr3t"}, "SAS"),
        ({"data": "http://127.0.0.1:10000/devstoreaccount1/c0t/x"}, "emulator"),
    ],
)
def test_unreachable_inputs_are_user_errors(
    settings: Settings, inputs: dict[str, str], message: str
) -> None:
    spec = JobSpec.model_validate(
        {"name": "j", "image": IMAGE, "command": ["x", "${{inputs.data}}"], "inputs": inputs}
    )
    with pytest.raises(UserError, match=message) as info:
        osmo.render_yaml(spec, settings)
    assert "s3cr3t" not in str(info.value)


def test_az_uri_needs_the_storage_account(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="azure_storage_account"):
        osmo.render_yaml(_dag(), settings.model_copy(update={"azure_storage_account": None}))


def test_names_that_collide_in_kubernetes_are_rejected(settings: Settings) -> None:
    dag = JobDag.model_validate(
        {
            "name": "d",
            "jobs": [
                {"name": "a-b", "command": ["x"], "image": IMAGE},
                {"name": "a_b", "command": ["x"], "image": IMAGE},
            ],
        }
    )
    assert k8s_name("A_b") == "a-b"
    with pytest.raises(UserError, match="names 'a-b' and 'a_b' collide"):
        osmo.render_yaml(dag, settings)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda wf: wf["tasks"][2]["inputs"].append({"task": "ghost"}), "unknown task 'ghost'"),
        (lambda wf: wf["tasks"].reverse(), "whose group must come earlier"),
        (lambda wf: wf["tasks"][1].update(name="prep"), "collide"),
        (lambda wf: wf["tasks"][0].update(resource="huge"), "undefined resource 'huge'"),
        (lambda wf: wf["tasks"][0]["args"].append("{{input:5}}"), r"has 1 input\(s\)"),
        (lambda wf: wf["tasks"][0]["args"].append("{{host:train}}"), "not in its group"),
        (lambda wf: wf["tasks"][0].update(image="{{ nope }}"), "no default-values entry"),
        (lambda wf: wf.update(timeout={"exec_timeout": "10h5m"}), "exec_timeout"),
        (lambda wf: wf["tasks"][0]["outputs"].append({"url": "ftp://x"}), "must start with"),
        (lambda wf: wf["tasks"][0]["outputs"].append({"url": "azure://UPPER/c"}), "ACCOUNT"),
        (lambda wf: wf["tasks"][0].update(name="9x"), "name"),
        (lambda wf: wf["tasks"][0].update(shell="bash"), "Extra inputs"),
        (lambda wf: wf["tasks"][0].update(files=[{"path": "/osmo/x", "contents": "y"}]), "/osmo"),
        (lambda wf: wf.update(groups=[{"name": "g", "tasks": [wf["tasks"][0]]}]), "not both"),
        (lambda wf: wf.update(tasks=[]), "at least one task"),
    ],
)
def test_schema_rejects_what_osmo_rejects(settings: Settings, mutate: Any, message: str) -> None:
    doc = osmo.render_workflow(_dag(), settings)
    mutate(doc["workflow"])
    with pytest.raises(UserError, match=message):
        osmo.validate_workflow(doc)


def test_group_needs_exactly_one_lead(settings: Settings) -> None:
    doc = osmo.render_workflow(_dag(resources={"nodes": 2}), settings)
    doc["workflow"]["groups"][2]["tasks"][1]["lead"] = True
    with pytest.raises(UserError, match="has 2 lead task"):
        osmo.validate_workflow(doc)


def test_schema_accepts_documented_examples() -> None:
    """Examples from the OSMO user guide (specification, templates, multi-node training)."""
    examples = [
        """
workflow:
  name: "input-example"
  tasks:
  - name: task1
    image: ubuntu
    command: [echo]
    args: ["Hello!"]
    inputs:
    - url: s3://bucket/path
      regex: .*\\.txt$
    outputs:
    - url: s3://bucket/path
""",
        """
workflow:
  name: {{ workflow_name }}
  tasks:
  - name: ros
    environment:
      DATA: "{{input:0}}"
      LOG: "{{output}}/kpi.json"
    image: "nvcr.io/nvidia/isaac-ros/aarch64-build:latest"
    command: ["/run.sh"]
    args: ["{{ task_arg }}"]
    inputs:
    - url: {{ input_url }}
  resources:
    default:
      cpu: 7
      gpu: 1
      memory: 28Gi
      storage: 1Gi
      platform: agx-orin-jp6
default-values:
  workflow_name: isaac_ros_bi3d_stereo_node_test
  input_url: s3://my-bucket/isaac-ros-benchmark-bi3d/
  task_arg: isaac_ros_bi3d_test.py
""",
        """
workflow:
  name: train-multi-gpu
  resources:
    default: {gpu: 8, cpu: 16, memory: 30Gi, storage: 30Gi}
  groups:
  - name: training
    tasks:
    - name: master
      image: nvcr.io/nvidia/pytorch:24.03-py3
      lead: true
      command: [bash]
      args: [/tmp/master.sh]
      files:
      - path: /tmp/master.sh
        contents: |
          torchrun --master_addr {{host:master}} --snapshot_path {{output}}/models/s.pth
      - path: /tmp/train.py
        localpath: train.py
    - name: worker
      image: nvcr.io/nvidia/pytorch:24.03-py3
      command: [bash]
      args: [/tmp/worker.sh]
      files:
      - path: /tmp/worker.sh
        contents: torchrun --master_addr {{host:master}}
""",
    ]
    for text in examples:
        # Jinja-style `{{ var }}` outside quotes is not YAML: quote it as OSMO's renderer would.
        doc = yaml.safe_load(
            text.replace("{{ workflow_name }}", "'{{ workflow_name }}'").replace(
                "{{ input_url }}", "'{{ input_url }}'"
            )
        )
        osmo.validate_workflow(doc)


def test_submit_without_cli_is_a_missing_dependency(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingDependencyError, match=r"OSMO CLI.*osmo login"):
        osmo.submit(_dag(), settings)


def _fake_osmo(folder: Path, body: str) -> None:
    """A stand-in for the OSMO client on PATH (the real service is not reachable here)."""
    folder.mkdir()
    exe = folder / "osmo"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_submit_calls_the_osmo_cli(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv_file = tmp_path / "argv"
    _fake_osmo(
        tmp_path / "bin",
        f'echo "$@" > {argv_file}\necho "Workflow submit successful."\n'
        'echo "Workflow ID        - pick-pipeline-1"',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    answer = osmo.submit(_dag(), settings, pool="h100")
    assert answer.workflow_id == "pick-pipeline-1"
    args = argv_file.read_text().split()
    assert args[:2] == ["workflow", "submit"] and args[3:] == ["--pool", "h100"]
    assert Path(args[2]) == answer.spec_path
    assert WorkflowFile.model_validate(yaml.safe_load(answer.spec_path.read_text()))


def test_submit_failure_is_a_job_error(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_osmo(
        tmp_path / "bin", 'echo "Error: not logged in (token=AccountKey=abcd1234)" >&2\nexit 3'
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(JobError, match=r"exit code 3.*not logged in") as info:
        osmo.submit(_dag(), settings)
    assert "abcd1234" not in str(info.value)
