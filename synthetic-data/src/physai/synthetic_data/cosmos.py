"""NVIDIA Cosmos jobs as `physai.core.jobs` specs: Transfer, Predict and Reason on LeRobot data.

    spec = transfer_job("az://datasets/sim/v1", "az://datasets/sim-photoreal/v1",
                        prompt="a robot arm in a bright kitchen",
                        rgb_camera="observation.images.front",
                        controls={"depth": "observation.images.front_depth",
                                  "seg": "observation.images.front_seg", "edge": None},
                        image="myacr.azurecr.io/cosmos-transfer2.5-physai:1")
    render_text(spec, "osmo", settings)          # or "azureml"; both validated offline

Each job runs `python -m physai.synthetic_data.cosmos_runner <model> ...` inside a Cosmos
container: the wrapper exports the dataset's videos into the model's input layout, calls the
model's own inference script and writes the result back as a LeRobot dataset (Transfer,
Predict) or a JSON report of per-episode verdicts (Reason). The models never run here; the
facts the specs rely on (entry points, spec fields, GPU memory) are listed in `MODELS` and in
the cosmos specification with their sources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from physai.core.errors import UserError
from physai.core.jobs import IOSpec, JobDag, JobSpec, Resources
from physai.core.uris import LocalPath, parse_uri

ControlType = Literal["depth", "seg", "edge", "vis"]
CONTROL_TYPES: Final[tuple[str, ...]] = get_args(ControlType)
# Names people use for the same controls (a renderer's vocabulary).
CONTROL_ALIASES: Final[dict[str, str]] = {
    "segmentation": "seg",
    "edges": "edge",
    "canny": "edge",
    "blur": "vis",
}
# Controls the model can compute from the rgb video itself when no camera carries them.
COMPUTED_CONTROLS: Final[frozenset[str]] = frozenset({"edge", "vis"})

TransferVersion = Literal["2.5", "1"]
PredictVersion = Literal["2.5"]
RUNNER: Final[tuple[str, ...]] = ("python", "-m", "physai.synthetic_data.cosmos_runner")
DATASET = "dataset"  # the output dataset (and the judged dataset of Reason)
SOURCE = "source"  # the input dataset of Transfer and Predict
REPORT = "report"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class CosmosModel:
    """Public facts about one Cosmos model, as the job specs use them."""

    name: str
    repository: str
    entry_point: str
    min_gpus: int
    gpu_memory_gb: float
    package: str
    source: str


MODELS: Final[dict[str, CosmosModel]] = {
    "transfer-2.5": CosmosModel(
        name="Cosmos-Transfer2.5-2B",
        repository="nvidia-cosmos/cosmos-transfer2.5",
        entry_point="examples/inference.py",
        min_gpus=1,
        gpu_memory_gb=65.4,
        package="cosmos_transfer2",
        source="https://docs.nvidia.com/cosmos/latest/transfer2.5/model_matrix.html",
    ),
    "transfer-1": CosmosModel(
        name="Cosmos-Transfer1-7B",
        repository="nvidia-cosmos/cosmos-transfer1",
        entry_point="cosmos_transfer1/diffusion/inference/transfer.py",
        min_gpus=1,
        gpu_memory_gb=80.0,
        package="cosmos_transfer1",
        source="https://docs.nvidia.com/cosmos/latest/transfer/reference.html",
    ),
    "predict-2.5": CosmosModel(
        name="Cosmos-Predict2.5-2B",
        repository="nvidia-cosmos/cosmos-predict2.5",
        entry_point="examples/inference.py",
        min_gpus=1,
        gpu_memory_gb=32.54,
        package="cosmos_predict2",
        source="https://docs.nvidia.com/cosmos/latest/predict2.5/quickstart_guide.html",
    ),
    "reason-1": CosmosModel(
        name="nvidia/Cosmos-Reason1-7B",
        repository="nvidia-cosmos/cosmos-reason1",
        entry_point="vllm serve (OpenAI-compatible chat completions)",
        min_gpus=1,
        gpu_memory_gb=24.0,
        package="vllm",
        source="https://docs.nvidia.com/cosmos/2.1.0/prerequisites.html",
    ),
}


@dataclass(frozen=True)
class Control:
    """One control of a Transfer job: its type, the camera feature holding it, its weight.

    `camera` None means the model computes the control from the rgb video (edge and vis only).
    """

    type: ControlType
    camera: str | None
    weight: float

    def to_arg(self) -> str:
        """The runner's `--control` value: `TYPE=CAMERA:WEIGHT` (CAMERA empty when computed)."""
        return f"{self.type}={self.camera or ''}:{self.weight:g}"


