"""Reinforcement learning: PPO with skrl or RSL-RL on gymnasium tasks, checkpointed and resumable.

    config = RLConfig(library="skrl", task="InvertedPendulum", iterations=60, seed=0,
                      checkpoint_url="outputs/ppo", checkpoint_every=10)
    result = train_rl(config, tracker=tracker)       # tracker: an optional core Tracker
    result.mean_return, result.checkpoints           # ['outputs/ppo/ckpt_10.pt', ...]

One iteration = `steps_per_iteration` steps of each of the `num_envs` environments, then one PPO
update. Both libraries run behind the same loop (`run_loop`): metrics under the contract names
(`physai.training.metrics`) with the iteration number as the step, a checkpoint every
`checkpoint_every` iterations and at the end, and a NaN guard that stops with `RLDivergedError`
while `latest.json` still points at the last good checkpoint.

Checkpoints (`CheckpointStore`) are torch.save'd dicts of tensors, numbers and strings only, so
they load with `torch.load(weights_only=True)`. Each goes to `<url>/ckpt_<iteration>.pt` in one
atomic write, and only then is `<url>/latest.json` rewritten (atomically) to name it.
`resume` takes a checkpoint file, a latest.json, a checkpoint directory/URL, or a `runs:/` or
`models:/` URI of a directory holding them; `warm_start` loads only the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from physai.core import storage
from physai.core.errors import NotFoundError, PhysaiError, UserError
from physai.training.metrics import RL_LOG_INTERVAL_S, MetricSink
from physai.training.tasks import TaskSpec, episode_successes, get_task, make_vector_env

if TYPE_CHECKING:
    from physai.core.settings import Settings

Library = Literal["skrl", "rsl_rl"]
CHECKPOINT_FORMAT = "physai.rl.checkpoint/1"
LATEST = "latest.json"
RETURN_WINDOW = 20
"""`RLResult.mean_return` is the mean of the last this-many finished training episodes."""
EVAL_SEED_OFFSET = 1_000_003
"""The final evaluation's episodes are seeded from config.seed + this, away from the training
episodes' seeds; `physai evaluation sil --seed <seed + EVAL_SEED_OFFSET>` replays them."""


class RLDivergedError(PhysaiError):
    """Training produced a non-finite loss or weights; the last good checkpoint is kept."""


class RLConfig(BaseModel):
    """Everything one PPO run needs (CLI flags map one to one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    library: Library = "skrl"
    task: str = "InvertedPendulum"
    num_envs: int = Field(8, ge=1, le=4096)
    iterations: int = Field(150, ge=1)
    steps_per_iteration: int = Field(32, ge=2, description="rollout length per environment")
    seed: int = Field(0, ge=0)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    hidden_sizes: tuple[int, ...] = Field((64, 64), min_length=1)
    learning_epochs: int = Field(5, ge=1)
    mini_batches: int = Field(4, ge=1)
    discount: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    entropy_coef: float = Field(0.0, ge=0)
    schedule: Literal["fixed", "linear", "adaptive"] = Field(
        "fixed",
        description="linear: decay the learning rate to 0 over this run's iterations; adaptive: "
        "scale it to keep the KL divergence near desired_kl; fixed: keep it",
    )
    desired_kl: float = Field(0.01, gt=0)
    eval_episodes: int = Field(8, ge=0, description="deterministic episodes at the end (0: none)")
    checkpoint_every: int = Field(10, ge=1)
    checkpoint_url: str | None = None
    resume: str | None = None
    warm_start: bool = Field(False, description="load only the weights of `resume`")
    device: Literal["cpu"] = "cpu"
    threads: int = Field(
        1, ge=1, le=256, description="torch CPU threads while training (1: fastest for small MLPs)"
    )

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        get_task(self.task)  # UserError for an unknown task
        if any(size < 1 for size in self.hidden_sizes):
            raise ValueError("hidden_sizes must all be positive")
        if self.num_envs * self.steps_per_iteration < self.mini_batches:
            raise ValueError("num_envs * steps_per_iteration must be at least mini_batches")
        if self.warm_start and not self.resume:
            raise ValueError("warm_start needs resume (the checkpoint to start from)")
        return self


def load_config(**values: Any) -> RLConfig:
    """An RLConfig from keyword values; a UserError naming the first bad field otherwise."""
    from pydantic import ValidationError

    try:
        return RLConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise UserError(f"invalid RL option {where}: {first['msg']}") from None


@dataclass
class RLResult:
    """What a run produced."""

    library: Library
    task: str
    iterations: int
    """The iteration counter at the end (continues across resumes)."""
    mean_return: float | None
    """Mean return of the final deterministic evaluation (`eval_episodes`); without one, of
    the last `RETURN_WINDOW` finished training episodes (None if none finished)."""
    success_rate: float | None
    episodes: int
    train_return: float | None = None
    """Mean return of the last `RETURN_WINDOW` finished training episodes."""
    checkpoints: list[str] = field(default_factory=list)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (history reduced to each metric's last value)."""
        return {
            "library": self.library,
            "task": self.task,
            "iterations": self.iterations,
            "mean_return": self.mean_return,
            "success_rate": self.success_rate,
            "train_return": self.train_return,
            "episodes": self.episodes,
            "checkpoints": self.checkpoints,
            "seconds": round(self.seconds, 3),
            "last_metrics": {k: v[-1][1] for k, v in sorted(self.history.items()) if v},
        }


