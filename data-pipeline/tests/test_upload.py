"""Upload of raw bags and datasets: layout, sha256 checks, reruns, conflicts, kill-then-resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.core.settings import Settings, load_settings
from physai.core.storage import exists_published, read_text, verify_manifest, walk_files
from physai.core.testing.azurite import Azurite
from physai.data_management import LeRobotDatasetReader
from physai.data_pipeline.bag_writer import EpisodeBagWriter
from physai.data_pipeline.bags import find_bags
from physai.data_pipeline.convert import convert_bags
from physai.data_pipeline.mapping import ConversionMapping
from physai.data_pipeline.upload import plan_raw, upload_bags, upload_dataset

T0 = 1_764_590_400 * 10**9  # 2025-12-01T12:00:00Z
JOINTS = ["a", "b", "c"]


def record(
    path: Path, seconds: float = 1.0, *, robot: str | None = "arm-01", shift: int = 0
) -> Path:
    """A small bag: 100 Hz joint states and a 10 Hz 32x32 camera, with episode metadata."""
    meta = {"task": "reach", **({"robot_id": robot} if robot else {})}
    with EpisodeBagWriter(path, metadata=meta) as bag:
        for i in range(int(seconds * 100)):
            t = T0 + shift + i * 10**7
            bag.joint_state(t, JOINTS, np.full(3, i / 100))
            if i % 10 == 0:
                bag.array(t, "/cmd", np.full(3, float(i)))
                bag.image(t, "/camera", np.full((32, 32, 3), (i * 7) % 255, np.uint8))
    return path


def dataset(tmp_path: Path, bags: list[Path], name: str = "pick") -> Path:
    mapping = ConversionMapping.model_validate(
        {
            "fps": 10,
            "features": {
                "observation.state": [{"topic": "/joint_states", "field": "position"}],
                "action": [{"topic": "/cmd", "field": "data"}],
                "observation.images.front": {"topic": "/camera"},
            },
        }
    )
    out = tmp_path / name
    convert_bags(bags, mapping, out, work_dir=tmp_path / "work", workers=1)
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=str(tmp_path / "home"))


def test_raw_layout_sidecar_and_rerun(tmp_path: Path, settings: Settings) -> None:
    one = record(tmp_path / "bags/episode_a")
    two = record(tmp_path / "bags/episode_b", shift=86_400 * 10**9)  # the next day
    dest = tmp_path / "store"
    report = upload_bags([tmp_path / "bags"], str(dest), settings=settings, progress=False)
    day1, day2 = dest / "raw/arm-01/2025-12-01", dest / "raw/arm-01/2025-12-02"
    assert sorted(p.name for p in day1.iterdir()) == ["episode_a.json", "episode_a.mcap"]
    assert sorted(p.name for p in day2.iterdir()) == ["episode_b.json", "episode_b.mcap"]
    (source,) = one.glob("*.mcap")
    assert (day1 / "episode_a.mcap").read_bytes() == source.read_bytes()
    sidecar = json.loads((day1 / "episode_a.json").read_text())
    assert sidecar["metadata"] == {"task": "reach", "robot_id": "arm-01"}
    assert sidecar["files"] == {
        "episode_a.mcap": {"sha256": sha(source), "size": source.stat().st_size}
    }
    assert sidecar["start_time"] == "2025-12-01T12:00:00+00:00"
    assert [i.files_copied for i in report.items] == [2, 2]
    assert report.bytes_copied == source.stat().st_size + next(two.glob("*.mcap")).stat().st_size

    again = upload_bags([one, two], str(dest), settings=settings, progress=False)
    assert [(i.files_copied, i.files_skipped) for i in again.items] == [(0, 2), (0, 2)]

    # Another recording under the same name must not replace the first one.
    other = record(tmp_path / "elsewhere/episode_a", seconds=1.5)
    with pytest.raises(UserError, match=r"episode_a\.json already exists with other content"):
        upload_bags([other], str(dest), settings=settings, progress=False)


def test_raw_upload_bad_input_exits_2_and_copies_nothing(tmp_path: Path) -> None:
    record(tmp_path / "bags/no_robot", robot=None)
    dest = tmp_path / "store"
    home = {"PHYSAI_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    result = runner.invoke(
        app, ["data-pipeline", "upload", str(tmp_path / "bags"), "--dest", str(dest)], env=home
    )
    assert result.exit_code == 2, result.output
    assert "no robot id" in result.output and "--robot" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not dest.exists()

    (tmp_path / "bags2/x.mcap").parent.mkdir()
    (tmp_path / "bags2/x.mcap").write_bytes(b"not an mcap file")
    result = runner.invoke(
        app,
        ["data-pipeline", "upload", str(tmp_path / "bags2"), "--dest", str(dest), "--robot", "r"],
        env=home,
    )
    assert result.exit_code == 2 and "not a readable bag" in result.output
    assert not dest.exists()

    ok = runner.invoke(
        app,
        ["data-pipeline", "upload", str(tmp_path / "bags"), "--dest", str(dest), "--robot", "r2"],
        env=home,
    )
    assert ok.exit_code == 0, ok.output
    assert (dest / "raw/r2/2025-12-01/no_robot.mcap").is_file()


def test_dataset_versions_and_cli(tmp_path: Path, settings: Settings) -> None:
    bags = [record(tmp_path / f"bags/ep{i}", seconds=0.6 + 0.2 * i) for i in range(2)]
    source = dataset(tmp_path, bags)
    dest = tmp_path / "store"
    first = upload_dataset(source, str(dest), settings=settings, progress=False)
    v1 = dest / "datasets/pick/v1"
    assert first.items[0].url == str(v1) and exists_published(str(v1))
    assert verify_manifest(str(v1)) == []
    assert LeRobotDatasetReader(v1).num_episodes == 2

    same = upload_dataset(source, str(dest), settings=settings, progress=False)
    assert same.items[0].url == str(v1) and same.items[0].files_copied == 0

    smaller = dataset(tmp_path, bags[:1], name="pick-small")
    result = CliRunner().invoke(
        app,
        ["data-pipeline", "upload", str(smaller), "--dest", str(dest), "--name", "pick", "--json"],
        env={"PHYSAI_HOME": str(settings.state_dir)},
    )
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.output)["items"]
    assert item["url"] == str(dest / "datasets/pick/v2") and item["files_copied"] > 0
    assert LeRobotDatasetReader(dest / "datasets/pick/v2").num_episodes == 1
    with pytest.raises(UserError, match="already published with other content"):
        upload_dataset(source, str(dest), name="pick", version=2, settings=settings)


# -- against Blob (Azurite): a SIGKILLed upload resumes ----------------------------------------

CHILD = """
import sys, time
import physai.core.storage.copy as copy_module
from physai.data_pipeline.upload import plan_raw, upload_bags, upload_dataset
real = copy_module._copy_one
def slow(*args, **kwargs):
    entry = real(*args, **kwargs)
    time.sleep(0.3)
    return entry
