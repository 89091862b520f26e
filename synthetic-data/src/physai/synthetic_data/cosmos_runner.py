"""The wrapper the Cosmos jobs run: LeRobot dataset → model input layout → model → dataset.

    python -m physai.synthetic_data.cosmos_runner transfer --dataset D --out O --prompt P \
        --rgb observation.images.front --control depth=observation.images.front_depth:0.5 \
        --control edge=:1 [--export-only --workdir W]
    python -m physai.synthetic_data.cosmos_runner predict --dataset D --out O --prompt P --camera C
    python -m physai.synthetic_data.cosmos_runner reason --dataset D --report R --camera C

The data handling runs anywhere: `export_transfer_inputs` / `export_predict_inputs` write one MP4
per camera and episode plus the model's spec JSON per episode and a manifest, and
`import_videos` writes the generated videos back as a LeRobot dataset. `call_model` runs the
model's own inference script and needs a Cosmos container (its repository and checkpoints):
anywhere else it raises MissingDependencyError. Errors print one line; exit code 2 (1 for a
failed model run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import JobError, MissingDependencyError, PhysaiError, UserError
from physai.synthetic_data.cosmos import (
    MODELS,
    Control,
    control_type,
    make_controls,
    parse_episodes,
)

MANIFEST: Final = "manifest.json"
MANIFEST_FORMAT: Final = "physai.cosmos.inputs"
COSMOS_DIR_ENV: Final = "COSMOS_DIR"
DEFAULT_COSMOS_DIR: Final = "/workspace"
Frame = NDArray[np.uint8]


@dataclass(frozen=True)
class Sample:
    """One episode prepared for a model: its spec JSON and the folder the model writes to."""

    episode: int
    name: str
    spec: Path
    output_dir: Path


# -- videos ----------------------------------------------------------------------------------


def write_mp4(path: Path, frames: Sequence[Frame], fps: int) -> Path:
    """Encode HxWx3 uint8 frames as an H.264 MP4 (yuv420p; odd sizes are padded by one)."""
    import av

    if not frames:
        raise UserError(f"no frames to write to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            padded = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_mp4(path: Path) -> list[Frame]:
    """Every frame of a video file as HxWx3 uint8."""
    import av

    frames: list[Frame] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(f"cannot read video {path}: {exc}") from None
    return frames


def fit_frames(frames: Sequence[Frame], length: int, height: int, width: int) -> list[Frame]:
    """`length` frames of `height` x `width`: nearest frames in time, resized when needed."""
    from PIL import Image

    if not frames:
        raise UserError("the generated video has no frames")
    picks = np.linspace(0, len(frames) - 1, num=length).round().astype(int)
    out: list[Frame] = []
    for index in picks:
        frame = frames[int(index)]
        if frame.shape[:2] != (height, width):
            image = Image.fromarray(frame, "RGB").resize((width, height), Image.Resampling.BILINEAR)
            frame = np.asarray(image, dtype=np.uint8)
        out.append(frame)
    return out


# -- export ----------------------------------------------------------------------------------


def _selected(reader: Any, episodes: Sequence[int] | None) -> list[int]:
    known = [e.episode_index for e in reader.episodes]
    if episodes is None:
        return known
    missing = sorted(set(episodes) - set(known))
    if missing:
        raise UserError(f"dataset {reader.url} has no episode(s) {missing} (it has {len(known)})")
    return sorted(set(episodes))


def _check_cameras(reader: Any, cameras: Sequence[str]) -> None:
    missing = [c for c in dict.fromkeys(cameras) if c not in reader.camera_keys]
    if missing:
        raise UserError(
            f"dataset {reader.url} has no camera feature {', '.join(map(repr, missing))} "
            f"(cameras: {', '.join(reader.camera_keys) or 'none'})"
        )


def _camera_frames(reader: Any, episode: int, cameras: Sequence[str]) -> dict[str, list[Frame]]:
    frames: dict[str, list[Frame]] = {c: [] for c in cameras}
    for frame in reader.episode_frames(episode):
        for camera in cameras:
            frames[camera].append(frame[camera])
    return frames


def _write_manifest(
    workdir: Path, model: str, dataset_url: str, camera: str, samples: Sequence[Sample]
) -> None:
    document = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "model": model,
        "dataset": dataset_url,
        "camera": camera,
        "samples": [
            {
                "episode": s.episode,
                "name": s.name,
                "spec": str(s.spec.relative_to(workdir)),
                "output_dir": str(s.output_dir.relative_to(workdir)),
            }
            for s in samples
        ],
    }
    (workdir / MANIFEST).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def load_manifest(workdir: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Sample]]:
    """The manifest an export wrote in `workdir`, and its samples."""
    root = Path(workdir)
    try:
        document = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {root / MANIFEST}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{root / MANIFEST} is not a Cosmos input manifest")
    samples = [
        Sample(int(s["episode"]), str(s["name"]), root / s["spec"], root / s["output_dir"])
        for s in document["samples"]
    ]
    return document, samples


def transfer_spec(
    version: str,
    *,
    name: str,
    prompt: str,
    video: Path,
    controls: Mapping[Control, Path | None],
    guidance: float,
    seed: int,
) -> dict[str, Any]:
    """One episode's spec JSON for Cosmos-Transfer2.5 (`video_path`, per control `control_path`
    and `control_weight`) or Transfer1 (`input_video_path`, per control `input_control`)."""
    if version == "2.5":
        spec: dict[str, Any] = {
            "name": name,
            "prompt": prompt,
            "video_path": str(video),
            "guidance": guidance,
            "seed": seed,
        }
        path_key = "control_path"
    elif version == "1":
        spec = {"prompt": prompt, "input_video_path": str(video), "seed": seed}
        path_key = "input_control"
    else:
        raise UserError(f"unknown Cosmos-Transfer version {version!r}: use 2.5 or 1")
    for control, path in controls.items():
        entry: dict[str, Any] = {"control_weight": control.weight}
        if path is not None:
            entry[path_key] = str(path)
        spec[control.type] = entry
    return spec


def export_transfer_inputs(
    dataset_url: str,
    workdir: str | os.PathLike[str],
    *,
    prompt: str,
    rgb_camera: str,
    controls: Sequence[Control],
    version: str = "2.5",
    episodes: Sequence[int] | None = None,
    guidance: float = 3.0,
    seed: int = 1,
) -> list[Sample]:
    """Write Cosmos-Transfer's inputs for each episode under `workdir`: `episode_N/rgb.mp4`,
    one `<control>.mp4` per control read from a camera, `episode_N/spec.json`, and a manifest."""
    from physai.data_management import LeRobotDatasetReader

    root = Path(workdir)
    if f"transfer-{version}" not in MODELS:
        raise UserError(f"unknown Cosmos-Transfer version {version!r}: use 2.5 or 1")
    reader = LeRobotDatasetReader(dataset_url)
    try:
        cameras = [rgb_camera, *(c.camera for c in controls if c.camera)]
        _check_cameras(reader, cameras)
        samples = []
        for episode in _selected(reader, episodes):
            folder = root / f"episode_{episode:06d}"
            frames = _camera_frames(reader, episode, list(dict.fromkeys(cameras)))
            video = write_mp4(folder / "rgb.mp4", frames[rgb_camera], reader.fps)
            paths: dict[Control, Path | None] = {}
            for control in controls:
                paths[control] = (
                    write_mp4(folder / f"{control.type}.mp4", frames[control.camera], reader.fps)
                    if control.camera
                    else None
                )
            name = f"episode_{episode:06d}"
            spec = transfer_spec(
                version,
                name=name,
                prompt=prompt,
                video=video,
                controls=paths,
                guidance=guidance,
                seed=seed,
            )
            spec_path = folder / "spec.json"
            spec_path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
            samples.append(Sample(episode, name, spec_path, folder / "output"))
        _write_manifest(root, f"transfer-{version}", dataset_url, rgb_camera, samples)
        return samples
    finally:
        reader.close()


def export_predict_inputs(
    dataset_url: str,
    workdir: str | os.PathLike[str],
    *,
    prompt: str,
    camera: str,
    conditioning_frames: int = 5,
    episodes: Sequence[int] | None = None,
    seed: int = 1,
) -> list[Sample]:
    """Write Cosmos-Predict2.5 video2world inputs: the first `conditioning_frames` of `camera`
    per episode as `episode_N/input.mp4`, its spec JSON (`inference_type`, `name`, `prompt`,
    `input_path`, `seed`) and a manifest."""
    from physai.data_management import LeRobotDatasetReader

    root = Path(workdir)
    reader = LeRobotDatasetReader(dataset_url)
    try:
        _check_cameras(reader, [camera])
        samples = []
        for episode in _selected(reader, episodes):
            folder = root / f"episode_{episode:06d}"
            frames: list[Frame] = []
            for frame in reader.episode_frames(episode):
                frames.append(frame[camera])
                if len(frames) == conditioning_frames:
                    break
            video = write_mp4(folder / "input.mp4", frames, reader.fps)
            name = f"episode_{episode:06d}"
            task = next(e.tasks for e in reader.episodes if e.episode_index == episode)
            spec = {
                "inference_type": "video2world",
                "name": name,
                "prompt": prompt.replace("{task}", " / ".join(task)),
                "input_path": str(video),
                "seed": seed,
            }
            spec_path = folder / "spec.json"
            spec_path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
            samples.append(Sample(episode, name, spec_path, folder / "output"))
        _write_manifest(root, "predict-2.5", dataset_url, camera, samples)
        return samples
    finally:
        reader.close()


# -- import ----------------------------------------------------------------------------------


def generated_video(sample: Sample) -> Path:
    """The video the model wrote for `sample`: `<name>*.mp4` in its output folder, else the
    only MP4 there; UserError when there is none or several."""
    found = sorted(sample.output_dir.rglob("*.mp4")) if sample.output_dir.is_dir() else []
    named = [p for p in found if p.stem.startswith(sample.name)]
    chosen = named if len(named) == 1 else found
    if len(chosen) != 1:
        raise UserError(
            f"expected one generated video for {sample.name} in {sample.output_dir}, "
            f"found {len(found)}"
        )
    return chosen[0]


_DEFAULT_COLUMNS: Final = frozenset(
    {"timestamp", "frame_index", "episode_index", "index", "task_index"}
)


def import_videos(
    dataset_url: str,
    out_url: str,
    samples: Sequence[Sample],
    *,
    camera: str,
    drop_cameras: Sequence[str] = (),
    video_codec: str = "av1",
    overwrite: bool = False,
) -> int:
    """A new dataset at `out_url`: the episodes of `samples`, `camera` replaced by each sample's
    generated video (fitted to the episode's length and the camera's size), `drop_cameras`
    left out, every other feature copied. The number of episodes written."""
    from physai.data_management import LeRobotDatasetReader, LeRobotDatasetWriter

    reader = LeRobotDatasetReader(dataset_url)
    try:
        _check_cameras(reader, [camera, *drop_cameras])
        if camera in drop_cameras:
            raise UserError(f"camera {camera!r} is both replaced and dropped")
        features = {
            name: {"dtype": f.dtype, "shape": list(f.shape), "names": f.names}
            for name, f in reader.features.items()
            if name not in _DEFAULT_COLUMNS and name not in drop_cameras
        }
        height, width, _ = reader.features[camera].frame_shape
        kept = [c for c in reader.camera_keys if c in features and c != camera]
        with LeRobotDatasetWriter(
            out_url,
            fps=reader.fps,
            features=features,
            robot_type=reader.info.get("robot_type"),
            video_codec=video_codec,
            overwrite=overwrite,
        ) as writer:
            for sample in samples:
                info = next((e for e in reader.episodes if e.episode_index == sample.episode), None)
                if info is None:
                    raise UserError(f"dataset {dataset_url} has no episode {sample.episode}")
                data = reader.episode_data(sample.episode)
                episode: dict[str, Any] = {
                    k: v for k, v in data.items() if k in features and k not in reader.camera_keys
                }
                episode[camera] = fit_frames(
                    read_mp4(generated_video(sample)), info.length, height, width
                )
                if kept:
                    episode.update(_camera_frames(reader, sample.episode, kept))
                tasks = [reader.tasks[int(i)] for i in np.asarray(data["task_index"]).reshape(-1)]
                writer.add_episode(episode, tasks, length=info.length)
            writer.finish()
        return len(samples)
    finally:
        reader.close()


def import_predictions(
    dataset_url: str,
    out_url: str,
    samples: Sequence[Sample],
    *,
    camera: str,
    prompt: str,
    video_codec: str = "av1",
    overwrite: bool = False,
) -> int:
    """A dataset at `out_url` holding each predicted video as one episode of `camera` only
    (a prediction has no states or actions), task = `prompt`, at the source's fps."""
    from physai.data_management import LeRobotDatasetReader, LeRobotDatasetWriter

    reader = LeRobotDatasetReader(dataset_url)
    try:
        _check_cameras(reader, [camera])
        feature = reader.features[camera]
        height, width, _ = feature.frame_shape
        spec = {camera: {"dtype": "video", "shape": list(feature.shape), "names": feature.names}}
        fps = reader.fps
    finally:
        reader.close()
    with LeRobotDatasetWriter(
        out_url, fps=fps, features=spec, video_codec=video_codec, overwrite=overwrite
    ) as writer:
        for sample in samples:
            frames = read_mp4(generated_video(sample))
            fitted = fit_frames(frames, len(frames), height, width)
            writer.add_episode({camera: fitted}, prompt, length=len(fitted))
        writer.finish()
    return len(samples)


