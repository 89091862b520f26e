"""Fan-out of bag conversion: `--shard K/N`, a real local run of the shard DAG, and its AzureML
and OSMO renderings checked offline with azure-ai-ml and the OSMO schema model."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import ConfigError, UserError
from physai.core.jobs import JobDag, azureml, osmo
from physai.core.jobs.osmo_schema import WorkflowFile
from physai.core.settings import Settings
from physai.data_management.lerobot import LeRobotDatasetReader
from physai.data_pipeline.bag_writer import EpisodeBagWriter
from physai.data_pipeline.convert import convert_bags, parse_shard, select_shard
from physai.data_pipeline.fanout import (
    conversion_dag,
    default_shards_url,
    local_executable,
    render,
    run_local,
    submit,
)
from physai.data_pipeline.mapping import ConversionMapping

pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")
runner = CliRunner()

JOINTS = ["j0", "j1", "j2"]
T0 = 1_700_000_000 * 10**9
FPS = 10
BAGS = 4
IMAGE = "myacr.azurecr.io/physai:0.1"
MAPPING: dict[str, Any] = {
    "fps": FPS,
    "robot_type": "sim_arm",
    "video_codec": "h264",
    "features": {
        "observation.state": [{"topic": "/joint_states", "field": "position", "names": JOINTS}],
        "observation.images.front": {"topic": "/camera/image_raw"},
    },
}


def write_bag(path: Path, k: int) -> Path:
    """1 s: 100 Hz joint states (value k on every joint), 10 Hz 32x32 images; task `bag k`."""
    with EpisodeBagWriter(path, metadata={"task": f"bag {k}"}) as bag:
        for i in range(100):
            t = T0 + i * 10**7
            bag.joint_state(t, JOINTS, np.full(3, float(k)))
            if i % 10 == 0:
                bag.image(t, "/camera/image_raw", np.full((32, 32, 3), 20 * k, np.uint8))
    return path


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bags")
    for k in range(BAGS):
        write_bag(folder / f"episode_{k:06d}", k)
    return folder


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mapping") / "arm.yaml"
    path.write_text(yaml.safe_dump(MAPPING))
    return path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    for name in ("PHYSAI_CONFIG", "PHYSAI_PROFILE", "PHYSAI_JOB_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PHYSAI_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("PHYSAI_AZURE_STORAGE_ACCOUNT", "physaidata")
    monkeypatch.setenv("PHYSAI_AZUREML_COMPUTE", "cpu-cluster")
    monkeypatch.setenv("PHYSAI_OSMO_POOL", "cpu-pool")
    return Settings(
        home=tmp_path / "state",
        azure_storage_account="physaidata",
        azureml_compute="cpu-cluster",
        osmo_pool="cpu-pool",
    )


# -- (a) --shard K/N ---------------------------------------------------------------------------


def test_shard_selection_takes_every_nth_bag() -> None:
    paths = [Path(f"b{i}") for i in range(5)]
    assert select_shard(paths, None) == paths
    assert select_shard(paths, (0, 2)) == [Path("b0"), Path("b2"), Path("b4")]
    assert select_shard(paths, (1, 2)) == [Path("b1"), Path("b3")]
    assert select_shard(paths, (0, 1)) == paths
    shards = [select_shard(paths, (k, 3)) for k in range(3)]
    assert sorted(p for s in shards for p in s) == paths  # every bag in exactly one shard
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 0 / 1 ") == (0, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4/4", "index K from 0 to N-1"),
        ("0/0", "N must be at least 1"),
        ("-1/2", "write K/N"),
        ("1", "write K/N"),
        ("a/b", "write K/N"),
        ("1/2/3", "write K/N"),
        ("", "write K/N"),
    ],
)
def test_bad_shard_values_are_user_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_shard(text)


def test_bad_shards_in_convert_bags(bags: Path, tmp_path: Path, settings: Settings) -> None:
    mapping = ConversionMapping.model_validate(MAPPING)
    with pytest.raises(UserError, match="bad shard 2/2"):
        convert_bags([bags], mapping, tmp_path / "o", shard=(2, 2), settings=settings)
    with pytest.raises(UserError, match=r"shard 4/5 holds no bag: 4 bag\(s\) for 5 shards"):
        convert_bags([bags], mapping, tmp_path / "o", shard=(4, 5), settings=settings)
    assert not (tmp_path / "o").exists()


def test_convert_cli_shard(
    bags: Path, mapping_file: Path, tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "shard1"
    argv = ["data-pipeline", "convert", str(bags), "--mapping", str(mapping_file)]
    result = runner.invoke(app, [*argv, "--out", str(out), "--shard", "1/2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [Path(b["bag"]).name for b in report["bags"]] == ["episode_000001", "episode_000003"]
    with LeRobotDatasetReader(out) as dataset:
        assert sorted(e.tasks[0] for e in dataset.episodes) == ["bag 1", "bag 3"]
    for bad, message in (("2/2", "bad shard 2/2"), ("x", "write K/N"), ("5/9", "holds no bag")):
        result = runner.invoke(app, [*argv, "--out", str(tmp_path / "x"), "--shard", bad])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "x").exists()


# -- (b) the local fan-out, for real -----------------------------------------------------------


def test_local_fan_out_converts_and_merges_every_bag(
    bags: Path, mapping_file: Path, tmp_path: Path, settings: Settings
) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = tmp_path / "merged"
    dag = conversion_dag(
        str(bags), mapping_file, str(out), 2, workers=1, executable=local_executable()
    )
    assert dag.levels() == [["convert-0", "convert-1"], ["merge"]]
    finished: list[str] = []
    summary = run_local(dag, settings, run_id="fan1", on_result=lambda r: finished.append(r.name))
    assert summary.ok and sorted(finished[:2]) == ["convert-0", "convert-1"]
    assert finished[2] == "merge"
    assert summary.run_dir == tmp_path / "state" / "jobs" / "fan1"
    assert summary.jobs["convert-1"].command[-2:] == ["--shard", "1/2"]
    with LeRobotDatasetReader(out) as dataset:
        assert dataset.num_episodes == BAGS
        tasks = sorted(e.tasks[0] for e in dataset.episodes)
        assert tasks == [f"bag {k}" for k in range(BAGS)]  # every bag once, none twice
        frames = dataset.num_frames
        assert frames == BAGS * 10
    theirs = LeRobotDataset(repo_id="local/x", root=out, video_backend="pyav")
    assert len(theirs) == frames and theirs.meta.total_episodes == BAGS
    for index in range(0, frames, 10):
        item = theirs[index]
        k = int(item["task"].split()[1])
        np.testing.assert_allclose(item["observation.state"].numpy(), [k] * 3)
        image = item["observation.images.front"].numpy() * 255
        assert abs(float(image.mean()) - 20 * k) < 4
    assert not Path(default_shards_url(str(out))).exists()  # shards removed after the merge
    # a second run refuses to replace the dataset unless told to
    with pytest.raises(UserError, match="exists: pass --overwrite"):
        run_local(dag, settings)


def test_fan_out_cli_local_dry_run_and_input_errors(
    bags: Path, mapping_file: Path, tmp_path: Path, settings: Settings
) -> None:
    argv = ["data-pipeline", "fan-out", str(bags), "--mapping", str(mapping_file)]
    out = str(tmp_path / "ds")
    result = runner.invoke(app, [*argv, "--out", out, "--shards", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = yaml.safe_load(result.stdout)
    assert [j["name"] for j in plan["jobs"]] == ["convert-0", "convert-1", "convert-2", "merge"]
    shard_dirs = [f"{out}-shards/shard-{k}" for k in range(3)]
    for k, job in enumerate(plan["jobs"][:3]):
        assert job["argv"][1:4] == ["data-pipeline", "convert", str(bags)]
        assert job["argv"][-2:] == ["--shard", f"{k}/3"]
        assert job["outputs"] == {"dataset": shard_dirs[k]}
    merge = plan["jobs"][3]["argv"]
    assert merge[1:3] == ["data-management", "curate"] and merge[3:6] == shard_dirs
    assert merge[6:] == ["--out", out, "--overwrite"]
    assert not Path(out).exists()  # a dry run runs nothing
    for extra, message in (
        (["--shards", "5"], "5 shards for 4 bag(s)"),
        (["--shards", "0"], "shards must be a whole number of at least 1"),
        (["--shards", "2", "-b", "osmo"], "--image is needed for osmo"),
        (["--shards", "2", "-b", "slurm"], "unknown backend 'slurm'"),
    ):
        result = runner.invoke(app, [*argv, "--out", out, *extra])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    remote = conversion_dag(str(bags), mapping_file, "az://datasets/pick/v1", 2)
    with pytest.raises(UserError, match="local backend reads and writes local paths only"):
        run_local(remote, settings)


# -- (c) AzureML and OSMO renderings, validated offline ----------------------------------------

CLOUD = ("az://raw/pick", "az://config/arm.yaml", "az://datasets/pick/v1")


def _cloud_dag(shards: int = 3) -> JobDag:
    return conversion_dag(*CLOUD, shards, image=IMAGE, task="pick the cube")


def test_azureml_pipeline_validates_and_wires_shards(settings: Settings, tmp_path: Path) -> None:
    load_job = pytest.importorskip("azure.ai.ml").load_job
    job = azureml.render(_cloud_dag(), settings)
    assert type(job).__name__ == "PipelineJob"
    assert job._validate().passed  # the SDK's own offline validation
    text = render(_cloud_dag(), "azureml", settings)
    (tmp_path / "pipeline.yaml").write_text(text)
    loaded = load_job(tmp_path / "pipeline.yaml")
    assert loaded._validate().passed
    assert set(loaded.jobs) == {"convert_0", "convert_1", "convert_2", "merge"}
    blob = "https://physaidata.blob.core.windows.net"
    for k in range(3):
        node = loaded.jobs[f"convert_{k}"]
        assert node.command == (
            "physai data-pipeline convert ${{inputs.bags}} --mapping ${{inputs.mapping}} "
            f"--out ${{{{outputs.dataset}}}} --overwrite --task 'pick the cube' --shard {k}/3"
        )
        assert node.inputs["bags"]._data.path == f"{blob}/raw/pick"
        assert node.inputs["bags"]._data.type == "uri_folder"
        assert node.inputs["mapping"]._data.path == f"{blob}/config/arm.yaml"
        assert node.inputs["mapping"]._data.type == "uri_file"
        output = node.outputs["dataset"]._data
        assert output.path == f"{blob}/datasets/pick/v1-shards/shard-{k}"
        assert output.mode == "upload"
    merge = loaded.jobs["merge"]
    assert merge.command == (
        "physai data-management curate ${{inputs.shard_0}} ${{inputs.shard_1}} "
        "${{inputs.shard_2}} --out ${{outputs.dataset}} --overwrite"
    )
    for k in range(3):  # each merge input is bound to a shard's output (the data edge)
        bound = merge.inputs[f"shard_{k}"]._data.path
        assert bound == f"${{{{parent.jobs.convert_{k}.outputs.dataset}}}}"
    assert merge.outputs["dataset"]._data.path == f"{blob}/datasets/pick/v1"
    assert loaded.settings.default_compute == "cpu-cluster"


def test_osmo_workflow_validates_and_wires_shards(settings: Settings) -> None:
    doc = yaml.safe_load(render(_cloud_dag(), "osmo", settings))
    WorkflowFile.model_validate(doc)  # the OSMO workflow schema model
    workflow = doc["workflow"]
    assert workflow["pool"] == "cpu-pool" and doc["default-values"] == {"image": IMAGE}
    tasks = {t["name"]: t for t in workflow["tasks"]}
    assert list(tasks) == ["convert-0", "convert-1", "convert-2", "merge"]
    for k in range(3):
        task = tasks[f"convert-{k}"]
        assert task["command"] == ["physai"]
        assert task["args"] == [
            "data-pipeline",
            "convert",
            "{{input:0}}",
            "--mapping",
            "{{input:1}}/arm.yaml",
            "--out",
            "{{output}}",
            "--overwrite",
            "--task",
            "pick the cube",
            "--shard",
            f"{k}/3",
        ]
        assert task["inputs"] == [
            {"url": "azure://physaidata/raw/pick"},
            {"url": "azure://physaidata/config/arm.yaml"},
        ]
        assert task["outputs"] == [{"url": f"azure://physaidata/datasets/pick/v1-shards/shard-{k}"}]
        assert task["environment"]["PHYSAI_SHARD_INDEX"] == str(k)
    merge = tasks["merge"]
    assert merge["args"] == [
        "data-management",
        "curate",
        "{{input:0}}",
        "{{input:1}}",
        "{{input:2}}",
        "--out",
        "{{output}}",
        "--overwrite",
    ]
    assert merge["inputs"] == [{"task": f"convert-{k}"} for k in range(3)]
    assert merge["outputs"] == [{"url": "azure://physaidata/datasets/pick/v1"}]


def test_fan_out_cli_cloud_dry_run_and_submit(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["data-pipeline", "fan-out", CLOUD[0], "--mapping", CLOUD[1], "--out", CLOUD[2]]
    argv += ["--shards", "2", "--image", IMAGE]
    result = runner.invoke(app, [*argv, "--backend", "osmo", "--dry-run"])
    assert result.exit_code == 0, result.output
    doc = WorkflowFile.model_validate(yaml.safe_load(result.stdout))
    assert [t.name for t in doc.workflow.tasks or []] == ["convert-0", "convert-1", "merge"]
    result = runner.invoke(app, [*argv, "-b", "azureml", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert sorted(yaml.safe_load(result.stdout)["jobs"]) == ["convert_0", "convert_1", "merge"]
    # submission: a stand-in `osmo` client on PATH (the service is not reachable from here)
    folder = tmp_path / "bin"
    folder.mkdir()
    exe = folder / "osmo"
    exe.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "argv"}\necho "Workflow ID - conv-7"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, [*argv, "-b", "osmo", "--pool", "big"])
    assert result.exit_code == 0, result.output
    assert "submitted OSMO workflow conv-7" in result.stdout
    args = (tmp_path / "argv").read_text().split()
    assert args[:2] == ["workflow", "submit"] and args[3:] == ["--pool", "big"]
    WorkflowFile.model_validate(yaml.safe_load(Path(args[2]).read_text()))
    with pytest.raises(ConfigError, match="azure_workspace_name"):
        submit(_cloud_dag(), "azureml", settings)
    with pytest.raises(UserError, match="run_local"):
        submit(_cloud_dag(), "local", settings)


def test_osmo_refuses_a_local_mapping(settings: Settings, mapping_file: Path) -> None:
    dag = conversion_dag(CLOUD[0], mapping_file, CLOUD[2], 2, image=IMAGE)
    with pytest.raises(UserError, match="cannot be used on OSMO"):
        osmo.render_yaml(dag, settings)