def control_type(name: str) -> ControlType:
    """The canonical control type for `name` (aliases accepted), or UserError listing them."""
    key = CONTROL_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in CONTROL_TYPES:
        known = ", ".join([*CONTROL_TYPES, *CONTROL_ALIASES])
        raise UserError(f"unknown Cosmos control type {name!r}: use one of {known}")
    return key  # type: ignore[return-value]


def make_controls(
    controls: Mapping[str, str | None], weights: Mapping[str, float] | None = None
) -> list[Control]:
    """Controls from `{type: camera feature or None}` and optional `{type: weight}`.

    Every control gets weight 1.0 unless told (Cosmos rescales weights summing over 1).
    """
    if not controls:
        raise UserError("a Cosmos-Transfer job needs at least one control (depth, seg, edge, vis)")
    result: dict[str, Control] = {}
    for name, camera in controls.items():
        kind = control_type(name)
        if kind in result:
            raise UserError(f"control {kind!r} is given twice")
        if camera is None and kind not in COMPUTED_CONTROLS:
            raise UserError(
                f"control {kind!r} needs a camera feature: only edge and vis are computed by "
                "the model from the rgb video"
            )
        result[kind] = Control(kind, camera, 1.0)
    for name, weight in (weights or {}).items():
        kind = control_type(name)
        if kind not in result:
            raise UserError(f"a weight is given for control {kind!r}, which is not used")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise UserError(f"control {kind!r}: weight must be a number >= 0, got {weight!r}")
        result[kind] = Control(kind, result[kind].camera, float(weight))
    return list(result.values())


def parse_episodes(selection: str | Sequence[int] | None) -> list[int] | None:
    """Episode indices from `"0-3,7"` or a list; None means every episode."""
    if selection is None:
        return None
    if isinstance(selection, str):
        found: list[int] = []
        for part in selection.split(","):
            match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not match:
                raise UserError(f"episode selection {selection!r}: write e.g. 0-3,7")
            low = int(match.group(1))
            high = int(match.group(2)) if match.group(2) else low
            if high < low:
                raise UserError(f"episode selection {selection!r}: range {part.strip()} is empty")
            found.extend(range(low, high + 1))
        values = found
    else:
        values = list(selection)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise UserError(f"episode selection {selection!r}: give episode indices >= 0")
    return sorted(set(values))


def format_episodes(episodes: Sequence[int]) -> str:
    """`[0, 1, 2, 7]` as `0-2,7` (what the runner's --episodes takes)."""
    parts: list[str] = []
    ordered = sorted(set(episodes))
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


def check_cameras(dataset_url: str, cameras: Sequence[str]) -> None:
    """For a local dataset, UserError unless every name in `cameras` is one of its cameras.

    Remote datasets are checked by the runner where the job runs.
    """
    if not isinstance(parse_uri(dataset_url), LocalPath):
        return
    from physai.data_management import LeRobotDatasetReader

    reader = LeRobotDatasetReader(dataset_url)
    try:
        known = reader.camera_keys
    finally:
        reader.close()
    missing = [c for c in dict.fromkeys(cameras) if c not in known]
    if missing:
        raise UserError(
            f"dataset {dataset_url} has no camera feature {', '.join(map(repr, missing))} "
            f"(cameras: {', '.join(known) or 'none'})"
        )


def _resources(model: CosmosModel, gpus: int | None, resources: Resources | None) -> Resources:
    if resources is not None:
        if resources.gpu < model.min_gpus:
            raise UserError(f"{model.name} needs at least {model.min_gpus} GPU(s)")
        return resources
    count = model.min_gpus if gpus is None else gpus
    if isinstance(count, bool) or not isinstance(count, int) or count < model.min_gpus:
        raise UserError(f"{model.name} needs at least {model.min_gpus} GPU(s), got {gpus!r}")
    return Resources(gpu=count, cpu=8 * count, memory=f"{64 * count}Gi", storage="200Gi")


