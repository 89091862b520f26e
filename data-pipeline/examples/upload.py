"""Upload raw bags and a converted dataset to storage, then rerun the upload (nothing is sent).

Records three short episodes as MCAP bags, uploads them to `raw/<robot>/<date>/`, converts
them to a LeRobot dataset and uploads it to `datasets/<name>/v<N>/`. The destination is a local
folder here; an `az://CONTAINER/PATH` URL sends the same layout to Azure Blob.

    uv run python data-pipeline/examples/upload.py [WORK_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from physai.core.settings import load_settings
from physai.core.storage import verify_manifest
from physai.data_pipeline.bag_writer import EpisodeBagWriter
from physai.data_pipeline.convert import convert_bags
from physai.data_pipeline.mapping import ConversionMapping
from physai.data_pipeline.upload import upload_bags, upload_dataset

MAPPING = {
    "fps": 20,
    "task": "wave",
    "features": {
        "observation.state": [{"topic": "/joint_states", "field": "position"}],
        "action": [{"topic": "/arm/command", "field": "data"}],
        "observation.images.top": {"topic": "/camera/top"},
    },
}


def record(path: Path, seed: int) -> None:
    """One second of a waving arm at 200 Hz, a 20 Hz command and a 20 Hz camera."""
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.2, 1.0, 4)
    metadata = {"task": "wave", "robot_id": "arm-7", "operator": "demo"}
    with EpisodeBagWriter(path, metadata=metadata) as bag:
        for i in range(200):
            t = 1_764_590_400 * 10**9 + seed * 60 * 10**9 + i * 5_000_000
            position = amplitude * np.sin(np.linspace(0, 1, 4) + i / 30)
            bag.joint_state(t, ["j0", "j1", "j2", "j3"], position)
            if i % 10 == 0:
                bag.array(t, "/arm/command", position)
                image = np.full((48, 64, 3), 30, np.uint8)
                image[:, (i // 4) % 64] = 220
                bag.image(t, "/camera/top", image)


def main(work: Path) -> None:
    settings = load_settings(home=str(work / "home"))
    bags = work / "bags"
    for seed in range(3):
        record(bags / f"wave_{seed:03d}", seed)
    store = work / "store"  # or "az://robot-data"

    raw = upload_bags([bags], str(store), settings=settings, progress=False)
    for item in raw.items:
        print(f"{item.url}: {item.files_copied} file(s), {item.bytes_copied} bytes")

    dataset = work / "wave"
    convert_bags([bags], ConversionMapping.model_validate(MAPPING), dataset, settings=settings)
    (item,) = upload_dataset(dataset, str(store), settings=settings, progress=False).items
    print(f"{item.url}: {item.files_copied} file(s) published")
    assert verify_manifest(item.url) == []

    again = upload_bags([bags], str(store), settings=settings, progress=False)
    print("rerun copied", sum(i.files_copied for i in again.items), "file(s)")
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        print("  ", path.relative_to(store))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
