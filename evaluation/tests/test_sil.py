"""SiL in MuJoCo, end to end with real parts: PPO trained for two iterations by training's CLI,
exported to ONNX and TorchScript by training's CLI, then run in closed loop in MuJoCo through
ONNX Runtime and TorchScript. The returns are checked against training's own deterministic
evaluation of the same checkpoint (its `evaluate`, and the eval return the training run
reported), and the CLI's report, video and bad-input handling are checked from the outside.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.evaluation import SilReport, evaluate_policy
from physai.training import EVAL_SEED_OFFSET

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

TRAIN_SEED = 3
EVAL_EPISODES = 4
TINY = ["--num-envs", "2", "--steps-per-iteration", "8", "--iterations", "2", "--hidden", "16,16"]
# (task, library): a task that ends early on failure and one with continuous returns that
# always runs to its time limit and has a distance-based success signal
RUNS = [("InvertedPendulum", "skrl"), ("Reacher", "rsl_rl")]


def cli(*args: str, home: Path) -> Any:
    return CliRunner().invoke(app, list(args), env={"PHYSAI_HOME": str(home)})


class Trained:
    """A real checkpoint, what training reported for it, and its export."""

    def __init__(self, root: Path, task: str, library: str) -> None:
        self.task, self.library = task, library
        self.checkpoints = root / f"{library}-ckpt"
        self.export = root / f"{library}-export"
        home = root / "home"
        run = cli(
            "training", "rl", "--library", library, "--task", task, "--seed", str(TRAIN_SEED),
            *TINY, "--eval-episodes", str(EVAL_EPISODES), "--checkpoint-url",
            str(self.checkpoints), "--no-track", "--json", home=home,
        )  # fmt: skip
        assert run.exit_code == 0, run.output
        self.reported: dict[str, Any] = json.loads(run.stdout)
        export = cli(
            "training", "export", str(self.checkpoints), "-o", str(self.export), "--format",
            "onnx,torchscript", home=home,
        )  # fmt: skip
        assert export.exit_code == 0, export.output
        self.card: dict[str, Any] = json.loads((self.export / "policy.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    root = tmp_path_factory.mktemp("trained")
    return {task: Trained(root, task, library) for task, library in RUNS}


def training_evaluate(checkpoints: Path, episodes: int, seed: int) -> tuple[list[float], ...]:
    """Training's own `evaluate` of the checkpoint (the learner rebuilt from its weights)."""
    from physai.training import get_task
    from physai.training.rl import RLConfig, TorchVecEnv, evaluate, load_checkpoint, make_learner

    payload = load_checkpoint(str(checkpoints))
    config = RLConfig(
        library=payload["library"],
        task=payload["task"],
        hidden_sizes=tuple(payload["hidden_sizes"]),
        eval_episodes=0,
    )
    task = get_task(config.task)
    env = TorchVecEnv(task, 1, seed=0)
    try:
        learner = make_learner(config, env)
        learner.load_state_dict(payload["state"], weights_only=True)
    finally:
        env.close()
    result = evaluate(learner, task, episodes, seed)
    return result.returns, [float(n) for n in result.lengths], [float(s) for s in result.successes]


@pytest.mark.parametrize(("task", "library"), RUNS)
def test_sil_scores_what_training_evaluate_scores(
    trained: dict[str, Trained], task: str, library: str
) -> None:
    run = trained[task]
    returns, lengths, successes = training_evaluate(run.checkpoints, 5, seed=11)
    report = evaluate_policy(run.export, None, 5, 11, format="onnx", device="cpu")

    assert report.task == task == run.card["source"]["task"]  # the task came from the card
    assert [e.seed for e in report.episodes] == [11, 12, 13, 14, 15]
    ours = sorted((e.length, e.episode_return) for e in report.episodes)
    theirs = sorted(zip((int(n) for n in lengths), returns, strict=True))
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    np.testing.assert_allclose([r for _, r in ours], [r for _, r in theirs], rtol=1e-5, atol=1e-4)
    # Training lists episodes as they end, hence the sorting above; each report row's own seed
    # is checked by replaying it alone.
    for episode in report.episodes[:2]:
        alone = evaluate_policy(run.export, None, 1, episode.seed, format="onnx", device="cpu")
        assert alone.episodes[0].episode_return == episode.episode_return
    assert report.success_rate == pytest.approx(float(np.mean(successes)))
    assert report.mean_return == pytest.approx(float(np.mean(returns)), rel=1e-5, abs=1e-4)
    assert report.std_return == pytest.approx(float(np.std(returns)), rel=1e-4, abs=1e-4)
    if task == "Reacher":  # no early termination: every episode runs to the 50-step limit
        assert {e.length for e in report.episodes} == {50}
        assert not any(e.terminated for e in report.episodes)