def _tail(checkpoints: str | None, episodes: Sequence[int] | None, gpus: int) -> list[str]:
    """The runner arguments every model shares."""
    tail = ["--checkpoints", "${{inputs.checkpoints}}"] if checkpoints is not None else []
    if episodes is not None:
        tail += ["--episodes", format_episodes(episodes)]
    return [*tail, "--num-gpus", str(gpus)]


def _inputs(dataset_url: str, checkpoints: str | None, name: str) -> dict[str, IOSpec]:
    inputs = {name: IOSpec(uri=dataset_url, type="folder")}
    if checkpoints is not None:
        inputs[CHECKPOINTS] = IOSpec(uri=checkpoints, type="folder")
    return inputs


def _runner(executable: Sequence[str]) -> list[str]:
    if not executable:
        raise UserError("executable must name the command that starts the runner")
    return list(executable)


def _description(model: CosmosModel, what: str) -> str:
    return (
        f"{what} with {model.name} ({model.repository}, {model.entry_point}); needs "
        f">= {model.gpu_memory_gb:g} GB of GPU memory per GPU."
    )


def transfer_job(
    dataset_url: str,
    out_url: str,
    *,
    prompt: str,
    rgb_camera: str,
    controls: Mapping[str, str | None],
    image: str,
    weights: Mapping[str, float] | None = None,
    version: TransferVersion = "2.5",
    episodes: str | Sequence[int] | None = None,
    guidance: float = 3.0,
    seed: int = 1,
    keep_controls: bool = False,
    checkpoints: str | None = None,
    gpus: int | None = None,
    resources: Resources | None = None,
    env: Mapping[str, str] | None = None,
    executable: Sequence[str] = RUNNER,
    name: str = "cosmos-transfer",
) -> JobSpec:
    """A Cosmos-Transfer job: sim renders of `dataset_url` → photoreal video at `out_url`.

    `rgb_camera` names the camera feature with the rendered colour video (the model's input
    video, replaced in the output by the generated one); `controls` maps each control type
    (depth, seg, edge, vis; also segmentation, edges) to the camera feature carrying it, or to
    None for edge/vis computed by the model. A local dataset's cameras are checked now.
    `image` is a container built from the model's repository with physai installed.
    """
    if not prompt.strip():
        raise UserError("prompt is empty: describe the scene the video should look like")
    chosen = make_controls(controls, weights)
    selection = parse_episodes(episodes)
    check_cameras(dataset_url, [rgb_camera, *(c.camera for c in chosen if c.camera)])
    model = MODELS[f"transfer-{version}"]
    needs = _resources(model, gpus, resources)
    tail = _tail(checkpoints, selection, needs.gpu * needs.nodes)
    command = [
        *_runner(executable),
        "transfer",
        "--dataset",
        "${{inputs.source}}",
        "--out",
        "${{outputs.dataset}}",
        "--prompt",
        prompt,
        "--rgb",
        rgb_camera,
        "--version",
        version,
        "--guidance",
        f"{guidance:g}",
        "--seed",
        str(seed),
    ]
    for control in chosen:
        command += ["--control", control.to_arg()]
    if keep_controls:
        command.append("--keep-controls")
    return JobSpec(
        name=name,
        command=[*command, *tail],
        image=image,
        resources=needs,
        inputs=_inputs(dataset_url, checkpoints, SOURCE),
        outputs={DATASET: IOSpec(uri=out_url, type="folder", mode="upload")},
        env=dict(env or {}),
        description=_description(model, "Sim-to-photoreal video transfer"),
    )


