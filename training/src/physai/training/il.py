"""Imitation learning and VLA policies on LeRobot 0.6, through its Python API.

    config = ILConfig(policy="act", dataset="az://datasets/pick/v3", steps=20_000,
                      output="outputs/act-pick", checkpoint_every=2_000)
    result = train_il(config, tracker=tracker)        # tracker: an optional core Tracker
    result.step, result.final_loss, result.latest     # 20000, 0.03, '.../checkpoints/020000'

The loop reproduces `lerobot/scripts/lerobot_train.py` in our own code: `make_policy_config`,
`make_policy` (features from the dataset's metadata), `make_pre_post_processors` (the dataset's
stats), the policy's optimizer and scheduler presets, `EpisodeAwareSampler`, then per step
`preprocessor(batch)` -> `policy.forward(batch)` -> backward -> gradient clipping -> optimizer
and scheduler step. Metrics go out under the contract names (`physai.training.metrics`): every
`log_every` steps train/loss (mean over the window), train/learning_rate and train/fps (samples
per second), plus the policy's own outputs under train/extra/.

Datasets: a local path is used in place; a remote URL (az://, Blob https, memory://) is copied
once into `<state_dir>/cache/datasets/<key>` with `physai.core.storage.copy_tree` (resumable,
sha256-checked against the dataset's manifest.json), the key being the URL (without a SAS) and
the manifest's hash. It is opened with `LeRobotDataset(..., video_backend="pyav")`.

Checkpoints (`physai.training.il_checkpoints`): every `checkpoint_every` steps and at the end,
published atomically, `latest.json` updated last. `resume=True` continues from latest.json (the
step counter, weights, optimizer, scheduler, RNG and the sampler position). A non-finite loss
stops with `ILDivergedError` and the last good checkpoint stays the latest.

Multi-GPU: when `accelerate` is importable and more than one CUDA device is visible, the policy,
optimizer, dataloader and scheduler go through `accelerate.Accelerator` (launch with
`accelerate launch --multi_gpu $(which physai) training il ...`). UNTESTED: accelerate is not
installed in the development environment and no multi-GPU machine ran this path yet.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from physai.core import storage
from physai.core.errors import MissingDependencyError, NotFoundError, UserError
from physai.core.logs import get_logger, redact
from physai.training.il_checkpoints import ILCheckpointStore
from physai.training.il_fast import (
    CACHE_GPU_FRACTION,
    FAST_POLICIES,
    FastStep,
    FrameCache,
    delta_indices,
    estimate_cache_bytes,
    fused_optimizer,
    sampler_batches,
)
from physai.training.metrics import MetricSink

if TYPE_CHECKING:
    from physai.core.settings import Settings

_log = get_logger(__name__)

POLICIES: tuple[str, ...] = ("act", "diffusion", "smolvla", "pi0", "pi05", "groot")
"""Policy types `physai training il` accepts (lerobot's registered names)."""
NEEDS_PRETRAINED: frozenset[str] = frozenset({"smolvla", "pi0", "pi05", "groot"})
"""Policies that start from pretrained weights: `pretrained` must name them."""
POLICY_EXTRAS: dict[str, str] = {
    "smolvla": "lerobot[smolvla]",
    "pi0": "lerobot[pi]",
    "pi05": "lerobot[pi]",
    "groot": "lerobot[groot]",
    "diffusion": "lerobot[diffusion]",
}
TRAINING_STATE = "training_state.pt"
PRETRAINED_DIR = "pretrained_model"
CACHE_COMPLETE = ".complete"
GRAD_CLIP_NORM = 10.0
"""lerobot's default `optimizer_grad_clip_norm` when a policy preset gives none."""


class ILDivergedError(UserError):
    """Training produced a non-finite loss; the last good checkpoint stays the latest."""


class ILConfig(BaseModel):
    """Everything one imitation-learning run needs (CLI flags map one to one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(description="act | diffusion | smolvla | pi0 | pi05 | groot")
    dataset: str = Field(min_length=1, description="LeRobot v3 dataset: a path or storage URL")
    output: str | None = Field(None, description="run output URL (default under the state dir)")
    steps: int = Field(100_000, ge=1, description="total gradient steps (across resumes)")
    batch_size: int = Field(8, ge=1)
    learning_rate: float | None = Field(None, gt=0, description="None: the policy's preset")
    seed: int = Field(0, ge=0)
    num_workers: int = Field(0, ge=0)
    checkpoint_every: int = Field(1_000, ge=1)
    log_every: int = Field(100, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    engine: Literal["auto", "lerobot", "fast"] = Field(
        "auto", description="lerobot's loop, or the fast engine (auto: fast for ACT on CUDA)"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="policy config fields (e.g. dim_model=32)"
    )
    pretrained: str | None = Field(
        None, description="local directory or hub repo id of pretrained policy weights"
    )
    pretrained_revision: str | None = Field(None, description="hub revision (a commit) to pin")
    resume: bool = Field(False, description="continue from <output>/latest.json")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, policy: str) -> str:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: choose one of {', '.join(POLICIES)}")
        return policy


def load_il_config(**values: Any) -> ILConfig:
    """An ILConfig from keyword values; a one-line UserError naming the first bad field."""
    try:
        return ILConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"invalid IL option {where}: {message}") from None


@dataclass
class ILResult:
    """What a run produced."""

    policy: str
    step: int
    """The step counter at the end (continues across resumes)."""
    final_loss: float | None
    output: str
    dataset_root: str
    checkpoints: list[str] = field(default_factory=list)
    latest: str | None = None
    resumed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (what `--json` prints)."""
        return asdict(self)


# -- datasets ------------------------------------------------------------------------------


def prepare_dataset(url: str, settings: Settings | None = None) -> Path:
    """A local folder holding the LeRobot dataset at `url`.

    A local path is returned as it is. A remote URL is copied once into the cache under the
    settings' state dir (resumable; files checked against the dataset's manifest.json when it
    has one), keyed by the URL without its query string and the manifest's sha256. Without a
    manifest the copy is refreshed every time (nothing proves the cached one is current).
    """
    from physai.core.settings import settings_or_default

    resolved = settings_or_default(settings)
    location = storage.resolve(url, resolved)
    if location.local_path is not None:
        root = location.local_path
        if not (root / "meta" / "info.json").is_file():
            raise NotFoundError(f"{root} is not a LeRobot dataset (no meta/info.json)")
        return root
    manifest_url = storage.join_url(url, storage.MANIFEST_NAME)
    manifest = (
        storage.read_text(manifest_url, resolved)
        if storage.exists(manifest_url, resolved)
        else None
    )
    if not storage.exists(storage.join_url(url, "meta", "info.json"), resolved):
        raise NotFoundError(f"{redact(url.split('?', 1)[0])} is not a LeRobot dataset")
    digest = hashlib.sha256(f"{url.split('?', 1)[0]}\n{manifest or ''}".encode()).hexdigest()
    cache = resolved.state_dir / "cache" / "datasets" / digest[:24]
    done = cache.with_name(cache.name + CACHE_COMPLETE)  # beside the copy, not inside it
    if manifest is not None and done.is_file():
        return cache
    _log.info("copying dataset %s to %s", redact(url), cache)
    storage.copy_tree(url, str(cache), resolved, progress=False, fresh=manifest is None)
    if manifest is not None:
        done.write_text(digest + "\n")
    return cache


def _lerobot_features(root: Path) -> dict[str, dict[str, Any]]:
    import json

    info = json.loads((root / "meta" / "info.json").read_text())
    features = info.get("features")
    if not isinstance(features, dict):
        raise UserError(f"{root}/meta/info.json has no features")
    return features


def check_features(policy: str, features: Mapping[str, Mapping[str, Any]]) -> None:
    """UserError (one line) when a dataset's features cannot train `policy`.

    Every policy predicts `action`; ACT and diffusion need at least one camera
    (`observation.images.*`) or `observation.environment_state`, and diffusion needs
    `observation.state` too; the VLAs need a camera.
    """
    cameras = [k for k, v in features.items() if v.get("dtype") in ("video", "image")]
    have = ", ".join(k for k in features if k.startswith(("observation", "action"))) or "none"
    if "action" not in features:
        raise UserError(f"the dataset has no 'action' feature, which {policy} predicts ({have})")
    if policy == "act" and not cameras and "observation.environment_state" not in features:
        raise UserError(
            f"act needs a camera or observation.environment_state in the dataset (has {have})"
        )
    if policy == "diffusion" and ("observation.state" not in features or not cameras):
        raise UserError(f"diffusion needs observation.state and a camera (the dataset has {have})")
    if policy in NEEDS_PRETRAINED and not cameras:
        raise UserError(f"{policy} needs at least one camera (the dataset has {have})")


# -- policy --------------------------------------------------------------------------------


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_pretrained(config: ILConfig) -> str | None:
    """The pretrained weights to load (a local directory or a hub id), or None.

    UserError naming what to provide when `config.policy` needs weights and none are given, a
    hub id has no pinned revision, or the hub is offline (HF_HUB_OFFLINE) and no local
    directory was given.
    """
    source = config.pretrained
    if source is None:
        if config.policy in NEEDS_PRETRAINED:
            raise UserError(
                f"{config.policy} trains from pretrained weights: pass --pretrained with a local "
                "directory (config.json + model.safetensors) or a hub repo id with "
                "--pretrained-revision <commit>"
            )
        return None
    if Path(source).expanduser().is_dir():
        folder = Path(source).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise UserError(f"pretrained directory {folder} has no config.json")
        return str(folder)
    if _hub_offline():
        raise UserError(
            f"pretrained weights {source!r} are not a local directory and the Hugging Face hub "
            "is offline (HF_HUB_OFFLINE): pass --pretrained with a local directory"
        )
    if not config.pretrained_revision:
        raise UserError(
            f"pretrained weights {source!r} come from the hub: pin them with "
            "--pretrained-revision <commit>"
        )
    return source


def _missing_name(exc: ImportError) -> str:
    """The package an ImportError (ours or lerobot's `require_package`) says is missing."""
    found = re.search(r"'([^']+)' is required", str(exc))
    return exc.name or (found.group(1) if found else "a package")


def _require_policy_class(policy: str) -> None:
    try:
        from lerobot.policies.factory import get_policy_class
    except ImportError:
        raise MissingDependencyError(
            "lerobot", "pip install 'physai-training[lerobot]' (lerobot 0.6.1)"
        ) from None

    try:
        get_policy_class(policy)
    except ImportError as exc:
        extra = POLICY_EXTRAS.get(policy, "lerobot")
        raise MissingDependencyError(
            f"{_missing_name(exc)} (needed by lerobot's {policy} policy)",
            f"install {extra} in this environment",
        ) from None


def resolve_device(device: str) -> str:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU -> UserError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for but torch sees no CUDA device")
    return device


def _policy_config(config: ILConfig, device: str, pretrained: str | None) -> Any:
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import make_policy_config

    try:
        if pretrained is not None:
            cfg = PreTrainedConfig.from_pretrained(pretrained, revision=config.pretrained_revision)
            if cfg.type != config.policy:
                raise UserError(
                    f"pretrained weights {pretrained} are a {cfg.type} policy, not {config.policy}"
                )
            for key, value in config.overrides.items():
                if not hasattr(cfg, key):
                    raise TypeError(f"unexpected keyword argument '{key}'")
                setattr(cfg, key, value)
            cfg.pretrained_path = pretrained
            cfg.device = device
        else:
            defaults = make_policy_config(config.policy, device=device)
            cfg = make_policy_config(
                config.policy, device=device, **_match_tuples(config.overrides, defaults)
            )
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid {config.policy} policy options: {exc}") from None
    except OSError as exc:
        raise UserError(f"could not read the pretrained {config.policy} config: {exc}") from None
    if config.learning_rate is not None and hasattr(cfg, "optimizer_lr"):
        cfg.optimizer_lr = config.learning_rate
    cfg.push_to_hub = False
    return cfg


def _match_tuples(overrides: Mapping[str, Any], defaults: Any) -> dict[str, Any]:
    """JSON lists as tuples where the policy config declares a tuple (draccus saves only those)."""
    import dataclasses

    declared = {f.name: str(f.type) for f in dataclasses.fields(defaults)}
    return {
        key: tuple(value)
        if isinstance(value, list) and declared.get(key, "").startswith("tuple")
        else value
        for key, value in overrides.items()
    }


@dataclass
class _Parts:
    """Everything the loop needs, built the way lerobot_train.py builds it."""

    policy: Any
    preprocessor: Any
    postprocessor: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    dataset: Any
    sampler: Any
    grad_clip_norm: float


def _build(config: ILConfig, root: Path, device: str, pretrained: str | None) -> _Parts:
    from lerobot.datasets import (
        EpisodeAwareSampler,
        LeRobotDataset,
        LeRobotDatasetMetadata,
    )
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    cfg = _policy_config(config, device, pretrained)
    repo_id = f"physai/{root.name}"
    try:
        meta = LeRobotDatasetMetadata(repo_id, root=root)
        dataset = LeRobotDataset(
            repo_id,
            root=root,
            delta_timestamps=resolve_delta_timestamps(cfg, meta),
            video_backend="pyav",
        )
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"could not open the LeRobot dataset at {root}: {exc}") from None
    try:
        policy = make_policy(cfg, ds_meta=meta)
    except ImportError as exc:  # lerobot's require_package: an optional extra is missing
        raise MissingDependencyError(
            f"{_missing_name(exc)} (needed by lerobot's {config.policy} policy)",
            f"install {POLICY_EXTRAS.get(config.policy, 'lerobot')} in this environment",
        ) from None
    except ValueError as exc:  # validate_features and friends
        raise UserError(f"the dataset cannot train {config.policy}: {exc}") from None
    except OSError as exc:  # weights that could not be read or fetched
        raise UserError(f"could not load {config.policy} weights: {exc}") from None
    processor_kwargs: dict[str, Any] = {"dataset_stats": meta.stats}
    if pretrained is not None:
        features = {**policy.config.input_features, **policy.config.output_features}
        norm = policy.config.normalization_mapping
        processor_kwargs["preprocessor_overrides"] = {
            "device_processor": {"device": device},
            "normalizer_processor": {"stats": meta.stats, "features": features, "norm_map": norm},
        }
        processor_kwargs["postprocessor_overrides"] = {
            "unnormalizer_processor": {
                "stats": meta.stats,
                "features": policy.config.output_features,
                "norm_map": norm,
            },
        }
    preprocessor, postprocessor = make_pre_post_processors(
        policy_cfg=cfg,
        pretrained_path=pretrained,
        pretrained_revision=config.pretrained_revision,
        **processor_kwargs,
    )
    optimizer_cfg = cfg.get_optimizer_preset()
    if config.learning_rate is not None:
        optimizer_cfg.lr = config.learning_rate
    optimizer = optimizer_cfg.build(policy.get_optim_params())
    scheduler_cfg = cfg.get_scheduler_preset()
    scheduler = scheduler_cfg.build(optimizer, config.steps) if scheduler_cfg else None
    sampler = EpisodeAwareSampler(
        dataset.meta.episodes["dataset_from_index"],
        dataset.meta.episodes["dataset_to_index"],
        episode_indices_to_use=dataset.episodes,
        drop_n_last_frames=getattr(cfg, "drop_n_last_frames", 0),
        shuffle=True,
        seed=config.seed,
        absolute_to_relative_idx=dataset.absolute_to_relative_idx,
    )
    clip = float(getattr(optimizer_cfg, "grad_clip_norm", GRAD_CLIP_NORM) or 0.0)
    return _Parts(policy, preprocessor, postprocessor, optimizer, scheduler, dataset, sampler, clip)


