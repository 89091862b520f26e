"""physai-core quick start: the contracts every domain builds on, end to end on a laptop.

    uv run python core/examples/quickstart.py

1. publish a small dataset atomically, with a sha256 manifest;
2. run a two-job pipeline on the local job backend (statistics, then a "fit");
3. track the run in MLflow (sqlite under .physai/) with lineage;
4. register the fitted model, give it an alias, resolve it and download it again.

Everything lands under `.physai/` (or $PHYSAI_HOME); rerunning it publishes a new dataset version.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from physai.core.jobs import JobDag, JobSpec, run_dag
from physai.core.registry import download_model, register_model, resolve_model, set_alias
from physai.core.settings import load_settings
from physai.core.storage import join_url, publish, published_info, verify_manifest
from physai.core.tracking import Tracker, tracking_uri
from physai.core.uris import parse_uri

STATS = """
import csv, json, pathlib, sys
rows = list(csv.DictReader(open(pathlib.Path(sys.argv[1]) / "episodes.csv")))
lengths = [int(r["length"]) for r in rows]
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
stats = {"episodes": len(rows), "mean_length": sum(lengths) / len(rows)}
(out / "stats.json").write_text(json.dumps(stats))
"""
FIT = """
import json, pathlib, sys
stats = json.loads((pathlib.Path(sys.argv[1]) / "stats.json").read_text())
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
(out / "policy.json").write_text(json.dumps({"kind": "constant", "horizon": stats["mean_length"]}))
"""


def main() -> None:
    settings = load_settings()
    root = settings.resolved_storage_root
    print(f"profile {settings.profile}: storage {root}, tracking {tracking_uri(settings)}")

    # 1. Publish a dataset atomically: nothing is visible at the destination until it is whole.
    dataset = join_url(root, "datasets", "toy", f"v{time.time_ns()}")
    with publish(dataset, settings) as staging:
        lines = ["episode,length"] + [f"{i},{90 + i % 7}" for i in range(20)]
        staging.write_text("episodes.csv", "\n".join(lines) + "\n")
    assert verify_manifest(dataset, settings) == [], "the manifest must verify"
    marker = published_info(dataset, settings)
    assert marker is not None, "a published directory has its commit marker"
    manifest_sha = marker["manifest_sha256"]
    print(f"published {dataset} (manifest sha256 {manifest_sha[:12]}...)")

    # 2. Two jobs; the second depends on the first through the URI it reads.
    work = Path(tempfile.mkdtemp(prefix="physai-quickstart-"))
    stats_uri, model_uri = str(work / "stats"), str(work / "model")
    dag = JobDag(
        name="quickstart",
        jobs=[
            JobSpec(
                name="stats",
                command=[sys.executable, "-c", STATS, "${{inputs.data}}", "${{outputs.stats}}"],
                inputs={"data": dataset},
                outputs={"stats": stats_uri},
            ),
            JobSpec(
                name="fit",
                command=[sys.executable, "-c", FIT, "${{inputs.stats}}", "${{outputs.model}}"],
                inputs={"stats": stats_uri},
                outputs={"model": model_uri},
            ),
        ],
    )
    summary = run_dag(dag, settings)
    print(f"jobs {[(n, r.status) for n, r in summary.jobs.items()]} -> {summary.summary_path}")

    # 3. Track a run: params, a metric curve (batched, asynchronous), lineage, artifacts.
    with Tracker(settings).start("quickstart", params={"policy": "constant"}) as run:
        run.set_lineage(datasets=[{"uri": dataset, "sha256": manifest_sha}], task="toy")
        for step in range(50):
            run.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        run.log_artifacts(model_uri, "model")
        run_id = run.run_id
    print(f"tracked run {run_id}")

    # 4. Register the model with its lineage, alias it, resolve and download it again.
    registered = register_model(
        model_uri,
        "quickstart-policy",
        {"datasets": [{"uri": dataset, "sha256": manifest_sha}], "task": "toy"},
        settings=settings,
        run_id=run_id,
    )
    set_alias("quickstart-policy", "candidate", registered.version, settings=settings)
    uri = "models:/quickstart-policy@candidate"
    resolved = resolve_model(uri, settings=settings)
    local = download_model(uri, work / "downloaded", settings=settings)
    policy = json.loads((local / "policy.json").read_text())
    print(f"{parse_uri(uri)} -> version {resolved.version}: {policy}")
    assert policy["horizon"] == 92.85  # mean of 90 + i % 7 over 20 episodes


if __name__ == "__main__":
    main()
