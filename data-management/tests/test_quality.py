"""Quality scores against trajectories whose answers are known analytically."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physai.core.errors import UserError
from physai.data_management.quality import (
    EpisodeArrays,
    EpisodeQuality,
    QualitySettings,
    duration,
    duration_outliers,
    episode_quality,
    gripper_flips,
    idle_time,
    log_dimensionless_jerk,
    nonfinite_counts,
    path_length,
    rms_jerk,
    robust_z_scores,
    score_episodes,
    step_dt,
)

FPS = 50.0
MIN_JERK_LDLJ = -math.log(720 / 1.875**2)  # -5.3220: the minimum-jerk reach, analytically


def times(n: int, fps: float = FPS) -> npt.NDArray[Any]:
    return np.arange(n) / fps


def minimum_jerk(
    n: int, span: float, amplitude: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """x(t) = A (10 u^3 - 15 u^4 + 6 u^5), u = t / T: the smoothest reach (Flash & Hogan)."""
    t = np.linspace(0.0, span, n)
    u = t / span
    return (10 * u**3 - 15 * u**4 + 6 * u**5)[:, None] * amplitude, t


# -- the analytical cases ------------------------------------------------------------------


def test_constant_signal_has_zero_jerk_and_is_idle_throughout() -> None:
    t = times(200)
    x = np.tile([0.3, -1.2, 2.0], (200, 1))
    q = episode_quality(x, t)
    assert q.duration_s == pytest.approx(199 / FPS)
    assert q.rms_jerk == 0.0
    assert q.idle_s == pytest.approx(q.duration_s) and q.idle_fraction == pytest.approx(1.0)
    assert q.path_length == 0.0
    assert q.ldlj is None  # no motion: dimensionless jerk is undefined
    assert q.signal == "action" and q.gripper_flips is None


def test_straight_line_at_constant_speed() -> None:
    t = times(101)
    start, end = np.array([1.0, 2.0, 0.0]), np.array([4.0, 6.0, 0.0])  # distance 5
    x = start + (end - start) * (t / t[-1])[:, None]
    assert path_length(x) == pytest.approx(5.0, rel=1e-12)
    assert rms_jerk(x, t) == pytest.approx(0.0, abs=1e-6)
    assert idle_time(x, t) == 0.0
    q = episode_quality(x, t, state=x * 2)
    assert q.signal == "observation.state" and q.path_length == pytest.approx(10.0)


def test_path_length_of_a_monotone_line_at_varying_speed_is_the_distance() -> None:
    u = np.linspace(0, 1, 300) ** 3  # accelerating, never turning back
    x = np.stack([3 * u, -4 * u], axis=1)
    assert path_length(x) == pytest.approx(5.0, rel=1e-12)


def test_path_length_of_a_circle_is_its_circumference() -> None:
    a = np.linspace(0, 2 * np.pi, 20001)
    assert path_length(np.stack([np.cos(a), np.sin(a)], 1)) == pytest.approx(2 * np.pi, rel=1e-7)


def test_cubic_has_constant_jerk() -> None:
    t = times(100)
    x = np.stack([2.0 * t**3, -0.5 * t**3 + t], axis=1)  # jerk (12, -3): norm sqrt(153)
    assert rms_jerk(x, t) == pytest.approx(math.sqrt(153), rel=1e-6)
    assert rms_jerk(t**2, t) == pytest.approx(0.0, abs=1e-6)


def test_minimum_jerk_reach_scores_the_analytical_ldlj() -> None:
    x, t = minimum_jerk(2001, 1.5, np.array([0.2, -0.4, 0.1]))
    assert log_dimensionless_jerk(x, t) == pytest.approx(MIN_JERK_LDLJ, rel=2e-3)


def test_jerkier_motion_scores_lower_ldlj() -> None:
    x, t = minimum_jerk(1001, 2.0, np.array([1.0]))
    shaky = x + 0.01 * np.sin(2 * np.pi * 8 * t)[:, None]
    smooth, rough = log_dimensionless_jerk(x, t), log_dimensionless_jerk(shaky, t)
    assert smooth is not None and rough is not None and rough < smooth - 1


def test_idle_half_of_the_episode() -> None:
    t = np.linspace(0, 1, 101)  # 100 steps of 10 ms
    x = np.concatenate([np.linspace(0, 1, 51), np.ones(50)])[:, None]
    assert idle_time(x, t) == pytest.approx(0.5)
    q = episode_quality(x, t)
    assert q.idle_fraction == pytest.approx(0.5)


def test_idle_threshold_is_relative_to_the_largest_range_or_absolute() -> None:
    t = times(101)
    slow = 0.01 * t  # 0.01 units/s
    x = np.stack([np.linspace(0, 10, 101), slow], axis=1)  # channel 0 moves fast throughout
    assert idle_time(x, t) == 0.0
    # channel 1 alone: its own range is tiny, so 5 % of it per second is slower than it moves
    assert idle_time(slow, t) == 0.0
    assert idle_time(slow, t, speed=0.02) == pytest.approx(2.0)
    assert idle_time(x, t, speed=[20.0, 0.02]) == pytest.approx(2.0)
    assert idle_time(x, t, speed=[20.0, 0.005]) == 0.0
    with pytest.raises(UserError, match="one value >= 0 or 2"):
        idle_time(x, t, speed=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("edges", [0, 1, 2, 7, 12])
def test_square_wave_gripper_with_n_edges_has_n_flips(edges: int) -> None:
    levels = np.arange(edges + 1) % 2  # low, high, low, ...
    gripper = np.repeat(levels, 10).astype(float)
    action = np.stack([np.zeros_like(gripper), gripper], axis=1)
    q = episode_quality(action, times(len(gripper)), settings=QualitySettings(gripper_channel=-1))
    assert q.gripper_flips == edges


def test_hysteresis_ignores_noise_around_the_threshold() -> None:
    rng = np.random.default_rng(0)
    ramp = np.clip(np.linspace(-0.5, 1.5, 2000), 0, 1)  # opens once, slowly
    noisy = ramp + rng.uniform(-0.1, 0.1, ramp.size)
    naive = int(np.count_nonzero(np.diff(noisy > 0.5)))
    assert naive > 10  # a single threshold would count every wobble
    assert gripper_flips(noisy) == 1
    assert gripper_flips(noisy, low=0.2, high=0.8) == 1
    assert gripper_flips(noisy, low=0.45, high=0.55) > 1  # a band inside the noise does not help


def test_gripper_that_never_moves_has_no_flips() -> None:
    assert gripper_flips(np.full(50, 0.04)) == 0
    assert gripper_flips([np.nan, np.nan]) == 0
    with pytest.raises(UserError, match="low < high"):
        gripper_flips([0.0, 1.0], low=0.8, high=0.2)


def test_gripper_on_the_state_and_with_absolute_thresholds() -> None:
    state = np.array([[0.0], [0.0], [0.08], [0.08], [0.0]])  # metres: closes, opens
    s = QualitySettings(
        gripper_channel=0, gripper_source="observation.state", gripper_thresholds=(0.02, 0.06)
    )
    q = episode_quality(np.zeros((5, 2)), times(5), state=state, settings=s)
    assert q.gripper_flips == 2


def test_nan_and_inf_are_counted_and_do_not_spread() -> None:
    t = times(100)
    x = np.stack([np.linspace(0, 3, 100), np.linspace(0, 4, 100)], axis=1)
    x[10, 0] = np.nan
    x[20, 1] = np.nan
    x[30, 0] = np.inf
    q = episode_quality(x, t)
    assert q.nan_counts == {"action": 2, "timestamp": 0}
    assert q.inf_counts == {"action": 1, "timestamp": 0}
    assert q.nonfinite == 3
    # the 6 steps that touch a bad sample are left out; the rest is still a straight line
    assert q.path_length == pytest.approx(5.0 * 93 / 99)
    assert q.rms_jerk == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(q.idle_s)
    assert nonfinite_counts([np.nan, -np.inf, 1.0, np.inf]) == (1, 2)
    json.loads(q.model_dump_json())  # still valid JSON


def test_timestamps_that_go_back_are_counted() -> None:
    t = np.array([0.0, 0.1, 0.2, 0.2, 0.15, 0.3])
    q = episode_quality(np.zeros((6, 1)), t)
    assert q.timestamp_backsteps == 2
    assert step_dt(t) == pytest.approx(0.1)
    assert duration([np.nan, 1.0, 3.0, np.nan]) == 2.0


def test_short_episodes() -> None:
    q = episode_quality([[1.0]], [0.0])
    assert (q.num_frames, q.duration_s, q.idle_fraction, q.path_length) == (1, 0.0, 0.0, 0.0)
    assert q.rms_jerk is None and q.ldlj is None
    assert rms_jerk(np.zeros((3, 2)), times(3)) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": np.zeros((5, 2)), "timestamp": times(4)}, "5 frames but timestamp has 4"),
        ({"action": np.zeros((2, 2, 2)), "timestamp": times(2)}, r"shape \(T, D\)"),
        ({"action": np.zeros((0, 2)), "timestamp": times(0)}, "no frames"),
        ({"action": [["a", "b"]], "timestamp": [0.0]}, "not a numeric array"),
        ({"action": np.zeros((3, 2)), "timestamp": times(3), "episode_index": -1}, ">= 0"),
        (
            {"action": np.zeros((3, 2)), "timestamp": times(3), "state": np.zeros((4, 2))},
            "observation.state has 4 frames",
        ),
        (
            {
                "action": np.zeros((3, 2)),
                "timestamp": times(3),
                "settings": QualitySettings(gripper_channel=2),
            },
            "outside action's 2 channels",
        ),
        (
            {
                "action": np.zeros((3, 2)),
                "timestamp": times(3),
                "settings": QualitySettings(signal="observation.state"),
            },
            "has no state",
        ),
    ],
)
def test_bad_input_is_a_user_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        episode_quality(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="low < high"):
        QualitySettings(gripper_thresholds=(1.0, 0.0))
    with pytest.raises(ValueError, match="gripper_band"):
        QualitySettings(gripper_band=(0.5, 1.5))


# -- dataset level -------------------------------------------------------------------------


def test_duration_outliers_use_the_mad_z_score() -> None:
    durations = [10.0, 10.5, 9.8, 10.2, 10.1, 9.9, 30.0, 2.0]
    assert duration_outliers(durations) == [False] * 6 + [True, True]
    z = robust_z_scores(durations)
    median = float(np.median(durations))
    mad = float(np.median(np.abs(np.array(durations) - median)))
    assert z[6] == pytest.approx(0.6745 * (30.0 - median) / mad)
    assert duration_outliers([7.0] * 5) == [False] * 5
    assert duration_outliers([]) == []
    # MAD is 0 (most durations equal): the mean absolute deviation stands in
    assert duration_outliers([5.0, 5.0, 5.0, 5.0, 9.0]) == [False] * 4 + [True]
    assert duration_outliers(durations, threshold=100) == [False] * 8
    with pytest.raises(UserError):
        robust_z_scores([1.0, math.nan])


def test_score_episodes_fills_the_outlier_flag_and_round_trips_json() -> None:
    rng = np.random.default_rng(1)
    episodes = []
    for i, n in enumerate([100, 104, 98, 101, 99, 400]):
        action = np.cumsum(rng.normal(size=(n, 3)), axis=0)
        columns = {"action": action.tolist(), "timestamp": times(n), "episode_index": [i] * n}
        episodes.append(EpisodeArrays.from_columns(columns))
    scores = score_episodes(episodes)
    assert [q.episode_index for q in scores] == list(range(6))
    assert [q.duration_outlier for q in scores] == [False] * 5 + [True]
    assert all(q.duration_z is not None for q in scores)
    for q in scores:
        assert EpisodeQuality.model_validate_json(q.model_dump_json()) == q
    with pytest.raises(UserError, match="lack timestamp"):
        EpisodeArrays.from_columns({"action": [[0.0]]})


# -- properties ----------------------------------------------------------------------------

finite = st.floats(-100, 100, allow_nan=False)
trajectories = st.integers(2, 40).flatmap(
    lambda n: st.lists(st.lists(finite, min_size=2, max_size=2), min_size=n, max_size=n)
)
waves = st.lists(st.tuples(st.floats(0.1, 3), st.floats(0.2, 4), st.floats(0, 6)), min_size=1)


def wave(params: list[tuple[float, float, float]], t: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A smooth 2-channel trajectory: a sum of sines (amplitude, frequency, phase)."""
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in params)
    return np.stack([x, np.cos(t) * x], axis=1)