# -- the environment adapter --------------------------------------------------------------------


@dataclass
class Episodes:
    """Episodes that finished during one iteration."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)


class TorchVecEnv:
    """A gymnasium VectorEnv seen through torch tensors, with episode bookkeeping.

    The vector env is switched to same-step autoreset: a finished sub-environment is reset inside
    the step that ended it, so every transition a learner stores is a real one (gymnasium's
    default next-step mode would feed it one fake reset transition per episode). Actions are
    clipped to the action space's bounds; the learners keep their unclipped samples.
    """

    def __init__(self, task: TaskSpec, num_envs: int, seed: int) -> None:
        from gymnasium.vector import AutoresetMode

        self.task = task
        self.envs = make_vector_env(task, num_envs, seed=seed)
        self.envs.autoreset_mode = AutoresetMode.SAME_STEP
        self.envs.metadata["autoreset_mode"] = AutoresetMode.SAME_STEP
        self.num_envs = num_envs
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        self.num_obs = int(np.prod(self.observation_space.shape))
        self.num_actions = int(np.prod(self.action_space.shape))
        spec = self.envs.envs[0].spec if hasattr(self.envs, "envs") else None
        self.max_episode_length = int(getattr(spec, "max_episode_steps", None) or 1000)
        self._low = torch.as_tensor(self.action_space.low, dtype=torch.float32)
        self._high = torch.as_tensor(self.action_space.high, dtype=torch.float32)
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self._tensor(obs)
        self.final_obs = self.obs
        self.episode_return = np.zeros(num_envs, dtype=np.float64)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)
        self.finished = Episodes()
        self.steps = 0

    @staticmethod
    def _tensor(array: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=torch.float32).reshape(len(array), -1)

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step every sub-environment: (next obs, reward, terminated, truncated), each (N, ...).

        For a finished sub-environment the returned observation is already the reset one; its
        last real observation is in `final_obs` (what time-out bootstrapping needs).
        """
        clipped = torch.clamp(actions.detach().cpu().float(), self._low, self._high)
        shaped = clipped.numpy().reshape((self.num_envs, *self.action_space.shape))
        obs, reward, terminated, truncated, infos = self.envs.step(shaped)
        reward = np.asarray(reward, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        self.steps += self.num_envs
        self.episode_return += reward
        self.episode_length += 1
        done = terminated | truncated
        self.last_successes: dict[int, bool] = {}
        if done.any():
            final = infos.get("final_info", {}) if isinstance(infos, dict) else {}
            outcomes = episode_successes(self.task, final, terminated, truncated)
            self.finished.successes.extend(outcomes)
            ended = [int(i) for i in np.flatnonzero(done)]
            if len(outcomes) == len(ended):
                self.last_successes = dict(zip(ended, outcomes, strict=True))
            for i in np.flatnonzero(done):
                self.finished.returns.append(float(self.episode_return[i]))
                self.finished.lengths.append(int(self.episode_length[i]))
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
        self.obs = self._tensor(obs)
        self.final_obs = self.obs
        if done.any() and isinstance(infos, dict) and "final_obs" in infos:
            self.final_obs = self.obs.clone()
            for i in np.flatnonzero(done):
                self.final_obs[i] = torch.as_tensor(
                    np.asarray(infos["final_obs"][i]), dtype=torch.float32
                ).reshape(-1)
        return (
            self.obs,
            torch.as_tensor(reward, dtype=torch.float32),
            torch.as_tensor(terminated),
            torch.as_tensor(truncated),
        )

    def drain(self) -> Episodes:
        """The episodes finished since the last drain."""
        finished, self.finished = self.finished, Episodes()
        return finished

    def close(self) -> None:
        """Close the vector env."""
        self.envs.close()


# -- the library backends -----------------------------------------------------------------------


class Learner(Protocol):
    """What a library backend provides to the shared loop."""

    def iteration(self) -> dict[str, float]:
        """Collect one rollout and update once; the update's contract metrics (losses, lr)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Model and optimizer state (tensors, numbers, strings, nested dicts/lists only)."""
        ...

    def load_state_dict(self, state: dict[str, Any], *, weights_only: bool) -> None:
        """Restore `state_dict()` (only the model weights when `weights_only`)."""
        ...

    def weights_finite(self) -> bool:
        """Whether every model parameter is finite."""
        ...

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's mean action for each observation (for evaluation)."""
        ...

    def set_learning_rate(self, learning_rate: float) -> None:
        """Set the optimizer's learning rate (the linear schedule calls it every iteration)."""
        ...


def make_learner(config: RLConfig, env: TorchVecEnv) -> Learner:
    """The backend of `config.library`."""
    if config.library == "skrl":
        from physai.training.rl_skrl import SkrlLearner

        return SkrlLearner(config, env)
    from physai.training.rl_rsl import RslLearner

    return RslLearner(config, env)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU runs are then repeatable, see the spec)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- checkpoints --------------------------------------------------------------------------------


def checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    """torch.save `payload` through a temporary file and return its bytes."""
    with tempfile.TemporaryDirectory(prefix="physai-ckpt-") as tmp:
        path = Path(tmp) / "ckpt.pt"
        torch.save(payload, path)
        return path.read_bytes()


def parse_checkpoint(data: bytes, where: str) -> dict[str, Any]:
    """A checkpoint dict from bytes (weights_only load); UserError if it is not one."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"checkpoint {where} is corrupt or not a checkpoint: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"checkpoint {where} is not a physai RL checkpoint ({CHECKPOINT_FORMAT})")
    if not isinstance(payload.get("iteration"), int) or not isinstance(payload.get("state"), dict):
        raise UserError(f"checkpoint {where} is incomplete (no iteration or no state)")
    return payload


class CheckpointStore:
    """Checkpoints under one storage URL: `ckpt_<iteration>.pt` files and `latest.json`."""

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        self.url = url
        self.settings = settings

    def path(self, name: str) -> str:
        """The URL of `name` under the store."""
        return storage.join_url(self.url, name)

    def save(self, iteration: int, payload: dict[str, Any]) -> str:
        """Write `ckpt_<iteration>.pt`, then point latest.json at it; return the checkpoint URL.

        If writing the checkpoint fails, latest.json is untouched (it still names the last good
        checkpoint); a reader never sees a half-written checkpoint or pointer.
        """
        name = f"ckpt_{iteration}.pt"
        data = checkpoint_bytes(payload)
        url = self.path(name)
        storage.write_bytes(url, data, self.settings)
        pointer = {
            "checkpoint": name,
            "iteration": iteration,
            "sha256": hashlib.sha256(data).hexdigest(),
            "library": payload.get("library"),
            "task": payload.get("task"),
        }
        storage.write_text(self.path(LATEST), json.dumps(pointer, indent=2) + "\n", self.settings)
        return url

    def latest(self) -> dict[str, Any] | None:
        """The latest.json pointer, or None when there is none."""
        where = self.path(LATEST)
        if not storage.exists(where, self.settings):
            return None
        return _read_pointer(where, self.settings)


def _read_pointer(url: str, settings: Settings | None) -> dict[str, Any]:
    try:
        pointer = json.loads(storage.read_text(url, settings))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{url} is not a valid latest.json") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("checkpoint"), str):
        raise UserError(f"{url} is not a valid latest.json (no 'checkpoint')")
    return pointer


def _parent(url: str) -> str:
    if "://" in url and not url.startswith("file://"):
        return url.rsplit("/", 1)[0]
    return os.path.dirname(url.removeprefix("file://")) or "."


def load_checkpoint(source: str, settings: Settings | None = None) -> dict[str, Any]:
    """The checkpoint `source` names: a .pt file, a latest.json, a directory/URL holding a
    latest.json, or a `runs:/`/`models:/` URI of such a directory. UserError (one line) when it
    is missing or corrupt.
    """
    if source.startswith(("runs:/", "models:/")):
        return _load_registered(source, settings)
    if source.endswith(".pt"):
        return _read_checkpoint(source, None, settings)
    pointer_url = source if source.endswith(".json") else storage.join_url(source, LATEST)
    if not storage.exists(pointer_url, settings):
        raise NotFoundError(f"no checkpoint at {source} (no {LATEST} there)")
    pointer = _read_pointer(pointer_url, settings)
    url = storage.join_url(_parent(pointer_url), pointer["checkpoint"])
    return _read_checkpoint(url, pointer.get("sha256"), settings)


def _read_checkpoint(url: str, sha256: str | None, settings: Settings | None) -> dict[str, Any]:
    if not storage.exists(url, settings):
        raise NotFoundError(f"checkpoint {url} does not exist")
    data = storage.read_bytes(url, settings)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise UserError(f"checkpoint {url} is corrupt: its sha256 differs from latest.json's")
    return parse_checkpoint(data, url)


def _load_registered(uri: str, settings: Settings | None) -> dict[str, Any]:
    from physai.core.registry import download_model

    with tempfile.TemporaryDirectory(prefix="physai-resume-") as tmp:
        root = download_model(uri, Path(tmp) / "model", settings=settings)
        if (root / LATEST).is_file():
            return load_checkpoint(str(root / LATEST), settings)
        found = sorted(root.rglob("ckpt_*.pt"), key=lambda p: _iteration_of(p.name))
        if not found:
            raise NotFoundError(f"{uri} holds no {LATEST} and no ckpt_<iteration>.pt")
        return _read_checkpoint(str(found[-1]), None, settings)


def _iteration_of(name: str) -> int:
    digits = name.removeprefix("ckpt_").removesuffix(".pt")
    return int(digits) if digits.isdigit() else -1


# -- the loop -----------------------------------------------------------------------------------


def _mean(values: list[float] | list[int] | list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def train_rl(
    config: RLConfig,
    *,
    tracker: Any | None = None,
    settings: Settings | None = None,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
) -> RLResult:
    """Train PPO as `config` says; metrics go to `tracker` (a started core Tracker) if given."""
    start_iteration = 0
    resumed: dict[str, Any] | None = None
    if config.resume:
        resumed = load_checkpoint(config.resume, settings)
        _check_compatible(resumed, config)
        if not config.warm_start:
            start_iteration = int(resumed["iteration"])
    seed_everything(config.seed + start_iteration)
    task = get_task(config.task)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    env = TorchVecEnv(task, config.num_envs, seed=config.seed + start_iteration)
    try:
        learner = make_learner(config, env)
        if resumed is not None:
            learner.load_state_dict(resumed["state"], weights_only=config.warm_start)
            if not config.warm_start and "torch_rng" in resumed:
                torch.set_rng_state(resumed["torch_rng"])
        if tracker is not None:
            tracker.log_params(_params(config))
            tracker.set_tags({"physai.rl.library": config.library, "physai.rl.task": task.name})
        return run_loop(config, env, learner, start_iteration, tracker, settings, on_iteration)
    finally:
        env.close()
        torch.set_num_threads(threads)


def _params(config: RLConfig) -> dict[str, Any]:
    values = config.model_dump()
    values["hidden_sizes"] = "x".join(str(s) for s in config.hidden_sizes)
    return {f"rl.{k}": v for k, v in values.items() if v is not None}


def _check_compatible(payload: dict[str, Any], config: RLConfig) -> None:
    for key in ("library", "task"):
        if payload.get(key) != getattr(config, key):
            raise UserError(
                f"checkpoint is for {key} {payload.get(key)!r}, not {getattr(config, key)!r}"
            )
    hidden = tuple(int(h) for h in payload.get("hidden_sizes", ()))
    if hidden and hidden != config.hidden_sizes:
        raise UserError(f"checkpoint has hidden sizes {hidden}, not {config.hidden_sizes}")


def run_loop(
    config: RLConfig,
    env: TorchVecEnv,
    learner: Learner,
    start_iteration: int,
    tracker: Any | None,
    settings: Settings | None,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
) -> RLResult:
    """The shared loop: iterate, log contract metrics, checkpoint, stop on NaN."""
    sink = MetricSink(tracker, min_interval_s=RL_LOG_INTERVAL_S)
    try:
        result = _iterate(config, env, learner, start_iteration, sink, settings, on_iteration)
    except BaseException:
        with contextlib.suppress(Exception):  # keep the run's own error, not a tracker's
            sink.flush()  # what the interval held back
        raise
    sink.flush()
    return result


def _iterate(
    config: RLConfig,
    env: TorchVecEnv,
    learner: Learner,
    start_iteration: int,
    sink: MetricSink,
    settings: Settings | None,
    on_iteration: Callable[[int, dict[str, float]], None] | None,
) -> RLResult:
    tracker = sink.tracker
    store = CheckpointStore(config.checkpoint_url, settings) if config.checkpoint_url else None
    returns: deque[float] = deque(maxlen=RETURN_WINDOW)
    successes: deque[bool] = deque(maxlen=RETURN_WINDOW)
    written: list[str] = []
    episodes = 0
    began = time.perf_counter()
    iteration = start_iteration
    last_saved: int | None = None
    for iteration in range(start_iteration + 1, start_iteration + config.iterations + 1):
        tick = time.perf_counter()
        if config.schedule == "linear":
            done = (iteration - start_iteration - 1) / config.iterations
            learner.set_learning_rate(config.learning_rate * (1.0 - done))
        metrics = learner.iteration()
        finished = env.drain()
        if not all(math.isfinite(v) for v in metrics.values()) or not learner.weights_finite():
            kept = (
                f"latest.json still names ckpt_{last_saved}.pt"
                if last_saved
                else "no checkpoint was written in this run"
            )
            raise RLDivergedError(
                f"PPO diverged at iteration {iteration} (non-finite loss or weights: "
                f"{_nonfinite(metrics)}); {kept}: lower --learning-rate or resume from it"
            )
        metrics["train/fps"] = (
            config.num_envs * config.steps_per_iteration / max(time.perf_counter() - tick, 1e-9)
        )
        if finished.returns:
            metrics["train/episode_return"] = float(np.mean(finished.returns))
            metrics["train/episode_length"] = float(np.mean(finished.lengths))
        if finished.successes:
            metrics["train/success_rate"] = float(np.mean(finished.successes))
        returns.extend(finished.returns)
        successes.extend(finished.successes)
        episodes += len(finished.returns)
        logged = sink.log(metrics, step=iteration)
        if on_iteration is not None:
            on_iteration(iteration, logged)
        last = iteration == start_iteration + config.iterations
        if store is not None and (iteration % config.checkpoint_every == 0 or last):
            written.append(store.save(iteration, _payload(config, learner, iteration)))
            last_saved = iteration
    mean_return, success_rate = _mean(list(returns)), _mean(list(successes))
    train_return = mean_return
    if config.eval_episodes:
        evaluated = evaluate(
            learner, env.task, config.eval_episodes, config.seed + EVAL_SEED_OFFSET
        )
        mean_return = _mean(evaluated.returns)
        success_rate = _mean(evaluated.successes)
        final = {"eval/episode_return": mean_return, "eval/success_rate": success_rate}
        sink.log({k: v for k, v in final.items() if v is not None}, step=iteration)
    if tracker is not None and store is not None and written:
        _log_checkpoint_artifacts(tracker, store, settings)
    return RLResult(
        library=config.library,
        task=config.task,
        iterations=iteration,
        mean_return=mean_return,
        success_rate=success_rate,
        train_return=train_return,
        episodes=episodes,
        checkpoints=written,
        history={k: list(v) for k, v in sink.history.items()},
        seconds=time.perf_counter() - began,
    )


def evaluate(learner: Learner, task: TaskSpec, episodes: int, seed: int) -> Episodes:
    """Run `episodes` episodes (one per environment, in parallel) with the mean action."""
    env = TorchVecEnv(task, episodes, seed=seed)
    try:
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        result = Episodes()
        while running.any():
            with torch.no_grad():
                actions = learner.act_deterministic(env.obs)
            _, reward, terminated, truncated = env.step(actions)
            returns[running] += reward.numpy()[running]
            lengths[running] += 1
            ended = running & (terminated | truncated).numpy()
            success = env.last_successes
            for i in np.flatnonzero(ended):
                result.returns.append(float(returns[i]))
                result.lengths.append(int(lengths[i]))
                if int(i) in success:
                    result.successes.append(success[int(i)])
            running &= ~ended
        return result
    finally:
        env.close()


def _nonfinite(metrics: dict[str, float]) -> str:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    return ", ".join(bad) or "weights"


def _payload(config: RLConfig, learner: Learner, iteration: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "library": config.library,
        "task": config.task,
        "iteration": iteration,
        "seed": config.seed,
        "hidden_sizes": list(config.hidden_sizes),
        "state": learner.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }


def _log_checkpoint_artifacts(tracker: Any, store: CheckpointStore, settings: Any) -> None:
    """Log the latest checkpoint and its latest.json as run artifacts under `checkpoints/`."""
    pointer = store.latest()
    if pointer is None:
        return
    with tempfile.TemporaryDirectory(prefix="physai-ckpt-artifacts-") as tmp:
        root = Path(tmp) / "checkpoints"
        root.mkdir()
        name = pointer["checkpoint"]
        (root / name).write_bytes(storage.read_bytes(store.path(name), settings))
        (root / LATEST).write_text(json.dumps(pointer, indent=2) + "\n")
        tracker.log_artifacts(root, "checkpoints")
