"""Curation benchmark: `physai data-management curate` vs `lerobot-edit-dataset` (lerobot 0.6.1).

    uv run python benchmarks/curation.py [--episodes 200] [--frames 100] [--quick]

Builds one dataset (N episodes x F frames, one 96x128 camera, 7-dim state and action; written
with physai's writer, AV1 like LeRobot), then times three edits with each tool's CLI, one after
the other, as fresh processes (wall time, start-up included):

1. split 80/20 (`--split train=0.8 --split val=0.2` / `--operation.type split`);
2. delete 20 episodes (the same seeded random ids for both tools);
3. merge two halves (episodes 0..N/2-1 and N/2..N-1, prepared untimed with physai).

Every output is then checked against the source: each output episode is matched to its source
episode (by its state values) and sampled frames (first, last and 3 random per episode) are
decoded and compared pixel for pixel. Also reported: output video bytes and files that other
users cannot read.

Results: a table on stdout, `benchmarks/results/curation.json` and `.md`. See README.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import datetime as dt
import json
import shutil
import stat
import subprocess
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
    RESULTS,
    dir_size,
    machine_info,
    make_episodes,
    write_physai,
)

BIN = Path(sys.executable).parent


def run(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a CLI as a fresh process: (wall seconds, the process)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    return seconds, done


def compile_bytecode() -> float:
    """Write .pyc files for every installed module (untimed): a normal install has them (pip
    and `uv sync --compile-bytecode` write them), but this machine sets
    PYTHONDONTWRITEBYTECODE=1, which would make both CLIs compile their imports at every
    start."""
    import site
    import sysconfig

    start = time.perf_counter()
    roots = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    roots |= {p for p in sys.path if p.endswith("/src")}
    for root in sorted(r for r in roots if Path(r).is_dir()):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", root],
            capture_output=True,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        )
    return time.perf_counter() - start


def physai_cmd(*args: str) -> list[str]:
    return [str(BIN / "physai"), "data-management", "curate", *args]


def lerobot_cmd(*args: str) -> list[str]:
    return [str(BIN / "lerobot-edit-dataset"), *args]


# -- checks ----------------------------------------------------------------------------------


def episode_keys(reader: LeRobotDatasetReader) -> dict[bytes, int]:
    """Each episode's first state row → its index (the benchmark's states are unique)."""
    return {
        reader.episode_data(e.episode_index)["observation.state"][0].tobytes(): e.episode_index
        for e in reader.episodes
    }


def check_output(source: LeRobotDatasetReader, out: Path, seed: int) -> dict[str, Any]:
    """Sampled frames of every output episode vs its source episode."""
    keys = episode_keys(source)
    rng = np.random.default_rng(seed)
    compared = identical = 0
    max_diff = 0
    diffs: list[float] = []
    with LeRobotDatasetReader(out) as result:
        for episode in result.episodes:
            data = result.episode_data(episode.episode_index)
            source_index = keys[data["observation.state"][0].tobytes()]
            src_data = source.episode_data(source_index)
            assert np.array_equal(src_data["observation.state"], data["observation.state"])
            assert np.array_equal(src_data["action"], data["action"])
            length = episode.length
            rows = sorted({0, length - 1, *rng.integers(0, length, 3).tolist()})
            src_start = source.meta.episode(source_index).dataset_from_index
            for row in rows:
                a = source[src_start + row][CAMERA].astype(np.int16)
                b = result[episode.dataset_from_index + row][CAMERA].astype(np.int16)
                diff = np.abs(a - b)
                compared += 1
                identical += int(not diff.any())
                max_diff = max(max_diff, int(diff.max()))
                diffs.append(float(diff.mean()))
        episodes, frames = result.num_episodes, result.num_frames
    return {
        "episodes": episodes,
        "frames": frames,
        "frames_compared": compared,
        "frames_identical": identical,
        "identical": compared == identical,
        "max_abs_diff": max_diff,
        "mean_abs_diff": round(float(np.mean(diffs)), 4) if diffs else 0.0,
    }


def unreadable_files(root: Path) -> int:
    """Files that other users cannot read (mode without o+r)."""
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.stat().st_mode & stat.S_IROTH)


def video_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.mp4"))


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--delete", type=int, default=20, help="episodes to delete")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; median reported")
    parser.add_argument(
        "--no-compile", action="store_true", help="skip writing .pyc files before timing"
    )
    parser.add_argument("--quick", action="store_true", help="20 x 50, delete 4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.frames, args.delete = 20, 50, 4

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp(prefix="physai-bench-curation-"))
    env["HF_HOME"] = str(work / "hf-home")
    env["HF_LEROBOT_HOME"] = str(work / "lerobot-home")
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": vars(args) | {"out": str(args.out)},
        "operations": {},
    }
    try:
        if not args.no_compile:
            print("compiling bytecode (once, untimed) ...", flush=True)
            results["compile_bytecode_seconds"] = round(compile_bytecode(), 1)
        source = work / "source"
        print(f"building {args.episodes} x {args.frames} frames ...", flush=True)
        build_s = write_physai(source, make_episodes(args.episodes, args.frames))
        results["build_seconds"] = round(build_s, 2)
        results["source_video_bytes"] = video_bytes(source)
        half = args.episodes // 2
        for name, ids in (("a", f"0-{half - 1}"), ("b", f"{half}-{args.episodes - 1}")):
            run(
                physai_cmd(str(source), "--out", str(work / f"half-{name}"), "--episodes", ids), env
            )
        drop = sorted(
            np.random.default_rng(args.seed).choice(args.episodes, args.delete, replace=False)
        )
        drop_text = ",".join(str(int(i)) for i in drop)
        operations: dict[str, dict[str, list[str]]] = {
            "split 80/20": {
                "physai": physai_cmd(
                    str(source),
                    "--out",
                    str(work / "p-split"),
                    "--split",
                    "train=0.8",
                    "--split",
                    "val=0.2",
                    "--seed",
                    str(args.seed),
                ),
                "lerobot": lerobot_cmd(
                    "--repo_id",
                    "bench/source",
                    "--root",
                    str(source),
                    "--new_root",
                    str(work / "l-split"),
                    "--operation.type",
                    "split",
                    "--operation.splits",
                    '{"train": 0.8, "val": 0.2}',
                ),
            },
            f"delete {args.delete} episodes": {
                "physai": physai_cmd(
                    str(source), "--out", str(work / "p-delete"), "--drop-episodes", drop_text
                ),
                "lerobot": lerobot_cmd(
                    "--repo_id",
                    "bench/source",
                    "--root",
                    str(source),
                    "--new_repo_id",
                    "bench/deleted",
                    "--new_root",
                    str(work / "l-delete"),
                    "--operation.type",
                    "delete_episodes",
                    "--operation.episode_indices",
                    f"[{drop_text}]",
                ),
            },
            "merge two halves": {
                "physai": physai_cmd(
                    str(work / "half-a"), str(work / "half-b"), "--out", str(work / "p-merge")
                ),
                "lerobot": lerobot_cmd(
                    "--new_repo_id",
                    "bench/merged",
                    "--new_root",
                    str(work / "l-merge"),
                    "--operation.type",
                    "merge",
                    "--operation.repo_ids",
                    "['bench/half_a', 'bench/half_b']",
                    "--operation.roots",
                    f"['{work / 'half-a'}', '{work / 'half-b'}']",
                ),
            },
        }
        outputs = {
            "split 80/20": {
                "physai": ["p-split/train", "p-split/val"],
                "lerobot": ["l-split/train", "l-split/val"],
            },
            f"delete {args.delete} episodes": {"physai": ["p-delete"], "lerobot": ["l-delete"]},
            "merge two halves": {"physai": ["p-merge"], "lerobot": ["l-merge"]},
        }
        with LeRobotDatasetReader(source) as src:
            for operation, commands in operations.items():
                row: dict[str, Any] = {}
                for tool in ("physai", "lerobot"):
                    print(f"{operation}: {tool} ...", flush=True)
                    dirs = [work / d for d in outputs[operation][tool]]
                    runs = []
                    for attempt in range(args.repeat):
                        if attempt:
                            for d in {work / Path(d).parts[0] for d in outputs[operation][tool]}:
                                shutil.rmtree(d)
                        runs.append(run(commands[tool], env)[0])
                    seconds = float(np.median(runs))
                    checks = [check_output(src, d, args.seed) for d in dirs]
                    row[tool] = {
                        "seconds": round(seconds, 2),
                        "runs": [round(r, 2) for r in runs],
                        "command": " ".join(commands[tool]).replace(str(work), "$WORK"),
                        "episodes": [c["episodes"] for c in checks],
                        "frames": sum(c["frames"] for c in checks),
                        "frames_compared": sum(c["frames_compared"] for c in checks),
                        "frames_identical": sum(c["frames_identical"] for c in checks),
                        "identical": all(c["identical"] for c in checks),
                        "max_abs_diff": max(c["max_abs_diff"] for c in checks),
                        "mean_abs_diff": round(
                            float(np.mean([c["mean_abs_diff"] for c in checks])), 4
                        ),
                        "video_bytes": sum(video_bytes(d) for d in dirs),
                        "bytes": sum(dir_size(d) for d in dirs),
                        "unreadable_files": sum(unreadable_files(d) for d in dirs),
                    }
                    print(
                        f"  {row[tool]['seconds']} s, identical={row[tool]['identical']}",
                        flush=True,
                    )
                row["speedup"] = round(row["lerobot"]["seconds"] / row["physai"]["seconds"], 1)
                results["operations"][operation] = row
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = table_md(results)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "curation-no-pyc" if args.no_compile else "curation"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    m = results["machine"]
    command = (
        "uv run python benchmarks/curation.py"
        + (" --quick" if args.quick else "")
        + (" --no-compile" if args.no_compile else "")
    )
    (args.out / f"{name}.md").write_text(
        f"# Curation: physai vs lerobot-edit-dataset\n\nDate: {results['date']}\n\n"
        f"Command: `{command}`\n\n"
        f"Machine: {m['cpu_model']}, {m['usable_cores']} usable cores, Python {m['python']}; "
        f"lerobot {m['packages']['lerobot']}, av {m['packages']['av']}\n\n"
        f"Data: {args.episodes} episodes x {args.frames} frames, one 96x128 camera (AV1), "
        f"7-dim state and action; built in {results['build_seconds']} s.\n\n{table}\n"
    )
    print(f"\nwrote {args.out / name}.json and .md")
    return 0


def table_md(results: dict[str, Any]) -> str:
    lines = [
        "| operation | tool | wall s (CLI, start-up incl.; median) | speedup | episodes | "
        "frames identical (sampled) | max / mean abs diff | video MB | files not o+r |",
        "|---|---|---:|---:|---|---|---|---:|---:|",
    ]
    for operation, row in results["operations"].items():
        for tool in ("physai", "lerobot"):
            r = row[tool]
            speed = f"**{row['speedup']}x**" if tool == "physai" else ""
            lines.append(
                f"| {operation} | {tool} | {r['seconds']:.2f} | {speed} | "
                f"{'+'.join(map(str, r['episodes']))} | "
                f"{r['frames_identical']}/{r['frames_compared']} | "
                f"{r['max_abs_diff']} / {r['mean_abs_diff']} | "
                f"{r['video_bytes'] / 1e6:.1f} | {r['unreadable_files']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
