"""Train a tiny PPO policy for 2 iterations, export it to ONNX and TorchScript, run the ONNX file.

The export checks each file against the PyTorch actor (max abs error <= 1e-4) before anything
appears in the output folder, and writes policy.json beside the files.

    uv run python training/examples/export.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from physai.training.export import export_policy
from physai.training.policy_card import PolicyCard
from physai.training.rl import RLConfig, train_rl


def main(work: Path) -> None:
    checkpoints = str(work / "ppo")
    train_rl(RLConfig(library="rsl_rl", iterations=2, checkpoint_url=checkpoints, eval_episodes=0))
    result = export_policy(checkpoints, str(work / "exports" / "ppo-pendulum"))
    for fmt, parity in result.card.parity.items():
        print(f"{fmt}: {result.files[fmt]} (max abs error {parity.max_abs_error:.2g})")

    card = PolicyCard.read(result.output)  # what a runtime reads
    card.verify_files(result.output)
    obs_spec = card.inputs[0]
    session = ort.InferenceSession(str(Path(result.output) / card.files["onnx"].path))
    obs = np.zeros((1, *obs_spec.shape[1:]), dtype=np.float32)  # -1: any batch size
    (actions,) = session.run(None, {obs_spec.name: obs})
    print(f"{card.policy} at {card.control_rate_hz} Hz: {obs_spec.name} {obs.shape} -> {actions}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
