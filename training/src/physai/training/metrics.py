"""One metric contract for every trainer: the same names whichever library produced them.

    sink = MetricSink(tracker)                     # or MetricSink(None): metrics are only kept
    sink.log({"train/loss": 0.3, "train/fps": 4100.0}, step=10)
    sink.history["train/loss"]                     # [(10, 0.3)]

Names (written in the training specifications):

    train/loss              total loss of the update (RL: policy + value + entropy terms)
    train/policy_loss       RL surrogate loss          train/value_loss   RL value loss
    train/entropy           RL policy entropy
    train/episode_return    mean return of episodes finished since the last log
    train/episode_length    mean length of those episodes
    train/success_rate      their success rate (tasks with a success signal)
    train/fps               environment steps (RL) or samples (IL) per second
    train/learning_rate     current learning rate
    eval/success_rate       success rate of evaluation episodes
    eval/episode_return     mean evaluation return
    system/*                process metrics (cpu_percent, rss_mb, gpu_memory_mb)

Library-specific names are translated by `translate` before logging; anything unknown keeps
its name under `train/extra/`. Logging is batched and asynchronous through core.tracking.

A loop that logs many times a second (PPO on a small CPU task: ~17 iterations/s) can ask the
sink to forward at most once per `min_interval_s`: the steps in between are averaged and sent
with the newest step, and `flush()` sends what is pending (at the end of a run). The local
`history` keeps every step either way.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

TRAINING_FLUSH_S = 15.0
"""How often a training run's batched metrics are written to MLflow. The writer's store work
runs in a thread and competes for the GIL with a Python-heavy training loop: at core's default
of 2 s, skrl PPO on CPU ran about 8% longer with tracking on (benchmarks/tracking_overhead.py);
metrics still reach MLflow within 15 s, and all of them when the run ends."""

RL_LOG_INTERVAL_S = 1.0
"""RL loops forward metrics to the tracker at most this often (averaged in between). Each
logged value costs the tracking store's writer ~0.1 ms of CPU time under the GIL; at one row per
iteration, skrl PPO at ~17 iterations/s on 2 cores ran ~3% longer with tracking on."""

CONTRACT: tuple[str, ...] = (
    "train/loss",
    "train/policy_loss",
    "train/value_loss",
    "train/entropy",
    "train/episode_return",
    "train/episode_length",
    "train/success_rate",
    "train/fps",
    "train/learning_rate",
    "eval/success_rate",
    "eval/episode_return",
)

# What each library calls the contract's metrics (lower-cased, as they log them).
ALIASES: dict[str, str] = {
    # skrl (tracking data keys)
    "loss / policy loss": "train/policy_loss",
    "loss / value loss": "train/value_loss",
    "loss / entropy loss": "train/entropy",
    "reward / total reward (mean)": "train/episode_return",
    "episode / total timesteps (mean)": "train/episode_length",
    "learning / learning rate": "train/learning_rate",
    # rsl_rl (its logger's names)
    "loss/surrogate": "train/policy_loss",
    "loss/value_function": "train/value_loss",
    "loss/value": "train/value_loss",
    "loss/entropy": "train/entropy",
    "loss/learning_rate": "train/learning_rate",
    "train/mean_reward": "train/episode_return",
    "train/mean_episode_length": "train/episode_length",
    "perf/total_fps": "train/fps",
    # LeRobot (its training step outputs)
    "loss": "train/loss",
    "lr": "train/learning_rate",
}


def translate(name: str) -> str:
    """The contract name of a library's metric name (unknown ones go under train/extra/)."""
    if name in CONTRACT or name.startswith(("system/", "train/extra/", "eval/")):
        return name
    alias = ALIASES.get(name.strip().lower())
    if alias is not None:
        return alias
    slug = re.sub(r"[^a-z0-9_.\-/]+", "_", name.strip().lower()).strip("_/")
    return f"train/extra/{slug or 'unnamed'}"


class MetricSink:
    """Translates, drops non-finite values, keeps a history, and forwards to a core Tracker
    (at most once per `min_interval_s`, averaging the steps in between, when it is set)."""

    def __init__(
        self,
        tracker: Any | None = None,
        *,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = tracker
        self.min_interval_s = min_interval_s
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._clock = clock
        self._pending: dict[str, list[float]] = {}  # name -> [sum, count]
        self._pending_step = 0
        self._sent_at = -math.inf

    def log(self, metrics: Mapping[str, Any], step: int) -> dict[str, float]:
        """Log one step's metrics under contract names; returns what was logged."""
        clean: dict[str, float] = {}
        for name, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                clean[translate(name)] = number
        for name, number in clean.items():
            self.history[name].append((step, number))
        if not clean or self.tracker is None:
            return clean
        if self.min_interval_s <= 0:
            self.tracker.log_metrics(clean, step=step)
            return clean
        for name, number in clean.items():
            total = self._pending.setdefault(name, [0.0, 0.0])
            total[0] += number
            total[1] += 1
        self._pending_step = step
        if self._clock() - self._sent_at >= self.min_interval_s:
            self.flush()
        return clean

    def flush(self) -> None:
        """Forward the averaged pending metrics now (a no-op when nothing is pending)."""
        if not self._pending or self.tracker is None:
            return
        means = {name: total / count for name, (total, count) in self._pending.items()}
        self._pending.clear()
        self._sent_at = self._clock()
        self.tracker.log_metrics(means, step=self._pending_step)

    def last(self, name: str) -> float | None:
        """The newest value of a contract metric, or None."""
        values = self.history.get(name)
        return values[-1][1] if values else None
