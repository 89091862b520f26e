"""Software-in-the-loop: train a tiny PPO policy, export it, run it in closed loop in MuJoCo.

PPO (RSL-RL) trains for 20 iterations on InvertedPendulum, is exported to ONNX and TorchScript,
then `evaluate_policy` runs the ONNX file for 5 episodes (the task comes from policy.json),
publishes report.json and an mp4 of the first episode, and the same seeds through TorchScript
give the same returns.

    uv run python evaluation/examples/sil.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from physai.evaluation import SilReport, evaluate_policy
from physai.training import RLConfig, export_policy, train_rl


def main(work: Path) -> None:
    checkpoints = str(work / "ppo")
    trained = train_rl(
        RLConfig(library="rsl_rl", iterations=20, checkpoint_url=checkpoints, eval_episodes=0)
    )
    print(f"trained {trained.iterations} iterations in {trained.seconds:.1f} s")
    export = export_policy(checkpoints, str(work / "exports" / "ppo-pendulum")).output

    out = work / "evals" / "ppo-pendulum"
    report = evaluate_policy(export, episodes=5, seed=0, format="onnx", out=str(out), video=True)
    for label, value in report.summary_rows():
        print(f"  {label:<13} {value}")
    print(f"  returns       {[round(e.episode_return, 2) for e in report.episodes]}")

    written = SilReport.model_validate_json((out / "report.json").read_text())  # what others read
    print(f"{out}: {sorted(p.name for p in out.iterdir())}, video {written.video}")

    again = evaluate_policy(export, "InvertedPendulum", 5, 0, format="torchscript")
    ts = [e.episode_return for e in again.episodes]
    onnx = [e.episode_return for e in report.episodes]
    assert np.allclose(ts, onnx, rtol=1e-4, atol=1e-3), (ts, onnx)
    print("torchscript gives the same returns")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
