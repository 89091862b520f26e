"""ACT inference latency on a GPU: lerobot's eager `select_action` against `load_policy`.

    python benchmarks/act_latency_gpu.py [--calls 2000] [--variants]

LeRobot's ACT with its default architecture, one 480x640 camera and a 14-dim state (an ALOHA-like
arm), random weights (seed 0), batch 1. Rows:

- `lerobot select_action (eager)`: `policy.reset(); policy.select_action(batch)` on a
  normalized batch already on the GPU (reset each call, so each call runs the model, as a robot
  with `n_action_steps=1` would).
- `load_policy (torchscript|onnx, cuda, float32|uint8 frames[, tf32])`: the policy exported by
  `physai training export` (processor normalization folded in; with `--uint8-images` the camera
  is a (1, 480, 640, 3) uint8 frame) and loaded with `physai.training.runtime.load_policy`:
  host buffers in, host buffers out, the forward replayed as a CUDA graph (TorchScript through
  torch, ONNX through ONNX Runtime's CUDA provider; the onnx rows need onnxruntime-gpu and are
  left out without it). Timed by the Policy
  itself (`Policy.benchmark`: a different observation every call).
- with `--variants`, the same ACT forward in plain torch on GPU-resident inputs, as a CUDA graph
  in fp32, TF32 and bf16 autocast, to show where the time goes.

Each row's outputs are compared with the eager fp32 forward on the same observation (max abs
error over the action chunk). Writes results/act_latency_gpu.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
STATE, CAMERA, DIM = "observation.state", "observation.images.top", 14
HEIGHT, WIDTH = 480, 640


def make_checkpoint(folder: Path) -> Any:
    """A random-weight ACT `pretrained_model` folder (weights + processors), as training writes."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    config = ACTConfig(
        input_features={
            STATE: PolicyFeature(type=FeatureType.STATE, shape=(DIM,)),
            CAMERA: PolicyFeature(type=FeatureType.VISUAL, shape=(3, HEIGHT, WIDTH)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(DIM,))},
        pretrained_backbone_weights=None,
        device="cpu",
        push_to_hub=False,
    )
    rng = np.random.default_rng(0)
    stats = {
        STATE: {"mean": rng.normal(0, 1, DIM), "std": rng.uniform(0.5, 2, DIM)},
        "action": {"mean": rng.normal(0, 1, DIM), "std": rng.uniform(0.5, 2, DIM)},
        CAMERA: {"mean": np.full((3, 1, 1), 0.45), "std": np.full((3, 1, 1), 0.25)},
    }
    stats = {k: {s: torch.as_tensor(v, dtype=torch.float32) for s, v in d.items()}
             for k, d in stats.items()}  # fmt: skip
    policy = ACTPolicy(config)
    pre, post = make_pre_post_processors(policy_cfg=config, dataset_stats=stats)
    policy.save_pretrained(folder)
    pre.save_pretrained(folder)
    post.save_pretrained(folder)
    return policy, pre


def percentiles(samples_us: list[float]) -> dict[str, float]:
    """p50, p99 and their ratio of a list of microsecond timings."""
    ordered = sorted(samples_us)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_us": round(p50, 1), "p99_us": round(p99, 1), "p99_over_p50": round(p99 / p50, 2)}


