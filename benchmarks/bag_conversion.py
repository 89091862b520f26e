"""Bag → LeRobot conversion benchmark: `physai data-pipeline convert` vs the script a user
would write with rosbags + `LeRobotDataset` (lerobot's defaults, and with streaming encoding).

    uv run python benchmarks/bag_conversion.py [--seconds 37.5] [--repeat 1] [--quick]

1. A ~1 GB bag is rendered once by the simulated robot (MuJoCo pusher arm, 30 Hz 640x480
   rgb8 camera, 500 Hz 7-joint JointState, 30 Hz action) and kept in a cache folder.
2. Each tool converts it as a fresh process (start-up included), one after the other; wall
   time and the peak resident memory of its whole process tree (sampled every 20 ms) are
   recorded.
3. The outputs are checked against each other and against the bag's images.

Results: a table on stdout, `benchmarks/results/bag_conversion.json` and `.md`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, dir_size, machine_info
from curation import compile_bytecode

from physai.data_management.lerobot import LeRobotDatasetReader
from physai.data_pipeline.bags import open_bag
from physai.data_pipeline.sim_robot import conversion_mapping, write_episodes

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
GB = 1e9


def make_bag(folder: Path, seconds: float, width: int, height: int) -> Path:
    """The benchmark bag, rendered once (untimed) and reused while its parameters match."""
    key = folder / f"pusher-{width}x{height}-{seconds:g}s"
    bag = key / "episode_000000"
    if not (bag / "metadata.yaml").is_file():
        shutil.rmtree(key, ignore_errors=True)
        print(f"rendering the benchmark bag ({seconds:g} s at {width}x{height}) into {key}")
        write_episodes(key, "pusher", seconds=seconds, width=width, height=height, seed=7)
    return bag


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run a command; wall seconds and peak RSS (MB) of its process tree."""
    peak = 0

    def sample(process: psutil.Process) -> None:
        nonlocal peak
        while process.is_running():
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = threading.Thread(target=sample, args=(psutil.Process(proc.pid),), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    watcher.join(timeout=1)
    if proc.returncode != 0:
        sys.stderr.write(out.decode()[-3000:] + err.decode()[-3000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}")
    return {"seconds": seconds, "peak_rss_mb": peak / 1e6}


def bag_images(bag: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The bag's camera images with these read-order indices."""
    wanted, found = set(indices), {}
    with open_bag(bag) as reader:
        connection = next(c for c in reader.connections if c.topic == "/camera/image_raw")
        for k, (_, _, raw) in enumerate(reader.messages([connection])):
            if k in wanted:
                message = reader.deserialize(raw, connection.msgtype)
                found[k] = np.frombuffer(message.data, np.uint8).reshape(
                    message.height, message.width, 3
                )
    return found


def compare(outputs: dict[str, Path], bag: Path, samples: int = 12) -> dict[str, Any]:
    """Frames, images and states of each output vs physai's output and vs the bag.

    The user script starts at the first image that has a joint state and an action before it,
    so its frame j may be physai's frame j + offset (the leading images it skipped); frames are
    compared under that offset, which is reported."""
    readers = {name: LeRobotDatasetReader(path) for name, path in outputs.items()}
    frames = {name: len(r) for name, r in readers.items()}
    count = min(frames.values())
    rng = np.random.default_rng(0)
    indices = sorted({0, count - 1, *rng.integers(0, count, samples - 2).tolist()})
    reference = readers["physai"]
    offsets = {name: frames["physai"] - n for name, n in frames.items()}
    source = bag_images(bag, sorted({i + o for i in indices for o in offsets.values()}))
    checks: dict[str, Any] = {"frames": frames, "offsets": offsets, "indices": indices, "tools": {}}
    for name, reader in readers.items():
        image_diff = state_diff = source_diff = 0.0
        identical = 0
        offset = offsets[name]
        for i in indices:
            ours, theirs = reference[i + offset], reader[i]
            a = np.asarray(ours["observation.images.front"], np.int16)
            b = np.asarray(theirs["observation.images.front"], np.int16)
            identical += int(np.array_equal(a, b))
            image_diff = max(image_diff, float(np.abs(a - b).max()))
            state_diff = max(
                state_diff,
                float(np.abs(ours["observation.state"] - theirs["observation.state"]).max()),
            )
            source_diff = max(source_diff, float(np.abs(b - source[i + offset]).mean()))
        checks["tools"][name] = {
            "images_identical_to_physai": f"{identical}/{len(indices)}",
            "image_max_abs_diff_vs_physai": image_diff,
            "state_max_abs_diff_vs_physai": state_diff,
            "image_mean_abs_diff_vs_bag_max": round(source_diff, 3),
        }
    for reader in readers.values():
        reader.close()
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=37.5, help="bag length (~1 GB)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (median)")
    parser.add_argument("--quick", action="store_true", help="a 4 s bag, a smoke test")
    parser.add_argument(
        "--bag-cache", type=Path, default=Path(tempfile.gettempdir()) / "physai-bench-bags"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip writing .pyc files")
    parser.add_argument(
        "--physai-only", action="store_true", help="time physai alone (e.g. memory on a big bag)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.seconds = 4.0

    bag = make_bag(args.bag_cache, args.seconds, args.width, args.height)
    bag_bytes = dir_size(bag)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["uv run python benchmarks/bag_conversion.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "bag": {"path": str(bag), "bytes": bag_bytes, "seconds": args.seconds,
                "width": args.width, "height": args.height},
    }  # fmt: skip
    if not args.no_compile:
        results["compile_bytecode_seconds"] = round(compile_bytecode(), 1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}

    work = Path(tempfile.mkdtemp(prefix="physai-bench-convert-"))
    mapping = work / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(conversion_mapping("pusher")))
    tools = {
        "physai": lambda out: [str(BIN / "physai"), "data-pipeline", "convert", str(bag),
                               "--mapping", str(mapping), "--out", str(out),
                               "--work-dir", str(work / "parts"), "--json"],
        "lerobot (defaults)": lambda out: [sys.executable, str(HERE / "lerobot_bag_script.py"),
                                           str(bag), str(out)],
        "lerobot (streaming encoding)": lambda out: [sys.executable,
                                                     str(HERE / "lerobot_bag_script.py"),
                                                     str(bag), str(out), "--streaming"],
    }  # fmt: skip
    if args.physai_only:
        tools = {"physai": tools["physai"]}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
    outputs: dict[str, Path] = {}
    try:
        for repeat in range(args.repeat):
            for name, command in tools.items():
                out = work / f"{list(tools).index(name)}-{repeat}"
                print(f"run {repeat + 1}/{args.repeat}: {name} ...", flush=True)
                runs[name].append(measure(command(out), env))
                print(f"  {runs[name][-1]['seconds']:.1f} s", flush=True)
                if repeat == args.repeat - 1:
                    outputs[name] = out
                else:
                    shutil.rmtree(out, ignore_errors=True)
        short = {"physai": "physai", "lerobot (defaults)": "lerobot_defaults",
                 "lerobot (streaming encoding)": "lerobot_streaming"}  # fmt: skip
        checks = compare({short[k]: v for k, v in outputs.items()}, bag) if len(outputs) > 1 else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table: dict[str, Any] = {}
    for name, measured in runs.items():
        seconds = float(np.median([m["seconds"] for m in measured]))
        table[name] = {
            "seconds": round(seconds, 2),
            "seconds_per_gb": round(seconds / (bag_bytes / GB), 2),
            "peak_rss_mb": round(max(m["peak_rss_mb"] for m in measured), 1),
            "runs": [round(m["seconds"], 2) for m in measured],
        }
    physai = table["physai"]["seconds"]
    if args.physai_only:
        results.update(tools=table)
        print(json.dumps(table, indent=1))
        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out / f"bag_conversion-physai-{bag_bytes / GB:.1f}GB.json"
        out.write_text(json.dumps(results, indent=1) + "\n")
        return 0
    results.update(
        tools=table,
        speedup_vs_defaults=round(table["lerobot (defaults)"]["seconds"] / physai, 2),
        speedup_vs_streaming=round(table["lerobot (streaming encoding)"]["seconds"] / physai, 2),
        checks=checks,
        targets={"seconds_per_gb": 30, "peak_rss_mb": 500, "vs_defaults": 3.0,
                 "vs_streaming": 1.3},
    )  # fmt: skip
    text = table_md(results)
    print(text)
    name = "bag_conversion-quick" if args.quick else "bag_conversion"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / f"{name}.md").write_text(text)
    return 0


def table_md(r: dict[str, Any]) -> str:
    bag = r["bag"]
    lines = [
        "# Bag → LeRobot conversion",
        "",
        f"Date: {r['date']}  ",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu_model']}, {r['machine']['usable_cores']} usable cores, "
        f"Python {r['machine']['python']}, lerobot {r['machine']['packages']['lerobot']}",
        "",
        f"Bag: {bag['bytes'] / GB:.2f} GB, {bag['seconds']:g} s of the simulated pusher arm: "
        f"{bag['width']}x{bag['height']} rgb8 camera at 30 Hz, 7-joint JointState at 500 Hz, "
        "action at 30 Hz (one MCAP file).",
        "",
        "| tool | seconds | s/GB | peak RSS MB | runs |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in r["tools"].items():
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['seconds_per_gb']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | {', '.join(f'{s:.1f}' for s in row['runs'])} |"
        )
    lines += [
        f"| **physai speed-up** | vs defaults **{r['speedup_vs_defaults']:.2f}x** | "
        f"vs streaming **{r['speedup_vs_streaming']:.2f}x** | | |",
        "",
        "Targets: at most 30 s/GB and 500 MB peak RSS; at least 3x lerobot's defaults and 1.3x "
        "its streaming encoding.",
        "",
        "| output | frames | offset | images identical to physai's | image max abs diff | "
        "state max abs diff | image mean abs diff vs bag (worst frame) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in r["checks"]["tools"].items():
        lines.append(
            f"| {name} | {r['checks']['frames'][name]} | {r['checks']['offsets'][name]} | "
            f"{row['images_identical_to_physai']} | "
            f"{row['image_max_abs_diff_vs_physai']:.0f} | "
            f"{row['state_max_abs_diff_vs_physai']:.2e} | "
            f"{row['image_mean_abs_diff_vs_bag_max']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