@pytest.mark.parametrize(("task", "library"), RUNS)
def test_sil_reproduces_the_eval_return_training_reported(
    trained: dict[str, Trained], task: str, library: str
) -> None:
    run = trained[task]
    seed = TRAIN_SEED + EVAL_SEED_OFFSET
    report = evaluate_policy(run.export, task, EVAL_EPISODES, seed, device="cpu")
    assert report.mean_return == pytest.approx(run.reported["mean_return"], rel=1e-5, abs=1e-4)
    assert report.success_rate == pytest.approx(run.reported["success_rate"])


def test_onnx_and_torchscript_give_the_same_returns(trained: dict[str, Trained]) -> None:
    run = trained["Reacher"]
    onnx = evaluate_policy(run.export, "Reacher", 3, 0, format="onnx", device="cpu")
    torchscript = evaluate_policy(run.export, "Reacher", 3, 0, format="torchscript", device="cpu")
    assert (onnx.policy.format, torchscript.policy.format) == ("onnx", "torchscript")
    assert onnx.policy.sha256 == run.card["files"]["onnx"]["sha256"]
    assert torchscript.policy.sha256 == run.card["files"]["torchscript"]["sha256"]
    np.testing.assert_allclose(
        [e.episode_return for e in onnx.episodes],
        [e.episode_return for e in torchscript.episodes],
        rtol=1e-5,
        atol=1e-4,
    )
    # a real success signal: the fingertip-to-target distance of the last step
    assert all(e.success is not None for e in onnx.episodes)
    assert onnx.latency.count == sum(e.length for e in onnx.episodes) == 150


def test_cli_writes_report_json(trained: dict[str, Trained], tmp_path: Path) -> None:
    run = trained["InvertedPendulum"]
    out = tmp_path / "eval"
    home = tmp_path / "home"
    result = cli(
        "evaluation", "sil", str(run.export), "--episodes", "3", "--seed", "5", "--out", str(out),
        "--format", "onnx", "--device", "cpu", "--json", home=home,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "report.json").read_text()
    assert json.loads(text) == json.loads(result.stdout)
    report = SilReport.model_validate_json(text)
    onnx_file = run.export / run.card["files"]["onnx"]["path"]
    assert report.policy.sha256 == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    assert (report.policy.format, report.policy.device) == ("onnx", "cpu")
    assert report.policy.name == run.card["name"]
    assert report.task == "InvertedPendulum" and report.env_id == "InvertedPendulum-v5"
    assert report.seed == 5 and [e.index for e in report.episodes] == [0, 1, 2]
    assert report.latency.count == sum(e.length for e in report.episodes)
    assert report.latency.p50_us <= report.latency.p99_us
    assert report.latency.budget_us == pytest.approx(1e6 / run.card["control_rate_hz"])
    assert report.video is None and report.versions["physai-evaluation"]
    assert report.success_rate is not None and 0.0 <= report.success_rate <= 1.0
    returns = [e.episode_return for e in report.episodes]
    assert report.mean_return == pytest.approx(float(np.mean(returns)))
    assert (out / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]

    # the same seeds again give the same episodes; an existing --out needs --overwrite
    again = cli("evaluation", "sil", str(run.export), "-n", "3", "--seed", "5", "-o", str(out),
                home=home)  # fmt: skip
    assert again.exit_code == 2 and "already exists" in again.output
    table = cli("evaluation", "sil", str(run.export), "-n", "3", "--seed", "5", "-o", str(out),
                "--overwrite", home=home)  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "success rate" in table.output and "report.json" in table.output
    replaced = SilReport.model_validate_json((out / "report.json").read_text())
    assert replaced.episodes == report.episodes

    # without --out the report goes under the state directory
    default = cli("evaluation", "sil", str(run.export), "-n", "1", home=home)
    assert default.exit_code == 0, default.output
    (written,) = (home / "evaluations" / "sil").iterdir()
    assert written.name.startswith(run.export.name) and (written / "report.json").is_file()


