"""Dataset I/O benchmark: physai's LeRobot v3.0 writer/reader vs lerobot's `LeRobotDataset`.

    uv run python benchmarks/dataset_io.py [--episodes 200] [--frames 100] [--quick]

Everything runs in one process on this machine, side by side, on the same pre-generated frames:

1. write: N episodes x F frames (one 96x128 RGB video camera, 7-dim float32 state and action)
   with `LeRobotDatasetWriter.add_frame/save_episode/finish` (AV1) and with
   `LeRobotDataset.create(..., streaming_encoding=True)` + `add_frame/save_episode/finalize`;
2. random access: K random frame reads (fixed seed, same indices) with `LeRobotDatasetReader[i]`
   and `LeRobotDataset[i]` (torchcodec, and pyav for reference), on both datasets;
3. checks that both readers return the same numbers for a few frames.

Results: a table on stdout, `benchmarks/results/dataset_io.json` and `.md`.
See benchmarks/README.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import datetime as dt
import gc
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from physai.data_management.lerobot import LeRobotDatasetReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    CAMERA,
    DIM,
    FEATURES,
    FPS,
    HEIGHT,
    RESULTS,
    TASKS,
    WIDTH,
    dir_size,
    machine_info,
    make_episodes,
    write_physai,
)


def write_lerobot(root: Path, episodes: list[dict[str, np.ndarray]]) -> float:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    start = time.perf_counter()
    ds = LeRobotDataset.create(
        "physai/bench",
        FPS,
        FEATURES,
        root=root,
        use_videos=True,
        streaming_encoding=True,
    )
    for i, ep in enumerate(episodes):
        task = TASKS[i % len(TASKS)]
        state, action, images = ep["observation.state"], ep["action"], ep[CAMERA]
        for t in range(len(state)):
            ds.add_frame(
                {
                    "observation.state": state[t],
                    "action": action[t],
                    CAMERA: images[t],
                    "task": task,
                }
            )
        ds.save_episode()
    ds.finalize()
    return time.perf_counter() - start


# -- read ----------------------------------------------------------------------------------


def open_lerobot(root: Path, backend: str):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("physai/bench", root=root, video_backend=backend)


def time_reads(get, indices: np.ndarray, warmup: int) -> dict[str, float]:
    get(warmup)  # first access: opens files, builds caches; not timed
    lat = np.empty(len(indices))
    start = time.perf_counter()
    for n, i in enumerate(indices):
        t0 = time.perf_counter()
        get(int(i))
        lat[n] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {
        "reads": len(indices),
        "seconds": total,
        "frames_per_s": len(indices) / total,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
    }


def lerobot_image_uint8(item: dict) -> np.ndarray:
    """lerobot returns CHW float32 in [0, 1]; back to HWC uint8."""
    img = item[CAMERA].numpy()
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def compare(ours: LeRobotDatasetReader, theirs, indices: list[int], source) -> dict[str, Any]:
    """Our reader vs lerobot's __getitem__ on the same dataset, plus both vs the source data."""
    out: dict[str, Any] = {"indices": indices, "numeric_equal": True, "numeric_equal_source": True}
    image_max, image_mean, src_max, src_mean = 0, 0.0, 0, 0.0
    for i in indices:
        a, b = ours[i], theirs[i]
        for key in ("observation.state", "action"):
            if not np.array_equal(np.asarray(a[key]), b[key].numpy()):
                out["numeric_equal"] = False
        for key in ("episode_index", "frame_index", "index", "task_index"):
            if int(a[key]) != int(b[key]):
                out["numeric_equal"] = False
        if a.get("task") != b.get("task"):
            out["numeric_equal"] = False
        ep, t = int(a["episode_index"]), int(a["frame_index"])
        for key in ("observation.state", "action"):
            if not np.array_equal(np.asarray(a[key]), source[ep][key][t]):
                out["numeric_equal_source"] = False
        ia = np.asarray(a[CAMERA]).astype(np.int16)
        ib = lerobot_image_uint8(b).astype(np.int16)
        diff = np.abs(ia - ib)
        image_max = max(image_max, int(diff.max()))
        image_mean += float(diff.mean()) / len(indices)
        sdiff = np.abs(ia - source[ep][CAMERA][t].astype(np.int16))
        src_max = max(src_max, int(sdiff.max()))
        src_mean += float(sdiff.mean()) / len(indices)
    out["image_max_abs_diff_ours_vs_lerobot"] = image_max
    out["image_mean_abs_diff_ours_vs_lerobot"] = round(image_mean, 4)
    out["image_identical_ours_vs_lerobot"] = image_max == 0
    out["image_max_abs_diff_vs_source"] = src_max
    out["image_mean_abs_diff_vs_source"] = round(src_mean, 4)
    return out