@settings(max_examples=60, deadline=None)
@given(trajectories)
def test_path_length_is_invariant_to_time_reversal(rows: list[list[float]]) -> None:
    x = np.array(rows)
    assert path_length(x[::-1]) == pytest.approx(path_length(x), rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(waves, st.floats(0.01, 100))
def test_jerk_scales_with_amplitude_and_ldlj_does_not(
    params: list[tuple[float, float, float]], k: float
) -> None:
    t = times(200)
    x = wave(params, t)
    j, ldlj = rms_jerk(x, t), log_dimensionless_jerk(x, t)
    assert j is not None and ldlj is not None
    assert rms_jerk(k * x, t) == pytest.approx(k * j, rel=1e-9)
    assert rms_jerk(-x, t) == pytest.approx(j, rel=1e-9)
    assert log_dimensionless_jerk(k * x, t) == pytest.approx(ldlj, rel=1e-9, abs=1e-9)
    assert path_length(k * x) == pytest.approx(k * path_length(x), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(waves, st.floats(0.1, 10))
def test_slowing_down_by_s_divides_jerk_by_s_cubed(
    params: list[tuple[float, float, float]], s: float
) -> None:
    t = times(200)
    x = wave(params, t)
    j, ldlj = rms_jerk(x, t), log_dimensionless_jerk(x, t)
    assert j is not None
    assert rms_jerk(x, s * t) == pytest.approx(j / s**3, rel=1e-9)
    assert log_dimensionless_jerk(x, s * t) == pytest.approx(ldlj, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_flips_equal_level_changes_whatever_the_noise(holds: list[int], seed: int) -> None:
    levels = np.arange(len(holds)) % 2
    signal = np.repeat(levels, holds).astype(float)
    noisy = signal + np.random.default_rng(seed).uniform(-0.25, 0.25, signal.size)
    assert gripper_flips(noisy, low=0.3, high=0.7) == len(holds) - 1


@settings(max_examples=60, deadline=None)
@given(trajectories)
def test_idle_fraction_is_a_fraction(rows: list[list[float]]) -> None:
    x = np.array(rows)
    q = episode_quality(x, times(len(x)))
    assert 0.0 <= q.idle_fraction <= 1.0
    assert q.idle_s <= q.duration_s + 1e-12
