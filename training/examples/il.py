"""Imitation learning with LeRobot's ACT on a small dataset, through physai's trainer.

Writes a tiny LeRobot dataset (6 episodes of a 64x64 camera and a 6-dim state following a
smooth target), trains a small ACT for 30 steps on the CPU with checkpoints, and resumes to
40 steps.

    uv run python training/examples/il.py [WORK_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from physai.data_management import LeRobotDatasetWriter
from physai.training.il import load_il_config, train_il

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMALL_ACT = {
    "dim_model": 32, "n_heads": 2, "dim_feedforward": 64, "n_encoder_layers": 1,
    "n_decoder_layers": 1, "n_vae_encoder_layers": 1, "latent_dim": 8, "chunk_size": 5,
    "n_action_steps": 5, "pretrained_backbone_weights": None,
}  # fmt: skip


def write_dataset(root: Path) -> None:
    camera = {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"]}
    vector = {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]}
    features = {"observation.state": vector, "action": vector, "observation.images.top": camera}
    writer = LeRobotDatasetWriter(root, fps=10, features=features)
    for episode in range(6):
        t = np.linspace(0, 1, 30, dtype=np.float32)[:, None]
        state = np.sin(t * 3 + np.arange(6) + episode).astype(np.float32)
        images = np.zeros((30, 64, 64, 3), np.uint8)
        for i in range(30):
            images[i, :, (i * 2) % 64] = 200  # a bar sweeping across the view
        writer.add_episode(
            {"observation.state": state, "action": np.roll(state, -1, axis=0),
             "observation.images.top": images},
            "follow the target",
        )  # fmt: skip
    writer.finish()


def main(work: Path) -> None:
    write_dataset(work / "dataset")
    values = {
        "policy": "act", "dataset": str(work / "dataset"), "output": str(work / "run"),
        "steps": 30, "batch_size": 4, "learning_rate": 1e-3, "checkpoint_every": 10,
        "log_every": 5, "device": "cpu", "overrides": SMALL_ACT,
    }  # fmt: skip
    result = train_il(load_il_config(**values))
    print(f"ACT: step {result.step}, loss {result.final_loss:.3f}, latest {result.latest}")
    resumed = train_il(load_il_config(**{**values, "steps": 40, "resume": True}))
    print(f"resumed from {resumed.resumed_from} to step {resumed.step}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
