"""Quality scores per episode: pure numpy over one episode's arrays, typed and JSON-ready.

    q = episode_quality(action, timestamp, state=state, episode_index=3,
                        settings=QualitySettings(gripper_channel=-1))
    q.idle_fraction, q.rms_jerk, q.ldlj, q.path_length, q.gripper_flips
    scores = score_episodes(episodes)          # also flags duration outliers (robust z, MAD)

Metrics (see `data-management/specifications/annotations.specification.md`):

- duration: last minus first finite timestamp (s).
- idle time: total dt of the steps whose per-channel speed |dx/dt| stays at or below a
  threshold on every channel (default: 5 % of the episode's largest channel range per second).
- RMS jerk: root mean square of the Euclidean norm of the third finite difference divided by
  dt^3 (dt: the median step), in signal units/s^3.
- LDLJ: log dimensionless jerk, velocity-peak form (Balasubramanian et al. 2015, "On the
  analysis of movement smoothness", J NeuroEng Rehabil 12:112; Hogan & Sternad 2009):
  -ln(T^3 / v_peak^2 * integral |d^3x/dt^3|^2 dt). Invariant to amplitude and time scaling;
  higher (closer to 0) is smoother; about -5.32 for a minimum-jerk reach.
- path length: sum of the Euclidean norms of the steps.
- gripper flips: state changes of a Schmitt trigger (hysteresis) on one channel.
- NaN / inf counts per array.

Non-finite samples never propagate: a step, jerk window or gripper sample that touches one is
left out of that metric (and counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from physai.core.errors import UserError

FloatArray = npt.NDArray[np.float64]
Signal = Literal["observation.state", "action"]

ACTION: Final = "action"
STATE: Final = "observation.state"
TIMESTAMP = "timestamp"
# Iglewicz & Hoaglin (1993): |modified z| > 3.5 is a potential outlier.
DEFAULT_OUTLIER_THRESHOLD = 3.5
_MAD_TO_SIGMA = 0.6745  # Phi^-1(0.75): MAD of a normal distribution is 0.6745 sigma
_MEANAD_TO_SIGMA = 0.7979  # sqrt(2/pi): mean absolute deviation of a normal is 0.7979 sigma


class QualitySettings(BaseModel):
    """What the scores measure and their thresholds (the defaults suit most datasets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: Literal["auto", "observation.state", "action"] = Field(
        default="auto",
        description="array for idle time, jerk and path length; auto: the state when given",
    )
    idle_speed: float | tuple[float, ...] | None = Field(
        default=None,
        description="absolute speed (units/s, one value or one per channel) at or below "
        "which a step is idle; None: idle_relative_speed x the episode's largest range",
    )
    idle_relative_speed: float = Field(default=0.05, ge=0)
    gripper_channel: int | None = Field(
        default=None, description="index of the gripper channel in gripper_source (may be <0)"
    )
    gripper_source: Signal = "action"
    gripper_thresholds: tuple[float, float] | None = Field(
        default=None, description="(low, high) hysteresis levels in channel units"
    )
    gripper_band: tuple[float, float] = Field(
        default=(0.3, 0.7),
        description="(low, high) as fractions of the channel's range, when no thresholds",
    )
    outlier_threshold: float = Field(default=DEFAULT_OUTLIER_THRESHOLD, gt=0)

    @field_validator("gripper_band")
    @classmethod
    def _band_inside_unit(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= band[0] < band[1] <= 1.0:
            raise ValueError("gripper_band must satisfy 0 <= low < high <= 1")
        return band

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> QualitySettings:
        t = self.gripper_thresholds
        if t is not None and not t[0] < t[1]:
            raise ValueError("gripper_thresholds must be (low, high) with low < high")
        return self


class EpisodeQuality(BaseModel):
    """The quality scores of one episode (JSON: `model_dump(mode="json")`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_index: int = Field(ge=0)
    num_frames: int = Field(ge=0)
    duration_s: float = Field(description="last minus first finite timestamp")
    signal: Signal = Field(description="the array idle time, jerk and path length measure")
    idle_s: float = Field(description="seconds of steps below the idle speed")
    idle_fraction: float = Field(description="idle_s / duration_s (0 when duration is 0)")
    path_length: float = Field(description="sum of Euclidean step norms, in signal units")
    rms_jerk: float | None = Field(description="units/s^3; None with fewer than 4 frames")
    ldlj: float | None = Field(
        description="log dimensionless jerk (velocity-peak form); None without motion or jerk"
    )
    gripper_flips: int | None = Field(description="None when no gripper channel was named")
    nan_counts: dict[str, int]
    inf_counts: dict[str, int]
    timestamp_backsteps: int = Field(description="steps whose timestamp does not increase")
    duration_z: float | None = Field(
        default=None, description="robust (MAD) z-score of the duration within the dataset"
    )
    duration_outlier: bool = False

    @property
    def nonfinite(self) -> int:
        """NaN plus inf values over every array."""
        return sum(self.nan_counts.values()) + sum(self.inf_counts.values())


@dataclass(frozen=True)
class EpisodeArrays:
    """One episode's arrays: action (T, D), timestamp (T,), optional observation.state."""

    action: npt.ArrayLike
    timestamp: npt.ArrayLike
    state: npt.ArrayLike | None = None
    episode_index: int = 0

    @classmethod
    def from_columns(
        cls, columns: Mapping[str, Any], episode_index: int | None = None
    ) -> EpisodeArrays:
        """From LeRobot column names: `action`, `timestamp`, optional `observation.state`."""
        missing = [k for k in (ACTION, TIMESTAMP) if k not in columns]
        if missing:
            raise UserError(f"episode columns lack {', '.join(missing)}: got {sorted(columns)}")
        if episode_index is None:
            raw = columns.get("episode_index", 0)
            episode_index = int(np.asarray(raw).reshape(-1)[0]) if np.size(raw) else 0
        return cls(columns[ACTION], columns[TIMESTAMP], columns.get(STATE), episode_index)


# -- arrays ----------------------------------------------------------------------------------


def _as_2d(values: npt.ArrayLike, name: str) -> FloatArray:
    """A float64 (T, D) copy of `values` ((T,) becomes (T, 1); lists of rows are stacked)."""
    try:
        array = np.asarray(values)
        if array.dtype == object:
            array = np.stack([np.asarray(v, dtype=np.float64) for v in array])
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} is not a numeric array: {exc}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise UserError(f"{name} must have shape (T, D) or (T,), got {array.shape}")
    return array


def _as_1d(values: npt.ArrayLike, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} is not a numeric array: {exc}") from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise UserError(f"{name} must have shape (T,), got {array.shape}")
    return array


def _finite_rows(x: FloatArray) -> npt.NDArray[np.bool_]:
    return np.asarray(np.isfinite(x).all(axis=1))


def step_dt(timestamp: npt.ArrayLike) -> float | None:
    """The median of the positive finite timestamp steps (s), or None when there is none."""
    t = _as_1d(timestamp, TIMESTAMP)
    steps = np.diff(t)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(np.median(steps)) if steps.size else None


# -- metrics ---------------------------------------------------------------------------------


def duration(timestamp: npt.ArrayLike) -> float:
    """Last minus first finite timestamp (s); 0 with fewer than two finite timestamps."""
    t = _as_1d(timestamp, TIMESTAMP)
    t = t[np.isfinite(t)]
    return float(t[-1] - t[0]) if t.size >= 2 else 0.0


def nonfinite_counts(values: npt.ArrayLike) -> tuple[int, int]:
    """(NaN count, inf count) of an array."""
    array = np.asarray(values, dtype=np.float64)
    return int(np.isnan(array).sum()), int(np.isinf(array).sum())


def idle_time(
    signal: npt.ArrayLike,
    timestamp: npt.ArrayLike,
    *,
    speed: float | Sequence[float] | None = None,
    relative_speed: float = 0.05,
) -> float:
    """Seconds of the steps whose speed |dx_c/dt| is <= the threshold on every channel c.

    `speed`: absolute threshold (signal units/s; one value or one per channel). Default:
    `relative_speed` times the largest channel range (max - min) of this episode, per second.
    Steps with a non-finite sample or a non-increasing timestamp are left out.
    """
    x = _as_2d(signal, "signal")
    t = _as_1d(timestamp, TIMESTAMP)
    _same_length(x, t, "signal")
    if x.shape[0] < 2:
        return 0.0
    threshold = _idle_threshold(x, speed, relative_speed)
    dt = np.diff(t)
    dx = np.diff(x, axis=0)
    valid = np.isfinite(dt) & (dt > 0) & np.isfinite(dx).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.abs(dx[valid]) / dt[valid, None]
    idle = (rate <= threshold).all(axis=1)
    return float(dt[valid][idle].sum())


def _idle_threshold(
    x: FloatArray, speed: float | Sequence[float] | None, relative: float
) -> FloatArray:
    if speed is None:
        if relative < 0:
            raise UserError(f"relative idle speed must be >= 0, got {relative}")
        finite = x[_finite_rows(x)]
        span = float((finite.max(axis=0) - finite.min(axis=0)).max()) if finite.size else 0.0
        return np.full(x.shape[1], relative * span)
    threshold = np.asarray(speed, dtype=np.float64).reshape(-1)
    if threshold.size == 1:
        threshold = np.full(x.shape[1], threshold[0])
    if threshold.size != x.shape[1] or not np.all(threshold >= 0):
        raise UserError(
            f"idle speed must be one value >= 0 or {x.shape[1]} of them, got {list(threshold)}"
        )
    return threshold


def path_length(signal: npt.ArrayLike) -> float:
    """Sum of the Euclidean norms of the steps x[k+1] - x[k] (non-finite steps left out)."""
    x = _as_2d(signal, "signal")
    steps = np.diff(x, axis=0)
    steps = steps[_finite_rows(steps)]
    return math.fsum(np.linalg.norm(steps, axis=1).tolist())


def _jerk(x: FloatArray, dt: float) -> FloatArray:
    """Rows of d^3x/dt^3 by the third finite difference (only windows of finite samples)."""
    j = np.diff(x, n=3, axis=0) / dt**3
    return j[_finite_rows(j)]


def rms_jerk(signal: npt.ArrayLike, timestamp: npt.ArrayLike) -> float | None:
    """sqrt(mean_k |d^3x/dt^3|^2): third finite difference over the median dt cubed.

    Units: signal units/s^3. Zero for constant, linear and quadratic signals. None with fewer
    than four frames (or no finite window, or no increasing timestamp step).
    """
    x = _as_2d(signal, "signal")
    t = _as_1d(timestamp, TIMESTAMP)
    _same_length(x, t, "signal")
    dt = step_dt(t)
    if dt is None or x.shape[0] < 4:
        return None
    j = _jerk(x, dt)
    if not j.size:
        return None
    return float(np.sqrt(np.mean(np.sum(j**2, axis=1))))


def log_dimensionless_jerk(signal: npt.ArrayLike, timestamp: npt.ArrayLike) -> float | None:
    """LDLJ = -ln(T^3 / v_peak^2 * integral |d^3x/dt^3|^2 dt), velocity-peak form.

    T: the duration, v_peak: the largest speed |dx/dt|, the integral a Riemann sum of the
    third finite difference. Dimensionless: the same for any amplitude or time scale. A
    minimum-jerk reach scores -ln(720 / 1.875^2) = -5.32; jerkier motion scores lower. None
    when it is undefined: fewer than four frames, no motion (v_peak = 0) or no jerk at all.
    """
    x = _as_2d(signal, "signal")
    t = _as_1d(timestamp, TIMESTAMP)
    _same_length(x, t, "signal")
    dt = step_dt(t)
    if dt is None or x.shape[0] < 4:
        return None
    v = np.diff(x, axis=0) / dt
    v = v[_finite_rows(v)]
    j = _jerk(x, dt)
    span = duration(t)
    if not v.size or not j.size or span <= 0:
        return None
    v_peak = float(np.linalg.norm(v, axis=1).max())
    integral = float(np.sum(j**2)) * dt
    if v_peak <= 0 or integral <= 0:
        return None
    return -math.log(span**3 / v_peak**2 * integral)


def gripper_flips(
    values: npt.ArrayLike,
    *,
    low: float | None = None,
    high: float | None = None,
    band: tuple[float, float] = (0.3, 0.7),
) -> int:
    """State changes of a Schmitt trigger on one channel: >= high is closed/on, <= low is
    open/off, in between keeps the previous state. The first state is not a flip.

    Without `low`/`high`, the levels are min + band x (max - min) of this episode's finite
    values (a channel that never changes has no flips). Non-finite samples are skipped.
    """
    v = _as_1d(values, "gripper channel")
    v = v[np.isfinite(v)]
    if not v.size:
        return 0
    if low is None or high is None:
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            return 0
        low = lo + band[0] * (hi - lo) if low is None else low
        high = lo + band[1] * (hi - lo) if high is None else high
    if not low < high:
        raise UserError(f"gripper hysteresis needs low < high, got low={low}, high={high}")
    state = np.where(v >= high, 1, np.where(v <= low, -1, 0))
    state = state[state != 0]
    return int(np.count_nonzero(np.diff(state)))


def _same_length(x: FloatArray, t: FloatArray, name: str) -> None:
    if x.shape[0] != t.shape[0]:
        raise UserError(f"{name} has {x.shape[0]} frames but timestamp has {t.shape[0]}")


# -- one episode, a dataset ------------------------------------------------------------------


def episode_quality(
    action: npt.ArrayLike,
    timestamp: npt.ArrayLike,
    *,
    state: npt.ArrayLike | None = None,
    episode_index: int = 0,
    settings: QualitySettings | None = None,
) -> EpisodeQuality:
    """Every score of one episode (action (T, D), timestamp (T,), optional state (T, Ds))."""
    settings = settings or QualitySettings()
    a = _as_2d(action, ACTION)
    t = _as_1d(timestamp, TIMESTAMP)
    s = None if state is None else _as_2d(state, STATE)
    if a.shape[0] == 0:
        raise UserError(f"episode {episode_index} has no frames")
    _same_length(a, t, ACTION)
    if s is not None:
        _same_length(s, t, STATE)
    if episode_index < 0:
        raise UserError(f"episode index must be >= 0, got {episode_index}")
    arrays: dict[str, FloatArray] = {ACTION: a, TIMESTAMP: t[:, None]}
    if s is not None:
        arrays[STATE] = s
    auto: Signal = STATE if s is not None else ACTION
    name: Signal = auto if settings.signal == "auto" else settings.signal
    if name not in arrays:
        raise UserError("quality signal is observation.state but the episode has no state")
    x = arrays[name]
    flips = None
    if settings.gripper_channel is not None:
        source = arrays.get(settings.gripper_source)
        if source is None:
            raise UserError("gripper_source is observation.state but the episode has no state")
        channel = settings.gripper_channel
        if not -source.shape[1] <= channel < source.shape[1]:
            raise UserError(
                f"gripper channel {channel} is outside {settings.gripper_source}'s "
                f"{source.shape[1]} channels"
            )
        low, high = settings.gripper_thresholds or (None, None)
        flips = gripper_flips(source[:, channel], low=low, high=high, band=settings.gripper_band)
    span = duration(t)
    idle = idle_time(x, t, speed=settings.idle_speed, relative_speed=settings.idle_relative_speed)
    counts = {key: nonfinite_counts(value) for key, value in arrays.items()}
    steps = np.diff(t)
    return EpisodeQuality(
        episode_index=episode_index,
        num_frames=int(a.shape[0]),
        duration_s=span,
        signal=name,
        idle_s=idle,
        idle_fraction=min(1.0, idle / span) if span > 0 else 0.0,
        path_length=path_length(x),
        rms_jerk=rms_jerk(x, t),
        ldlj=log_dimensionless_jerk(x, t),
        gripper_flips=flips,
        nan_counts={k: c[0] for k, c in counts.items()},
        inf_counts={k: c[1] for k, c in counts.items()},
        timestamp_backsteps=int(np.count_nonzero(steps <= 0)),
    )


def robust_z_scores(values: Sequence[float]) -> list[float]:
    """Modified z-scores 0.6745 (x - median) / MAD (Iglewicz & Hoaglin 1993).

    When MAD is 0 but the values differ (over half of them equal), the mean absolute deviation
    stands in: (x - median) / (1.2533 MeanAD). All zeros when every value is equal.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise UserError("robust z-scores need a flat list of finite numbers")
    if not x.size:
        return []
    deviation = np.abs(x - np.median(x))
    mad = float(np.median(deviation))
    if mad > 0:
        return [float(v) for v in _MAD_TO_SIGMA * (x - np.median(x)) / mad]
    mean_ad = float(deviation.mean())
    if mean_ad > 0:
        return [float(v) for v in _MEANAD_TO_SIGMA * (x - np.median(x)) / mean_ad]
    return [0.0] * int(x.size)


def duration_outliers(
    durations: Sequence[float], threshold: float = DEFAULT_OUTLIER_THRESHOLD
) -> list[bool]:
    """True where |robust z| of the duration exceeds `threshold` (default 3.5)."""
    if not threshold > 0:
        raise UserError(f"outlier threshold must be > 0, got {threshold}")
    return [abs(z) > threshold for z in robust_z_scores(durations)]


def score_episodes(
    episodes: Iterable[EpisodeArrays], settings: QualitySettings | None = None
) -> list[EpisodeQuality]:
    """`episode_quality` of each episode, with `duration_z` and `duration_outlier` filled."""
    settings = settings or QualitySettings()
    scores = [
        episode_quality(
            e.action,
            e.timestamp,
            state=e.state,
            episode_index=e.episode_index,
            settings=settings,
        )
        for e in episodes
    ]
    z = robust_z_scores([q.duration_s for q in scores])
    limit = settings.outlier_threshold
    return [
        q.model_copy(update={"duration_z": zi, "duration_outlier": abs(zi) > limit})
        for q, zi in zip(scores, z, strict=True)
    ]
