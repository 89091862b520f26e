"""IL on LeRobot 0.6: tiny ACT runs on CPU, metrics, checkpoints, resume and bad input."""

from __future__ import annotations

import errno
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_presets import JOINT_NAMES, TINY_ACT

from physai.core import storage
from physai.core.errors import MissingDependencyError, UserError
from physai.core.settings import Settings
from physai.data_management import LeRobotDatasetWriter
from physai.training.il import (
    ILConfig,
    ILDivergedError,
    check_features,
    check_pretrained,
    load_il_config,
    load_training_state,
    prepare_dataset,
    resolve_device,
    train_il,
)
from physai.training.il_checkpoints import CheckpointWriteError, ILCheckpointStore

FPS = 10
FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": JOINT_NAMES},
    "action": {"dtype": "float32", "shape": [6], "names": JOINT_NAMES},
    "observation.images.front": {
        "dtype": "video",
        "shape": [64, 64, 3],
        "names": ["height", "width", "channels"],
    },
}


def write_dataset(root: Path, features: dict[str, dict[str, Any]], episodes: int = 4) -> Path:
    """`episodes` x 30 frames: a smooth 6-dim state, the next state as the action."""
    with LeRobotDatasetWriter(root, fps=FPS, features=features) as writer:
        for episode in range(episodes):
            t = np.arange(30, dtype=np.float32)[:, None] / 30.0
            state = np.sin(t * np.arange(1, 7) + episode).astype(np.float32)
            data: dict[str, Any] = {"observation.state": state}
            if "action" in features:
                data["action"] = np.roll(state, -1, axis=0)
            if "observation.images.front" in features:
                frames = np.zeros((30, 64, 64, 3), dtype=np.uint8)
                frames[:] = (np.arange(30) * 8).astype(np.uint8)[:, None, None, None]
                data["observation.images.front"] = frames
            writer.add_episode(data, "pick the cube")
    return root


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """No Hugging Face hub: what a VLA needs must come from local paths."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("il") / "ds", FEATURES)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "state")


class Recorder:
    """A tracker that keeps what it is sent in a MetricSink's history."""

    def __init__(self) -> None:
        from physai.training.metrics import MetricSink

        self.sink = MetricSink(None)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.sink.log(metrics, step)


def act_config(dataset: Path, output: Path, **values: Any) -> ILConfig:
    base: dict[str, Any] = {
        "policy": "act",
        "dataset": str(dataset),
        "output": str(output),
        "steps": 20,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "seed": 0,
        "checkpoint_every": 10,
        "log_every": 1,
        "device": "cpu",
        "overrides": TINY_ACT,
    }
    return load_il_config(**{**base, **values})


def weights(checkpoint: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(checkpoint) / "pretrained_model" / "model.safetensors"))


@pytest.fixture(scope="module")
def straight_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """20 steps in one go, checkpoints at 10 and 20 (shared by several tests)."""
    output = tmp_path_factory.mktemp("straight") / "out"
    settings = Settings(home=tmp_path_factory.mktemp("state"))

    recorder = Recorder()
    result = train_il(act_config(dataset, output), tracker=recorder, settings=settings)
    return result, recorder.sink


def test_act_trains_and_logs_contract_metrics(straight_run: tuple[Any, Any]) -> None:
    result, sink = straight_run
    assert result.step == 20 and result.resumed_from is None
    losses = [value for _, value in sink.history["train/loss"]]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert {"train/loss", "train/learning_rate", "train/fps"} <= set(sink.history)
    assert sink.last("train/learning_rate") == pytest.approx(1e-3)
    assert (sink.last("train/fps") or 0.0) > 0
    assert all(name.startswith("train/") for name in sink.history)


def test_checkpoints_are_published_and_latest_is_last(straight_run: tuple[Any, Any]) -> None:
    result, _ = straight_run
    out = Path(result.output)
    assert [Path(c).name for c in result.checkpoints] == ["000010", "000020"]
    pointer = json.loads((out / "latest.json").read_text())
    assert pointer["step"] == 20 and pointer["checkpoint"] == "checkpoints/000020"
    folder = out / "checkpoints" / "000020"
    assert storage.verify_manifest(str(folder)) == []
    assert (folder / "pretrained_model" / "config.json").is_file()
    state = load_training_state(folder)
    assert state["step"] == 20 and state["policy"] == "act"