# -- the model call --------------------------------------------------------------------------


def cosmos_dir(value: str | None = None) -> Path:
    """Where the model's repository is checked out: `value`, $COSMOS_DIR or /workspace."""
    return Path(value or os.environ.get(COSMOS_DIR_ENV) or DEFAULT_COSMOS_DIR)


def require_model(key: str, repo_dir: Path, checkpoints: str | None = None) -> Path:
    """The model's inference script, or MissingDependencyError saying what is missing."""
    model = MODELS[key]
    script = repo_dir / model.entry_point
    hint = (
        f"run it inside a container built from https://github.com/{model.repository} with its "
        f"checkpoints (set --cosmos-dir or ${COSMOS_DIR_ENV}; no {script}). The Cosmos models "
        "do not run in physai's own environment"
    )
    if not script.is_file():
        raise MissingDependencyError(f"{model.name} ({model.repository})", hint)
    if checkpoints is not None and not Path(checkpoints).is_dir():
        raise MissingDependencyError(f"{model.name} checkpoints at {checkpoints}", hint)
    return script


def model_command(
    key: str, script: Path, sample: Sample, *, num_gpus: int, checkpoints: str | None
) -> list[str]:
    """The argv that runs the model's inference script on one sample."""
    if num_gpus > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={num_gpus}"]
    else:
        launcher = [sys.executable]
    if key == "transfer-1":
        command = [
            *launcher,
            str(script),
            "--controlnet_specs",
            str(sample.spec),
            "--video_save_folder",
            str(sample.output_dir),
            "--video_save_name",
            sample.name,
            "--num_gpus",
            str(num_gpus),
        ]
        if checkpoints is not None:
            command += ["--checkpoint_dir", checkpoints]
        return command
    command = [*launcher, str(script), "-i", str(sample.spec), "-o", str(sample.output_dir)]
    if key == "predict-2.5":
        command.append("--inference-type=video2world")
    return command