# -- reporting -----------------------------------------------------------------------------


def table_md(results: dict[str, Any]) -> str:
    w = results["write"]
    lines = [
        "| Write (add_frame/save_episode/finalize) | seconds | frames/s | on-disk MB |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("physai", "physai LeRobotDatasetWriter (AV1)"),
        ("lerobot", "lerobot LeRobotDataset.create (AV1, streaming_encoding)"),
    ):
        r = w[key]
        lines.append(f"| {label} | {r['seconds']:.2f} | {r['frames_per_s']:.0f} | {r['mb']:.1f} |")
    lines.append(
        f"| **ratio physai / lerobot (frames/s)** | | **{w['ratio_physai_over_lerobot']:.2f}x** | |"
    )
    lines += [
        "",
        f"| Random access ({results['params']['reads']} reads, seed {results['params']['seed']}) "
        "| dataset | frames/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results["read"]["rows"]:
        if "error" in row:
            lines.append(
                f"| {row['reader']} | {row['dataset']} | failed: {row['error'][:60]} | | |"
            )
            continue
        lines.append(
            f"| {row['reader']} | {row['dataset']} | {row['frames_per_s']:.0f} "
            f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |"
        )
    for ds, ratio in results["read"]["ratios"].items():
        lines.append(
            f"| **ratio physai / lerobot-{ratio['lerobot_backend']} (frames/s)** | {ds} "
            f"| **{ratio['ratio']:.2f}x** | | |"
        )
    lines += [
        "",
        "| Equality check (our reader vs lerobot `__getitem__`) | dataset "
        "| state/action/indices/task equal | image max abs diff (mean) "
        "| image vs source max abs diff (mean) |",
        "|---|---|---|---|---|",
    ]
    for ds, c in results["equality"].items():
        lines.append(
            f"| {c['indices']} ({c['lerobot_backend']}) | {ds} | {c['numeric_equal']} "
            f"(vs source: {c['numeric_equal_source']}) | {c['image_max_abs_diff_ours_vs_lerobot']} "
            f"({c['image_mean_abs_diff_ours_vs_lerobot']}) | {c['image_max_abs_diff_vs_source']} "
            f"({c['image_mean_abs_diff_vs_source']}) |"
        )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument(
        "--reads", type=int, default=None, help="random reads (default 500, 100 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 episodes x 50 frames, 100 reads")
    parser.add_argument("--no-pyav", action="store_true", help="skip lerobot's pyav reference rows")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.frames = min(args.episodes, 20), min(args.frames, 50)
    reads = args.reads or (100 if args.quick else 500)
    logging.basicConfig(level=logging.WARNING)
    for name in ("lerobot", "datasets", "huggingface_hub", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)

    from lerobot.utils.import_utils import get_safe_default_video_backend

    default_backend = get_safe_default_video_backend()
    torchcodec_ok = default_backend == "torchcodec"
    backends = (["torchcodec"] if torchcodec_ok else []) + (
        [] if args.no_pyav and torchcodec_ok else ["pyav"]
    )

    params = {
        "episodes": args.episodes,
        "frames_per_episode": args.frames,
        "total_frames": args.episodes * args.frames,
        "fps": FPS,
        "camera": f"{CAMERA} {HEIGHT}x{WIDTH} RGB video",
        "state_action_dim": DIM,
        "reads": reads,
        "seed": args.seed,
        "quick": args.quick,
        "physai_writer": (
            "LeRobotDatasetWriter(video_codec='av1' default) add_frame/save_episode/finish"
        ),
        "lerobot_writer": (
            "LeRobotDataset.create(use_videos=True, streaming_encoding=True) "
            "add_frame/save_episode/finalize"
        ),
        "lerobot_default_video_backend": default_backend,
        "lerobot_backends_timed": backends,
    }
    print(f"params: {json.dumps(params)}", flush=True)

    t0 = time.perf_counter()
    episodes = make_episodes(args.episodes, args.frames)
    total = args.episodes * args.frames
    print(f"generated {total} frames in {time.perf_counter() - t0:.1f}s (not timed)", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="physai-bench-"))
    results: dict[str, Any] = {"params": params}
    try:
        ours_root, theirs_root = tmp / "physai", tmp / "lerobot"
        gc.collect()
        s_ours = write_physai(ours_root, episodes)
        print(f"physai write: {s_ours:.2f}s ({total / s_ours:.0f} frames/s)", flush=True)
        gc.collect()
        s_theirs = write_lerobot(theirs_root, episodes)
        print(f"lerobot write: {s_theirs:.2f}s ({total / s_theirs:.0f} frames/s)", flush=True)
        results["write"] = {
            "physai": {
                "seconds": s_ours,
                "frames_per_s": total / s_ours,
                "mb": dir_size(ours_root) / 1e6,
            },
            "lerobot": {
                "seconds": s_theirs,
                "frames_per_s": total / s_theirs,
                "mb": dir_size(theirs_root) / 1e6,
            },
            "ratio_physai_over_lerobot": s_theirs / s_ours,
        }

        rng = np.random.default_rng(args.seed)
        indices = rng.integers(0, total, size=reads)
        warmup = int(np.random.default_rng(args.seed + 1).integers(0, total))
        rows: list[dict[str, Any]] = []
        equality: dict[str, Any] = {}
        check_idx = sorted(
            {0, total - 1, *map(int, np.random.default_rng(args.seed + 2).integers(0, total, 6))}
        )
        for ds_name, root in (("lerobot-written", theirs_root), ("physai-written", ours_root)):
            ours = LeRobotDatasetReader(root)
            row = {"reader": "physai LeRobotDatasetReader[i] (PyAV)", "dataset": ds_name}
            row.update(time_reads(ours.__getitem__, indices, warmup))
            rows.append(row)
            print(f"{row['reader']} on {ds_name}: {row['frames_per_s']:.0f} frames/s", flush=True)
            for backend in backends:
                row = {
                    "reader": f"lerobot LeRobotDataset[i] ({backend})",
                    "dataset": ds_name,
                    "backend": backend,
                }
                try:
                    theirs = open_lerobot(root, backend)
                    row.update(time_reads(theirs.__getitem__, indices, warmup))
                    print(
                        f"{row['reader']} on {ds_name}: {row['frames_per_s']:.0f} frames/s",
                        flush=True,
                    )
                    if ds_name not in equality:
                        equality[ds_name] = {
                            "lerobot_backend": backend,
                            **compare(ours, theirs, check_idx, episodes),
                        }
                    del theirs
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    print(f"{row['reader']} on {ds_name} FAILED: {row['error']}", flush=True)
                rows.append(row)
                gc.collect()
            ours.close()
        ratios = {}
        for ds_name in ("lerobot-written", "physai-written"):
            ok = [r for r in rows if r["dataset"] == ds_name and "error" not in r]
            ours_row = next(r for r in ok if r["reader"].startswith("physai"))
            theirs_rows = [r for r in ok if r["reader"].startswith("lerobot")]
            if theirs_rows:
                best = max(theirs_rows, key=lambda r: r["frames_per_s"])
                ratios[ds_name] = {
                    "lerobot_backend": best["backend"],
                    "ratio": ours_row["frames_per_s"] / best["frames_per_s"],
                }
        results["read"] = {"rows": rows, "ratios": ratios, "warmup_index": warmup}
        results["equality"] = equality
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    results["machine"] = machine_info()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    results["date"] = now
    command = "uv run python benchmarks/dataset_io.py " + " ".join(sys.argv[1:])
    results["command"] = command.strip()
    table = table_md(results)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dataset_io.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    (args.out / "dataset_io.md").write_text(
        f"# Dataset I/O benchmark\n\nDate: {now}\n\nCommand: `{results['command']}`\n\n"
        f"Machine: {m['cpu_model']}, {m['usable_cores']} usable cores, Python {m['python']}; "
        f"lerobot {m['packages']['lerobot']}, torch {m['packages']['torch']}, "
        f"torchcodec {m['packages']['torchcodec']}, av {m['packages']['av']}; "
        f"{m['system_ffmpeg']}\n\n"
        f"Data: {args.episodes} episodes x {args.frames} frames = {total} frames, "
        f"{HEIGHT}x{WIDTH} RGB video camera, {DIM}-dim float32 state and action, fps {FPS}.\n\n"
        f"{table}\n"
    )
    print(f"\nwrote {args.out / 'dataset_io.json'} and {args.out / 'dataset_io.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
