"""Export: real tiny skrl, RSL-RL and ACT checkpoints to ONNX/TorchScript, checked independently.

Each exported file is compared here with the library's own model (skrl's Policy, RSL-RL's
MLPModel/RNNModel, lerobot's processors + ACTPolicy), not with the exporter's rebuilt module,
through onnxruntime and torch.jit.load at batch sizes 1 and 5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_presets import JOINT_NAMES, TINY_ACT, TINY_RL

from physai.core.errors import MissingDependencyError, UserError
from physai.training.export import (
    DEFAULT_TOLERANCE,
    ONNX_OPSET,
    ExportablePolicy,
    ParityError,
    export_policy,
    load_actor,
    parse_formats,
)
from physai.training.policy_card import PolicyCard, PolicySource, TensorSpec
from physai.training.rl import CHECKPOINT_FORMAT, RLConfig, load_checkpoint, train_rl

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

FPS = 10


def onnx_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, feeds)]


def read_card(folder: Path) -> PolicyCard:
    card = PolicyCard.read(folder)
    card.verify_files(folder)
    return card


@pytest.fixture(scope="module")
def rl_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two iterations of PPO on InvertedPendulum with each library: real checkpoints."""
    root = tmp_path_factory.mktemp("rl")
    for library in ("skrl", "rsl_rl"):
        url = str(root / library)
        train_rl(RLConfig(library=library, checkpoint_url=url, checkpoint_every=1, **TINY_RL))  # type: ignore[arg-type]
    return {"skrl": root / "skrl", "rsl_rl": root / "rsl_rl"}


def library_actor(library: str, checkpoint: Path) -> Any:
    """The library's own deterministic actor, loaded from the checkpoint by rl.py's learner."""
    from physai.training.rl import TorchVecEnv, make_learner
    from physai.training.tasks import get_task

    config = RLConfig(library=library, checkpoint_every=1, **TINY_RL)  # type: ignore[arg-type]
    env = TorchVecEnv(get_task("InvertedPendulum"), 1, seed=0)
    learner = make_learner(config, env)
    learner.load_state_dict(load_checkpoint(str(checkpoint))["state"], weights_only=True)
    env.close()
    return learner