def test_cli_video_is_a_decodable_mp4_of_the_first_episode(
    trained: dict[str, Trained], tmp_path: Path
) -> None:
    import av

    run = trained["InvertedPendulum"]
    out = tmp_path / "video"
    result = cli("evaluation", "sil", str(run.export), "-n", "2", "-o", str(out), "--video",
                 "--json", home=tmp_path / "home")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = SilReport.model_validate_json((out / "report.json").read_text())
    assert report.video == "episode_0.mp4"
    with av.open(str(out / report.video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate or 0) == pytest.approx(25.0)  # InvertedPendulum's fps
    assert len(frames) == report.episodes[0].length + 1  # the reset frame, then one per step
    assert frames[0].shape == (480, 480, 3)
    assert float(np.std(frames[0])) > 1.0  # a rendered scene, not a blank image


def bad_inputs(export: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "missing policy": [str(tmp / "nope")],
        "not an export": [str(tmp)],
        "unknown task": [str(export), "--task", "Walker9000"],
        "shapes differ": [str(export), "--task", "Reacher"],
        "isaac lab task": [str(export), "--task", "Isaac-Cartpole"],
        "no episodes": [str(export), "--episodes", "0"],
        "negative seed": [str(export), "--seed", "-1"],
        "format not exported": [str(export), "--format", "tensorrt"],
        "unknown device": [str(export), "--device", "tpu"],
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing policy",
        "not an export",
        "unknown task",
        "shapes differ",
        "isaac lab task",
        "no episodes",
        "negative seed",
        "format not exported",
        "unknown device",
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(
    trained: dict[str, Trained], tmp_path: Path, case: str
) -> None:
    run = trained["InvertedPendulum"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    args = bad_inputs(run.export, scratch)[case]
    result = cli("evaluation", "sil", *args, "--video", "-o", str(out), home=tmp_path / "home")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no staging left either
    if case == "shapes differ":
        assert "4 values" in lines[0] and "10" in lines[0] and "InvertedPendulum" in lines[0]


def edited_copy(export: Path, where: Path, **changes: Any) -> Path:
    """A copy of an export whose policy.json has `changes` (policy files untouched)."""
    folder = where / "edited"
    shutil.copytree(export, folder)
    card = json.loads((folder / "policy.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section][field] = value
        else:
            card[section] = value
    (folder / "policy.json").write_text(json.dumps(card))
    return folder


def test_a_card_without_a_task_needs_one(trained: dict[str, Trained], tmp_path: Path) -> None:
    folder = edited_copy(trained["InvertedPendulum"].export, tmp_path, source__task=None)
    with pytest.raises(UserError, match="names no source task"):
        evaluate_policy(folder, None, 1, 0)
    report = evaluate_policy(folder, "InvertedPendulum", 1, 0)
    assert report.task == "InvertedPendulum" and report.policy.source_task is None


def test_unfolded_normalization_is_refused(trained: dict[str, Trained], tmp_path: Path) -> None:
    stats = {"obs": {"mean": [0.0] * 4, "std": [1.0] * 4}}
    normalization = {"folded": False, "kind": "mean_std", "stats": stats}
    folder = edited_copy(trained["InvertedPendulum"].export, tmp_path, normalization=normalization)
    with pytest.raises(UserError, match="normalizer folded in"):
        evaluate_policy(folder, None, 1, 0, out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def constant_policy(folder: Path, action: list[float], observations: int) -> Path:
    """A hand-built ONNX policy that returns `action` whatever it sees, with its policy.json."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from physai.training.policy_card import PolicyCard, PolicyFile, PolicySource, TensorSpec

    size = len(action)
    weights = numpy_helper.from_array(np.zeros((observations, size), np.float32), "w")
    bias = numpy_helper.from_array(np.asarray(action, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "w"], ["zero"]),
         helper.make_node("Add", ["zero", "b"], ["actions"])],
        "constant",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", observations])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", size])],
        [weights, bias],
    )  # fmt: skip
    folder.mkdir(parents=True)
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), folder / "p.onnx"
    )
    card = PolicyCard(
        name=folder.name,
        policy="mlp_actor",
        inputs=[TensorSpec(name="obs", shape=[-1, observations])],
        outputs=[TensorSpec(name="actions", shape=[-1, size])],
        source=PolicySource(kind="rsl_rl", checkpoint="hand-built", task="Reacher"),
        files={"onnx": PolicyFile(path="p.onnx", sha256=hashlib.sha256(
            (folder / "p.onnx").read_bytes()).hexdigest())},
    )  # fmt: skip
    (folder / "policy.json").write_text(card.to_json())
    return folder


def test_actions_are_clipped_to_the_action_space(tmp_path: Path) -> None:
    # Reacher's reward charges the squared action as given to step(): an action of 5 scores
    # like the bound 1 only if it was clipped first, as training clips it.
    inside = evaluate_policy(constant_policy(tmp_path / "one", [1.0, -1.0], 10), None, 2, 0)
    beyond = evaluate_policy(constant_policy(tmp_path / "five", [5.0, -5.0], 10), None, 2, 0)
    half = evaluate_policy(constant_policy(tmp_path / "half", [0.5, -0.5], 10), None, 2, 0)
    assert [e.episode_return for e in beyond.episodes] == [
        e.episode_return for e in inside.episodes
    ]
    assert half.mean_return != inside.mean_return


def test_import_stays_light() -> None:
    code = (
        "import sys, physai.evaluation as e\n"
        "heavy = [m for m in ('torch', 'gymnasium', 'mujoco', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert e.evaluate_policy.__name__ == 'evaluate_policy' and e.SilReport\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