# -- checkpoints ---------------------------------------------------------------------------


def _write_checkpoint(
    folder: Path, parts: _Parts, policy: Any, step: int, config: ILConfig, processes: int
) -> None:
    """Write one checkpoint folder: lerobot's pretrained_model/ plus training_state.pt."""
    pretrained = folder / PRETRAINED_DIR
    policy.save_pretrained(pretrained)
    parts.preprocessor.save_pretrained(pretrained)
    parts.postprocessor.save_pretrained(pretrained)
    state: dict[str, Any] = {
        "step": step,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "torch_rng": torch.get_rng_state(),
        "batch_size": config.batch_size,
        "num_processes": processes,
        "policy": config.policy,
    }
    torch.save(state, folder / TRAINING_STATE)


def load_training_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's training_state.pt, loaded with weights_only=True (UserError if corrupt)."""
    path = folder / TRAINING_STATE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {folder} has no {TRAINING_STATE}") from None
    except Exception as exc:  # unpickling errors come in many types
        raise UserError(f"checkpoint {path} is corrupt or not a physai checkpoint: {exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise UserError(f"checkpoint {path} is not a physai IL training state")
    return state


def _resume(parts: _Parts, policy: Any, folder: Path, config: ILConfig) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    state = load_training_state(folder)
    if state.get("policy") != config.policy:
        raise UserError(f"checkpoint {folder} is a {state.get('policy')} run, not {config.policy}")
    weights = folder / PRETRAINED_DIR / "model.safetensors"
    try:
        load_model(policy, str(weights), strict=True, device=str(next(policy.parameters()).device))
        parts.optimizer.load_state_dict(state["optimizer"])
        if parts.scheduler is not None and state.get("scheduler") is not None:
            parts.scheduler.load_state_dict(state["scheduler"])
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"checkpoint {folder} does not fit this policy: {exc}") from None
    return state


