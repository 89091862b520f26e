"""The policy runtime: load_policy on ONNX and TorchScript folders built here (torch MLP and GRU
exported with torch.onnx.export and torch.jit.trace, plus a policy.json), outputs against bare
ONNX Runtime and torch, dynamic batch, recurrent state, bad input and latency statistics."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from physai.core.errors import MissingDependencyError, UserError
from physai.training.policy_card import (
    CARD_NAME,
    PolicyCard,
    PolicyFile,
    PolicySource,
    Recurrent,
    TensorSpec,
    sha256_file,
)
from physai.training.runtime import LatencyStats, Policy, load_policy
from physai.training.runtime.stats import LatencyRecorder

OBS, ACT = 235, 12


class Actor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS, 64), nn.ELU(), nn.Linear(64, 32), nn.ELU())
        self.head = nn.Linear(32, ACT)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(obs))


class RecurrentActor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_out = self.gru(obs.unsqueeze(0), h)
        return self.head(out[0]), h_out


def export(
    folder: Path,
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    recurrent: Recurrent | None = None,
) -> Path:
    """An exported-policy folder: policy.onnx (opset 18, dynamic batch), policy.pt, policy.json."""
    folder.mkdir(parents=True, exist_ok=True)
    dynamic = {s.name: {s.shape.index(-1): "batch"} for s in (*inputs, *outputs)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(folder / "policy.onnx"),
            input_names=[s.name for s in inputs],
            output_names=[s.name for s in outputs],
            opset_version=18,
            dynamic_axes=dynamic,
            dynamo=False,
        )
        torch.jit.trace(module, example).save(str(folder / "policy.pt"))
    card = PolicyCard(
        name=folder.name,
        policy="recurrent_actor" if recurrent else "mlp_actor",
        inputs=inputs,
        outputs=outputs,
        recurrent=recurrent,
        source=PolicySource(kind="rsl_rl", checkpoint="model_100.pt"),
        files={
            "onnx": PolicyFile(
                path="policy.onnx", sha256=sha256_file(folder / "policy.onnx"), opset=18
            ),
            "torchscript": PolicyFile(path="policy.pt", sha256=sha256_file(folder / "policy.pt")),
        },
    )
    (folder / CARD_NAME).write_text(card.to_json())
    return folder


@pytest.fixture(scope="module")
def actor() -> nn.Module:
    torch.manual_seed(0)
    return Actor().eval()


@pytest.fixture(scope="module")
def mlp_folder(tmp_path_factory: pytest.TempPathFactory, actor: nn.Module) -> Path:
    return export(
        tmp_path_factory.mktemp("runtime") / "actor",
        actor,
        (torch.zeros(1, OBS),),
        [TensorSpec(name="obs", shape=[-1, OBS])],
        [TensorSpec(name="actions", shape=[-1, ACT])],
    )


@pytest.fixture(scope="module")
def gru() -> nn.Module:
    torch.manual_seed(1)
    return RecurrentActor().eval()


@pytest.fixture(scope="module")
def gru_folder(tmp_path_factory: pytest.TempPathFactory, gru: nn.Module) -> Path:
    return export(
        tmp_path_factory.mktemp("runtime") / "gru",
        gru,
        (torch.zeros(2, 8), torch.zeros(1, 2, 16)),
        [TensorSpec(name="obs", shape=[-1, 8]), TensorSpec(name="h_in", shape=[1, -1, 16])],
        [TensorSpec(name="actions", shape=[-1, 3]), TensorSpec(name="h_out", shape=[1, -1, 16])],
        Recurrent(hidden_inputs=["h_in"], hidden_outputs=["h_out"]),
    )


def observations(count: int, batch: int = 1, dim: int = OBS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, batch, dim)).astype(np.float32)


def copy_folder(source: Path, target: Path) -> Path:
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


# -- outputs ---------------------------------------------------------------------------------


def test_onnx_outputs_identical_to_bare_onnxruntime(mlp_folder: Path, actor: nn.Module) -> None:
    policy = load_policy(mlp_folder, format="onnx", device="cpu")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    bare = ort.InferenceSession(str(mlp_folder / "policy.onnx"), options)
    assert isinstance(policy, Policy)
    assert (policy.format, policy.device, policy.batch_size) == ("onnx", "cpu", 1)
    for obs in observations(50):
        actions = policy(obs)
        assert isinstance(actions, np.ndarray) and actions.shape == (1, ACT)
        assert np.array_equal(actions, bare.run(None, {"obs": obs})[0])
        with torch.inference_mode():
            expected = actor(torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(actions, expected, atol=1e-5)


def test_torchscript_outputs_close_to_torch(mlp_folder: Path, actor: nn.Module) -> None:
    policy = load_policy(mlp_folder, format="torchscript", device="cpu", threads=1)
    assert policy.describe()["torch_threads"] == "1"
    for obs in observations(20):
        with torch.inference_mode():
            expected = actor(torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(policy(obs), expected, atol=1e-6)


def test_default_format_on_cpu_is_onnx(mlp_folder: Path) -> None:
    policy = load_policy(mlp_folder / CARD_NAME, device="cpu")
    assert policy.format == "onnx"
    assert policy.describe() == {
        "format": "onnx",
        "device": "cpu",
        "batch_size": "1",
        "provider": "CPUExecutionProvider",
        "intra_op_threads": "1",
    }
    assert "onnx" in repr(policy)


def test_output_buffer_is_reused_unless_copied(mlp_folder: Path) -> None:
    policy = load_policy(mlp_folder, format="onnx", device="cpu", warmup=0)
    first, second = observations(2)
    out_a = policy(first)
    kept = policy(first, copy=True)
    out_b = policy(second)
    assert out_a is out_b and kept is not out_b
    assert not np.array_equal(kept, out_b)


def test_dict_observation_returns_dict(mlp_folder: Path) -> None:
    policy = load_policy(mlp_folder, format="onnx", device="cpu")
    obs = observations(1)[0]
    result = policy({"obs": obs})
    assert isinstance(result, dict) and set(result) == {"actions"}
    assert np.array_equal(result["actions"], policy(obs))
    copied = policy({"obs": obs}, copy=True)
    assert isinstance(copied, dict) and copied["actions"] is not result["actions"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_dynamic_batch(mlp_folder: Path, actor: nn.Module, fmt: str) -> None:
    policy = load_policy(mlp_folder, format=fmt, device="cpu", batch_size=4)
    for obs in observations(5, batch=4):
        actions = policy(obs)
        assert actions.shape == (4, ACT)
        with torch.inference_mode():
            expected = actor(torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(actions, expected, atol=1e-5)
    with pytest.raises(UserError, match=r"policy expects obs \(4, 235\) float32, got \(1, 235\)"):
        policy(observations(1)[0])


# -- recurrent -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_recurrent_state_round_trip(gru_folder: Path, gru: nn.Module, fmt: str) -> None:
    x1, x2, x3 = observations(3, batch=2, dim=8)
    policy = load_policy(gru_folder, format=fmt, device="cpu", batch_size=2)
    assert policy.recurrent
    y1 = policy(x1, copy=True)
    y2 = policy(x2, copy=True)
    fresh = load_policy(gru_folder, format=fmt, device="cpu", batch_size=2)
    assert np.array_equal(fresh(x1), y1)
    assert not np.allclose(fresh(x2), load_policy(gru_folder, format=fmt, batch_size=2)(x2))
    # the carried state is the module's own h_out
    with torch.inference_mode():
        h = torch.zeros(1, 2, 16)
        for x, y in ((x1, y1), (x2, y2)):
            expected, h = gru(torch.from_numpy(x), h)
            np.testing.assert_allclose(y, expected.numpy(), atol=1e-5)
    y3 = policy(x3, copy=True)
    policy.reset()
    assert np.array_equal(policy(x1), y1)
    assert np.array_equal(policy(x2), y2)
    assert np.array_equal(policy(x3), y3)


def test_recurrent_card_must_pair_inputs_and_outputs(gru_folder: Path, tmp_path: Path) -> None:
    folder = copy_folder(gru_folder, tmp_path / "gru")
    card = json.loads((folder / CARD_NAME).read_text())
    card["recurrent"]["hidden_outputs"] = ["nope"]
    (folder / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(UserError, match="must pair up"):
        load_policy(folder)


# -- bad input -------------------------------------------------------------------------------


def test_wrong_observation_shape_and_dtype(mlp_folder: Path) -> None:
    policy = load_policy(mlp_folder, format="onnx", device="cpu")
    message = r"^policy expects obs \(1, 235\) float32, got \(1, 234\) float32$"
    with pytest.raises(UserError, match=message):
        policy(np.zeros((1, 234), np.float32))
    with pytest.raises(UserError, match=r"got \(1, 235\) float64"):
        policy(np.zeros((1, OBS)))
    with pytest.raises(UserError, match="got list"):
        policy([0.0] * OBS)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"observations \{obs\}, got \{state\}"):
        policy({"state": np.zeros((1, OBS), np.float32)})
    with pytest.raises(UserError, match="got"):
        policy({"obs": np.zeros((1, 3), np.float32)})
    assert policy.latency().count == 0  # failed calls are not timed


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_tampered_file_fails_its_sha256(mlp_folder: Path, tmp_path: Path, fmt: str) -> None:
    folder = copy_folder(mlp_folder, tmp_path / "tampered")
    name = "policy.onnx" if fmt == "onnx" else "policy.pt"
    data = bytearray((folder / name).read_bytes())
    data[-1] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(UserError, match=f"{fmt} file .* does not match the sha256 in policy.json"):
        load_policy(folder, format=fmt)
    (folder / name).unlink()
    with pytest.raises(UserError, match="is missing"):
        load_policy(folder, format=fmt)


def test_missing_or_invalid_card(tmp_path: Path, mlp_folder: Path) -> None:
    with pytest.raises(UserError, match="does not exist: export the policy first"):
        load_policy(tmp_path)
    (tmp_path / CARD_NAME).write_text('{"format": "physai.policy/1"}')
    with pytest.raises(UserError, match=r"is not a valid physai\.policy/1 card"):
        load_policy(tmp_path)
    folder = copy_folder(mlp_folder, tmp_path / "empty")
    card = json.loads((folder / CARD_NAME).read_text())
    (folder / CARD_NAME).write_text(json.dumps(card | {"files": {}}))
    with pytest.raises(UserError, match="lists no exported files"):
        load_policy(folder)


def test_card_and_model_must_agree(mlp_folder: Path, tmp_path: Path) -> None:
    folder = copy_folder(mlp_folder, tmp_path / "renamed")
    card = json.loads((folder / CARD_NAME).read_text())
    card["inputs"][0]["name"] = "state"
    (folder / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"has inputs \['obs'\] but policy.json lists \['state'\]"):
        load_policy(folder, format="onnx")
    card["inputs"][0] |= {"name": "obs", "shape": [-1, 7]}
    (folder / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"does not run on obs \(1, 7\) float32: mat1 and mat2"):
        load_policy(folder, format="torchscript")


def test_unknown_or_absent_format(mlp_folder: Path) -> None:
    with pytest.raises(UserError, match="unknown format 'tflite': choose onnx, torchscript"):
        load_policy(mlp_folder, format="tflite")
    with pytest.raises(UserError, match="has no tensorrt file"):
        load_policy(mlp_folder, format="tensorrt")
    with pytest.raises(UserError, match="unknown device"):
        load_policy(mlp_folder, device="tpu")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="batch_size must be at least 1"):
        load_policy(mlp_folder, batch_size=0)
    with pytest.raises(UserError, match="threads must be at least 1"):
        load_policy(mlp_folder, threads=0)


def with_engine(mlp_folder: Path, tmp_path: Path) -> Path:
    folder = copy_folder(mlp_folder, tmp_path / "engine")
    (folder / "policy.engine").write_bytes(b"not a real engine")
    card = json.loads((folder / CARD_NAME).read_text())
    card["files"]["tensorrt"] = {
        "path": "policy.engine",
        "sha256": sha256_file(folder / "policy.engine"),
    }
    (folder / CARD_NAME).write_text(json.dumps(card))
    return folder


def test_tensorrt_missing_is_a_clear_error(mlp_folder: Path, tmp_path: Path) -> None:
    folder = with_engine(mlp_folder, tmp_path)
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(
            MissingDependencyError, match=r"pip install 'physai-training\[tensorrt\]'"
        ):
            load_policy(folder, format="tensorrt")
    else:  # pragma: no cover - only where TensorRT is installed
        with pytest.raises(UserError):
            load_policy(folder, format="tensorrt", device="cpu")
    # with format=None an unusable engine is passed over
    assert load_policy(folder, device="cpu").format == "onnx"


def test_tensorrt_only_policy_without_tensorrt(mlp_folder: Path, tmp_path: Path) -> None:
    folder = with_engine(mlp_folder, tmp_path)
    card = json.loads((folder / CARD_NAME).read_text())
    card["files"] = {"tensorrt": card["files"]["tensorrt"]}
    (folder / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"only a tensorrt file .*physai-training\[tensorrt\]"):
        load_policy(folder, device="cpu")


# -- latency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_latency_stats(mlp_folder: Path, fmt: str) -> None:
    policy = load_policy(mlp_folder, format=fmt, device="cpu")
    assert policy.latency() == LatencyStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)  # warm-up is not counted
    for obs in observations(37):
        policy(obs)
    stats = policy.latency()
    assert isinstance(stats, LatencyStats) and stats.count == 37
    assert 0 < stats.p50_us <= stats.p90_us <= stats.p99_us <= stats.max_us
    assert stats.mean_us > 0 and set(stats.to_dict()) >= {"count", "p50_us", "p99_us", "mean_us"}
    assert "37 calls: p50" in str(stats)
    bench = policy.benchmark(300)
    assert bench.count == 300 and bench.p50_us <= bench.p99_us
    assert policy.latency().count == 37  # the benchmark keeps its own record
    policy.clear_latency()
    assert policy.latency().count == 0


def test_a_model_failing_at_run_time_is_a_user_error(tmp_path: Path) -> None:
    """Loads fine, fails in its first (warm-up) run: a Gather past the input's end."""
    from onnx import TensorProto, helper, save

    folder = tmp_path / "broken"
    folder.mkdir()
    spec = helper.make_tensor_value_info
    index = helper.make_tensor("index", TensorProto.INT64, [1], [OBS + 5])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["obs", "index"], ["actions"], axis=1)],
        "broken",
        [spec("obs", TensorProto.FLOAT, ["batch", OBS])],
        [spec("actions", TensorProto.FLOAT, ["batch", 1])],
        initializer=[index],
    )
    opset = [helper.make_opsetid("", 18)]
    save(helper.make_model(graph, opset_imports=opset, ir_version=10), str(folder / "m.onnx"))
    card = PolicyCard(
        name="broken",
        policy="mlp_actor",
        inputs=[TensorSpec(name="obs", shape=[-1, OBS])],
        outputs=[TensorSpec(name="actions", shape=[-1, 1])],
        source=PolicySource(kind="rsl_rl", checkpoint="model.pt"),
        files={"onnx": PolicyFile(path="m.onnx", sha256=sha256_file(folder / "m.onnx"))},
    )
    (folder / CARD_NAME).write_text(card.to_json())
    with pytest.raises(UserError, match="fails on its warm-up inputs"):
        load_policy(folder, device="cpu")