def predict_job(
    dataset_url: str,
    out_url: str,
    *,
    prompt: str,
    camera: str,
    image: str,
    episodes: str | Sequence[int] | None = None,
    conditioning_frames: int = 5,
    seed: int = 1,
    checkpoints: str | None = None,
    gpus: int | None = None,
    resources: Resources | None = None,
    env: Mapping[str, str] | None = None,
    executable: Sequence[str] = RUNNER,
    name: str = "cosmos-predict",
) -> JobSpec:
    """A Cosmos-Predict (video2world) job: the first `conditioning_frames` of `camera` in each
    selected episode, with `prompt`, → a dataset at `out_url` holding the predicted videos."""
    if not prompt.strip():
        raise UserError("prompt is empty: describe what should happen in the predicted video")
    if isinstance(conditioning_frames, bool) or conditioning_frames < 1:
        raise UserError(f"conditioning_frames must be >= 1, got {conditioning_frames!r}")
    selection = parse_episodes(episodes)
    check_cameras(dataset_url, [camera])
    model = MODELS["predict-2.5"]
    needs = _resources(model, gpus, resources)
    tail = _tail(checkpoints, selection, needs.gpu * needs.nodes)
    command = [
        *_runner(executable),
        "predict",
        "--dataset",
        "${{inputs.source}}",
        "--out",
        "${{outputs.dataset}}",
        "--prompt",
        prompt,
        "--camera",
        camera,
        "--conditioning-frames",
        str(conditioning_frames),
        "--seed",
        str(seed),
    ]
    return JobSpec(
        name=name,
        command=[*command, *tail],
        image=image,
        resources=needs,
        inputs=_inputs(dataset_url, checkpoints, SOURCE),
        outputs={DATASET: IOSpec(uri=out_url, type="folder", mode="upload")},
        env=dict(env or {}),
        description=_description(model, "Predicted rollouts (video2world)"),
    )


def reason_job(
    dataset_url: str,
    report_url: str,
    *,
    camera: str,
    image: str,
    model: str = "nvidia/Cosmos-Reason1-7B",
    episodes: str | Sequence[int] | None = None,
    frames: int = 8,
    endpoint: str | None = None,
    gpus: int | None = None,
    resources: Resources | None = None,
    env: Mapping[str, str] | None = None,
    executable: Sequence[str] = RUNNER,
    name: str = "cosmos-reason",
    check: bool = True,
) -> JobSpec:
    """A Cosmos-Reason job: judge each episode of `dataset_url` (success/failure with a reason)
    from `frames` frames of `camera` and its task text; the verdicts go to `report_url` (JSON).

    Without `endpoint` the runner serves `model` with vLLM inside the job (OpenAI-compatible);
    with one, it asks that endpoint (its key from PHYSAI_JUDGE_API_KEY, set as a secret where
    the job runs: never put a key in `env`, which is written into the rendered spec). `check`
    False skips the local camera check (a dataset another job writes first).
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= 64:
        raise UserError(f"frames must be a whole number from 1 to 64, got {frames!r}")
    selection = parse_episodes(episodes)
    if check:
        check_cameras(dataset_url, [camera])
    facts = MODELS["reason-1"]
    if endpoint:  # the model runs elsewhere: this job only samples frames and asks
        needs = resources or Resources(cpu=2, memory="8Gi")
    else:
        needs = _resources(facts, gpus, resources)
    tail = _tail(None, selection, needs.gpu * needs.nodes)
    command = [
        *_runner(executable),
        "reason",
        "--dataset",
        "${{inputs.dataset}}",
        "--report",
        "${{outputs.report}}",
        "--camera",
        camera,
        "--model",
        model,
        "--frames",
        str(frames),
    ]
    if endpoint:
        command += ["--endpoint", endpoint]
    return JobSpec(
        name=name,
        command=[*command, *tail],
        image=image,
        resources=needs,
        inputs=_inputs(dataset_url, None, DATASET),
        outputs={REPORT: IOSpec(uri=report_url, type="file", mode="upload")},
        env=dict(env or {}),
        description=_description(facts, "Per-episode success/failure judgments"),
    )


def transfer_and_judge_dag(
    dataset_url: str,
    out_url: str,
    report_url: str,
    *,
    prompt: str,
    rgb_camera: str,
    controls: Mapping[str, str | None],
    transfer_image: str,
    reason_image: str,
    weights: Mapping[str, float] | None = None,
    episodes: str | Sequence[int] | None = None,
    frames: int = 8,
    name: str = "cosmos-transfer-judge",
) -> JobDag:
    """Transfer then Reason on the transferred dataset: the judge reads the transfer's output,
    so every backend wires the two jobs by that data edge."""
    transfer = transfer_job(
        dataset_url,
        out_url,
        prompt=prompt,
        rgb_camera=rgb_camera,
        controls=controls,
        weights=weights,
        image=transfer_image,
        episodes=episodes,
    )
    reason = reason_job(
        out_url, report_url, camera=rgb_camera, image=reason_image, frames=frames, check=False
    )
    return JobDag(
        name=name,
        jobs=[transfer, reason],
        description=f"Cosmos-Transfer {dataset_url} -> {out_url}, judged into {report_url}.",
    )