# -- the loop ------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _accelerator(device: str) -> Any | None:
    """An `accelerate.Accelerator` when it is installed and several GPUs are visible (UNTESTED)."""
    if device != "cuda" or torch.cuda.device_count() < 2:
        return None
    if importlib.util.find_spec("accelerate") is None:
        _log.warning(
            "%d GPUs but accelerate is not installed: using one", torch.cuda.device_count()
        )
        return None
    from accelerate import Accelerator

    return Accelerator(step_scheduler_with_optimizer=False)


def _batches(loader: torch.utils.data.DataLoader[Any], rng: torch.Tensor | None) -> Iterator[Any]:
    """Batches forever. The first epoch's iterator is made now (it draws a seed from torch's
    RNG), then `rng` (a resumed run's saved state) is restored, so that a resumed run draws
    the same random numbers as one that never stopped."""
    first = iter(loader)
    if rng is not None:
        torch.set_rng_state(rng)

    def forever() -> Iterator[Any]:
        yield from first
        while True:
            yield from loader

    return forever()


def default_output(config: ILConfig, settings: Settings | None = None) -> str:
    """Where a run writes when `output` is not given: `<state_dir>/runs/il/<policy>-<time>`."""
    from physai.core.settings import settings_or_default

    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(settings_or_default(settings).state_dir / "runs" / "il" / f"{config.policy}-{stamp}")


