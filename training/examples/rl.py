"""PPO on InvertedPendulum with skrl and RSL-RL: train, checkpoint, resume, compare.

Each library trains 60 iterations (8 envs x 32 steps) with checkpoints every 20, then resumes
from the latest checkpoint for 20 more; the metric names are the same for both.

    uv run python training/examples/rl.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from physai.training.rl import RLConfig, train_rl


def main(work: Path) -> None:
    for library in ("skrl", "rsl_rl"):
        url = str(work / library)
        config = RLConfig(
            library=library,
            task="InvertedPendulum",
            iterations=60,
            checkpoint_every=20,
            checkpoint_url=url,
            eval_episodes=4,
            seed=0,
        )
        first = train_rl(config)
        print(f"{library}: {first.iterations} iterations in {first.seconds:.1f} s, "
              f"eval return {first.mean_return}, checkpoints {len(first.checkpoints)}")  # fmt: skip
        more = train_rl(config.model_copy(update={"iterations": 20, "resume": url}))
        losses = [round(v, 3) for _, v in more.history["train/loss"][-3:]]
        print(f"  resumed to iteration {more.iterations}; last losses {losses}")
        print(f"  metrics: {sorted(more.history)}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
