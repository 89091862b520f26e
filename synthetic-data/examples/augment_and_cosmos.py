"""Augment simulated demonstrations, judge them, and prepare a Cosmos-Transfer job.

Generates 4 reacher demonstrations, writes 2 augmented copies of each (brightness, colour,
noise and a small shift, drawn per episode from the seed), judges the augmented episodes with
the deterministic local judge (a rule on the final joint state), and prints the OSMO workflow
that would turn the rendered videos photoreal with Cosmos-Transfer. The Cosmos models need
GPUs and weights: nothing is submitted here.

    uv run python synthetic-data/examples/augment_and_cosmos.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from physai.core.jobs.backends import render_text
from physai.core.settings import load_settings
from physai.data_management import Annotations
from physai.synthetic_data.augment import augment_dataset, load_config
from physai.synthetic_data.cosmos import transfer_job
from physai.synthetic_data.demos import generate_demos
from physai.synthetic_data.judge import LocalJudge, final_state_rule, judge_dataset

AUGMENT = {
    "brightness": [0.7, 1.3],
    "saturation": [0.8, 1.2],
    "noise_std": [0, 4],
    "shift": [-3, 3],
    "copies": 2,
}


def main(work: Path) -> None:
    demos = work / "demos"
    generate_demos("reacher", 4, demos, width=64, height=64, workers=1)
    report = augment_dataset(demos, work / "augmented", load_config(AUGMENT), seed=7)
    print(f"augmented: {report.episodes} episodes from 4 ({report.frames} frames)")
    first = Annotations(str(work / "augmented")).get(0).labels
    print("episode 0 draws:", {k: v for k, v in first.items() if k != "augment.params"})

    judge = LocalJudge(final_state_rule("observation.state", 1, below=3.0), rule_name="elbow")
    verdicts = judge_dataset(str(work / "augmented"), judge, camera="observation.images.front")
    for item in verdicts:
        print(f"episode {item.episode}: {item.verdict.outcome} ({item.verdict.reason})")

    job = transfer_job(
        "az://sim/reacher-demos/v1",
        "az://real/reacher-demos/v1",
        prompt="a robot arm on a wooden desk under warm office light",
        rgb_camera="observation.images.front",
        controls={"edge": None},  # Cosmos computes edges from the rendered video
        image="example.azurecr.io/cosmos-transfer2.5:physai",
    )
    settings = load_settings(home=str(work / "home"), azure_storage_account="example")
    print(render_text(job, "osmo", settings)[:600])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