def choose_engine(config: ILConfig, device: str) -> Literal["lerobot", "fast"]:
    """The engine a run uses: `auto` picks the fast one for its policies on one CUDA GPU
    (a multi-process `accelerate launch` run takes lerobot's loop)."""
    if config.engine == "fast" and config.policy not in FAST_POLICIES:
        raise UserError(
            f"the fast engine trains {', '.join(FAST_POLICIES)}, not {config.policy}: "
            "use --engine lerobot"
        )
    processes = int(os.environ.get("WORLD_SIZE", "1") or 1)  # set by accelerate launch
    if config.engine == "fast" and processes > 1:
        raise UserError(
            f"the fast engine trains on one GPU, but {processes} processes were launched: "
            "use --engine lerobot for multi-GPU runs"
        )
    if config.engine == "auto":
        fast = device == "cuda" and config.policy in FAST_POLICIES and processes == 1
        return "fast" if fast else "lerobot"
    return config.engine


class _LerobotSteps:
    """lerobot_train.py's step: preprocessor -> policy.forward -> backward -> clip -> step."""

    def __init__(
        self,
        parts: _Parts,
        policy: Any,
        batches: Iterator[Any],
        accelerator: Any | None,
        diverged: Callable[[float, int], ILDivergedError],
    ) -> None:
        self.parts, self.policy, self.batches = parts, policy, batches
        self.accelerator, self.diverged = accelerator, diverged
        self.losses: list[float] = []
        self.grad_norm = 0.0
        self.extras: dict[str, float] = {}

    def advance(self, step: int, count: int) -> None:
        """Train `count` steps after `step`; ILDivergedError at the first non-finite loss."""
        parts, accelerator = self.parts, self.accelerator
        for at in range(step + 1, step + count + 1):
            batch = parts.preprocessor(next(self.batches))
            loss, outputs = self.policy.forward(batch)
            value = float(loss.item())
            if not math.isfinite(value):
                raise self.diverged(value, at)
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            clip = parts.grad_clip_norm if parts.grad_clip_norm > 0 else float("inf")
            norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), clip)
            parts.optimizer.step()
            parts.optimizer.zero_grad()
            if parts.scheduler is not None:
                parts.scheduler.step()
            inner = (
                accelerator.unwrap_model(self.policy) if accelerator is not None else self.policy
            )
            if hasattr(inner, "update"):
                inner.update()
            self.losses.append(value)
            self.grad_norm = float(norm)
            self.extras = {
                name: float(extra)
                for name, extra in (outputs or {}).items()
                if isinstance(extra, int | float)
                or (isinstance(extra, torch.Tensor) and extra.numel() == 1)
            }

    def read_window(self) -> tuple[float, float, dict[str, float]]:
        """(mean loss, last gradient norm, last extras) since the last read; resets."""
        mean = sum(self.losses) / max(len(self.losses), 1)
        self.losses = []
        return mean, self.grad_norm, self.extras


