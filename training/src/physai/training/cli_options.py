"""The cloud-job options `physai training rl`, `il` and `pipeline` share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

Backend = Annotated[
    str,
    typer.Option("--backend", "-b", help="local (run here), azureml or osmo (a cloud job)."),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the job spec; run nothing.")]
Image = Annotated[str | None, typer.Option("--image", help="Container image for cloud jobs.")]
Gpus = Annotated[int, typer.Option("--gpus", help="GPUs per node for cloud jobs.")]
Nodes = Annotated[int, typer.Option("--nodes", help="Nodes for cloud jobs (distributed).")]
Pool = Annotated[str | None, typer.Option("--pool", help="OSMO pool (default: the setting).")]