def call_model(
    key: str,
    samples: Sequence[Sample],
    *,
    repo_dir: Path,
    num_gpus: int = 1,
    checkpoints: str | None = None,
) -> None:
    """Run the model on every sample (cwd: its repository); JobError when a run fails."""
    script = require_model(key, repo_dir, checkpoints)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_dir), env.get("PYTHONPATH")]))
    if checkpoints is not None:
        env.setdefault("HF_HOME", checkpoints)
    for sample in samples:
        sample.output_dir.mkdir(parents=True, exist_ok=True)
        command = model_command(key, script, sample, num_gpus=num_gpus, checkpoints=checkpoints)
        result = subprocess.run(command, cwd=repo_dir, env=env, check=False)
        if result.returncode != 0:
            raise JobError(f"{MODELS[key].name} failed on {sample.name} (exit {result.returncode})")


# -- reason ----------------------------------------------------------------------------------


def serve_vllm(
    model: str, *, port: int, num_gpus: int, wait_s: float = 1800.0, executable: str = "vllm"
) -> subprocess.Popen[bytes]:
    """Start `vllm serve MODEL` and wait until it answers; MissingDependencyError without vLLM."""
    import httpx

    found = shutil.which(executable)
    if found is None:
        raise MissingDependencyError(
            "vLLM (to serve " + model + ")",
            "run the Cosmos-Reason job in a container with vLLM and the model's weights, or pass "
            "--endpoint to use a running OpenAI-compatible server",
        )
    process = subprocess.Popen(
        [found, "serve", model, "--port", str(port), "--tensor-parallel-size", str(num_gpus)]
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise JobError(f"vllm serve {model} exited with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(5)
    process.terminate()
    raise JobError(f"vllm serve {model} did not answer within {wait_s:.0f} s")


def run_reason(
    dataset_url: str,
    report_url: str,
    *,
    camera: str,
    model: str,
    frames: int = 8,
    episodes: Sequence[int] | None = None,
    endpoint: str | None = None,
    num_gpus: int = 1,
    port: int = 8000,
) -> dict[str, Any]:
    """Judge every selected episode with Cosmos-Reason (or any model at `endpoint`) and write
    the JSON report to `report_url`; the report."""
    from physai.synthetic_data.judge import OpenAIJudge, judge_dataset, report, write_report

    server = None if endpoint else serve_vllm(model, port=port, num_gpus=num_gpus)
    try:
        with OpenAIJudge(endpoint or f"http://127.0.0.1:{port}/v1", model) as judge:
            verdicts = judge_dataset(
                dataset_url, judge, camera=camera, frames=frames, episodes=episodes
            )
        document = report(verdicts, dataset_url=dataset_url, judge=model)
        write_report(report_url, document)
        return document
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)


# -- command line ----------------------------------------------------------------------------


def parse_control(text: str) -> tuple[str, str | None, float]:
    """`TYPE=CAMERA:WEIGHT` (CAMERA may be empty; `:WEIGHT` may be left out) as a tuple."""
    kind, sep, rest = text.partition("=")
    if not sep:
        raise UserError(f"--control {text!r}: write TYPE=CAMERA:WEIGHT, e.g. depth=cam.depth:0.5")
    camera, weight = rest.rsplit(":", 1) if ":" in rest else (rest, "1")
    try:
        value = float(weight)
    except ValueError:
        raise UserError(f"--control {text!r}: weight {weight!r} is not a number") from None
    return control_type(kind), camera or None, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m physai.synthetic_data.cosmos_runner")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("transfer", "predict"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--prompt", required=True)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--episodes")
        p.add_argument("--num-gpus", type=int, default=1)
        p.add_argument("--checkpoints")
        p.add_argument("--cosmos-dir")
        p.add_argument("--workdir")
        p.add_argument("--video-codec", default="av1")
        p.add_argument("--export-only", action="store_true")
        if name == "transfer":
            p.add_argument("--rgb", required=True)
            p.add_argument("--control", action="append", default=[])
            p.add_argument("--version", default="2.5", choices=["2.5", "1"])
            p.add_argument("--guidance", type=float, default=3.0)
            p.add_argument("--keep-controls", action="store_true")
        else:
            p.add_argument("--camera", required=True)
            p.add_argument("--conditioning-frames", type=int, default=5)
    r = sub.add_parser("reason")
    r.add_argument("--dataset", required=True)
    r.add_argument("--report", required=True)
    r.add_argument("--camera", required=True)
    r.add_argument("--model", default="nvidia/Cosmos-Reason1-7B")
    r.add_argument("--frames", type=int, default=8)
    r.add_argument("--episodes")
    r.add_argument("--endpoint")
    r.add_argument("--num-gpus", type=int, default=1)
    r.add_argument("--port", type=int, default=8000)
    return parser


