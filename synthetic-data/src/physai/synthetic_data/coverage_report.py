"""How much of the state space generated data covers, and how images vary with randomization.

    report = coverage_report("datasets/reacher-demos/v1", "reports/reacher-demos")
    report.state_coverage          # fraction of occupied bins, per joint and joint pair
    # reports/reacher-demos/{coverage.json, coverage.png}

State coverage: each joint's observed range is split into `bins` equal bins and the fraction
of bins holding at least one frame is reported (per joint, and for the first two joints as a
2-D grid). Image statistics: `frames_per_episode` evenly spaced frames of each episode give
its mean brightness and contrast (standard deviation of the grey level); each numeric
`rand.<factor>` label is then paired with those per-episode statistics (Pearson correlation,
and a scatter plot), so one sees, e.g., that `light_intensity` drives brightness and
`mass_scale` does not. The JSON and the PNG are published together, atomically.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from physai.core.errors import UserError
from physai.core.storage import publish

if TYPE_CHECKING:
    from physai.core.settings import Settings


class FactorEffect(BaseModel):
    """How one randomization factor relates to the episodes' image statistics."""

    factor: str
    episodes: int
    low: float
    high: float
    corr_brightness: float | None
    corr_contrast: float | None


class CoverageReport(BaseModel):
    """What `coverage_report` found."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    episodes: int
    frames: int
    joints: list[str]
    state_coverage: dict[str, float]
    pair_coverage: float | None
    success_rate: float | None
    brightness_mean: float
    contrast_mean: float
    factors: list[FactorEffect]


def occupancy(values: NDArray[Any], bins: int) -> float:
    """Fraction of `bins` equal bins over the values' range that hold at least one value."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return 1.0 / bins
    counts, _ = np.histogram(values, bins=bins, range=(low, high))
    return float((counts > 0).mean())


def pair_occupancy(a: NDArray[Any], b: NDArray[Any], bins: int) -> float:
    """Fraction of a bins x bins grid over (a, b) holding at least one point."""
    if a.max() <= a.min() or b.max() <= b.min():
        return 1.0 / bins
    counts, _, _ = np.histogram2d(a, b, bins=bins)
    return float((counts > 0).mean())


def _corr(x: NDArray[Any], y: NDArray[Any]) -> float | None:
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return round(float(np.corrcoef(x, y)[0, 1]), 4)


def coverage_report(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    bins: int = 20,
    frames_per_episode: int = 4,
    camera: str | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
) -> CoverageReport:
    """Measure coverage of `dataset` and publish `coverage.json` and `coverage.png` at `out`."""
    from physai.data_management import Annotations, LeRobotDatasetReader

    if bins < 2 or frames_per_episode < 1:
        raise UserError("bins must be 2 or more and frames_per_episode 1 or more")
    url = os.fspath(dataset)
    with LeRobotDatasetReader(url, settings=settings) as reader:
        features = reader.features
        if "observation.state" not in features:
            raise UserError(f"{url} has no observation.state feature")
        cameras = reader.camera_keys
        if camera is None and cameras:
            camera = cameras[0]
        elif camera is not None and camera not in cameras:
            raise UserError(f"{url} has no camera {camera!r} (it has {cameras})")
        names = reader.info["features"]["observation.state"].get("names")
        joints = [str(n) for n in names] if isinstance(names, list) else []
        states, brightness, contrast = [], [], []
        for info in reader.episodes:
            data = reader.episode_data(info.episode_index)
            states.append(np.asarray(data["observation.state"], np.float64))
            if camera is None:
                continue
            first = info.dataset_from_index
            count = min(frames_per_episode, info.length)
            picks = np.unique(np.linspace(first, first + info.length - 1, count).astype(int))
            grey = [np.asarray(reader.get_frame(int(i))[camera]).mean(axis=2) for i in picks]
            brightness.append(float(np.mean([g.mean() for g in grey])))
            contrast.append(float(np.mean([g.std() for g in grey])))
        episodes = reader.num_episodes
    state = np.concatenate(states).astype(np.float64)
    joints = joints or [f"joint_{i}" for i in range(state.shape[1])]
    notes = Annotations(url, settings=settings)
    outcomes, labels = [], []
    for episode in range(episodes):
        note = notes.get(episode)
        outcomes.append(note.outcome)
        labels.append(note.labels)
    known = [o for o in outcomes if o is not None]
    factors = _factor_effects(labels, np.array(brightness), np.array(contrast))
    report = CoverageReport(
        dataset=url,
        episodes=episodes,
        frames=int(state.shape[0]),
        joints=joints,
        state_coverage={
            name: round(occupancy(state[:, i], bins), 4) for i, name in enumerate(joints)
        },
        pair_coverage=(
            round(pair_occupancy(state[:, 0], state[:, 1], bins), 4)
            if state.shape[1] >= 2
            else None
        ),
        success_rate=(round(sum(o == "success" for o in known) / len(known), 4) if known else None),
        brightness_mean=round(float(np.mean(brightness)), 3) if brightness else 0.0,
        contrast_mean=round(float(np.mean(contrast)), 3) if contrast else 0.0,
        factors=factors,
    )
    figure = _plot(report, state, labels, np.array(brightness), bins)
    with publish(os.fspath(out), settings, overwrite=overwrite) as staging:
        staging.write_text("coverage.json", report.model_dump_json(indent=1) + "\n")
        staging.write_bytes("coverage.png", figure)
    return report