class _FastSteps:
    """The fast engine (`physai.training.il_fast`) behind the same advance/read_window calls."""

    def __init__(
        self,
        parts: _Parts,
        root: Path,
        config: ILConfig,
        device: str,
        diverged: Callable[[float, int], ILDivergedError],
    ) -> None:
        cache = _frame_cache(parts, root, config, device)
        self.parts, self.config, self.diverged = parts, config, diverged
        self.indices = sampler_batches(parts.sampler, config.batch_size)
        self.step = FastStep(
            policy=parts.policy,
            preprocessor=parts.preprocessor,
            optimizer=parts.optimizer,
            cache=cache,
            loss_fn=FAST_POLICIES[config.policy],
            batch_size=config.batch_size,
            grad_clip_norm=parts.grad_clip_norm,
            device=device,
        )
        self.window_start = 0

    def advance(self, step: int, count: int) -> None:
        """Train `count` steps after `step` (the scheduler, if any, steps on the host)."""
        rows = torch.tensor([next(self.indices) for _ in range(count)], dtype=torch.long)
        if self.step.steps_in_window == 0:
            self.window_start = step
        if self.parts.scheduler is None:
            self.step.run(rows)
            return
        for row in rows:
            self.step.run(row[None])
            self.parts.scheduler.step()

    def read_window(self) -> tuple[float, float, dict[str, float]]:
        """Window means read from the GPU once; ILDivergedError if the loss went non-finite."""
        end = self.window_start + self.step.steps_in_window
        loss, grad_norm, extras = self.step.read_window()
        if not math.isfinite(loss):
            raise self.diverged(loss, end)
        return loss, grad_norm, extras


