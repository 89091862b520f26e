"""Shared by the benchmarks: the benchmark dataset (deterministic frames), writing it with
physai, machine facts and directory sizes."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FPS = 30
HEIGHT, WIDTH = 96, 128
DIM = 7
CAMERA = "observation.images.front"
TASKS = ("pick the cube", "place the cube")

FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {
        "dtype": "float32",
        "shape": [DIM],
        "names": [f"joint_{i}" for i in range(DIM)],
    },
    "action": {"dtype": "float32", "shape": [DIM], "names": [f"joint_{i}" for i in range(DIM)]},
    CAMERA: {
        "dtype": "video",
        "shape": [HEIGHT, WIDTH, 3],
        "names": ["height", "width", "channels"],
    },
}


# -- data ----------------------------------------------------------------------------------


def make_episode(seed: int, frames: int) -> dict[str, np.ndarray]:
    """Deterministic episode: a drifting colour gradient with a textured background, a moving
    disc and a moving square (so the video is not trivially compressible), random-walk state
    and action."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    texture = rng.integers(0, 24, size=(HEIGHT, WIDTH, 3), dtype=np.uint8).astype(np.float32)
    base = np.stack(
        [x / WIDTH * 160 + 30, y / HEIGHT * 160 + 30, (x + y) / (WIDTH + HEIGHT) * 120 + 60],
        axis=-1,
    )
    cx0, cy0, vx, vy = rng.uniform(10, 90), rng.uniform(10, 80), *rng.uniform(-2.5, 2.5, 2)
    sx0, sy0, wx, wy = rng.uniform(0, 100), rng.uniform(0, 70), *rng.uniform(-2, 2, 2)
    colour_a = rng.uniform(0, 255, 3)
    colour_b = rng.uniform(0, 255, 3)
    images = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(frames):
        shift = np.float32(20 * np.sin(t / 15 + seed))
        frame = base + shift + texture
        cx = (cx0 + vx * t) % WIDTH
        cy = (cy0 + vy * t) % HEIGHT
        disc = (x - cx) ** 2 + (y - cy) ** 2 < 14**2
        frame[disc] = colour_a
        sx = int((sx0 + wx * t) % (WIDTH - 24))
        sy = int((sy0 + wy * t) % (HEIGHT - 24))
        frame[sy : sy + 24, sx : sx + 24] = colour_b
        images[t] = np.clip(frame, 0, 255).astype(np.uint8)
    state = np.cumsum(rng.normal(0, 0.05, (frames, DIM)), axis=0).astype(np.float32)
    action = (state + rng.normal(0, 0.01, (frames, DIM))).astype(np.float32)
    return {"observation.state": state, "action": action, CAMERA: images}


def make_episodes(count: int, frames: int) -> list[dict[str, np.ndarray]]:
    return [make_episode(1000 + i, frames) for i in range(count)]


# -- write ---------------------------------------------------------------------------------


def write_physai(root: Path, episodes: list[dict[str, np.ndarray]]) -> float:
    start = time.perf_counter()
    from physai.data_management.lerobot import LeRobotDatasetWriter

    writer = LeRobotDatasetWriter(root, fps=FPS, features=FEATURES)
    try:
        for i, ep in enumerate(episodes):
            task = TASKS[i % len(TASKS)]
            state, action, images = ep["observation.state"], ep["action"], ep[CAMERA]
            for t in range(len(state)):
                writer.add_frame(
                    {"observation.state": state[t], "action": action[t], CAMERA: images[t]}, task
                )
            writer.save_episode()
    except BaseException:
        writer.abort()
        raise
    writer.finish()
    return time.perf_counter() - start


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in (
        "physai-data-management",
        "lerobot",
        "torch",
        "torchcodec",
        "av",
        "pyarrow",
        "numpy",
        "datasets",
    ):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    ffmpeg = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        ffmpeg = subprocess.run(
            ["ffmpeg", "-version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    try:
        import av

        libav = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
        libav["ffmpeg"] = getattr(av, "ffmpeg_version_info", None)
    except Exception:
        libav = None
    return {
        "cpu_model": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "system_ffmpeg": ffmpeg,
        "pyav_bundled_libs": libav,
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