def time_calls(call: Callable[[], Any], calls: int, warmup: int = 20) -> dict[str, float]:
    """Wall time of each call, synchronized with the GPU."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        torch.cuda.synchronize()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return percentiles(samples)


def graphed(forward: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """`forward` captured as a CUDA graph after warm-up; returns the replaying call."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(5):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = forward()

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--variants", action="store_true", help="also plain-torch graph variants")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("act_latency_gpu: needs a CUDA GPU")
    from physai.training.export import export_policy
    from physai.training.export.act import act_policy
    from physai.training.runtime import load_policy

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "pretrained_model"
        policy, pre = make_checkpoint(folder)
        rng = np.random.default_rng(1)
        state = rng.standard_normal((1, DIM)).astype(np.float32)
        frame = rng.integers(0, 256, (1, HEIGHT, WIDTH, 3), dtype=np.uint8)  # as a camera gives
        image = (frame.transpose(0, 3, 1, 2) / 255.0).astype(np.float32)

        # The reference: the exported forward (normalization folded in), eager fp32 on the GPU.
        chunk = act_policy(folder, str(folder)).module.cuda().eval()
        gpu_in = (torch.from_numpy(state).cuda(), torch.from_numpy(image).cuda())
        with torch.inference_mode():
            reference = chunk(*gpu_in).float().cpu().numpy()

        def error(got: np.ndarray) -> float:
            return float(np.abs(got - reference).max())

        # lerobot's own eager call
        policy = policy.cuda().eval()
        raw = pre({STATE: torch.from_numpy(state)[0], CAMERA: torch.from_numpy(image)[0]})
        batch = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in raw.items()}

        def select() -> torch.Tensor:
            policy.reset()
            return policy.select_action(batch)

        with torch.inference_mode():
            rows.append(
                {"runtime": "lerobot select_action (eager)", **time_calls(select, args.calls)}
            )

        if args.variants:
            with torch.inference_mode():
                timing = time_calls(lambda: chunk(*gpu_in), args.calls)
                rows.append({"runtime": "torch eager forward", **timing})
                for name, setup in (
                    ("graph fp32", {}),
                    ("graph tf32 + cudnn autotune", {"tf32": True, "bench": True}),
                    ("graph bf16 autocast + autotune", {"bf16": True, "bench": True}),
                ):
                    torch.backends.cuda.matmul.allow_tf32 = bool(setup.get("tf32"))
                    torch.backends.cudnn.allow_tf32 = True
                    torch.backends.cudnn.benchmark = bool(setup.get("bench"))

                    def forward(bf16: bool = bool(setup.get("bf16"))) -> torch.Tensor:
                        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                            return chunk(*gpu_in).float()

                    replay = graphed(forward)
                    timing = time_calls(replay, args.calls)
                    rows.append(
                        {"runtime": name, **timing, "max_abs_error": error(replay().cpu().numpy())}
                    )
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.benchmark = False

        import onnxruntime as ort

        formats = ["torchscript"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            formats.append("onnx")
        else:
            print("act_latency_gpu: no onnxruntime-gpu here, the onnx rows are left out")
        for uint8 in (False, True):
            exported = Path(scratch) / f"export-{'uint8' if uint8 else 'float'}"
            export_policy(
                str(folder), str(exported), formats=",".join(formats), samples=4,
                uint8_images=uint8,
            )  # fmt: skip
            feed = {STATE: state, CAMERA: frame if uint8 else image}
            for fmt in formats:
                for tf32 in (False, True):
                    loaded = load_policy(exported, format=fmt, device="cuda", tf32=tf32)
                    got = loaded(feed, copy=True)
                    values = got["action"] if isinstance(got, dict) else got
                    stats = loaded.benchmark(args.calls)
                    frames = "uint8 frames" if uint8 else "float32 frames"
                    name = f"load_policy ({fmt}, cuda, {frames}{', tf32' if tf32 else ''})"
                    rows.append({
                        "runtime": name,
                        "p50_us": round(stats.p50_us, 1), "p99_us": round(stats.p99_us, 1),
                        "p99_over_p50": round(stats.p99_us / stats.p50_us, 2),
                        "max_abs_error": error(values), "describe": loaded.describe(),
                    })  # fmt: skip
                    print(rows[-1], flush=True)
                    del loaded

    report = {
        "benchmark": "act_latency_gpu",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "calls": args.calls,
        "rows": rows,
        "cpus": os.cpu_count(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "act_latency_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| runtime | p50 µs | p99 µs | p99/p50 | max abs error vs eager fp32 |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        err = row.get("max_abs_error")
        lines.append(
            f"| {row['runtime']} | {row['p50_us']} | {row['p99_us']} | {row['p99_over_p50']} | "
            f"{'' if err is None else f'{err:.2e}'} |"
        )
    (args.out / "act_latency_gpu.md").write_text("# act_latency_gpu\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
