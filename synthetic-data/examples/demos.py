"""Generate randomized reacher demonstrations, then measure what they cover.

Writes 12 episodes with the scripted expert under lighting, colour, camera, mass and latency
randomization (two processes), reads the per-episode labels back, keeps the successful
episodes with `curate`, and publishes a coverage report (JSON and a PNG of the plots).

    uv run python synthetic-data/examples/demos.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from physai.data_management import Annotations, curate
from physai.synthetic_data.coverage_report import coverage_report
from physai.synthetic_data.demos import generate_demos
from physai.synthetic_data.randomization import RandomizationConfig

RANDOMIZE = """
light_intensity: {low: 0.4, high: 1.6}
color_jitter: 0.15
camera_azimuth_deg: {low: -20, high: 20}
mass_scale: {low: 0.8, high: 1.2}
image_noise_std: 2
action_latency_steps: [0, 2]
"""


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "randomize.yaml").write_text(RANDOMIZE)
    config = RandomizationConfig.from_yaml(work / "randomize.yaml")
    report = generate_demos(
        "reacher", 12, work / "demos", width=96, height=96, randomization=config, workers=2
    )
    print(f"{report.episodes} episodes, {report.successes} successful, "
          f"{report.frames_per_second:.0f} frames/s")  # fmt: skip

    notes = Annotations(str(work / "demos"))
    for episode in range(3):
        note = notes.get(episode)
        light = note.labels["rand.light_intensity"]
        print(f"episode {episode}: {note.outcome}, seed {note.labels['seed']}, light {light:.2f}")

    from physai.data_management.curation import Selection

    kept = curate([str(work / "demos")], str(work / "successes"),
                  selection=Selection(outcomes=["success"]))  # fmt: skip
    print(f"kept {kept.selected_episodes} successful episodes")

    coverage = coverage_report(work / "demos", work / "coverage")
    print("joint coverage:", coverage.state_coverage)
    for effect in coverage.factors:
        print(f"  {effect.factor}: r(brightness) = {effect.corr_brightness}")
    print("plots:", work / "coverage" / "coverage.png")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