def test_resume_continues_the_step_counter_with_identical_weights(
    dataset: Path, straight_run: tuple[Any, Any], tmp_path: Path, settings: Settings
) -> None:
    output = tmp_path / "out"
    first = train_il(act_config(dataset, output, steps=10), settings=settings)
    assert first.step == 10
    with pytest.raises(UserError, match="--resume"):
        train_il(act_config(dataset, output, steps=20), settings=settings)
    resumed = train_il(act_config(dataset, output, steps=20, resume=True), settings=settings)
    assert resumed.resumed_from == 10 and resumed.step == 20
    # The checkpoint the resumed run started from is the first run's, bit for bit, and
    # 10 + 10 steps end where 20 straight steps ended (weights, optimizer, RNG, sampler).
    straight = weights(straight_run[0].checkpoints[-1])
    after = weights(resumed.checkpoints[-1])
    assert straight.keys() == after.keys()
    for name, tensor in straight.items():
        torch.testing.assert_close(after[name], tensor, msg=name)


def test_corrupt_checkpoint_is_a_user_error(
    dataset: Path, straight_run: tuple[Any, Any], tmp_path: Path, settings: Settings
) -> None:
    output = tmp_path / "copy"
    shutil.copytree(straight_run[0].output, output)
    model = output / "checkpoints" / "000020" / "pretrained_model" / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-100:] = b"\0" * 100
    model.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt"):
        train_il(act_config(dataset, output, steps=25, resume=True), settings=settings)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "training_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="corrupt"):
        load_training_state(garbage)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    dataset: Path, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lerobot.policies.act.modeling_act import ACTPolicy  # type: ignore[import-untyped]

    forward = ACTPolicy.forward
    calls = {"n": 0}

    def poisoned(self: Any, batch: Any) -> Any:
        loss, out = forward(self, batch)
        calls["n"] += 1
        return (loss * float("nan"), out) if calls["n"] > 5 else (loss, out)

    monkeypatch.setattr(ACTPolicy, "forward", poisoned)
    output = tmp_path / "out"
    config = act_config(dataset, output, steps=10, checkpoint_every=4)
    with pytest.raises(ILDivergedError, match=r"step 6.*last good checkpoint is step 4"):
        train_il(config, settings=settings)
    assert ILCheckpointStore(str(output)).latest()["step"] == 4  # type: ignore[index]
    assert load_training_state(output / "checkpoints" / "000004")["step"] == 4


