"""Cosmos jobs: specs rendered and validated offline for every backend, and the runner's data
handling (export to the model's layout, import of generated videos) checked on real files.
The model call itself is only checked to fail clearly: the Cosmos models do not run here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from physai.core.errors import JobError, MissingDependencyError, UserError
from physai.core.jobs.backends import render_text
from physai.core.jobs.osmo_schema import WorkflowFile
from physai.core.settings import Settings
from physai.data_management import LeRobotDatasetReader, LeRobotDatasetWriter
from physai.synthetic_data.cosmos import (
    MODELS,
    format_episodes,
    make_controls,
    parse_episodes,
    predict_job,
    reason_job,
    transfer_and_judge_dag,
    transfer_job,
)
from physai.synthetic_data.cosmos_runner import (
    Sample,
    call_model,
    export_predict_inputs,
    export_transfer_inputs,
    import_predictions,
    import_videos,
    load_manifest,
    main,
    model_command,
    parse_control,
    read_mp4,
    require_model,
    run,
    serve_vllm,
    write_mp4,
)

load_job = pytest.importorskip("azure.ai.ml").load_job
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")

RGB, DEPTH, SEG = "observation.images.rgb", "observation.images.depth", "observation.images.seg"
H, W, FRAMES, FPS = 24, 32, 6, 10
IMAGE = "myacr.azurecr.io/cosmos-transfer2.5-physai:1"
SRC, OUT, REPORT = "az://datasets/sim/v1", "az://datasets/photoreal/v1", "az://reports/judge.json"


def _frames(episode: int, kind: int) -> np.ndarray:
    frames = np.zeros((FRAMES, H, W, 3), dtype=np.uint8)
    for t in range(FRAMES):
        frames[t, :, :, kind] = 40 + 30 * t + 10 * episode
        frames[t, : H // 2, :, (kind + 1) % 3] = 120
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cosmos") / "sim"
    camera = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]}
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": None},
        "action": {"dtype": "float32", "shape": [2], "names": None},
        RGB: camera,
        DEPTH: camera,
        SEG: camera,
    }
    with LeRobotDatasetWriter(root, fps=FPS, features=features, video_codec="h264") as writer:
        for episode in range(2):
            state = np.arange(FRAMES * 2, dtype=np.float32).reshape(FRAMES, 2) + episode
            writer.add_episode(
                {
                    "observation.state": state,
                    "action": state * 2,
                    RGB: _frames(episode, 0),
                    DEPTH: _frames(episode, 1),
                    SEG: _frames(episode, 2),
                },
                task=f"stack block {episode}",
            )
        writer.finish()
    return root


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "state",
        azure_storage_account="physaidata",
        azureml_compute="gpu-h100",
        osmo_pool="h100",
    )


def _transfer(**kwargs: object) -> object:
    args: dict[str, object] = {
        "prompt": "a robot arm stacking blocks in a sunlit workshop",
        "rgb_camera": RGB,
        "controls": {"depth": DEPTH, "segmentation": SEG, "edges": None},
        "weights": {"depth": 0.5},
        "image": IMAGE,
        "episodes": "0-1",
        "gpus": 2,
    }
    args.update(kwargs)
    return transfer_job(SRC, OUT, **args)  # type: ignore[arg-type]


def test_transfer_job_renders_for_every_backend(settings: Settings, tmp_path: Path) -> None:
    spec = _transfer()
    argv = spec.command  # type: ignore[attr-defined]
    assert argv[:4] == ["python", "-m", "physai.synthetic_data.cosmos_runner", "transfer"]
    controls = [argv[i + 1] for i, a in enumerate(argv) if a == "--control"]
    assert controls == [f"depth={DEPTH}:0.5", f"seg={SEG}:1", "edge=:1"]
    assert argv[argv.index("--episodes") + 1] == "0-1"
    assert spec.resources.gpu == 2  # type: ignore[attr-defined]

    plan = yaml.safe_load(render_text(spec, "local", settings, run_id="r"))  # type: ignore[arg-type]
    (job,) = plan["jobs"]
    assert job["argv"][job["argv"].index("--dataset") + 1] == SRC

    (tmp_path / "job.yaml").write_text(render_text(spec, "azureml", settings))  # type: ignore[arg-type]
    aml = load_job(tmp_path / "job.yaml")
    assert aml._validate().passed
    assert aml.environment.image == IMAGE
    assert "--dataset ${{inputs.source}} --out ${{outputs.dataset}}" in aml.command
    assert aml.inputs["source"]._data.path.endswith(
        "physaidata.blob.core.windows.net/datasets/sim/v1"
    )

    doc = yaml.safe_load(render_text(spec, "osmo", settings))  # type: ignore[arg-type]
    WorkflowFile.model_validate(doc)
    (task,) = doc["workflow"]["tasks"]
    assert doc["workflow"]["resources"]["cosmos-transfer"]["gpu"] == 2
    assert task["inputs"] == [{"url": "azure://physaidata/datasets/sim/v1"}]
    assert task["outputs"] == [{"url": "azure://physaidata/datasets/photoreal/v1"}]
    assert "{{input:0}}" in task["args"] and "{{output}}" in task["args"]


def test_transfer_then_judge_dag_is_wired_by_data(settings: Settings, tmp_path: Path) -> None:
    dag = transfer_and_judge_dag(
        SRC,
        OUT,
        REPORT,
        prompt="photoreal kitchen",
        rgb_camera=RGB,
        controls={"depth": DEPTH},
        transfer_image=IMAGE,
        reason_image="myacr.azurecr.io/cosmos-reason1-vllm:1",
    )
    assert dag.topological_order() == ["cosmos-transfer", "cosmos-reason"]
    assert dag.dependencies("cosmos-reason") == ("cosmos-transfer",)

    (tmp_path / "p.yaml").write_text(render_text(dag, "azureml", settings))
    pipeline = load_job(tmp_path / "p.yaml")
    assert pipeline._validate().passed
    bound = pipeline.jobs["cosmos_reason"].inputs["dataset"]._data  # node names: identifiers
    assert (bound if isinstance(bound, str) else bound.path) == (
        "${{parent.jobs.cosmos_transfer.outputs.dataset}}"
    )
    assert pipeline.jobs["cosmos_reason"].outputs["report"]._data.type == "uri_file"

    doc = yaml.safe_load(render_text(dag, "osmo", settings))
    WorkflowFile.model_validate(doc)
    _, reason = doc["workflow"]["tasks"]
    assert reason["inputs"] == [{"task": "cosmos-transfer"}]
    assert reason["args"][reason["args"].index("--report") + 1] == "{{output}}/judge.json"
    assert doc["workflow"]["resources"]["cosmos-reason"]["gpu"] == MODELS["reason-1"].min_gpus


def test_predict_and_reason_jobs_validate(settings: Settings, tmp_path: Path) -> None:
    predict = predict_job(
        SRC,
        "az://datasets/predicted/v1",
        prompt="the arm lifts the block",
        camera=RGB,
        image=IMAGE,
        episodes=[3, 1, 2],
        checkpoints="az://models/cosmos-predict2.5",
    )
    assert predict.command[predict.command.index("--episodes") + 1] == "1-3"
    assert predict.inputs["checkpoints"].uri == "az://models/cosmos-predict2.5"
    remote = reason_job(SRC, REPORT, camera=RGB, image=IMAGE, endpoint="https://vlm.example/v1")
    assert remote.resources.gpu == 0 and "--endpoint" in remote.command
    for index, spec in enumerate((predict, remote)):
        WorkflowFile.model_validate(yaml.safe_load(render_text(spec, "osmo", settings)))
        (tmp_path / f"{index}.yaml").write_text(render_text(spec, "azureml", settings))
        assert load_job(tmp_path / f"{index}.yaml")._validate().passed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"controls": {"normals": DEPTH}}, "unknown Cosmos control type 'normals'"),
        ({"controls": {"depth": None}}, "control 'depth' needs a camera feature"),
        ({"controls": {}}, "needs at least one control"),
        ({"weights": {"vis": 1.0}}, "not used"),
        ({"weights": {"depth": -1}}, "weight must be a number >= 0"),
        ({"episodes": "3-1"}, "is empty"),
        ({"prompt": "  "}, "prompt is empty"),
        ({"gpus": 0}, "needs at least 1 GPU"),
    ],
)
def test_bad_transfer_input_is_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError) as caught:
        _transfer(**kwargs)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_camera_feature_is_caught_for_a_local_dataset(dataset: Path) -> None:
    with pytest.raises(UserError, match=r"no camera feature 'observation\.images\.edges'"):
        transfer_job(
            str(dataset),
            str(dataset.parent / "out"),
            prompt="p",
            rgb_camera=RGB,
            controls={"depth": DEPTH, "edge": "observation.images.edges"},
            image=IMAGE,
        )
    with pytest.raises(UserError, match="no camera feature 'nope'"):
        reason_job(str(dataset), str(dataset.parent / "r.json"), camera="nope", image=IMAGE)


def test_episode_selection_round_trips() -> None:
    assert parse_episodes("0-2, 7,5") == [0, 1, 2, 5, 7]
    assert format_episodes([7, 0, 1, 2, 5]) == "0-2,5,7"
    assert parse_episodes(None) is None
    with pytest.raises(UserError):
        parse_episodes("a-b")
    assert parse_control("edge=:0.3") == ("edge", None, 0.3)
    assert parse_control(f"segmentation={SEG}") == ("seg", SEG, 1.0)
    with pytest.raises(UserError, match="not a number"):
        parse_control("depth=cam:heavy")


def test_runner_exports_the_transfer_layout(dataset: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    summary = run(
        [
            "transfer",
            "--dataset",
            str(dataset),
            "--out",
            str(tmp_path / "out"),
            "--prompt",
            "photoreal",
            "--rgb",
            RGB,
            "--control",
            f"depth={DEPTH}:0.5",
            "--control",
            f"seg={SEG}",
            "--control",
            "vis=:0.2",
            "--episodes",
            "1",
            "--export-only",
            "--workdir",
            str(work),
        ]
    )
    assert "1 episode" in summary
    manifest, samples = load_manifest(work)
    assert manifest["model"] == "transfer-2.5" and [s.episode for s in samples] == [1]
    spec = json.loads(samples[0].spec.read_text())
    assert spec["name"] == "episode_000001" and spec["prompt"] == "photoreal"
    assert spec["depth"]["control_weight"] == 0.5
    assert spec["vis"] == {"control_weight": 0.2}  # computed by the model from the rgb video
    rgb = read_mp4(Path(spec["video_path"]))
    depth = read_mp4(Path(spec["depth"]["control_path"]))
    assert len(rgb) == len(depth) == FRAMES and rgb[0].shape == (H, W, 3)
    # the exported videos hold the dataset's frames (lossy codec: close, not equal)
    assert np.abs(rgb[3].astype(int) - _frames(1, 0)[3]).mean() < 8
    assert np.abs(depth[3].astype(int) - _frames(1, 1)[3]).mean() < 8
    assert np.abs(depth[3].astype(int) - _frames(1, 0)[3]).mean() > 30


def test_transfer1_spec_uses_its_own_field_names(dataset: Path, tmp_path: Path) -> None:
    controls = make_controls({"depth": DEPTH, "edge": None})
    (sample, _) = export_transfer_inputs(
        str(dataset), tmp_path, prompt="p", rgb_camera=RGB, controls=controls, version="1"
    )
    spec = json.loads(sample.spec.read_text())
    assert set(spec) == {"prompt", "input_video_path", "seed", "depth", "edge"}
    assert Path(spec["depth"]["input_control"]).is_file()
    assert spec["edge"] == {"control_weight": 1.0}


def test_generated_videos_replace_the_rgb_camera(dataset: Path, tmp_path: Path) -> None:
    controls = make_controls({"depth": DEPTH, "seg": SEG})
    samples = export_transfer_inputs(
        str(dataset), tmp_path / "work", prompt="p", rgb_camera=RGB, controls=controls
    )
    for sample in samples:  # what the model would write: other size, other length
        made = [np.full((2 * H, 2 * W, 3), (200, 30, 30), dtype=np.uint8)] * 9
        write_mp4(sample.output_dir / f"{sample.name}_0.mp4", made, 16)
    out = tmp_path / "photoreal"
    assert (
        import_videos(
            str(dataset),
            str(out),
            samples,
            camera=RGB,
            drop_cameras=[DEPTH, SEG],
            video_codec="h264",
        )
        == 2
    )
    source, result = LeRobotDatasetReader(dataset), LeRobotDatasetReader(out)
    try:
        assert result.camera_keys == [RGB] and result.num_episodes == 2
        assert result.tasks == source.tasks and result.fps == FPS
        frame = result[FRAMES + 2]
        assert frame[RGB].shape == (H, W, 3)
        assert np.abs(frame[RGB].astype(int) - (200, 30, 30)).mean() < 10
        np.testing.assert_array_equal(
            result.episode_data(1)["observation.state"], source.episode_data(1)["observation.state"]
        )
    finally:
        source.close()
        result.close()


def test_predictions_become_a_video_dataset(dataset: Path, tmp_path: Path) -> None:
    samples = export_predict_inputs(
        str(dataset),
        tmp_path / "w",
        prompt="then: {task}",
        camera=RGB,
        conditioning_frames=3,
        episodes=[0],
    )
    spec = json.loads(samples[0].spec.read_text())
    assert spec["inference_type"] == "video2world" and spec["prompt"] == "then: stack block 0"
    assert len(read_mp4(Path(spec["input_path"]))) == 3
    write_mp4(samples[0].output_dir / "episode_000000.mp4", [_frames(0, 2)[1]] * 7, FPS)
    import_predictions(
        str(dataset),
        str(tmp_path / "pred"),
        samples,
        camera=RGB,
        prompt="rollout",
        video_codec="h264",
    )
    reader = LeRobotDatasetReader(tmp_path / "pred")
    try:
        assert reader.camera_keys == [RGB] and reader.num_frames == 7
        assert reader.tasks == ["rollout"]
    finally:
        reader.close()


def test_model_call_without_cosmos_fails_clearly(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "transfer",
        "--dataset",
        str(dataset),
        "--out",
        str(tmp_path / "out"),
        "--prompt",
        "p",
        "--rgb",
        RGB,
        "--control",
        f"depth={DEPTH}",
        "--workdir",
        str(tmp_path / "w"),
        "--cosmos-dir",
        str(tmp_path / "no-cosmos"),
    ]
    with pytest.raises(MissingDependencyError) as caught:
        run(args)
    message = caught.value.message
    assert "Cosmos-Transfer2.5-2B" in message and "do not run in physai's own" in message
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Cosmos-Transfer2.5-2B")
    assert not (tmp_path / "out").exists()
    assert main([*args[:-2], "--control", "normals=x"]) == 2
    assert "unknown Cosmos control type" in capsys.readouterr().err


def test_model_command_follows_each_entry_point(tmp_path: Path) -> None:
    sample = Sample(0, "episode_000000", tmp_path / "spec.json", tmp_path / "out")
    script = tmp_path / "inference.py"
    one = model_command("transfer-2.5", script, sample, num_gpus=1, checkpoints=None)
    assert one[1:] == [str(script), "-i", str(sample.spec), "-o", str(sample.output_dir)]
    many = model_command("predict-2.5", script, sample, num_gpus=4, checkpoints=None)
    assert many[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=4"]
    assert many[-1] == "--inference-type=video2world"
    old = model_command("transfer-1", script, sample, num_gpus=1, checkpoints="/ckpt")
    assert old[old.index("--controlnet_specs") + 1] == str(sample.spec)
    assert old[old.index("--checkpoint_dir") + 1] == "/ckpt"
    with pytest.raises(MissingDependencyError, match="cosmos-transfer1"):
        require_model("transfer-1", tmp_path)
    with pytest.raises(MissingDependencyError, match="vLLM"):
        serve_vllm("nvidia/Cosmos-Reason1-7B", port=1, num_gpus=1, executable="no-such-vllm")


# A stand-in for the model's inference script (NOT Cosmos): it reads the spec the runner wrote
# and writes an inverted copy of the input video where the real script writes its output, so
# the runner's whole path (export, subprocess call, import) runs for real without the model.
FAKE_TRANSFER = """
import json, sys
from pathlib import Path
from physai.synthetic_data.cosmos_runner import read_mp4, write_mp4
args = sys.argv[1:]
spec = json.loads(Path(args[args.index("-i") + 1]).read_text())
out = Path(args[args.index("-o") + 1])
assert spec["depth"]["control_weight"] == 0.5 and Path(spec["depth"]["control_path"]).is_file()
frames = [255 - f for f in read_mp4(Path(spec["video_path"]))]
write_mp4(out / (spec["name"] + ".mp4"), frames, 16)
"""


def test_runner_calls_the_model_script_and_imports_its_output(
    dataset: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "cosmos-transfer2.5"
    (repo / "examples").mkdir(parents=True)
    (repo / "examples" / "inference.py").write_text(FAKE_TRANSFER)
    out = tmp_path / "photoreal"
    summary = run(
        [
            "transfer",
            "--dataset",
            str(dataset),
            "--out",
            str(out),
            "--prompt",
            "p",
            "--rgb",
            RGB,
            "--control",
            f"depth={DEPTH}:0.5",
            "--control",
            "edge=",
            "--cosmos-dir",
            str(repo),
            "--workdir",
            str(tmp_path / "w"),
            "--video-codec",
            "h264",
        ]
    )
    assert summary == f"wrote 2 transferred episode(s) to {out}"
    reader = LeRobotDatasetReader(out)
    try:
        assert reader.camera_keys == [RGB, SEG]  # depth was a control: dropped; seg kept
        expected = 255 - _frames(0, 0)[2].astype(int)
        assert np.abs(reader[2][RGB].astype(int) - expected).mean() < 10
    finally:
        reader.close()
    (repo / "examples" / "inference.py").write_text("raise SystemExit(3)")
    with pytest.raises(JobError, match="failed on episode_000000 \\(exit 3\\)"):
        call_model("transfer-2.5", load_manifest(tmp_path / "w")[1], repo_dir=repo)


def test_cosmos_transfer_command_prints_a_valid_workflow(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from physai.core.cli import app
    from physai.core.jobs.osmo_schema import WorkflowFile

    env = {"PHYSAI_HOME": str(tmp_path / "home"), "PHYSAI_AZURE_STORAGE_ACCOUNT": "acct"}
    args = ["synthetic-data", "cosmos-transfer", "az://sim/v1", "--out", "az://real/v1",
            "--prompt", "a sunlit kitchen", "--rgb", RGB, "--control", f"depth={DEPTH}:0.5",
            "--control", "edge=", "--image", "example.azurecr.io/cosmos-transfer:1"]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    WorkflowFile.model_validate(yaml.safe_load(result.output))
    assert "a sunlit kitchen" in result.output
    local_args = list(args)
    local_args[2] = str(dataset)  # a local dataset cannot be an OSMO input
    local = CliRunner().invoke(app, local_args, env=env)
    assert local.exit_code == 2 and "cannot be used on OSMO" in local.output
    bad = CliRunner().invoke(app, [*args[:-4], "--control", "smell=x", *args[-2:]], env=env)
    assert bad.exit_code == 2 and "smell" in bad.output
