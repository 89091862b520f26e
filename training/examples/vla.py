"""VLA fine-tuning (SmolVLA, pi0): what it needs, and the cloud job that runs it.

VLAs start from pretrained weights. Here, offline and without a GPU, physai's trainer says what
is missing in one line instead of failing deep inside LeRobot; then the example prints the
AzureML job that fine-tunes SmolVLA on 4 GPUs with accelerate (rendered and validated offline,
not submitted).

    uv run python training/examples/vla.py [WORK_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from physai.core.errors import UserError
from physai.core.jobs.backends import render_text
from physai.core.settings import Settings
from physai.training.il import load_il_config, train_il
from physai.training.jobs import training_job

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(work: Path) -> None:
    config = load_il_config(policy="smolvla", dataset=str(work / "any"), steps=10)
    try:
        train_il(config)
    except UserError as exc:
        print("offline, no weights:", exc.message)

    job = training_job(
        "il",
        ["--policy", "smolvla", "--dataset", "az://datasets/pick/v3",
         "--output", "az://runs/smolvla-pick", "--steps", "20000",
         "--pretrained", "lerobot/smolvla_base", "--pretrained-revision", "main"],
        image="example.azurecr.io/physai-train:0.1",
        gpus=4,
    )  # fmt: skip
    settings = Settings(home=work / "home", azure_storage_account="example", azureml_compute="a100")
    print(render_text(job, "azureml", settings))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