@pytest.mark.parametrize("library", ["skrl", "rsl_rl"])
def test_rl_actor_exports_and_matches_the_library(
    library: str, rl_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "policy"
    result = export_policy(str(rl_checkpoints[library]), str(out))
    card = read_card(out)
    assert card == result.card and card.policy == "mlp_actor" and card.recurrent is None
    assert card.name == "policy" and card.source.kind == library
    assert card.source.task == "InvertedPendulum" and card.control_rate_hz == pytest.approx(25.0)
    assert [(t.name, t.shape) for t in card.inputs] == [("obs", [-1, 4])]
    assert [(t.name, t.shape) for t in card.outputs] == [("actions", [-1, 1])]
    assert set(card.files) == {"onnx", "torchscript"} and card.files["onnx"].opset == ONNX_OPSET
    for parity in card.parity.values():
        assert parity.max_abs_error <= DEFAULT_TOLERANCE == parity.tolerance
        assert parity.samples == 64 and parity.observations == "random"
    assert card.extra["iteration"] == 2 and card.extra["action_space"]["high"] == [3.0]

    learner = library_actor(library, rl_checkpoints[library])
    scripted = torch.jit.load(str(out / "policy.pt"))
    for batch in (1, 5):
        obs = np.random.default_rng(batch).normal(size=(batch, 4)).astype(np.float32)
        with torch.no_grad():
            expected = learner.act_deterministic(torch.from_numpy(obs)).numpy()
            traced = scripted(torch.from_numpy(obs)).numpy()
        (got,) = onnx_run(out / "policy.onnx", {"obs": obs})
        assert got.shape == expected.shape == (batch, 1)
        assert np.abs(got - expected).max() <= DEFAULT_TOLERANCE
        assert np.abs(traced - expected).max() <= DEFAULT_TOLERANCE


def test_skrl_observation_scaler_is_folded_in(
    rl_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    from skrl.resources.preprocessors.torch import RunningStandardScaler

    payload = load_checkpoint(str(rl_checkpoints["skrl"]))
    scaler = RunningStandardScaler(4, device="cpu")
    data = torch.randn(256, 4) * torch.tensor([1.0, 3.0, 0.5, 2.0]) + 1.5
    scaler(data, train=True)
    payload["state"]["state_preprocessor"] = scaler.state_dict()
    checkpoint = tmp_path / "ckpt_2.pt"
    torch.save(payload, checkpoint)

    out = tmp_path / "scaled"
    card = export_policy(str(checkpoint), str(out), formats="onnx").card
    assert card.normalization.folded and card.normalization.kind == "mean_std"
    assert card.normalization.stats["obs"]["mean"] == pytest.approx(
        scaler.running_mean.tolist(), abs=1e-6
    )
    learner = library_actor("skrl", rl_checkpoints["skrl"])
    obs = (torch.randn(5, 4) * 4).numpy()  # some beyond the scaler's clip
    with torch.no_grad():
        expected = learner.act_deterministic(scaler(torch.from_numpy(obs))).numpy()
    (got,) = onnx_run(out / "policy.onnx", {"obs": obs})
    assert np.abs(got - expected).max() <= DEFAULT_TOLERANCE


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_recurrent_rsl_rl_actor_with_normalizer(rnn_type: str, tmp_path: Path) -> None:
    from rsl_rl.models.rnn_model import RNNModel
    from tensordict import TensorDict

    torch.manual_seed(0)
    sample = TensorDict({"policy": torch.randn(3, 4)}, batch_size=[3])
    model = RNNModel(
        sample,
        {"actor": ["policy"]},
        "actor",
        output_dim=1,
        hidden_dims=[16, 16],
        activation="elu",
        obs_normalization=True,
        distribution_cfg={"class_name": "GaussianDistribution", "init_std": 1.0},
        rnn_type=rnn_type,
        rnn_hidden_dim=8,
        rnn_num_layers=2,
    )
    model.train()
    model.update_normalization(TensorDict({"policy": torch.randn(64, 4) * 2 + 1}, [64]))
    model.eval()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "library": "rsl_rl",
        "task": "InvertedPendulum",
        "iteration": 7,
        "activation": "elu",
        "state": {"actor_state_dict": model.state_dict()},
    }
    checkpoint = tmp_path / "ckpt_7.pt"
    torch.save(payload, checkpoint)

    out = tmp_path / "recurrent"
    card = export_policy(str(checkpoint), str(out)).card
    read_card(out)
    names = ["h", "c"] if rnn_type == "lstm" else ["h"]
    assert card.policy == "recurrent_actor" and card.extra["rnn"] == rnn_type
    assert card.recurrent is not None
    assert card.recurrent.hidden_inputs == [f"{n}_in" for n in names]
    assert card.recurrent.hidden_outputs == [f"{n}_out" for n in names]
    assert [t.shape for t in card.inputs] == [[-1, 4]] + [[-1, 2, 8]] * len(names)
    assert card.normalization.folded and card.extra["normalizer"]["eps"] == 0.01

    # Three steps of the library's own model against the ONNX file fed its own hidden state.
    scripted = torch.jit.load(str(out / "policy.pt"))
    batch = 5
    model.reset()
    hidden = {f"{n}_in": np.zeros((batch, 2, 8), np.float32) for n in names}
    traced_hidden = [torch.zeros(batch, 2, 8) for _ in names]
    for step in range(3):
        obs = torch.randn(batch, 4) * 2
        with torch.no_grad():
            expected = model(TensorDict({"policy": obs}, [batch])).numpy()
            traced, *traced_hidden = scripted(obs, *traced_hidden)
        got, *new_hidden = onnx_run(out / "policy.onnx", {"obs": obs.numpy(), **hidden})
        assert np.abs(got - expected).max() <= DEFAULT_TOLERANCE, f"step {step}"
        assert np.abs(traced.numpy() - expected).max() <= DEFAULT_TOLERANCE, f"step {step}"
        hidden = {f"{n}_in": h for n, h in zip(names, new_hidden, strict=True)}
    (single, *_) = onnx_run(
        out / "policy.onnx",
        {"obs": np.zeros((1, 4), np.float32), **{k: v[:1] for k, v in hidden.items()}},
    )
    assert single.shape == (1, 1)


# -- LeRobot ACT -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def act_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A tiny ACT (one camera + state) trained 2 steps on a 2-episode dataset: (run, dataset)."""
    from physai.core.settings import Settings
    from physai.data_management import LeRobotDatasetWriter
    from physai.training.il import load_il_config, train_il

    root = tmp_path_factory.mktemp("act")
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": JOINT_NAMES},
        "action": {"dtype": "float32", "shape": [6], "names": JOINT_NAMES},
        "observation.images.front": {
            "dtype": "video",
            "shape": [32, 32, 3],
            "names": ["height", "width", "channels"],
        },
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        with LeRobotDatasetWriter(root / "ds", fps=FPS, features=features) as writer:
            for episode in range(2):
                t = np.arange(20, dtype=np.float32)[:, None] / 20.0
                state = np.sin(t * np.arange(1, 7) + episode).astype(np.float32)
                frames = np.zeros((20, 32, 32, 3), dtype=np.uint8)
                frames[:] = (np.arange(20) * 12).astype(np.uint8)[:, None, None, None]
                frames[:, :, :16, 0] = 200  # some spatial structure
                data = {
                    "observation.state": state,
                    "action": np.roll(state, -1, axis=0),
                    "observation.images.front": frames,
                }
                writer.add_episode(data, "pick the cube")
        config = load_il_config(
            policy="act",
            dataset=str(root / "ds"),
            output=str(root / "run"),
            steps=2,
            batch_size=2,
            learning_rate=1e-3,
            checkpoint_every=2,
            log_every=1,
            device="cpu",
            overrides=TINY_ACT,
        )
        train_il(config, settings=Settings(home=root / "home"))
        yield root / "run", root / "ds"


def test_act_exports_with_normalization_folded(act_run: tuple[Path, Path], tmp_path: Path) -> None:
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    run, dataset = act_run
    out = tmp_path / "act"
    export_policy(str(run), str(out), dataset=str(dataset))
    card = read_card(out)
    assert card.policy == "act" and card.source.kind == "lerobot"
    assert card.source.dataset == str(dataset) and card.control_rate_hz == FPS
    assert card.source.checkpoint == str((run / "checkpoints" / "000002").resolve())
    assert [(t.name, t.shape) for t in card.inputs] == [
        ("observation.state", [-1, 6]),
        ("observation.images.front", [-1, 3, 32, 32]),
    ]
    assert [(t.name, t.shape) for t in card.outputs] == [("action", [-1, 5, 6])]
    assert card.normalization.folded and card.normalization.kind == "mean_std"
    assert set(card.normalization.stats) == {
        "observation.state",
        "observation.images.front",
        "action",
    }
    assert card.extra["chunk_size"] == 5 and card.extra["n_action_steps"] == 5
    assert all(p.max_abs_error <= DEFAULT_TOLERANCE for p in card.parity.values())

    # Reference: lerobot's own preprocessor -> ACTPolicy.predict_action_chunk -> postprocessor.
    folder = run / "checkpoints" / "000002" / "pretrained_model"
    policy = ACTPolicy.from_pretrained(str(folder)).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(folder))
    scripted = torch.jit.load(str(out / "policy.pt"))
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        feeds = {
            "observation.state": rng.normal(size=(batch, 6)).astype(np.float32),
            "observation.images.front": rng.uniform(size=(batch, 3, 32, 32)).astype(np.float32),
        }
        with torch.no_grad():
            normalized = pre({k: torch.from_numpy(v) for k, v in feeds.items()})
            expected = post(policy.predict_action_chunk(normalized)).numpy()
            traced = scripted(*(torch.from_numpy(v) for v in feeds.values())).numpy()
        (got,) = onnx_run(out / "policy.onnx", feeds)
        assert got.shape == expected.shape == (batch, 5, 6)
        assert np.abs(got - expected).max() <= DEFAULT_TOLERANCE
        assert np.abs(traced - expected).max() <= DEFAULT_TOLERANCE


