"""Train -> export -> package -> register on this machine, run the registered policy, then render
the same pipeline as an AzureML pipeline job and an OSMO workflow (validated offline, not sent).

    uv run python training/examples/pipeline.py [WORK_DIR]

The CLI does the same: `physai training pipeline --name ppo-pendulum --iterations 2`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from physai.core.jobs.backends import render_text
from physai.core.registry import download_model
from physai.core.settings import Settings
from physai.training.cli_release import PipelinePlan, pipeline_dag, run_pipeline
from physai.training.runtime import load_policy


def main(work: Path) -> None:
    settings = Settings(home=work / ".physai")  # MLflow (sqlite) and its registry live here
    plan = PipelinePlan(
        name="ppo-pendulum",
        version="0.1.0",
        repository="policies/ppo-pendulum",
        root=str(work / "release"),
        iterations=2,
        num_envs=2,
        eval_episodes=0,
        aliases=("candidate",),
    )
    result = run_pipeline(plan, settings, on_step=lambda step, msg: print(f"{step}: {msg}"))
    tags = {k: v for k, v in result.registered.lineage.to_tags().items() if ".package." in k}
    print(f"{result.registered.uri}: package lineage {tags}")

    policy_dir = download_model(
        "models:/ppo-pendulum@candidate", work / "deploy", settings=settings
    )
    policy = load_policy(policy_dir, device="cpu", warmup=0)
    obs = np.zeros((1, policy.card.inputs[0].shape[1]), dtype=np.float32)
    print(f"{policy.card.name} acts: {policy(obs, copy=True)}")

    cloud = Settings(
        profile="azure",
        home=work / ".physai",
        azure_storage_account="physaidata",
        azureml_compute="gpu-cluster",
        azure_subscription_id="00000000-0000-0000-0000-000000000000",
        azure_resource_group="robots",
        azure_workspace_name="robots-ml",
    )
    plan = PipelinePlan(
        name="ppo-pendulum", version="1.0.0", repository="policies/ppo", root="az://runs/ppo"
    )
    dag = pipeline_dag(plan, cloud, image="myacr.azurecr.io/physai-train:0.1", gpus=1)
    print("pipeline:", " -> ".join(f"{up}>{down}" for up, down in dag.edges()))
    for backend in ("azureml", "osmo"):
        text = render_text(dag, backend, cloud)
        print(f"{backend}: {len(text.splitlines())} lines of validated YAML")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