def _factor_effects(
    labels: list[dict[str, Any]], brightness: NDArray[Any], contrast: NDArray[Any]
) -> list[FactorEffect]:
    keys = sorted(
        {k for row in labels for k in row if k.startswith("rand.") and k != "rand.color_seed"}
    )
    effects = []
    for key in keys:
        rows = [
            (float(row[key]), i)
            for i, row in enumerate(labels)
            if isinstance(row.get(key), int | float)
        ]
        if not rows:
            continue
        values = np.array([v for v, _ in rows])
        index = [i for _, i in rows]
        effects.append(
            FactorEffect(
                factor=key.removeprefix("rand."),
                episodes=len(rows),
                low=float(values.min()),
                high=float(values.max()),
                corr_brightness=_corr(values, brightness[index]) if len(brightness) else None,
                corr_contrast=_corr(values, contrast[index]) if len(contrast) else None,
            )
        )
    return effects


def _plot(
    report: CoverageReport,
    state: NDArray[Any],
    labels: list[dict[str, Any]],
    brightness: NDArray[Any],
    bins: int,
) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = sorted(  # the four factors that move brightness most
        (f for f in report.factors if f.high > f.low),
        key=lambda f: -abs(f.corr_brightness or 0.0),
    )[:4]
    columns = 2 + len(varying)
    fig, axes = plt.subplots(1, columns, figsize=(4 * columns, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.bar(range(len(report.joints)), list(report.state_coverage.values()), color="#4c72b0")
    ax.set_xticks(range(len(report.joints)), report.joints, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(f"joint range coverage ({bins} bins)")
    ax = axes[0][1]
    if state.shape[1] >= 2:
        ax.hist2d(state[:, 0], state[:, 1], bins=bins, cmap="viridis")
        ax.set_xlabel(report.joints[0])
        ax.set_ylabel(report.joints[1])
        ax.set_title(f"{report.joints[0]} x {report.joints[1]}: {report.pair_coverage:.0%}")
    for ax, effect in zip(axes[0][2:], varying, strict=False):
        key = f"rand.{effect.factor}"
        pairs = [(row[key], brightness[i]) for i, row in enumerate(labels) if key in row]
        if pairs and len(brightness):
            x, y = zip(*pairs, strict=True)
            ax.scatter(x, y, s=12, color="#dd8452")
        ax.set_xlabel(effect.factor)
        ax.set_ylabel("mean brightness")
        ax.set_title(f"r = {effect.corr_brightness}")
    fig.suptitle(f"{report.dataset}: {report.episodes} episodes, {report.frames} frames")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def report_json(report: CoverageReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.model_dump(mode="json"), indent=1)