def test_act_exports_uint8_camera_frames(act_run: tuple[Path, Path], tmp_path: Path) -> None:
    from physai.training.runtime import load_policy

    run, _ = act_run
    floats, frames = tmp_path / "float", tmp_path / "uint8"
    export_policy(str(run), str(floats), formats="onnx")
    export_policy(str(run), str(frames), formats="onnx,torchscript", uint8_images=True)
    card = read_card(frames)
    camera = card.inputs[1]
    assert (camera.name, camera.shape, camera.dtype) == (
        "observation.images.front",
        [-1, 32, 32, 3],
        "uint8",
    )
    assert card.extra["images"]["layout"] == "NHWC"
    assert all(p.max_abs_error <= DEFAULT_TOLERANCE for p in card.parity.values())
    # The same frame as uint8 HWC and as float CHW in [0, 1]: the same action chunk.
    rng = np.random.default_rng(3)
    state = rng.normal(size=(2, 6)).astype(np.float32)
    hwc = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    chw = hwc.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    names = ("observation.state", "observation.images.front")
    (expected,) = onnx_run(floats / "policy.onnx", dict(zip(names, (state, chw), strict=True)))
    (got,) = onnx_run(frames / "policy.onnx", dict(zip(names, (state, hwc), strict=True)))
    assert np.abs(got - expected).max() <= DEFAULT_TOLERANCE
    policy = load_policy(frames, format="onnx", device="cpu")
    actions = policy({names[0]: state[:1], names[1]: hwc[:1]}, copy=True)
    assert isinstance(actions, dict)
    assert np.abs(actions["action"] - expected[:1]).max() <= DEFAULT_TOLERANCE
    with pytest.raises(UserError, match="uint8"):
        policy({names[0]: state[:1], names[1]: chw[:1]})  # float frames where uint8 is expected