def _transfer(args: argparse.Namespace, workdir: Path) -> str:
    parsed = [parse_control(c) for c in args.control]
    controls = make_controls({k: cam for k, cam, _ in parsed}, {k: w for k, _, w in parsed})
    samples = export_transfer_inputs(
        args.dataset,
        workdir,
        prompt=args.prompt,
        rgb_camera=args.rgb,
        controls=controls,
        version=args.version,
        episodes=parse_episodes(args.episodes),
        guidance=args.guidance,
        seed=args.seed,
    )
    if args.export_only:
        return f"wrote the inputs of {len(samples)} episode(s) to {workdir}"
    key = f"transfer-{args.version}"
    call_model(
        key,
        samples,
        repo_dir=cosmos_dir(args.cosmos_dir),
        num_gpus=args.num_gpus,
        checkpoints=args.checkpoints,
    )
    drop = [] if args.keep_controls else [c.camera for c in controls if c.camera]
    count = import_videos(
        args.dataset,
        args.out,
        samples,
        camera=args.rgb,
        drop_cameras=[c for c in drop if c != args.rgb],
        video_codec=args.video_codec,
        overwrite=True,
    )
    return f"wrote {count} transferred episode(s) to {args.out}"


def _predict(args: argparse.Namespace, workdir: Path) -> str:
    samples = export_predict_inputs(
        args.dataset,
        workdir,
        prompt=args.prompt,
        camera=args.camera,
        conditioning_frames=args.conditioning_frames,
        episodes=parse_episodes(args.episodes),
        seed=args.seed,
    )
    if args.export_only:
        return f"wrote the inputs of {len(samples)} episode(s) to {workdir}"
    call_model(
        "predict-2.5",
        samples,
        repo_dir=cosmos_dir(args.cosmos_dir),
        num_gpus=args.num_gpus,
        checkpoints=args.checkpoints,
    )
    count = import_predictions(
        args.dataset,
        args.out,
        samples,
        camera=args.camera,
        prompt=args.prompt,
        video_codec=args.video_codec,
        overwrite=True,
    )
    return f"wrote {count} predicted episode(s) to {args.out}"


def run(argv: Sequence[str] | None = None) -> str:
    """Run the wrapper with command-line `argv`; a one-line summary (errors raise)."""
    args = _parser().parse_args(argv)
    if args.command == "reason":
        document = run_reason(
            args.dataset,
            args.report,
            camera=args.camera,
            model=args.model,
            frames=args.frames,
            episodes=parse_episodes(args.episodes),
            endpoint=args.endpoint,
            num_gpus=args.num_gpus,
            port=args.port,
        )
        return (
            f"judged {len(document['episodes'])} episode(s): {document['success']} success, "
            f"{document['failure']} failure -> {args.report}"
        )
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="physai-cosmos-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    return _transfer(args, workdir) if args.command == "transfer" else _predict(args, workdir)


def main(argv: Sequence[str] | None = None) -> int:
    """The module's entry point: run, print one line, return the exit code."""
    try:
        print(run(argv))
    except PhysaiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
