"""GPU training speed: `physai training il` (fast engine) against plain `lerobot-train`.

    python benchmarks/il_gpu_speed.py --dataset DATASET_DIR [--steps 2000] [--batch-size 8]

Both train LeRobot's ACT with the same config (lerobot's ACT defaults, batch size, seed, number
of dataloader workers, no pretrained backbone since the GPU host is offline) on the same LeRobot
dataset, one after the other, each in its own process. The parent stamps every log line a
trainer prints (every `--log-every` steps) with its own clock, and samples GPU utilisation with
`nvidia-smi` every 100 ms. Steady-state steps/s is measured between the end of the first
`--skip-windows` log windows (start-up, cuDNN autotuning, graph capture) and the last one; the
time to the first log line and the whole wall time are reported too. The loss of each window is
kept, so both curves can be compared (and are plotted when matplotlib is importable).

Rows (`--tools`): `lerobot-train` (python -m lerobot.scripts.lerobot_train), `physai-fast`
(train_il with engine="fast") and `physai-lerobot` (train_il with engine="lerobot": our loop
through lerobot's DataLoader and policy.forward). Needs a CUDA GPU, lerobot 0.6.1 and physai's
core and training packages importable. Writes results/il_gpu_speed.{json,md} (and .png).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TOOLS = ("lerobot-train", "physai-fast", "physai-lerobot")
NO_BACKBONE_WEIGHTS = {"pretrained_backbone_weights": None}


@dataclass
class Run:
    """One trainer's run as the parent saw it."""

    tool: str
    steps: int
    wall_s: float
    first_log_s: float | None
    steady_steps_per_s: float | None
    gpu_util_pct: float | None
    losses: list[tuple[int, float]] = field(default_factory=list)
    returncode: int = 0
    tail: str = ""


# -- the physai worker ---------------------------------------------------------------------


def physai_worker(args: argparse.Namespace) -> None:
    """Train with physai's Python API; print one JSON line per metric log."""
    from physai.training.il import ILConfig, train_il

    class Printer:
        def log_metrics(self, metrics: dict[str, float], step: int) -> None:
            print(json.dumps({"step": step, "loss": metrics["train/loss"]}), flush=True)

    config = ILConfig(
        policy="act",
        dataset=args.dataset,
        output=args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        num_workers=args.num_workers,
        checkpoint_every=args.steps,
        log_every=args.log_every,
        device=args.device,
        engine=args.engine,
        overrides=NO_BACKBONE_WEIGHTS,
    )
    train_il(config, tracker=Printer())


# -- the parent ----------------------------------------------------------------------------


