"""Software-in-the-loop evaluation in MuJoCo: an exported policy in closed loop, reported.

    from physai.evaluation.sil import evaluate_policy
    report = evaluate_policy("exports/ppo-pendulum", episodes=10, seed=0, out="evals/ppo")

Modules: `runner` (evaluate_policy), `rollout` (one episode), `interface` (policy vs. spaces),
`environment` (the task's env), `video` (mp4 writer), `report` (SilReport), `output`
(the atomic report folder).
"""

from physai.evaluation.sil.report import EpisodeResult, LatencySummary, PolicyInfo, SilReport
from physai.evaluation.sil.runner import evaluate_policy

__all__ = ["EpisodeResult", "LatencySummary", "PolicyInfo", "SilReport", "evaluate_policy"]
