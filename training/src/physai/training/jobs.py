"""The training commands as cloud jobs: `physai training rl|il ... --backend azureml|osmo`.

    spec = training_job("il", ["--policy", "act", "--dataset", "az://ds/pick/v3", ...],
                        image="myacr.azurecr.io/physai-train:0.1", gpus=4)
    print(render_text(spec, "azureml", settings))

The job runs the same command in the container. Data moves through the job's inputs and
outputs: the IL dataset is an input (`--dataset ${{inputs.dataset}}`), the run output (IL) and
the checkpoints (RL) are outputs, so each backend mounts or uploads them its own way.

- One GPU, or CPU: `physai training rl|il ...`.
- Several GPUs on one node (IL): `accelerate launch --multi_gpu --num_processes N -m
  physai.training il ...`.
- Several nodes: `nodes` x `gpus` processes; AzureML renders a PyTorch distribution (one process
  per GPU, the torch.distributed variables set), OSMO a group of tasks with a lead; each process
  runs `python -m physai.training ...`, which accelerate/torch pick up from the environment.

Isaac Lab tasks run in the Isaac Lab image (give it as `image`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from physai.core.errors import UserError
from physai.core.jobs import IOSpec, JobSpec, Resources

Kind = Literal["rl", "il"]
# The option whose value becomes a job input or output, per command.
_DATA: dict[Kind, dict[str, tuple[str, str, str]]] = {
    "il": {
        "--dataset": ("inputs", "dataset", "download"),
        "--output": ("outputs", "run", "upload"),
    },
    "rl": {"--checkpoint-url": ("outputs", "checkpoints", "upload")},
}


def training_job(
    kind: Kind,
    argv: Sequence[str],
    *,
    image: str | None,
    gpus: int = 0,
    nodes: int = 1,
    cpu: int | None = None,
    memory: str | None = None,
    instance_type: str | None = None,
    name: str | None = None,
) -> JobSpec:
    """The job running `physai training <kind> <argv>` on `nodes` nodes of `gpus` GPUs each."""
    if kind not in _DATA:
        raise UserError(f"unknown training command {kind!r}: rl or il")
    if not image:
        raise UserError("a cloud training job needs --image (a container with physai-training)")
    if gpus < 0 or nodes < 1:
        raise UserError("--gpus must be 0 or more and --nodes 1 or more")
    if nodes > 1 and gpus < 1:
        raise UserError("a multi-node job needs GPUs: give --gpus")
    args = list(argv)
    inputs: dict[str, IOSpec] = {}
    outputs: dict[str, IOSpec] = {}
    for option, (side, key, mode) in _DATA[kind].items():
        if option in args:
            at = args.index(option) + 1
            if at >= len(args):
                raise UserError(f"{option} needs a value")
            (inputs if side == "inputs" else outputs)[key] = IOSpec(uri=args[at], mode=mode)
            args[at] = f"${{{{{side}.{key}}}}}"
    if kind == "il" and "run" not in outputs:
        raise UserError("a cloud IL job needs --output (a storage URL for checkpoints)")
    processes = max(1, gpus) if nodes > 1 else 1
    if nodes == 1 and gpus > 1 and kind == "il":
        command = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(gpus)]
        command += ["-m", "physai.training", kind, *args]
    elif nodes > 1:
        command = ["python", "-m", "physai.training", kind, *args]
    else:
        command = ["physai", "training", kind, *args]
    resources = Resources(
        gpu=gpus,
        nodes=nodes,
        processes_per_node=processes,
        cpu=cpu,
        memory=memory,
        instance_type=instance_type,
    )
    return JobSpec(
        name=name or f"physai-{kind}",
        command=command,
        image=image,
        resources=resources,
        inputs=inputs,
        outputs=outputs,
        description=f"physai training {kind}",
    )
