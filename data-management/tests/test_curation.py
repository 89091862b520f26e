"""Curation: filter, split, merge, delete, re-task; video copied (frames identical); bad input."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import UserError
from physai.core.storage import resolve
from physai.core.testing.azurite import Azurite
from physai.data_management.curation import Selection, curate, load_catalog
from physai.data_management.labels import (
    Annotations,
    load_quality,
    renumbered_snapshot,
    score_dataset,
    store_quality,
)
from physai.data_management.lerobot import LeRobotDatasetReader, write_episodes
from physai.data_management.lerobot.synthetic import (
    synthetic_episodes,
    synthetic_features,
    write_v21_dataset,
)
from physai.data_management.lerobot.video_remux import SourceVideos
from physai.data_management.quality import EpisodeArrays, score_episodes
from physai.data_management.validate import validate_dataset

FPS = 10
CAMERA = "observation.images.front"
FEATURES = synthetic_features(state_dim=3, action_dim=2, cameras=("front",), height=32, width=32)
TASKS = ("pick the cube", "place the cube")


def make_source(root: Path, count: int = 12, seed: int = 0, **options: Any) -> Path:
    episodes = synthetic_episodes(FEATURES, count=count, length=8, tasks=TASKS, seed=seed)
    write_episodes(root, episodes, fps=FPS, features=FEATURES, **options)
    return root


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def origin(out: Path) -> list[dict[str, Any]]:
    episodes: list[dict[str, Any]] = json.loads((out / "meta/curation.json").read_text())[
        "episodes"
    ]
    return episodes


def assert_frames_identical(out: Path, sources: list[Path]) -> int:
    """Every frame of `out` equals its source frame (decoded images bit for bit)."""
    readers = [LeRobotDatasetReader(s) for s in sources]
    result = LeRobotDatasetReader(out)
    frames = 0
    for item in origin(out):
        source = readers[item["source"]]
        theirs = list(source.episode_frames(item["source_episode_index"]))
        ours = list(result.episode_frames(item["episode_index"]))
        assert len(theirs) == len(ours)
        for a, b in zip(theirs, ours, strict=True):
            np.testing.assert_array_equal(a[CAMERA], b[CAMERA])
            np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
            np.testing.assert_array_equal(a["action"], b["action"])
            assert a["timestamp"] == b["timestamp"] and a["frame_index"] == b["frame_index"]
            frames += 1
    assert frames == result.num_frames
    return frames


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_source(tmp_path_factory.mktemp("curation") / "src")
    notes = Annotations(root, writer="test", author="ana")
    for episode in (0, 2, 4, 6, 8, 10):
        notes.set_outcome(episode, "success")
    notes.set_outcome(1, "failure", note="dropped it")
    notes.set_label(2, "operator", "bo")
    notes.set_instructions(4, ["pick up the red cube"])
    with LeRobotDatasetReader(root) as reader:
        arrays = [
            EpisodeArrays.from_columns(reader.episode_data(e.episode_index))
            for e in reader.episodes
        ]
    store_quality(str(root), score_episodes(arrays))
    return root


@pytest.fixture
def pristine(source: Path) -> Any:
    before = tree_digest(source)
    yield
    assert tree_digest(source) == before, "curation modified its source"


def test_split_by_fraction_is_seeded_disjoint_and_frame_identical(
    source: Path, tmp_path: Path, pristine: None
) -> None:
    out = tmp_path / "split"
    report = curate([source], out, split=["train=0.75", "val=0.25"], seed=3)
    assert [(o.name, o.episodes) for o in report.outputs] == [("train", 9), ("val", 3)]
    assert all(
        o.copied_episodes == o.episodes and o.reencoded_episodes == 0 for o in report.outputs
    )
    train = [e["source_episode_index"] for e in origin(out / "train")]
    val = [e["source_episode_index"] for e in origin(out / "val")]
    assert sorted(train + val) == list(range(12)) and not set(train) & set(val)
    assert train == sorted(train)  # source order kept
    curate([source], tmp_path / "again", split=["train=0.75", "val=0.25"], seed=3)
    assert [e["source_episode_index"] for e in origin(tmp_path / "again/val")] == val
    other = curate([source], tmp_path / "other", split=["train=0.75", "val=0.25"], seed=4)
    assert other.outputs[1].episodes == 3
    assert [e["source_episode_index"] for e in origin(tmp_path / "other/val")] != val
    for part in ("train", "val"):
        assert validate_dataset(out / part).ok
        assert_frames_identical(out / part, [source])
    # copied, not re-encoded: the parts' video bytes add up to the source's payload
    sizes = [
        sum(p.stat().st_size for p in (d / "videos").rglob("*.mp4"))
        for d in (source, out / "train", out / "val")
    ]
    assert abs(sizes[1] + sizes[2] - sizes[0]) < 0.05 * sizes[0]
    assert (out / ".physai-published.json").exists()


def test_split_by_ids_and_rest(source: Path, tmp_path: Path) -> None:
    report = curate([source], tmp_path / "s", split=["val=0-2,9", "train=rest"])
    assert [o.episodes for o in report.outputs] == [4, 8]
    assert [e["source_episode_index"] for e in origin(tmp_path / "s/val")] == [0, 1, 2, 9]


def test_delete_renumbers_and_keeps_annotations_and_quality(
    source: Path, tmp_path: Path, pristine: None
) -> None:
    out = tmp_path / "deleted"
    report = curate([source], out, selection=Selection(drop_episodes="0-1,3"))
    assert report.outputs[0].episodes == 9
    kept = [e["source_episode_index"] for e in origin(out)]
    assert kept == [2, 4, 5, 6, 7, 8, 9, 10, 11]
    with LeRobotDatasetReader(out) as reader:
        assert [e.episode_index for e in reader.episodes] == list(range(9))
        assert reader.meta.episodes[0].dataset_from_index == 0
        index = np.concatenate([reader.episode_data(e)["index"] for e in range(9)])
        assert index.tolist() == list(range(reader.num_frames))
    views = Annotations(out).all()
    assert views[0].labels == {"operator": "bo"} and views[0].outcome == "success"  # was 2
    assert views[1].instructions == ["pick up the red cube"]  # was 4
    assert 1 not in {v for v in views if views[v].outcome == "failure"}
    scores = {q.episode_index: q for q in load_quality(str(out))}
    source_scores = {q.episode_index: q for q in load_quality(str(source))}
    assert set(scores) == set(range(9))
    assert scores[0].path_length == source_scores[2].path_length
    assert_frames_identical(out, [source])


def test_filters_outcome_task_where(source: Path, tmp_path: Path) -> None:
    report = curate([source], tmp_path / "ok", selection=Selection(outcomes=["success"]))
    assert [e["source_episode_index"] for e in origin(tmp_path / "ok")] == [0, 2, 4, 6, 8, 10]
    assert report.selected_episodes == 6
    curate([source], tmp_path / "task", selection=Selection(tasks=["place the cube"]))
    assert [e["source_episode_index"] for e in origin(tmp_path / "task")] == [1, 3, 5, 7, 9, 11]
    with LeRobotDatasetReader(tmp_path / "task") as reader:
        assert reader.tasks == ["place the cube"]
    scores = sorted(load_quality(str(source)), key=lambda q: q.path_length)
    threshold = scores[5].path_length
    expected = sorted(q.episode_index for q in scores if q.path_length > threshold)
    curate(
        [source],
        tmp_path / "where",
        selection=Selection(where=f"quality.path_length > {threshold!r} and length >= 1"),
    )
    assert [e["source_episode_index"] for e in origin(tmp_path / "where")] == expected
    curate(
        [source],
        tmp_path / "labels",
        selection=Selection(where='labels["operator"] == "bo" or "red cube" in instructions'),
    )
    assert [e["source_episode_index"] for e in origin(tmp_path / "labels")] == [2]


def test_merge_two_sources_and_retask(source: Path, tmp_path: Path) -> None:
    second = make_source(tmp_path / "second", count=3, seed=50)
    out = tmp_path / "merged"
    report = curate(
        [source, second],
        out,
        selection=Selection(drop_episodes="0:0-9"),
        rename_tasks={"pick the cube": "pick up the cube"},
    )
    assert report.outputs[0].episodes == 5
    assert [(e["source"], e["source_episode_index"]) for e in origin(out)] == [
        (0, 10),
        (0, 11),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    with LeRobotDatasetReader(out) as reader:
        assert sorted(reader.tasks) == ["pick up the cube", "place the cube"]
        assert reader[0]["task"] == "pick up the cube"
    assert_frames_identical(out, [source, second])
    assert validate_dataset(out).ok
    curate([source], tmp_path / "one-task", set_task="sort", selection=Selection(episodes="0-1"))
    with LeRobotDatasetReader(tmp_path / "one-task") as reader:
        assert reader.tasks == ["sort"] and reader.meta.episodes[1].tasks == ("sort",)


def test_merge_many_files_and_v21_source(tmp_path: Path) -> None:
    packed = make_source(
        tmp_path / "packed", count=6, data_files_size_in_mb=0.001, video_files_size_in_mb=0.004
    )
    assert len(list((packed / "videos").rglob("*.mp4"))) > 1
    legacy = tmp_path / "legacy"
    write_v21_dataset(
        legacy, synthetic_episodes(FEATURES, count=3, length=8, seed=9), fps=FPS, features=FEATURES
    )
    out = tmp_path / "merged"
    curate([packed, legacy], out)
    assert_frames_identical(out, [packed, legacy])
    assert validate_dataset(out).ok


def test_reencode_on_request(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "h264"
    report = curate(
        [source], out, selection=Selection(episodes="0-2"), reencode=True, video_codec="h264"
    )
    assert report.outputs[0].reencoded_episodes == 3 and report.outputs[0].copied_episodes == 0
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"][CAMERA]["info"]["video.codec"] == "h264"
    with LeRobotDatasetReader(source) as a, LeRobotDatasetReader(out) as b:
        diff = np.abs(a[5][CAMERA].astype(int) - b[5][CAMERA].astype(int))
        assert diff.mean() < 8  # lossy, but the same picture
    assert validate_dataset(out).ok
    with pytest.raises(UserError, match="--reencode"):
        curate([source], tmp_path / "x", video_codec="h264")


def test_window_not_starting_on_a_keyframe_is_not_copied(source: Path) -> None:
    with LeRobotDatasetReader(source) as reader:
        episode = reader.episodes[3]
    segment = episode.videos[CAMERA]
    location = resolve(source / segment.path)
    with SourceVideos() as videos:
        whole = videos.window(
            location, segment.from_timestamp, segment.to_timestamp, episode.length
        )
        assert whole is not None and len(whole.packets) == episode.length
        assert whole.packets[0].is_keyframe
        # one frame in: the first packet is not a keyframe (g=2 leaves every other frame)
        shifted = videos.window(
            location, segment.from_timestamp + 1 / FPS, segment.to_timestamp, episode.length - 1
        )
        assert shifted is None


def test_loads_in_lerobot_with_identical_frames(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lerobot")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets_config = pytest.importorskip("datasets.config")
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = tmp_path / "split"
    curate([source], out, split=["train=0.5", "val=rest"], seed=1)
    theirs_source = LeRobotDataset("physai/src", root=source, video_backend="pyav")
    starts = {
        int(e): int(s)
        for e, s in zip(
            theirs_source.meta.episodes["episode_index"],
            theirs_source.meta.episodes["dataset_from_index"],
            strict=True,
        )
    }
    for part in ("train", "val"):
        theirs = LeRobotDataset(f"physai/{part}", root=out / part, video_backend="pyav")
        position = 0
        for item in origin(out / part):
            base = starts[item["source_episode_index"]]
            length = int(theirs.meta.episodes["length"][item["episode_index"]])
            for row in range(length):
                a, b = theirs_source[base + row], theirs[position]
                assert np.array_equal(a[CAMERA].numpy(), b[CAMERA].numpy())
                assert np.array_equal(
                    a["observation.state"].numpy(), b["observation.state"].numpy()
                )
                assert a["task"] == b["task"]
                assert int(b["episode_index"]) == item["episode_index"]
                position += 1
        assert position == len(theirs)


def test_outputs_are_readable_by_everyone(source: Path, tmp_path: Path) -> None:
    curate([source], tmp_path / "out", split=["a=0.5", "b=rest"])
    for path in (tmp_path / "out").rglob("*"):
        mode = path.stat().st_mode
        assert mode & 0o044 == 0o044, f"{path} is mode {oct(mode)}"


def test_dry_run_and_cli(source: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    plan = runner.invoke(
        app,
        [
            "data-management",
            "curate",
            str(source),
            "--out",
            str(out),
            "--outcome",
            "success",
            "--split",
            "a=0.5",
            "--split",
            "b=rest",
            "--dry-run",
            "--json",
        ],
    )
    assert plan.exit_code == 0, plan.output
    assert sum(len(v) for v in json.loads(plan.output).values()) == 6
    assert not out.exists()
    result = runner.invoke(
        app,
        [
            "data-management",
            "curate",
            str(source),
            "--out",
            str(out),
            "--drop-episodes",
            "0",
            "--rename-task",
            "pick the cube=>pick",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["outputs"][0]["episodes"] == 11
    with LeRobotDatasetReader(out) as reader:
        assert "pick" in reader.tasks


# -- bad input: one line, exit 2, nothing written, source untouched -------------------------


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["data-management", "curate", *args])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--where", "__import__('os').system('true')"], "bad filter expression"),
        (["--where", "task.upper() == 'X'"], "bad filter expression"),
        (["--where", "length >"], "syntax error"),
        (["--where", "lambda: 1"], "not allowed"),
        (["--where", "speed > 3"], "unknown field 'speed'"),
        (["--where", "[x for x in tasks]"], "not allowed"),
        (["--where", "task > 3"], "cannot be evaluated"),
        (["--episodes", "3-1"], "ends before it starts"),
        (["--episodes", "a,b"], "bad episode ids"),
        (["--episodes", "99"], "does not exist"),
        (["--episodes", "2:1"], "source 2"),
        (["--outcome", "great"], "bad outcome"),
        (["--split", "../../etc=0.5"], "bad split name"),
        (["--split", "a/b=0.5"], "bad split name"),
        (["--split", "a=0.8", "--split", "b=0.8"], "more than 1"),
        (["--split", "a=0-11", "--split", "b=rest"], "would hold no episodes"),
        (["--split", "train"], "bad split"),
        (["--where", "length < 0"], "keeps none"),
        (["--rename-task", "nope=>x"], "no chosen episode"),
        (["--rename-task", "nope"], "bad --rename-task"),
        (["--codec", "h264"], "--reencode"),
        (["--reencode", "--codec", "vp9"], "not supported"),
    ],
)
def test_bad_options(
    source: Path, tmp_path: Path, pristine: None, options: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = run_cli(str(source), "--out", str(out), *options)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_outputs(source: Path, tmp_path: Path, pristine: None) -> None:
    for out, message in [
        (str(source), "overlaps the source"),
        (str(source / "inner"), "overlaps the source"),
        (str(source.parent), "overlaps the source"),
        ("memory://bucket/../escape", "path traversal"),
    ]:
        result = run_cli(str(source), "--out", out)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (source / "inner").exists()
    existing = tmp_path / "exists"
    curate([source], existing, selection=Selection(episodes="0"))
    result = run_cli(str(source), "--out", str(existing))
    assert result.exit_code == 2 and "exists" in result.output
    assert len(origin(existing)) == 1


def broken_copy(source: Path, tmp_path: Path, damage: str) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(source, root)
    video = next((root / "videos").rglob("*.mp4"))
    if damage == "no-info":
        (root / "meta/info.json").unlink()
    elif damage == "corrupt-info":
        (root / "meta/info.json").write_text("{not json")
    elif damage == "unknown-version":
        info = json.loads((root / "meta/info.json").read_text())
        info["codebase_version"] = "v9.9"
        (root / "meta/info.json").write_text(json.dumps(info))
    elif damage == "corrupt-episodes":
        next((root / "meta/episodes").rglob("*.parquet")).write_bytes(b"PAR1garbage")
    elif damage == "truncated-video":
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    elif damage == "missing-video":
        video.unlink()
    return root


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-info", "is not a LeRobot dataset"),
        ("corrupt-info", "not a valid LeRobot info.json"),
        ("unknown-version", "v9.9"),
        ("corrupt-episodes", "not a valid LeRobot episodes parquet"),
        ("truncated-video", ".mp4"),
        ("missing-video", "does not exist"),
    ],
)
def test_broken_sources(source: Path, tmp_path: Path, damage: str, message: str) -> None:
    broken = broken_copy(source, tmp_path, damage)
    before = tree_digest(broken)
    out = tmp_path / "out"
    result = run_cli(str(broken), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken"]  # no staging left behind
    assert tree_digest(broken) == before


def test_merge_rejects_different_features_or_fps(source: Path, tmp_path: Path) -> None:
    other_features = synthetic_features(
        state_dim=4, action_dim=2, cameras=("front",), height=32, width=32
    )
    other = tmp_path / "other"
    write_episodes(
        other,
        synthetic_episodes(other_features, count=2, length=5),
        fps=FPS,
        features=other_features,
    )
    with pytest.raises(UserError, match="features differ"):
        curate([source, other], tmp_path / "out")
    fast = make_source(tmp_path / "fast", count=2)
    info = json.loads((fast / "meta/info.json").read_text())
    info["fps"] = 20
    (fast / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="fps"):
        curate([source, fast], tmp_path / "out")
    with pytest.raises(UserError, match="given twice"):
        load_catalog([str(source), str(source)])
    h264 = make_source(tmp_path / "h264", count=2, video_codec="h264")
    with pytest.raises(UserError, match=r"video\.codec 'av1'.*'h264'.*--reencode"):
        curate([source, h264], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    report = curate(
        [h264, source], tmp_path / "mixed", reencode=True, selection=Selection(episodes="0-1")
    )
    assert report.outputs[0].reencoded_episodes == 4
    info = json.loads((tmp_path / "mixed/meta/info.json").read_text())
    assert info["features"][CAMERA]["info"]["video.codec"] == "h264"
    assert validate_dataset(tmp_path / "mixed").ok


@pytest.mark.integration
def test_blob_to_blob(source: Path, azurite: Azurite, tmp_path: Path) -> None:
    settings = azurite.settings(home=str(tmp_path / "home"))
    container = azurite.create_container()
    remote = f"az://{container}/datasets/src"
    curate([source], remote, settings=settings)
    out = f"az://{container}/datasets/curated"
    report = curate([remote], out, split=["train=0.5", "val=rest"], seed=2, settings=settings)
    assert sum(o.episodes for o in report.outputs) == 12
    local = tmp_path / "back"
    curate([f"{out}/val"], local, settings=settings)
    with LeRobotDatasetReader(local) as back, LeRobotDatasetReader(source) as src:
        first = origin(local)[0]
        assert first["source_episode_index"] == 0  # relative to the val part
        val_first = json.loads(
            resolve(f"{out}/val/meta/curation.json", settings).fs.cat_file(
                resolve(f"{out}/val/meta/curation.json", settings).path
            )
        )["episodes"][0]["source_episode_index"]
        a = next(src.episode_frames(val_first))
        b = next(back.episode_frames(0))
        np.testing.assert_array_equal(a[CAMERA], b[CAMERA])


def test_filter_expression_semantics() -> None:
    from physai.data_management.curation import FilterExpression

    fields = {"length": 10, "quality": {"rms_jerk": None, "idle_fraction": 0.1}, "labels": {}}
    known = {"length", "quality", "labels", "task"}
    assert FilterExpression("length > 5 and quality.idle_fraction < 0.2", known).matches(fields)
    assert not FilterExpression("quality.rms_jerk < 5", known).matches(
        fields
    )  # None orders nothing
    assert not FilterExpression("quality.missing > 0", known).matches(fields)
    assert FilterExpression('labels["who"] != "ana"', known).matches(fields)
    assert FilterExpression("1 < length <= 10", known).matches(fields)
    assert FilterExpression("length / 2 == 5 and abs(-length) == 10", known).matches(fields)
    assert FilterExpression('contains(lower(task), "pick")', known).matches({"task": "Pick it"})
    assert not FilterExpression('contains(task, "pick")', known).matches({"task": None})
    for bad in ["().__class__", "open('x')", "length if 1 else 2", "{1: 2}", "x := 1", ""]:
        with pytest.raises(UserError):
            FilterExpression(bad, known)


def test_whole_files_are_copied_when_every_episode_is_kept(source: Path, tmp_path: Path) -> None:
    curate([source], tmp_path / "halves", split=["a=0-5", "b=rest"])
    halves = [tmp_path / "halves/a", tmp_path / "halves/b"]
    out = tmp_path / "merged"
    curate(halves, out)
    digests = [
        hashlib.sha256(p.read_bytes()).hexdigest()
        for root in [*halves, out]
        for p in sorted((root / "videos").rglob("*.mp4"))
    ]
    assert len(digests) == 4 and digests[2:] == digests[:2]  # the halves' files, byte for byte
    assert_frames_identical(out, halves)
    assert validate_dataset(out).ok


def test_label_and_score_commands_feed_curation(tmp_path: Path) -> None:
    dataset = make_source(tmp_path / "ds", count=6)
    runner = CliRunner()

    def dm(*args: str) -> Any:
        return runner.invoke(app, ["data-management", *args])

    assert (
        dm(
            "label",
            str(dataset),
            "--episodes",
            "0-2",
            "--outcome",
            "success",
            "--label",
            "operator=ana",
            "--label",
            "take=2",
            "--note",
            "ok",
        ).exit_code
        == 0
    )
    assert (
        dm("label", str(dataset), "--episodes", "5", "--instruction", "pick it up").exit_code == 0
    )
    views = Annotations(dataset).all()
    assert views[1].labels == {"operator": "ana", "take": 2} and views[1].notes[0].text == "ok"
    assert views[5].instructions == ["pick it up"] and views[5].outcome is None
    scored = dm("score", str(dataset), "--json")
    assert scored.exit_code == 0, scored.output
    assert [q["episode_index"] for q in json.loads(scored.output)] == list(range(6))
    assert [q.episode_index for q in load_quality(str(dataset))] == list(range(6))
    result = dm(
        "curate",
        str(dataset),
        "--out",
        str(tmp_path / "out"),
        "--outcome",
        "success",
        "--where",
        "labels.take == 2 and quality.path_length > 0",
    )
    assert result.exit_code == 0, result.output
    assert [e["source_episode_index"] for e in origin(tmp_path / "out")] == [0, 1, 2]
    for bad, message in [
        (["--episodes", "9", "--outcome", "success"], "no episode 9"),
        (["--episodes", "1", "--outcome", "great"], "outcome must be one of"),
        (["--episodes", "1"], "nothing to label"),
        (["--episodes", "1", "--label", "novalue"], "bad --label"),
        (["--episodes", "0:1", "--outcome", "success"], "names a source"),
    ]:
        failed = dm("label", str(dataset), *bad)
        assert failed.exit_code == 2 and message in failed.output, failed.output
    assert dm("score", str(tmp_path / "nothing")).exit_code == 2


def test_score_dataset_and_renumbered_snapshot(source: Path, pristine: None) -> None:
    scores = score_dataset(str(source), store=False)  # store=False writes nothing
    stored = load_quality(str(source))
    assert [q.episode_index for q in scores] == [q.episode_index for q in stored]
    assert [q.path_length for q in scores] == [q.path_length for q in stored]

    edits = Annotations(source, writer="test").edits()
    made = renumbered_snapshot(edits, {1: 0, 4: 1})
    assert made is not None
    path, content = made
    assert re.fullmatch(r"annotations/snapshot-\d{20}-curate-[0-9a-f]{32}\.json", path)
    document = json.loads(content)
    kept = [e for e in edits if e.episode in (1, 4)]
    assert [e["id"] for e in document["edits"]] == [e.id for e in kept]
    assert {e["episode"] for e in document["edits"]} == {0, 1}
    assert document["cutoff"] == kept[-1].id
    assert renumbered_snapshot(edits, {3: 0}) is None  # episode 3 has no edits