def test_a_dropped_policy_is_freed_at_once(mlp_folder: Path) -> None:
    """No reference cycle: a hot-swapped policy's session goes with its last reference, without
    waiting for the garbage collector."""
    import gc
    import weakref

    policy = load_policy(mlp_folder, format="onnx", device="cpu")
    policy({"obs": observations(1)[0]})  # the general path too
    gone = weakref.ref(policy)
    backend = weakref.ref(policy.backend)
    gc.disable()
    try:
        del policy
        assert gone() is None and backend() is None
    finally:
        gc.enable()


def test_latency_command_times_a_policy_and_refuses_bad_input(mlp_folder: Path) -> None:
    """`physai training latency`: the runtime used and per-call statistics; exit 2 on bad input."""
    from typer.testing import CliRunner

    from physai.core.cli import app

    runner = CliRunner()
    args = ["training", "latency", str(mlp_folder), "--device", "cpu", "--calls", "300"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert (facts["policy"], facts["format"], facts["device"]) == ("actor", "onnx", "cpu")
    assert facts["count"] == 300 and 0 < facts["p50_us"] <= facts["p99_us"] <= facts["max_us"]
    text = runner.invoke(app, [*args, "--format", "torchscript"])
    assert text.exit_code == 0 and "format torchscript" in text.stdout and "p99" in text.stdout
    for bad in (["--calls", "0"], ["--device", "tpu"], ["--format", "tensorrt"]):
        refused = runner.invoke(app, [*args, *bad])
        assert refused.exit_code == 2, (bad, refused.output)
    assert runner.invoke(app, ["training", "latency", str(mlp_folder / "nope")]).exit_code == 2


def test_latency_ring_keeps_the_last_calls() -> None:
    recorder = LatencyRecorder(4)
    for ns in (1000, 2000, 3000, 4000, 5000, 6000):
        recorder.record(ns)
    assert recorder.calls == 6
    assert sorted(recorder.samples().tolist()) == [3000, 4000, 5000, 6000]
    assert recorder.stats().count == 4 and recorder.stats().max_us == 6.0
    with pytest.raises(ValueError, match="power of two"):
        LatencyRecorder(3)


# -- GPU (skipped without CUDA; run on a GPU machine) ----------------------------------------


CUDA_BACKENDS = [
    pytest.param(
        "torchscript",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
    pytest.param(
        "onnx",
        marks=pytest.mark.skipif(
            "CUDAExecutionProvider" not in ort.get_available_providers(),
            reason="needs onnxruntime-gpu",
        ),
    ),
]


@pytest.mark.parametrize("fmt", CUDA_BACKENDS)
def test_cuda_backend(fmt: str, mlp_folder: Path, gru_folder: Path, actor: nn.Module) -> None:
    policy = load_policy(mlp_folder, format=fmt, device="cuda")
    facts = policy.describe()
    assert policy.device == "cuda" and facts["cuda_graph"] == "True"
    if fmt == "onnx":
        assert facts["provider"] == "CUDAExecutionProvider"
    for obs in observations(10):  # each replay of the graph sees the new observation
        with torch.inference_mode():
            expected: Any = actor(torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(policy(obs), expected, atol=1e-4)
    assert policy.benchmark(200).count == 200
    recurrent = load_policy(gru_folder, format=fmt, device="cuda", batch_size=2)
    cpu = load_policy(gru_folder, format=fmt, device="cpu", batch_size=2)
    for x in observations(4, batch=2, dim=8):
        np.testing.assert_allclose(recurrent(x), cpu(x), atol=1e-4)
    recurrent.reset()
    cpu.reset()
    x = observations(1, batch=2, dim=8)[0]
    np.testing.assert_allclose(recurrent(x), cpu(x), atol=1e-4)
