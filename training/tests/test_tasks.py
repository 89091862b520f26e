"""The task registry and the metric contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physai.core.errors import MissingDependencyError, UserError
from physai.training.metrics import CONTRACT, MetricSink, translate
from physai.training.tasks import (
    TASKS,
    TaskSpec,
    episode_successes,
    get_task,
    make_vector_env,
    task_names,
)


def test_gymnasium_tasks_make_seeded_vector_envs() -> None:
    task = get_task("InvertedPendulum")
    assert get_task("InvertedPendulum-v5") is task and task.source == "gymnasium"
    assert isinstance(task, TaskSpec) and task.solved_return == 500.0
    first = make_vector_env(task, 3, seed=7)
    second = make_vector_env("InvertedPendulum", 3, seed=7)
    a, _ = first.reset(seed=7)
    b, _ = second.reset(seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 4) and first.single_action_space.shape == (1,)
    for env in (first, second):
        env.close()


def test_success_signal_at_episode_end() -> None:
    task = get_task("InvertedPendulum")
    envs = make_vector_env(task, 2, seed=0)
    envs.reset(seed=0)
    results: list[bool] = []
    for _ in range(200):  # random actions drop the pole: failures
        _, _, terminated, truncated, infos = envs.step(envs.action_space.sample())
        results += episode_successes(task, infos, terminated, truncated)
    envs.close()
    assert results and not any(results)
    assert task.is_success({}, terminated=False, truncated=True) is True
    reacher = get_task("Reacher")
    assert reacher.is_success({"reward_dist": -0.01}, False, True) is True
    assert reacher.is_success({"reward_dist": -0.2}, False, True) is False
    assert get_task("Ant").is_success({}, False, True) is None


def test_unknown_and_isaaclab_tasks_say_what_to_do() -> None:
    with pytest.raises(UserError, match="unknown task 'Walker9'"):
        get_task("Walker9")
    with pytest.raises(UserError, match="num_envs"):
        make_vector_env("InvertedPendulum", 0)
    assert "Isaac-Cartpole" in task_names("isaaclab")
    assert set(task_names()) == set(TASKS)
    with pytest.raises(MissingDependencyError, match="isaaclab"):
        make_vector_env("Isaac-Cartpole", 2)


def test_metric_contract_names_are_the_same_for_every_library(tmp_path: Path) -> None:
    assert translate("Loss / Policy loss") == "train/policy_loss"  # skrl
    assert translate("Loss/surrogate") == "train/policy_loss"  # rsl_rl
    assert translate("Train/mean_reward") == "train/episode_return"
    assert translate("lr") == "train/learning_rate"  # LeRobot
    assert translate("grad norm!") == "train/extra/grad_norm"
    assert all(translate(name) == name for name in CONTRACT)

    from physai.core.settings import Settings
    from physai.core.tracking import Tracker

    settings = Settings(home=tmp_path / ".physai")
    with Tracker(settings, flush_interval_s=0.1).start("contract") as tracker:
        sink = MetricSink(tracker)
        logged = sink.log({"loss": 0.5, "Loss/value": float("nan"), "note": "x"}, step=3)
        run_id = tracker.run_id
    assert logged == {"train/loss": 0.5}
    history = tracker.client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(3, 0.5)]
    assert sink.last("train/loss") == 0.5 and sink.last("train/value_loss") is None


def test_metric_sink_interval_averages_what_it_holds_back() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.rows: list[tuple[int, dict[str, float]]] = []

        def log_metrics(self, metrics: dict[str, float], step: int) -> None:
            self.rows.append((step, dict(metrics)))

    now = [0.0]
    recorder = Recorder()
    sink = MetricSink(recorder, min_interval_s=1.0, clock=lambda: now[0])
    for step, loss in enumerate([1.0, 2.0, 4.0, 6.0], start=1):
        sink.log({"train/loss": loss}, step=step)
        now[0] += 0.4  # steps at t = 0, 0.4, 0.8, 1.2
    assert recorder.rows == [(1, {"train/loss": 1.0}), (4, {"train/loss": 4.0})]  # (2+4+6)/3
    sink.log({"train/loss": 8.0, "eval/success_rate": 1.0}, step=5)  # held back (t = 1.6)
    assert len(recorder.rows) == 2
    sink.flush()
    assert recorder.rows[-1] == (5, {"train/loss": 8.0, "eval/success_rate": 1.0})
    sink.flush()  # nothing pending
    assert len(recorder.rows) == 3
    assert [step for step, _ in sink.history["train/loss"]] == [1, 2, 3, 4, 5]  # all kept