def _frame_cache(parts: _Parts, root: Path, config: ILConfig, device: str) -> FrameCache:
    """The dataset decoded into a FrameCache on `device` (`_cache_fits` decided it fits)."""
    from lerobot.datasets import LeRobotDataset

    frames = LeRobotDataset(parts.dataset.repo_id, root=root, video_backend="pyav")
    cfg = parts.policy.config
    keys = [*cfg.input_features, *cfg.output_features]
    deltas = delta_indices(parts.dataset.delta_timestamps, parts.dataset.fps)
    started = time.perf_counter()
    cache = FrameCache.build(frames, keys, deltas, num_workers=config.num_workers)
    _log.info(
        "decoded %d frames (%.2f GB) in %.1f s for the fast engine",
        cache.num_frames,
        cache.nbytes() / 1e9,
        time.perf_counter() - started,
    )
    return cache.to(device)


def _cache_fits(root: Path, config: ILConfig, device: str) -> bool:
    """Whether the fast engine's decoded dataset fits in half the GPU's free memory.

    An explicit `engine="fast"` that does not fit is a UserError; `auto` falls back to the
    lerobot engine with a warning. Decided from meta/info.json, before anything is decoded.
    """
    import json

    if device != "cuda":
        return True
    need = estimate_cache_bytes(json.loads((root / "meta" / "info.json").read_text()))
    free, _ = torch.cuda.mem_get_info()
    if need <= CACHE_GPU_FRACTION * free:
        return True
    message = (
        f"the decoded dataset needs about {need / 1e9:.1f} GB, more than half the GPU's free "
        f"{free / 1e9:.1f} GB"
    )
    if config.engine == "fast":
        raise UserError(f"{message}: use --engine lerobot")
    _log.warning("%s: training with the lerobot engine", message)
    return False


