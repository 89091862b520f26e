"""validate_dataset and `physai data-management validate`: clean passes, each corruption fires."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.data_management.lerobot import write_episodes
from physai.data_management.lerobot.synthetic import (
    synthetic_episodes,
    synthetic_features,
    write_v21_dataset,
)
from physai.data_management.validate import ValidationReport, validate_dataset

FPS = 10
CAMERA = "observation.images.front"
FEATURES = synthetic_features(state_dim=3, action_dim=2, cameras=("front",), height=32, width=32)
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = f"videos/{CAMERA}/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("validate") / "ds"
    write_episodes(
        root, synthetic_episodes(FEATURES, count=3, length=8), fps=FPS, features=FEATURES
    )
    return root


@pytest.fixture
def dataset(source: Path, tmp_path: Path) -> Path:
    """A private copy of the clean dataset, free to corrupt."""
    return Path(shutil.copytree(source, tmp_path / "ds"))


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def edit_parquet(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def replace_column(table: pa.Table, name: str, values: Any) -> pa.Table:
    position = table.column_names.index(name)
    return table.set_column(position, table.field(name), pa.array(values, table.field(name).type))


def checks(report: ValidationReport) -> set[str]:
    return {issue.check for issue in report.errors}


def test_clean_dataset_passes_and_is_not_modified(source: Path) -> None:
    before = hashes(source)
    report = validate_dataset(source)
    assert report.ok and report.issues == [], report.issues
    assert (report.version, report.episodes, report.frames) == ("v3.0", 3, 24)
    assert "decode" in report.checks
    assert hashes(source) == before


def test_clean_v21_dataset_passes(tmp_path: Path) -> None:
    root = tmp_path / "v21"
    write_v21_dataset(
        root, synthetic_episodes(FEATURES, count=2, length=6), fps=FPS, features=FEATURES
    )
    report = validate_dataset(root)
    assert report.ok and report.version == "v2.1", report.issues


def test_broken_index_continuity(dataset: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        index = table.column("index").to_pylist()
        index[10] = 99
        return replace_column(table, "index", index)

    edit_parquet(dataset / DATA, change)
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"index"}
    assert report.errors[0].episode == 1 and "index is not" in report.errors[0].message


def test_frame_index_gap(dataset: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        frames = table.column("frame_index").to_pylist()
        frames[3] = 7
        return replace_column(table, "frame_index", frames)

    edit_parquet(dataset / DATA, change)
    report = validate_dataset(dataset, decode_videos=False)
    assert "index" in checks(report)
    assert any("frame_index" in i.message and i.episode == 0 for i in report.errors)


def test_timestamp_drift(dataset: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        episode = table.column("episode_index").to_numpy()
        timestamps = table.column("timestamp").to_numpy().copy()
        timestamps[episode == 2] += np.float32(0.01)
        return replace_column(table, "timestamp", timestamps)

    edit_parquet(dataset / DATA, change)
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"timestamps"}
    assert [i.episode for i in report.errors] == [2]
    assert validate_dataset(dataset, decode_videos=False, tolerance_s=0.02).ok


def test_missing_column(dataset: Path) -> None:
    edit_parquet(dataset / DATA, lambda t: t.drop_columns(["action"]))
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"schema"}
    assert "'action' is missing" in report.errors[0].message


def test_wrong_dtype(dataset: Path) -> None:
    edit_parquet(
        dataset / DATA,
        lambda t: t.set_column(
            t.column_names.index("action"),
            "action",
            pc.cast(t.column("action"), pa.list_(pa.float64(), 2)),
        ),
    )
    report = validate_dataset(dataset, decode_videos=False)
    assert "schema" in checks(report)
    assert any("float" in i.message and "action" in i.message for i in report.errors)


def test_wrong_shape(dataset: Path) -> None:
    def change(info: dict[str, Any]) -> None:
        info["features"]["action"]["shape"] = [3]
        info["features"]["action"]["names"] = ["a", "b", "c"]

    edit_json(dataset / "meta/info.json", change)
    report = validate_dataset(dataset, decode_videos=False)
    assert "schema" in checks(report)
    assert "names" not in checks(report)


def test_nan_in_action(dataset: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        actions = table.column("action").to_pylist()
        actions[9][1] = float("nan")
        return replace_column(table, "action", actions)

    edit_parquet(dataset / DATA, change)
    report = validate_dataset(dataset, decode_videos=False)
    finite = [i for i in report.errors if i.check == "finite"]
    assert len(finite) == 1 and finite[0].episode == 1 and "'action'" in finite[0].message


def test_stats_mismatch(dataset: Path) -> None:
    def change(stats: dict[str, Any]) -> None:
        stats["observation.state"]["std"][0] += 0.5

    edit_json(dataset / "meta/stats.json", change)
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"stats"}
    assert "recomputed" in report.errors[0].message


def test_stats_order_and_shape(dataset: Path) -> None:
    def change(stats: dict[str, Any]) -> None:
        stats["action"]["mean"] = [x + 100 for x in stats["action"]["mean"]]
        stats["observation.state"]["min"] = [0.0]
        del stats["action"]["max"]

    edit_json(dataset / "meta/stats.json", change)
    messages = [i.message for i in validate_dataset(dataset, decode_videos=False).errors]
    assert any("'observation.state' min has shape [1]" in m for m in messages)
    assert any("'action' has no 'max'" in m for m in messages)


def test_wrong_totals(dataset: Path) -> None:
    def change(info: dict[str, Any]) -> None:
        info["total_frames"] += 1
        info["total_tasks"] = 5

    edit_json(dataset / "meta/info.json", change)
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"totals"}
    assert len(report.errors) == 2


def test_names_shape_mismatch(dataset: Path) -> None:
    edit_json(
        dataset / "meta/info.json",
        lambda info: info["features"]["observation.state"].update(names=["x", "y"]),
    )
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"names"}
    assert "'observation.state' has 2 names for shape [3]" in report.errors[0].message


def test_info_schema(dataset: Path) -> None:
    def change(info: dict[str, Any]) -> None:
        del info["features"]["action"]["dtype"]
        del info["total_episodes"]

    edit_json(dataset / "meta/info.json", change)
    report = validate_dataset(dataset, decode_videos=False)
    assert checks(report) == {"info"}
    assert len(report.errors) == 2


def test_unknown_version(dataset: Path) -> None:
    edit_json(dataset / "meta/info.json", lambda info: info.update(codebase_version="v9.9"))
    report = validate_dataset(dataset)
    assert checks(report) == {"info"} and "v9.9" in report.errors[0].message


def test_video_window_disagrees_with_rows(dataset: Path) -> None:
    column = f"videos/{CAMERA}/to_timestamp"

    def change(table: pa.Table) -> pa.Table:
        ends = table.column(column).to_pylist()
        ends[1] += 0.2
        return replace_column(table, column, ends)

    edit_parquet(dataset / EPISODES, change)
    report = validate_dataset(dataset, decode_videos=False)
    frames = [i for i in report.errors if i.check == "video_frames"]
    assert frames and {i.episode for i in frames} == {1}


def test_truncated_video(dataset: Path) -> None:
    video = dataset / VIDEO
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    report = validate_dataset(dataset)
    decode = [i for i in report.errors if i.check == "decode"]
    assert decode and {i.file for i in decode} == {VIDEO}, report.issues
    assert checks(report) <= {"decode", "video_frames"}
    assert {i.check for i in validate_dataset(dataset, decode_videos=False).errors} <= {
        "decode",
        "video_frames",
    }


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a LeRobot dataset"):
        validate_dataset(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        validate_dataset(tmp_path / "missing")


def test_cli_exit_codes_json_and_report(dataset: Path, source: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    before = hashes(source)
    clean = runner.invoke(app, ["data-management", "validate", str(source)])
    assert clean.exit_code == 0, clean.output
    assert "valid: 0 error(s)" in clean.output
    assert hashes(source) == before

    edit_json(dataset / "meta/info.json", lambda info: info.update(total_episodes=7))
    report_file = tmp_path / "out" / "report.json"
    args = ["data-management", "validate", str(dataset), "--json", "--no-decode"]
    result = runner.invoke(app, [*args, "--report", str(report_file)])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["errors"] == 1
    assert document["issues"][0]["check"] == "totals"
    assert "decode" not in document["checks"]
    assert json.loads(report_file.read_text()) == document

    table = runner.invoke(app, ["data-management", "validate", str(dataset)])
    assert table.exit_code == 1 and "totals" in table.output and "INVALID" in table.output

    missing = runner.invoke(app, ["data-management", "validate", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