class GpuSampler:
    """`nvidia-smi` utilisation samples, stamped with this process's clock."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "100",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.samples.append((time.perf_counter(), float(line.strip())))
            except ValueError:
                continue

    def mean(self, start: float, end: float) -> float | None:
        values = [v for t, v in self.samples if start <= t <= end]
        return statistics.fmean(values) if values else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()


LEROBOT_LOG = re.compile(r"\bstep:\S+.*\bloss:([0-9.eE+-]+|nan)")


def command(tool: str, args: argparse.Namespace, output: Path) -> list[str]:
    """The command line of one trainer."""
    root = Path(args.dataset).resolve()
    if tool == "lerobot-train":
        return [
            sys.executable, "-m", "lerobot.scripts.lerobot_train",
            f"--dataset.repo_id=physai/{root.name}", f"--dataset.root={root}",
            "--dataset.video_backend=pyav", "--policy.type=act", "--policy.device=cuda",
            "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null",
            f"--batch_size={args.batch_size}", f"--steps={args.steps}", f"--seed={args.seed}",
            f"--num_workers={args.num_workers}", f"--log_freq={args.log_every}",
            f"--save_freq={args.steps}", f"--output_dir={output}", "--wandb.enable=false",
        ]  # fmt: skip
    engine = tool.removeprefix("physai-")
    return [
        sys.executable, __file__, "--worker", "--engine", engine, "--dataset", str(root),
        "--output", str(output), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--seed", str(args.seed), "--num-workers", str(args.num_workers),
        "--log-every", str(args.log_every),
    ]  # fmt: skip


def run_tool(tool: str, args: argparse.Namespace, gpu: GpuSampler, scratch: Path) -> Run:
    """Run one trainer to the end, stamping its log lines (all kept in `--logs`, if given)."""
    output = scratch / tool
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        command(tool, args, output), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    stamps: list[tuple[float, int, float]] = []  # (time, step, window loss)
    tail: list[str] = []
    log = open(args.logs / f"{tool}.log", "w") if args.logs else None  # noqa: SIM115
    for line in proc.stdout:
        now = time.perf_counter()
        if log is not None:
            log.write(f"{now - started:9.3f} {line}")
        tail = [*tail[-39:], line.rstrip()]
        if tool == "lerobot-train":
            found = LEROBOT_LOG.search(line)
            if found:  # its step is printed rounded ("1K"): count the log lines instead
                stamps.append((now, (len(stamps) + 1) * args.log_every, float(found.group(1))))
        elif line.startswith("{"):
            record = json.loads(line)
            stamps.append((now, int(record["step"]), float(record["loss"])))
    code = proc.wait()
    if log is not None:
        log.close()
    wall = time.perf_counter() - started
    steady = gpu_util = None
    skip = args.skip_windows
    if len(stamps) > skip + 1:
        (t0, s0, _), (t1, s1, _) = stamps[skip], stamps[-1]
        steady = (s1 - s0) / (t1 - t0)
        gpu_util = gpu.mean(t0, t1)
    return Run(
        tool=tool,
        steps=args.steps,
        wall_s=round(wall, 2),
        first_log_s=round(stamps[0][0] - started, 2) if stamps else None,
        steady_steps_per_s=round(steady, 2) if steady else None,
        gpu_util_pct=round(gpu_util, 1) if gpu_util is not None else None,
        losses=[(s, round(loss, 5)) for _, s, loss in stamps],
        returncode=code,
        tail="\n".join(tail) if code else "",
    )


def machine() -> dict[str, Any]:
    """GPU, CPU count and package versions."""
    import torch

    facts: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    try:
        import lerobot

        facts["lerobot"] = getattr(lerobot, "__version__", "?")
    except ImportError:
        facts["lerobot"] = None
    return facts


def final_loss(run: Run, windows: int = 5) -> float | None:
    """Mean of the last `windows` window losses."""
    tail = [loss for _, loss in run.losses[-windows:]]
    return round(statistics.fmean(tail), 5) if tail else None


def table(runs: list[Run]) -> str:
    """The markdown table, the speed-up against lerobot-train in the last column."""
    base = next((r.steady_steps_per_s for r in runs if r.tool == "lerobot-train"), None)
    lines = [
        "| trainer | steps/s (steady) | GPU util % | first log s | wall s | final loss | speed-up"
        " |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        speed = f"{r.steady_steps_per_s / base:.2f}x" if base and r.steady_steps_per_s else "n/a"
        lines.append(
            f"| {r.tool} | {r.steady_steps_per_s} | {r.gpu_util_pct} | {r.first_log_s} | "
            f"{r.wall_s} | {final_loss(r)} | {speed} |"
        )
    return "\n".join(lines)


def plot(runs: list[Run], path: Path) -> bool:
    """Both loss curves in one PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        if r.losses:
            ax.plot([s for s, _ in r.losses], [v for _, v in r.losses], label=r.tool)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (window mean)")
    ax.set_yscale("log")
    ax.set_title("ACT, same config and seed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="LeRobot v3.0 dataset folder")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=4, help="lerobot-train's default")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--skip-windows", type=int, default=2)
    parser.add_argument("--tools", default=",".join(TOOLS[:2]), help=f"of {', '.join(TOOLS)}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="il_gpu_speed")
    parser.add_argument("--logs", type=Path, help="keep each trainer's output here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: smoke test
    args = parser.parse_args()
    if args.worker:
        physai_worker(args)
        return
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}: choose from {', '.join(TOOLS)}")
    gpu = GpuSampler()
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for tool in tools:
            run = run_tool(tool, args, gpu, Path(scratch))
            print(f"{tool}: {run.steady_steps_per_s} steps/s, GPU {run.gpu_util_pct}%", flush=True)
            if run.returncode:
                print(run.tail, file=sys.stderr)
            runs.append(run)
    gpu.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": args.name,
        "config": {k: v for k, v in vars(args).items() if k in
                   ("dataset", "steps", "batch_size", "seed", "num_workers", "log_every",
                    "skip_windows")},
        "machine": machine(),
        "runs": [asdict(r) | {"final_loss": final_loss(r)} for r in runs],
    }  # fmt: skip
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(runs)
    (args.out / f"{args.name}.md").write_text(f"# {args.name}\n\n{text}\n")
    plot(runs, args.out / f"{args.name}.png")
    print(text)


if __name__ == "__main__":
    main()