def test_act_bad_folders(act_run: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    run, _ = act_run
    folder = tmp_path / "pretrained_model"
    shutil.copytree(run / "checkpoints" / "000002" / "pretrained_model", folder)
    (folder / "policy_preprocessor.json").unlink()
    with pytest.raises(UserError, match=r"no policy_preprocessor\.json"):
        load_actor(str(folder))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "type": "diffusion"}))
    with pytest.raises(UserError, match="'diffusion' policy; only act exports"):
        load_actor(str(folder))


# -- failures leave nothing behind ----------------------------------------------------------


def test_planted_parity_failure_leaves_nothing(
    rl_checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from physai.training.export import onnx as onnx_format

    real_runner = onnx_format.onnx_runner

    def off_by_a_little(path: Path) -> Any:
        run = real_runner(path)
        return lambda values: {k: v + 1e-3 for k, v in run(values).items()}

    monkeypatch.setattr(onnx_format, "onnx_runner", off_by_a_little)
    out = tmp_path / "exports" / "ppo"
    with pytest.raises(ParityError, match=r"onnx export differs .* by 0\.001 .*tolerance 0\.0001"):
        export_policy(str(rl_checkpoints["rsl_rl"]), str(out), formats="onnx")
    assert not out.exists() and list(out.parent.iterdir()) == []

    # A failed overwrite keeps the previous export as it was.
    monkeypatch.setattr(onnx_format, "onnx_runner", real_runner)
    export_policy(str(rl_checkpoints["rsl_rl"]), str(out), formats="onnx")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(onnx_format, "onnx_runner", off_by_a_little)
    with pytest.raises(ParityError):
        export_policy(str(rl_checkpoints["skrl"]), str(out), formats="onnx", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["ppo"]
    with pytest.raises(UserError, match="already exists"):
        export_policy(str(rl_checkpoints["skrl"]), str(out), formats="onnx")


def test_recorded_observations(rl_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    recorded = tmp_path / "obs.npy"
    np.save(recorded, np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
    out = tmp_path / "recorded"
    card = export_policy(
        str(rl_checkpoints["skrl"] / "latest.json"), str(out), formats="onnx",
        observations=str(recorded),
    ).card  # fmt: skip
    assert card.parity["onnx"].observations == "recorded" and card.parity["onnx"].samples == 40
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 5), np.float32))
    with pytest.raises(UserError, match=r"obs has shape \[3, 5\], the policy takes \[-1, 4\]"):
        export_policy(str(rl_checkpoints["skrl"]), str(tmp_path / "x"), observations=str(wrong))
    assert not (tmp_path / "x").exists()


def test_export_to_an_object_store_url(rl_checkpoints: dict[str, Path]) -> None:
    """memory:// stands for Blob: staged, committed with a marker, files hashed as listed."""
    import hashlib

    from physai.core import storage

    url = "memory://exports-test/ppo"
    result = export_policy(str(rl_checkpoints["skrl"]), url, formats="onnx")
    assert result.files == {"onnx": f"{url}/policy.onnx"}
    assert storage.exists_published(url)
    card = PolicyCard.model_validate_json(storage.read_text(f"{url}/policy.json"))
    data = storage.read_bytes(f"{url}/policy.onnx")
    assert card.files["onnx"].sha256 == hashlib.sha256(data).hexdigest()


# -- bad input --------------------------------------------------------------------------------


def _payload(checkpoint: Path) -> dict[str, Any]:
    return load_checkpoint(str(checkpoint))


def test_bad_checkpoints_are_one_line_user_errors(
    rl_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases: list[tuple[str, str]] = [
        (str(tmp_path / "missing.pt"), "does not exist"),
        (str(garbage), "corrupt or not a checkpoint"),
        (str(empty), "neither a physai RL checkpoint"),
    ]
    rsl = _payload(rl_checkpoints["rsl_rl"])
    edits: list[tuple[str, Any, str]] = [
        ("task", "Reacher", "takes 4 observations but task Reacher has 10"),
        ("library", "sb3", "unknown library 'sb3'"),
        ("activation", "wiggle", "unknown activation 'wiggle'"),
    ]
    for key, value, message in edits:
        path = tmp_path / f"{key}.pt"
        torch.save({**rsl, key: value}, path)
        cases.append((str(path), message))
    extra_layer = {**rsl["state"]["actor_state_dict"], "conv.0.weight": torch.zeros(2, 2, 3)}
    torch.save(
        {**rsl, "state": {**rsl["state"], "actor_state_dict": extra_layer}}, tmp_path / "l.pt"
    )
    cases.append((str(tmp_path / "l.pt"), "does not know: conv.0.weight"))
    skrl = _payload(rl_checkpoints["skrl"])
    policy = dict(skrl["state"]["policy"])
    policy["net.2.weight"] = torch.zeros(16, 7)  # does not take the 16 outputs before it
    torch.save({**skrl, "state": {**skrl["state"], "policy": policy}}, tmp_path / "chain.pt")
    cases.append((str(tmp_path / "chain.pt"), "net.2 takes 7 inputs, the one before gives 16"))
    del policy["net.0.weight"]
    torch.save({**skrl, "state": {**skrl["state"], "policy": policy}}, tmp_path / "gap.pt")
    cases.append((str(tmp_path / "gap.pt"), "not a linear/activation chain"))

    for checkpoint, message in cases:
        with pytest.raises(UserError, match=re.escape(message)) as caught:
            export_policy(checkpoint, str(tmp_path / "out"), formats="onnx")
        assert "\n" not in caught.value.message
        assert not (tmp_path / "out").exists()


def test_bad_options(rl_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    assert parse_formats("torchscript, onnx") == ["onnx", "torchscript"]
    assert parse_formats(["tensorrt"]) == ["onnx", "tensorrt"]
    with pytest.raises(UserError, match="unknown export format"):
        parse_formats("onnx,tflite")
    with pytest.raises(UserError, match="tolerance must be a positive number"):
        export_policy(str(rl_checkpoints["skrl"]), str(tmp_path / "o"), tolerance=0)


def test_unexportable_operator_names_the_op(tmp_path: Path) -> None:
    from physai.training.export.onnx import export_onnx

    class Svd(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.linalg.svd(obs.reshape(-1, 2, 2))[1]

    policy = ExportablePolicy(
        name="svd",
        kind="mlp_actor",
        module=Svd(),
        inputs=[TensorSpec(name="obs", shape=[-1, 4])],
        outputs=[TensorSpec(name="actions", shape=[-1, 2])],
        source=PolicySource(kind="skrl", checkpoint="none"),
    )
    with pytest.raises(UserError, match=r"does not export to ONNX: .*svd") as caught:
        export_onnx(policy, tmp_path / "svd.onnx")
    assert "\n" not in caught.value.message
    assert not (tmp_path / "svd.onnx").exists()


def test_tensorrt_without_tensorrt_says_how_to_install(
    rl_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(MissingDependencyError, match=r"physai-training\[tensorrt\].*JetPack"):
        export_policy(str(rl_checkpoints["skrl"]), str(tmp_path / "trt"), formats="tensorrt")
    assert not (tmp_path / "trt").exists()


# -- CLI --------------------------------------------------------------------------------------


def test_cli_export(rl_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from physai.core.cli import app

    env = {"PHYSAI_HOME": str(tmp_path / "home")}
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        ["training", "export", str(rl_checkpoints["rsl_rl"]), "--format", "onnx",
         "--output", str(out), "--tolerance", "1e-5", "--json"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["files"] == {"onnx": str(out / "policy.onnx")}
    assert report["parity"]["onnx"]["tolerance"] == 1e-5
    assert read_card(out).parity["onnx"].max_abs_error <= 1e-5

    text = CliRunner().invoke(
        app, ["training", "export", str(rl_checkpoints["skrl"]), "-o", str(tmp_path / "t")],
        env=env,
    )  # fmt: skip
    assert text.exit_code == 0 and "policy.json" in text.output and "onnx" in text.output

    for args in (
        [str(tmp_path / "missing"), "--output", str(tmp_path / "bad")],
        [str(rl_checkpoints["skrl"]), "--format", "tflite", "--output", str(tmp_path / "bad")],
        [str(rl_checkpoints["skrl"]), "--output", str(out)],  # exists already
    ):
        bad = CliRunner().invoke(app, ["training", "export", *args], env=env)
        assert bad.exit_code == 2, bad.output
        assert len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