def _next_boundary(step: int, every: int) -> int:
    return (step // every + 1) * every


def train_il(
    config: ILConfig, *, tracker: Any | None = None, settings: Settings | None = None
) -> ILResult:
    """Train `config.policy` on `config.dataset`; checkpoints under `config.output`.

    Raises UserError (one line) for bad input: an unusable dataset, a policy that needs weights
    it was not given, a corrupt checkpoint on resume, a checkpoint that could not be written
    (`CheckpointWriteError`) or a non-finite loss (`ILDivergedError`).
    """
    from lerobot.datasets import compute_sampler_state

    pretrained = check_pretrained(config)
    output = config.output or default_output(config, settings)
    store = ILCheckpointStore(output, settings)
    if store.latest() is not None and not config.resume:
        raise UserError(f"{output} already holds checkpoints: pass --resume or another --output")
    root = prepare_dataset(config.dataset, settings)
    check_features(config.policy, _lerobot_features(root))
    _require_policy_class(config.policy)
    device = resolve_device(config.device)
    engine = choose_engine(config, device)
    if engine == "fast" and not _cache_fits(root, config, device):
        engine = "lerobot"
    if device == "cuda":  # as lerobot_train.py sets them
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    _seed(config.seed)
    parts = _build(config, root, device, pretrained)
    accelerator = _accelerator(device) if engine == "lerobot" else None
    processes = accelerator.num_processes if accelerator is not None else 1
    main = accelerator is None or accelerator.is_main_process
    policy = parts.policy

    step, resumed_from, rng = 0, None, None
    with store.open_latest() as folder:
        if folder is not None:
            state = _resume(parts, policy, folder, config)
            step = resumed_from = int(state["step"])
            saved = state.get("torch_rng")
            rng = saved if isinstance(saved, torch.Tensor) else None
    if engine == "fast":  # after loading a checkpoint, which would replace the groups' flags
        parts.optimizer = fused_optimizer(parts.optimizer, device)
        if parts.scheduler is not None:
            parts.scheduler.optimizer = parts.optimizer
    if step and engine == "fast":  # full batches that run on across epochs (sampler_batches)
        used = step * config.batch_size
        parts.sampler.load_state_dict(
            {"epoch": used // len(parts.sampler), "start_index": used % len(parts.sampler)}
        )
    elif step:
        parts.sampler.load_state_dict(
            compute_sampler_state(step, len(parts.sampler), config.batch_size, processes)
        )
    result = ILResult(config.policy, step, None, output, str(root), resumed_from=resumed_from)
    last_good = resumed_from

    def diverged(value: float, at: int) -> ILDivergedError:
        kept = f"the last good checkpoint is step {last_good}" if last_good else "none saved"
        return ILDivergedError(
            f"{config.policy} loss became {value} at step {at} ({kept} in {output}): "
            "lower the learning rate or check the dataset"
        )

    policy.train()
    steps: _LerobotSteps | _FastSteps
    if engine == "fast":
        steps = _FastSteps(parts, root, config, device, diverged)
        if rng is not None:
            torch.set_rng_state(rng)
    else:
        loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
            parts.dataset,
            batch_size=config.batch_size,
            sampler=parts.sampler,
            num_workers=config.num_workers,
            pin_memory=device == "cuda",
            drop_last=False,
            persistent_workers=config.num_workers > 0,
        )
        if accelerator is not None:
            policy, parts.optimizer, loader, parts.scheduler = accelerator.prepare(
                policy, parts.optimizer, loader, parts.scheduler
            )
        steps = _LerobotSteps(parts, policy, _batches(loader, rng), accelerator, diverged)

    def checkpoint(at: int) -> None:
        if not main:
            return
        unwrapped = accelerator.unwrap_model(policy) if accelerator is not None else policy
        if not all(bool(torch.isfinite(p).all()) for p in unwrapped.parameters()):
            kept = f"the last good checkpoint is step {last_good}" if last_good else "none saved"
            raise ILDivergedError(
                f"{config.policy} weights became non-finite at step {at} ({kept} in {output}): "
                "lower the learning rate or check the dataset"
            )
        url = store.save(
            at, lambda folder: _write_checkpoint(folder, parts, unwrapped, at, config, processes)
        )
        result.checkpoints.append(url)
        result.latest = url

    sink = MetricSink(tracker)
    window_start, window_step = time.perf_counter(), step
    _log.info("training %s with the %s engine on %s", config.policy, engine, device)
    while step < config.steps:
        until = min(
            _next_boundary(step, config.log_every),
            _next_boundary(step, config.checkpoint_every),
            config.steps,
        )
        steps.advance(step, until - step)
        step = result.step = until
        if step % config.log_every == 0 or step == config.steps:
            loss, grad_norm, extras = steps.read_window()
            result.final_loss = loss
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            metrics: dict[str, Any] = {
                "train/loss": loss,
                "train/learning_rate": float(parts.optimizer.param_groups[0]["lr"]),
                "train/fps": (step - window_step) * config.batch_size * processes / elapsed,
                "train/extra/grad_norm": grad_norm,
                **{f"train/extra/{name}": value for name, value in extras.items()},
            }
            if main:
                sink.log(metrics, step)
            window_start, window_step = time.perf_counter(), step
        if step % config.checkpoint_every == 0 or step == config.steps:
            saving = time.perf_counter()
            checkpoint(step)
            last_good = step
            window_start += time.perf_counter() - saving  # saving is not training time
    return result
