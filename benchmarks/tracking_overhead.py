"""Cost of tracking: the same seeded PPO run with MLflow tracking on and off.

    uv run python benchmarks/tracking_overhead.py [--repeat 5] [--iterations 150]

For each library (skrl, RSL-RL): InvertedPendulum, 8 envs x 32 steps, seed 0, alternating
runs without a tracker and with a real core `Tracker` as `physai training rl` makes it (local
sqlite MLflow: params, tags, the contract metrics every iteration, batched and written every
`TRAINING_FLUSH_S`, the run ended and flushed inside the timing), `--repeat` pairs of each, in
alternating order (off-on, on-off, ...) so that drift of the machine cancels. The overhead is the
median over pairs of (on - off) / off; the medians of each side are reported too. The target is
at most 2% more wall time. Results: a table on stdout,
`benchmarks/results/tracking_overhead.json` and `.md`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, machine_info

from physai.core.settings import Settings
from physai.core.tracking import Tracker
from physai.training.metrics import TRAINING_FLUSH_S
from physai.training.rl import RLConfig, train_rl


def one_run(config: RLConfig, home: Path | None) -> float:
    start = time.perf_counter()
    if home is None:
        train_rl(config)
    else:
        settings = Settings(home=home)
        tracking = Tracker(settings, flush_interval_s=TRAINING_FLUSH_S)  # as `physai training rl`
        with tracking.start("overhead", params={"library": config.library}) as tracker:
            train_rl(config, tracker=tracker, settings=settings)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--libraries", default="skrl,rsl_rl", help="comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["uv run python benchmarks/tracking_overhead.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "libraries": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        Settings(home=home)  # create the store once, outside the timings
        with Tracker(Settings(home=home)).start("warm-up"):
            pass
        for library in [name.strip() for name in args.libraries.split(",") if name.strip()]:
            config = RLConfig(
                library=library,
                task="InvertedPendulum",
                iterations=args.iterations,
                seed=0,
                eval_episodes=0,
            )
            off: list[float] = []
            on: list[float] = []
            one_run(config.model_copy(update={"iterations": 5}), home)  # warm caches, untimed
            for i in range(args.repeat):
                if i % 2 == 0:
                    off.append(one_run(config, None))
                    on.append(one_run(config, home))
                else:
                    on.append(one_run(config, home))
                    off.append(one_run(config, None))
                print(f"{library} run {i + 1}: off {off[-1]:.2f} s, on {on[-1]:.2f} s", flush=True)
            median_off, median_on = statistics.median(off), statistics.median(on)
            paired = [100 * (b - a) / a for a, b in zip(off, on, strict=True)]
            results["libraries"][library] = {
                "off_s": off,
                "on_s": on,
                "median_off_s": median_off,
                "median_on_s": median_on,
                "paired_percent": paired,
                "overhead_percent": statistics.median(paired),
            }
    text = table_md(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracking_overhead.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "tracking_overhead.md").write_text(text)
    return 0


def table_md(r: dict[str, Any]) -> str:
    lines = [
        "# Tracking overhead",
        "",
        f"Date: {r['date']}  ",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu_model']}, {r['machine']['usable_cores']} usable cores",
        "",
        "PPO on InvertedPendulum, 8 envs x 32 steps, seed 0, the same run without and with a "
        "core Tracker (local sqlite MLflow), pairs in alternating order; overhead: the median "
        "over pairs of (on - off) / off.",
        "",
        "| library | tracking off | tracking on | overhead | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for library, row in r["libraries"].items():
        lines.append(
            f"| {library} | {row['median_off_s']:.2f} s | {row['median_on_s']:.2f} s | "
            f"{row['overhead_percent']:+.1f}% | at most 2% |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
