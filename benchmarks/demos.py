"""Demonstration generation benchmark: frames per second end to end (physics, offscreen
rendering, expert, encoding, writing, both cores), against lerobot's writer fed the same frames.

    uv run python benchmarks/demos.py [--episodes 40] [--quick]

For each image size (96x96, 320x240), one after the other on this machine:
1. physai: `generate_demos("reacher", N, ...)` with 2 worker processes, timed whole (worker
   start-up, the merge and the atomic publish included);
2. lerobot: the same episodes are rendered first (untimed, one process, same seeds) and then
   written with `LeRobotDataset.create(..., streaming_encoding=True)` + `add_frame` +
   `save_episode` + `finalize` (lerobot 0.6.1's fastest setting), timed;
3. for reference, rendering alone (one process, `SimArm.render` in a loop).
Results: a table on stdout, `benchmarks/results/demos.json` and `.md`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, machine_info

from physai.data_pipeline import SimArm
from physai.synthetic_data.demos import (
    CAMERA,
    DemoSpec,
    features,
    generate_demos,
    run_episode,
)

SIZES = [(96, 96), (320, 240)]
TARGETS = {"96x96": 300, "320x240": 180}


def physai_fps(work: Path, episodes: int, width: int, height: int) -> dict[str, float]:
    out = work / f"physai-{width}x{height}"
    report = generate_demos("reacher", episodes, out, width=width, height=height, workers=2)
    return {"frames": report.frames, "seconds": report.seconds, "fps": report.frames_per_second}


def render_episodes(episodes: int, width: int, height: int) -> tuple[list[Any], dict[str, Any]]:
    arm = SimArm("reacher", width=width, height=height)
    spec = DemoSpec("reacher", 0, 2.0, 30, width, height, 500, None)
    try:
        records = [run_episode(arm, None, spec, k) for k in range(episodes)]
        return records, features(arm, width, height)
    finally:
        arm.close()


def lerobot_fps(work: Path, records: list[Any], feats: dict[str, Any]) -> dict[str, float]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    start = time.perf_counter()
    dataset = LeRobotDataset.create(
        "bench/demos", 30, feats, root=work / "lerobot", use_videos=True, streaming_encoding=True
    )
    frames = 0
    for record in records:
        for i in range(len(record.state)):
            dataset.add_frame(
                {
                    "observation.state": record.state[i],
                    "action": record.action[i],
                    CAMERA: record.images[i],
                    "task": "touch the red target with the fingertip",
                }
            )
            frames += 1
        dataset.save_episode()
    dataset.finalize()
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds}


def render_fps(width: int, height: int, count: int = 300) -> float:
    arm = SimArm("reacher", width=width, height=height)
    try:
        arm.render()
        start = time.perf_counter()
        for _ in range(count):
            arm.step()
            arm.render()
        return count / (time.perf_counter() - start)
    finally:
        arm.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per size (2 s each)")
    parser.add_argument("--quick", action="store_true", help="6 episodes, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    episodes = 6 if args.quick else args.episodes
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["uv run python benchmarks/demos.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "episodes": episodes,
        "sizes": {},
    }
    work = Path(tempfile.mkdtemp(prefix="physai-bench-demos-"))
    try:
        for width, height in SIZES:
            key = f"{width}x{height}"
            print(f"{key}: physai ...", flush=True)
            ours = physai_fps(work, episodes, width, height)
            print(f"  {ours['fps']:.0f} frames/s; rendering the same episodes ...", flush=True)
            records, feats = render_episodes(episodes, width, height)
            print("  lerobot writer ...", flush=True)
            theirs = lerobot_fps(work / key, records, feats)
            del records
            results["sizes"][key] = {
                "physai_end_to_end": ours,
                "lerobot_writer_only": theirs,
                "render_only_fps_one_process": render_fps(width, height),
                "ratio": ours["fps"] / theirs["fps"],
                "target_fps": TARGETS[key],
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table_md(results)
    print(text)
    name = "demos-quick" if args.quick else "demos"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / f"{name}.md").write_text(text)
    return 0


def table_md(r: dict[str, Any]) -> str:
    lines = [
        "# Demonstration generation",
        "",
        f"Date: {r['date']}  ",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu_model']}, {r['machine']['usable_cores']} usable cores, "
        f"Python {r['machine']['python']}, lerobot {r['machine']['packages']['lerobot']}",
        "",
        f"Task: reacher, {r['episodes']} episodes x 60 frames (2 s at 30 fps), scripted expert, "
        "500 Hz physics, one camera, AV1.",
        "",
        "| size | physai end to end (2 processes) | lerobot writer alone, same frames | "
        "ratio | target | rendering alone (1 process) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in r["sizes"].items():
        ours, theirs = row["physai_end_to_end"], row["lerobot_writer_only"]
        lines.append(
            f"| {key} | {ours['fps']:.0f} frames/s ({ours['seconds']:.1f} s) | "
            f"{theirs['fps']:.0f} frames/s ({theirs['seconds']:.1f} s) | "
            f"**{row['ratio']:.2f}x** | {row['target_fps']} frames/s, 2x | "
            f"{row['render_only_fps_one_process']:.0f} frames/s |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