copy_module._copy_one = slow
kind, source, dest = sys.argv[1:]
if kind == "raw":
    upload_bags([source], dest, workers=1, progress=False)
else:
    upload_dataset(source, dest, workers=1, progress=False)
"""


def journaled(home: Path) -> int:
    lines = [ln for j in (home / "copy-journals").glob("*.jsonl") for ln in j.read_text().split()]
    return sum('"path"' in ln for ln in lines)


def killed_upload(kind: str, source: Path, dest: str, env: dict[str, str], after: int) -> None:
    home = Path(env["PHYSAI_HOME"])
    after += journaled(home)  # earlier uploads' journals count too
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(source), dest], env=env)
    try:
        deadline = time.monotonic() + 120
        while journaled(home) < after:
            assert proc.poll() is None, f"the upload ended before the kill ({proc.returncode})"
            assert time.monotonic() < deadline, "nothing was journaled in 120 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.integration
def test_killed_uploads_resume_on_blob(azurite: Azurite, tmp_path: Path) -> None:
    settings = azurite.settings(home=str(tmp_path / "home"))
    env = {
        **os.environ,
        "PHYSAI_HOME": str(settings.state_dir),
        "PHYSAI_AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    container = azurite.create_container()
    dest = f"az://{container}/fleet"

    bags = [record(tmp_path / f"bags/ep{i}", seconds=0.5) for i in range(5)]
    killed_upload("raw", tmp_path / "bags", dest, env, after=2)
    landed = walk_files(f"{dest}/raw", settings)
    assert 2 <= sum(n.endswith(".mcap") for n in landed) < 5
    assert not [n for n in landed if n.endswith(".json")]  # no episode is complete yet
    report = upload_bags(bags, dest, settings=settings, progress=False)
    resumed = sum(i.files_skipped for i in report.items)
    assert resumed >= 2 and sum(i.files_copied for i in report.items) == 5 + 5 - resumed
    for bag in bags:
        (source,) = bag.glob("*.mcap")
        sidecar = json.loads(read_text(f"{dest}/raw/arm-01/2025-12-01/{bag.name}.json", settings))
        assert sidecar["files"][f"{bag.name}.mcap"]["sha256"] == sha(source)

    source = dataset(tmp_path, bags[:3])
    killed_upload("dataset", source, dest, env, after=2)
    v1 = f"{dest}/datasets/pick/v1"
    assert walk_files(v1, settings) and not exists_published(v1, settings)
    report = upload_dataset(source, dest, settings=settings, progress=False)
    (item,) = report.items
    assert item.url.endswith("/fleet/datasets/pick/v1") and item.files_skipped >= 2
    assert exists_published(v1, settings) and verify_manifest(v1, settings) == []
    local = tmp_path / "back"
    from physai.core.storage import copy_tree

    copy_tree(v1, str(local), settings, progress=False)
    assert LeRobotDatasetReader(local).num_episodes == 3


def test_plan_raw_names_bare_files_and_split_bags(tmp_path: Path) -> None:
    bag = record(tmp_path / "folder_bag")
    (mcap,) = bag.glob("*.mcap")
    bare = tmp_path / "take_7.mcap"
    mcap.rename(bare)
    Path(f"{bare}.episode.json").write_text(json.dumps({"task": "t", "robot_id": "rb"}))
    plan = plan_raw(bare)
    assert (plan.prefix, plan.episode, list(plan.files)) == (
        "rb/2025-12-01",
        "take_7",
        ["take_7.mcap"],
    )

    split = record(tmp_path / "split")
    (first,) = split.glob("*.mcap")
    other = record(tmp_path / "other", shift=10**9)
    next(other.glob("*.mcap")).rename(split / "split_1.mcap")
    plan = plan_raw(split, robot="ignored-when-metadata-has-one")
    assert plan.files == {"split_0.mcap": first, "split_1.mcap": split / "split_1.mcap"}
    assert plan.prefix == "arm-01/2025-12-01"
    with pytest.raises(UserError, match="not 1-128"):
        plan_raw(bare.rename(tmp_path / "bad name.mcap"), robot="rb")


def test_empty_bags_clashing_names_and_hidden_folders(tmp_path: Path, settings: Settings) -> None:
    with EpisodeBagWriter(tmp_path / "empty/ep", metadata={"task": "t", "robot_id": "r"}):
        pass
    with pytest.raises(UserError, match="the bag is empty"):
        upload_bags([tmp_path / "empty"], str(tmp_path / "store"), settings=settings)

    split = record(tmp_path / "a/ep")
    other = record(tmp_path / "other", shift=10**9)
    next(other.glob("*.mcap")).rename(split / "ep_1.mcap")  # ep -> ep_0.mcap, ep_1.mcap
    single = record(tmp_path / "b/ep_0")  # -> ep_0.mcap as well
    with pytest.raises(UserError, match=r"would both upload to raw/arm-01/2025-12-01/ep_0\.mcap"):
        upload_bags([split, single], str(tmp_path / "store"), settings=settings)
    assert not (tmp_path / "store").exists()

    record(tmp_path / "c/.episode_x.recording")  # the recorder's episode in progress
    record(tmp_path / "c/done")
    assert [b.name for b in find_bags([tmp_path / "c"])] == ["done"]