def test_disk_full_while_checkpointing_keeps_latest(
    dataset: Path, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save
    calls = {"n": 0}

    def save(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    output = tmp_path / "out"
    config = act_config(dataset, output, steps=4, checkpoint_every=2)
    with pytest.raises(CheckpointWriteError, match=r"disk full.*latest\.json still names step 2"):
        train_il(config, settings=settings)
    assert ILCheckpointStore(str(output)).latest()["step"] == 2  # type: ignore[index]
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["000002"]


def test_remote_dataset_is_cached_once(dataset: Path, settings: Settings) -> None:
    url = "memory://physai-il-test/datasets/pick"
    storage.copy_tree(str(dataset), url, settings, progress=False)
    cached = prepare_dataset(url, settings)
    assert cached.is_relative_to(settings.state_dir / "cache" / "datasets")
    assert storage.verify_manifest(str(cached)) == []
    assert prepare_dataset(url, settings) == cached
    assert prepare_dataset(str(dataset), settings) == dataset  # local: used in place


def test_unknown_policy_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"invalid IL option policy: unknown policy 'nope'"):
        load_il_config(policy="nope", dataset="ds")
    with pytest.raises(UserError, match="invalid IL option steps"):
        load_il_config(policy="act", dataset="ds", steps=0)


def test_dataset_without_actions_is_a_user_error(tmp_path: Path, settings: Settings) -> None:
    features = {k: v for k, v in FEATURES.items() if k != "action"}
    root = write_dataset(tmp_path / "no-actions", features, episodes=1)
    with pytest.raises(UserError, match="no 'action' feature"):
        train_il(act_config(root, tmp_path / "out"), settings=settings)
    state_only = {k: v for k, v in FEATURES.items() if k != "observation.images.front"}
    with pytest.raises(UserError, match="act needs a camera"):
        check_features("act", state_only)
    with pytest.raises(UserError, match="diffusion needs"):
        check_features("diffusion", state_only)


def test_vlas_need_local_weights_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for policy in ("smolvla", "pi0"):
        with pytest.raises(UserError, match="--pretrained"):
            check_pretrained(ILConfig(policy=policy, dataset="ds"))
    hub = ILConfig(policy="smolvla", dataset="ds", pretrained="lerobot/smolvla_base")
    with pytest.raises(UserError, match="offline"):
        check_pretrained(hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(UserError, match="--pretrained-revision"):
        check_pretrained(hub)
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(UserError, match=r"no config\.json"):
        check_pretrained(ILConfig(policy="pi0", dataset="ds", pretrained=str(empty)))
    with pytest.raises(UserError, match="smolvla trains from pretrained weights"):
        train_il(ILConfig(policy="smolvla", dataset=str(tmp_path), output=str(tmp_path / "o")))


def test_device_resolution() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_device("cuda")


TINY_DIFFUSION: dict[str, Any] = {
    "n_obs_steps": 2,
    "horizon": 8,
    "n_action_steps": 4,
    "down_dims": [16, 32],
    "kernel_size": 3,
    "n_groups": 4,
    "diffusion_step_embed_dim": 16,
    "spatial_softmax_num_keypoints": 8,
    "crop_shape": [56, 56],
    "num_train_timesteps": 10,
    "pretrained_backbone_weights": None,
    "use_group_norm": True,
}


def test_diffusion_trains_on_cpu(dataset: Path, tmp_path: Path, settings: Settings) -> None:
    config = act_config(
        dataset, tmp_path / "out", policy="diffusion", steps=6, overrides=TINY_DIFFUSION
    )
    result = train_il(config, settings=settings)
    assert result.step == 6 and result.final_loss is not None and math.isfinite(result.final_loss)
    assert (Path(result.latest or "") / "pretrained_model" / "model.safetensors").is_file()


def test_missing_policy_extra_is_a_clear_error(
    dataset: Path, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lerobot.policies.factory as factory

    def missing(name: str) -> Any:  # what lerobot's require_package raises without the extra
        raise ImportError(
            "'diffusers' is required but not installed. Install it with: "
            "pip install 'lerobot[diffusion]'"
        )

    monkeypatch.setattr(factory, "get_policy_class", missing)
    config = load_il_config(
        policy="diffusion", dataset=str(dataset), output=str(tmp_path / "out"), device="cpu"
    )
    with pytest.raises(MissingDependencyError, match=r"diffusers .*lerobot\[diffusion\]"):
        train_il(config, settings=settings)


def test_il_command_trains_with_mlflow_tracking(dataset: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from physai.core.cli import app
    from physai.core.tracking import mlflow_client

    sets = [a for key, value in TINY_ACT.items() for a in ("--set", f"{key}={json.dumps(value)}")]
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app,
        ["training", "il", "--policy", "act", "--dataset", str(dataset), "--output",
         str(tmp_path / "run"), "--steps", "6", "--batch-size", "4", "--lr", "1e-3",
         "--checkpoint-every", "3", "--log-every", "1", "--device", "cpu", *sets, "--json"],
        env={"PHYSAI_HOME": str(home)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = result.output[result.output.index("{") :]  # MLflow logs its set-up on stderr
    assert json.loads(report)["step"] == 6
    client = mlflow_client(Settings(home=home))
    (experiment,) = [e for e in client.search_experiments() if e.name == "physai-il"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 6
    bad = CliRunner().invoke(
        app, ["training", "il", "--policy", "nope", "--dataset", str(dataset)],
        env={"PHYSAI_HOME": str(home)},
    )  # fmt: skip
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


# -- the fast engine (physai.training.il_fast), run eagerly on the CPU ---------------------


def _act_parts(dataset: Path) -> tuple[Any, Any, Any, dict[str, list[float]]]:
    from lerobot.datasets import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.policies.factory import make_policy_config

    cfg = make_policy_config("act", device="cpu", **TINY_ACT)
    meta = LeRobotDatasetMetadata("physai/ds", root=dataset)
    stamps = resolve_delta_timestamps(cfg, meta)
    chunked = LeRobotDataset(
        "physai/ds", root=dataset, delta_timestamps=stamps, video_backend="pyav"
    )
    return cfg, meta, chunked, stamps  # type: ignore[return-value]


def test_frame_cache_batches_equal_lerobots_collated_batches(dataset: Path) -> None:
    from lerobot.datasets import LeRobotDataset
    from torch.utils.data import default_collate

    from physai.training.il_fast import FrameCache, delta_indices, estimate_cache_bytes

    _, meta, chunked, stamps = _act_parts(dataset)
    frames = LeRobotDataset("physai/ds", root=dataset, video_backend="pyav")
    keys = ["observation.state", "observation.images.front", "action"]
    cache = FrameCache.build(frames, keys, delta_indices(stamps, meta.fps))
    assert cache.num_frames == 120
    assert cache.columns["observation.images.front"].dtype == torch.uint8
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert cache.nbytes() <= estimate_cache_bytes(info) <= 1.5 * cache.nbytes()
    # an episode's first frame, two whose action chunk runs past the episode's end (padded),
    # the next episode's first frame and the dataset's last frame
    idx = [0, 27, 29, 30, 119]
    expected = default_collate([chunked[i] for i in idx])
    got = cache.batch(torch.tensor(idx))
    assert bool(got["action_is_pad"][1, 3:].all()) and not bool(got["action_is_pad"][3].any())
    for key in [*keys, "action_is_pad"]:
        assert got[key].dtype == expected[key].dtype, key
        assert torch.equal(got[key], expected[key]), key


def test_act_loss_is_act_policy_forwards_loss(dataset: Path) -> None:
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from torch.utils.data import default_collate

    from physai.training.il_fast import act_loss

    cfg, meta, chunked, _ = _act_parts(dataset)
    policy = make_policy(cfg, ds_meta=meta)
    preprocessor, _ = make_pre_post_processors(policy_cfg=cfg, dataset_stats=meta.stats)
    batch = preprocessor(default_collate([chunked[i] for i in (3, 28, 64, 100)]))
    policy.train()
    torch.manual_seed(5)
    expected, outputs = policy.forward(batch)
    torch.manual_seed(5)
    loss, parts = act_loss(policy, batch)
    assert torch.equal(loss, expected)
    assert float(parts["l1_loss"]) == outputs["l1_loss"]
    assert float(parts["kld_loss"]) == outputs["kld_loss"]


def test_fast_engine_learns_checkpoints_and_resumes(
    dataset: Path, tmp_path: Path, settings: Settings
) -> None:
    recorder = Recorder()
    # batch 7 over 120 frames: the fast engine's batches run on across epochs (17 1/7 an epoch),
    # and the resume at step 20 is past the first boundary, where lerobot's DataLoader position
    # (which ends each epoch with a short batch) would differ
    options: dict[str, Any] = {"engine": "fast", "batch_size": 7, "checkpoint_every": 20}
    straight = train_il(
        act_config(dataset, tmp_path / "straight", steps=24, log_every=6, **options),
        tracker=recorder,
        settings=settings,
    )
    assert straight.step == 24 and len(straight.checkpoints) == 2
    losses = [value for _, value in recorder.sink.history["train/loss"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert {"train/extra/l1_loss", "train/extra/kld_loss"} <= set(recorder.sink.history)
    output = tmp_path / "resumed"
    train_il(act_config(dataset, output, steps=20, **options), settings=settings)
    resumed = train_il(
        act_config(dataset, output, steps=24, resume=True, **options), settings=settings
    )
    assert resumed.resumed_from == 20 and resumed.step == 24
    expected, after = weights(straight.checkpoints[-1]), weights(resumed.checkpoints[-1])
    for name, tensor in expected.items():
        assert torch.allclose(tensor, after[name], atol=1e-6), name


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from physai.training.il import choose_engine

    assert choose_engine(ILConfig(policy="act", dataset="d"), "cpu") == "lerobot"
    assert choose_engine(ILConfig(policy="act", dataset="d"), "cuda") == "fast"
    assert choose_engine(ILConfig(policy="diffusion", dataset="d"), "cuda") == "lerobot"
    with pytest.raises(UserError, match="--engine lerobot"):
        choose_engine(ILConfig(policy="diffusion", dataset="d", engine="fast"), "cuda")
    monkeypatch.setenv("WORLD_SIZE", "2")  # under `accelerate launch --multi_gpu`
    assert choose_engine(ILConfig(policy="act", dataset="d"), "cuda") == "lerobot"
    with pytest.raises(UserError, match="multi-GPU"):
        choose_engine(ILConfig(policy="act", dataset="d", engine="fast"), "cuda")


def test_fused_optimizer_keeps_groups_and_state() -> None:
    from physai.training.il_fast import fused_optimizer

    model = torch.nn.Linear(3, 2)
    plain = torch.optim.AdamW(
        [{"params": [model.weight]}, {"params": [model.bias], "lr": 1e-2}], lr=1e-3
    )
    model(torch.ones(4, 3)).sum().backward()
    plain.step()
    fused = fused_optimizer(plain, "cpu")
    assert [g["lr"] for g in fused.param_groups] == [1e-3, 1e-2]
    assert all(g["fused"] for g in fused.param_groups)
    for param in (model.weight, model.bias):
        assert torch.equal(fused.state[param]["exp_avg"], plain.state[param]["exp_avg"])
    loaded = torch.optim.AdamW(fused.param_groups)  # what load_state_dict leaves: flags gone
    loaded.load_state_dict(plain.state_dict())
    assert not loaded.param_groups[0]["fused"]
    assert all(g["fused"] for g in fused_optimizer(loaded, "cpu").param_groups)


def test_fast_engine_nan_loss_stops_at_the_window_and_keeps_the_last_checkpoint(
    dataset: Path, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from physai.training import il_fast

    calls = {"n": 0}

    def poisoned(policy: Any, batch: dict[str, torch.Tensor]) -> Any:
        loss, parts = il_fast.act_loss(policy, batch)
        calls["n"] += 1
        return (loss * float("nan"), parts) if calls["n"] > 6 else (loss, parts)

    monkeypatch.setitem(il_fast.FAST_POLICIES, "act", poisoned)
    output = tmp_path / "out"
    config = act_config(dataset, output, engine="fast", steps=12, checkpoint_every=4, log_every=4)
    with pytest.raises(ILDivergedError, match=r"nan at step 8.*last good checkpoint is step 4"):
        train_il(config, settings=settings)
    assert ILCheckpointStore(str(output)).latest()["step"] == 4  # type: ignore[index]


def test_a_dataset_too_large_for_the_gpu_falls_back_or_fails_clearly(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from physai.training import il

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (1_000_000, 80_000_000_000))
    auto = ILConfig(policy="act", dataset=str(dataset))
    assert il._cache_fits(dataset, auto, "cpu")  # the CPU engine keeps frames in RAM
    assert not il._cache_fits(dataset, auto, "cuda")  # ~1.6 MB > half of 1 MB: lerobot engine
    with pytest.raises(UserError, match="--engine lerobot"):
        il._cache_fits(dataset, auto.model_copy(update={"engine": "fast"}), "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (80_000_000_000, 80_000_000_000))
    assert il._cache_fits(dataset, auto, "cuda")
