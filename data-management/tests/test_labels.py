"""Episode labels and annotations: round trips, last writer wins, real concurrent writers and
compactions (separate processes), locally and against a real Blob service (Azurite)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import physai.data_management.labels as labels_module
from physai.core import storage
from physai.core.errors import NotFoundError, UserError
from physai.core.settings import Settings
from physai.core.storage import walk_files
from physai.core.testing.azurite import Azurite
from physai.data_management.labels import (
    Annotations,
    Edit,
    EpisodeAnnotations,
    fold,
    load_quality,
    quality_url,
    store_quality,
)
from physai.data_management.quality import EpisodeArrays, score_episodes

# One writer process: waits for the go file, makes N edits over 3 episodes, prints them as JSON.
# A writer named "compactor" compacts in a loop instead, until the stop file exists.
WRITER = """
import json, pathlib, sys, time
from physai.data_management.labels import Annotations
url, writer, n, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
notes = Annotations(url, writer=writer, author=f"author-{writer}")
(folder / f"ready-{writer}").touch()
while not (folder / "go").exists():
    time.sleep(0.002)
out = []
if writer == "compactor":
    while not (folder / "stop").exists():
        notes.compact()
        out.append("compacted")
else:
    outcomes = ["success", "failure", "partial"]
    for i in range(n):
        episode, kind = i % 3, i % 4
        if kind == 0:
            e = notes.set_label(episode, "who", f"{writer}-{i}")
        elif kind == 1:
            e = notes.add_note(episode, f"{writer} note {i}")
        elif kind == 2:
            e = notes.set_outcome(episode, outcomes[(i // 4) % 3], note=f"{writer} {i}")
        else:
            e = notes.add_instruction(episode, f"{writer} says {i}")
        out.append(e.model_dump(mode="json"))
print(json.dumps(out))
"""


def run_writers(
    url: str,
    folder: Path,
    writers: list[str],
    edits_each: int,
    env: dict[str, str] | None = None,
    during: Callable[[], None] | None = None,
) -> tuple[list[Edit], int]:
    """Start every writer process, release them at once, collect their edits.

    `during` is called in a loop while they run (this process compacting, for instance).
    Returns the edits and how many compactions the compactor process made.
    """
    folder.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, w, str(edits_each), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=folder,
        )
        for w in writers
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((folder / f"ready-{w}").exists() for w in writers):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "writers did not start in 60 s"
            time.sleep(0.01)
        (folder / "go").touch()
        writing = [p for w, p in zip(writers, procs, strict=True) if w != "compactor"]
        while any(p.poll() is None for p in writing):
            if during is not None:
                during()
            else:
                time.sleep(0.01)
        (folder / "stop").touch()
        edits: list[Edit] = []
        compactions = 0
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            for item in json.loads(out):
                if item == "compacted":
                    compactions += 1
                else:
                    edits.append(Edit.model_validate(item))
        return edits, compactions
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_nothing_lost(notes: Annotations, written: list[Edit]) -> None:
    """Every edit written is in the history, and the view is their sequential fold."""
    found = notes.edits()
    assert sorted(e.id for e in found) == sorted(e.id for e in written)
    assert found == sorted(written, key=lambda e: (e.time_ns, e.id))
    for episode in {e.episode for e in written}:
        assert {e.id for e in notes.history(episode)} == {
            e.id for e in written if e.episode == episode
        }
    view = notes.all()
    assert view == fold(written)
    # the fold itself, spelled out for one field: the last set_label wins
    for episode, current in view.items():
        last = max(
            (e for e in written if e.episode == episode and e.op == "set_label"),
            key=lambda e: (e.time_ns, e.id),
        )
        assert current.labels["who"] == last.value
        added = [e for e in written if e.episode == episode and e.op == "add_note"]
        assert len(current.notes) == len(added) + sum(
            e.op == "set_outcome" for e in written if e.episode == episode
        )


def edit_files(dataset: Path) -> list[Path]:
    return sorted((dataset / "annotations" / "edits").rglob("*.json"))


def snapshots(dataset: Path) -> list[Path]:
    return sorted((dataset / "annotations").glob("snapshot-*.json"))


# -- round trips and fold semantics ---------------------------------------------------------


def test_round_trip_and_layout(tmp_path: Path) -> None:
    dataset = tmp_path / "pick"
    notes = Annotations(dataset, author="ana", writer="lab1")
    outcome = notes.set_outcome(3, "failure", note="dropped the cup")
    notes.set_label(3, "operator", "ana")
    notes.set_label(3, "scores", {"grasp": [1, 2.5, None], "ok": True})
    note = notes.add_note(3, "camera 2 is\nblurry", author="ben")
    notes.set_instructions(3, ["pick up the red cup", "put it in the bin"])
    notes.add_instruction(3, "then wave")
    notes.set_outcome(7, "success")

    again = Annotations(str(dataset), writer="lab2").get(3)  # another instance, same files
    assert again.outcome == "failure"
    assert again.labels == {"operator": "ana", "scores": {"grasp": [1, 2.5, None], "ok": True}}
    assert [n.text for n in again.notes] == ["dropped the cup", "camera 2 is\nblurry"]
    assert [n.author for n in again.notes] == ["ana", "ben"]
    assert again.notes[1].id == note.id
    assert again.instructions == ["pick up the red cup", "put it in the bin", "then wave"]
    assert again.stamps["outcome"].edit == outcome.id and again.stamps["outcome"].author == "ana"
    assert again.edits == 6 and again.updated is not None
    assert set(notes.all()) == {3, 7}
    assert notes.get(5) == EpisodeAnnotations(episode=5)
    assert [e.op for e in notes.history(3)][:2] == ["set_outcome", "set_label"]

    files = edit_files(dataset)
    assert len(files) == 7
    assert {f.parent.name for f in files} == {"episode_000003", "episode_000007"}
    first = json.loads(
        (dataset / "annotations/edits/episode_000003" / f"{outcome.id}.json").read_text()
    )
    assert first["format"] == "physai.annotations.edit" and first["version"] == 1
    assert first["op"] == "set_outcome" and first["value"] == "failure"
    assert first["time"].startswith(outcome.time.isoformat()[:19])
    assert outcome.id.startswith(f"{outcome.time_ns:020d}-lab1-")
    assert not list(dataset.rglob("*.physai-part"))
    assert EpisodeAnnotations.model_validate_json(again.model_dump_json()) == again


def test_last_writer_wins_and_deletions_are_edits(tmp_path: Path) -> None:
    a = Annotations(tmp_path, writer="a", author="ana")
    b = Annotations(tmp_path, writer="b", author="ben")
    a.set_label(0, "grip", "weak")
    b.set_label(0, "grip", "firm")
    a.set_label(0, "tag", 1)
    view = b.get(0)
    assert view.labels == {"grip": "firm", "tag": 1}
    assert view.stamps["label:grip"].author == "ben"

    b.remove_label(0, "tag")
    a.remove_label(0, "never-set")  # fine
    a.set_outcome(0, "partial")
    b.clear_outcome(0)
    note = a.add_note(0, "first")
    a.add_note(0, "second")
    b.remove_note(0, note.id)
    a.set_instructions(0, ["x"])
    a.set_instructions(0, ["y", "z"])  # set replaces
    view = a.get(0)
    assert view.labels == {"grip": "firm"} and "label:tag" not in view.stamps
    assert view.outcome is None and "outcome" not in view.stamps
    assert [n.text for n in view.notes] == ["second"]
    assert view.instructions == ["y", "z"]

    b.clear(0)
    cleared = a.get(0)
    assert (cleared.outcome, cleared.labels, cleared.notes, cleared.instructions) == (
        None,
        {},
        [],
        [],
    )
    assert len(a.history(0)) == 13  # history keeps everything
    a.set_label(0, "after", "clear")
    assert a.get(0).labels == {"after": "clear"}


def test_fold_order_is_time_then_id_whatever_the_input_order() -> None:
    def edit(ns: int, writer: str, value: str) -> Edit:
        return Edit(
            id=f"{ns:020d}-{writer}-{'0' * 32}",
            time_ns=ns,
            writer=writer,
            author=writer,
            episode=1,
            op="set_label",
            key="k",
            value=value,
        )

    edits = [
        edit(5, "b", "late"),
        edit(1, "z", "early"),
        edit(5, "a", "tie-a"),
        edit(3, "m", "mid"),
    ]
    for seed in range(10):
        shuffled = edits + edits[:2]  # duplicates count once
        random.Random(seed).shuffle(shuffled)
        folded = fold(shuffled)[1]
        assert folded.labels == {"k": "late"}  # time 5 ties: id "...-b-" sorts after "...-a-"
        assert folded.edits == 4


def test_edits_of_one_process_keep_their_call_order(tmp_path: Path) -> None:
    notes = Annotations(tmp_path, writer="w", author="ana")
    made = [notes.set_label(0, "n", i) for i in range(200)]
    assert [e.time_ns for e in made] == sorted({e.time_ns for e in made})  # strictly increasing
    assert notes.get(0).labels == {"n": 199}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n.set_outcome(0, "won"), "outcome must be one of success, failure, partial"),
        (lambda n: n.set_outcome(-1, "success"), "episode index must be >= 0"),
        (lambda n: n.set_label(True, "k", 1), "must be an integer"),
        (lambda n: n.set_label("3", "k", 1), "must be an integer"),
        (lambda n: n.set_label(0, "k", object()), "not JSON"),
        (lambda n: n.set_label(0, "k", {1: "a"}), "non-string key"),
        (lambda n: n.set_label(0, "k", [1.0, float("nan")]), r"value\[1\] is nan"),
        (lambda n: n.set_label(0, "k", {"a": {1, 2}}), "is a set, not JSON"),
        (lambda n: n.set_label(0, "k", np.int64(3)), r"\.item\(\)"),
        (lambda n: n.set_label(0, "bad\nkey", 1), "contains control characters"),
        (lambda n: n.set_label(0, "nul\x00", 1), "contains control characters"),
        (lambda n: n.set_label(0, "", 1), "non-empty"),
        (lambda n: n.remove_label(0, "tab\tkey"), "contains control characters"),
        (lambda n: n.set_label(0, "k" * 201, 1), "longer than 200"),
        (lambda n: n.add_note(0, "  "), "non-empty"),
        (lambda n: n.set_instructions(0, "pick up the cup"), "list of strings"),
        (lambda n: n.set_instructions(0, ["ok", 3]), "instruction must be"),
        (lambda n: n.set_label(0, "k", 1, author="eve\r"), re.escape("author 'eve\\r'")),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, call: Callable[[Annotations], object], message: str
) -> None:
    notes = Annotations(tmp_path, writer="w", author="ana")
    with pytest.raises(UserError, match=message) as caught:
        call(notes)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "annotations").exists()


def test_bad_writer_author_and_url(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="writer 'a-b'"):
        Annotations(tmp_path, writer="a-b")
    with pytest.raises(UserError, match="author"):
        Annotations(tmp_path, author="")
    with pytest.raises(UserError):
        Annotations("ftp://example.com/data")
    assert "Annotations(" in repr(Annotations(tmp_path, writer="w"))


def test_corrupt_files_are_named(tmp_path: Path) -> None:
    notes = Annotations(tmp_path, writer="w", author="ana")
    edit = notes.set_label(2, "k", 1)
    path = tmp_path / "annotations/edits/episode_000002" / f"{edit.id}.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match=f"{edit.id}.json is not valid JSON"):
        notes.get(2)
    path.write_text(json.dumps({"format": "physai.annotations.edit", "version": 99}))
    with pytest.raises(UserError, match=r"version 99.*upgrade"):
        notes.all()
    data = json.loads(json.dumps({"format": "physai.annotations.edit", "version": 1}))
    data.update(edit.model_dump(mode="json"), episode=5)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="name does not match"):
        notes.all()
    path.unlink()
    (path.parent / "README.txt").write_text("not an edit: ignored")
    assert notes.all() == {}


# -- compaction ------------------------------------------------------------------------------


def test_compact_folds_into_one_snapshot_and_keeps_history(tmp_path: Path) -> None:
    notes = Annotations(tmp_path, writer="w", author="ana")
    assert notes.compact().snapshot is None  # nothing to do
    for i in range(6):
        notes.set_label(i % 2, "n", i)
    notes.add_note(1, "hello")
    before, history = notes.all(), notes.history(1)

    report = notes.compact()
    assert report.snapshot is not None and report.edits == 7 and report.removed == 7
    assert edit_files(tmp_path) == [] and len(snapshots(tmp_path)) == 1
    assert notes.all() == before and notes.history(1) == history
    assert notes.compact().snapshot is None  # one snapshot, no edits: nothing to do

    notes.set_label(1, "n", "after")  # folded on top of the snapshot
    assert notes.get(1).labels == {"n": "after"}
    report = notes.compact()
    assert report.edits == 8 and report.removed == 2
    assert len(snapshots(tmp_path)) == 1 and edit_files(tmp_path) == []
    assert notes.get(1).labels == {"n": "after"} and len(notes.history(1)) == 5
    snapshot = json.loads(snapshots(tmp_path)[0].read_text())
    assert snapshot["format"] == "physai.annotations.snapshot" and len(snapshot["edits"]) == 8
    assert snapshot["cutoff"] == notes.edits()[-1].id


def test_an_edit_older_than_the_snapshot_is_folded_in_its_place(tmp_path: Path) -> None:
    notes = Annotations(tmp_path, writer="w", author="ana")
    notes.set_label(0, "k", "new")
    notes.compact()
    # a writer with a slow clock (or a slow upload) lands an older edit after the compaction
    old = Edit(
        id=f"{1:020d}-slow-{'a' * 32}", time_ns=1, writer="slow", author="x", episode=0,
        op="set_label", key="k", value="old",
    )  # fmt: skip
    target = tmp_path / "annotations/edits/episode_000000" / f"{old.id}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": "physai.annotations.edit", "version": 1, **old.model_dump(mode="json")}
    target.write_text(json.dumps(document))
    assert notes.get(0).labels == {"k": "new"}
    assert notes.history(0)[0].id == old.id


def test_a_compaction_between_listing_and_reading_hides_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic interleavings of a reader and a compactor (the races the order avoids)."""
    reader = Annotations(tmp_path, writer="r", author="ana")
    compactor = Annotations(tmp_path, writer="c", author="ana")
    for i in range(4):
        reader.set_label(i, "k", i)
    expected = reader.all()

    # 1. the reader lists the edits, then a compaction deletes them before it reads them
    real_walk, real_ls = storage.walk_files, storage.ls
    once = {"walk": True, "ls": True}

    def walk_then_compact(url: str, settings: Settings | None = None) -> list[str]:
        found = real_walk(url, settings)
        if once["walk"]:
            once["walk"] = False
            compactor.compact()
        return found

    monkeypatch.setattr(labels_module, "walk_files", walk_then_compact)
    assert reader.all() == expected
    assert edit_files(tmp_path) == []

    # 2. the reader lists a snapshot, then a compaction replaces it before it reads it
    monkeypatch.setattr(labels_module, "walk_files", real_walk)
    reader.set_label(9, "k", 9)
    expected = reader.all()

    def ls_then_compact(url: str, settings: Settings | None = None) -> list[str]:
        found = real_ls(url, settings)
        if once["ls"]:
            once["ls"] = False
            compactor.compact()
        return found

    monkeypatch.setattr(labels_module, "ls", ls_then_compact)
    assert reader.all() == expected  # the vanished snapshot made it read again
    assert once["ls"] is False and len(snapshots(tmp_path)) == 1


# -- real concurrency ------------------------------------------------------------------------


def test_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    writers = [f"w{i}" for i in range(8)]
    written, _ = run_writers(str(dataset), tmp_path / "sync", writers, 24)
    assert len(written) == 8 * 24
    check_nothing_lost(Annotations(dataset, writer="check"), written)
    assert len(edit_files(dataset)) == 8 * 24


def test_compactions_racing_with_writers_lose_nothing(tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    notes = Annotations(dataset, writer="main", author="main")
    seed = [notes.set_label(e, "who", "seed") for e in range(3)]
    reports = []
    writers = [*(f"w{i}" for i in range(6)), "compactor"]
    written, compactions = run_writers(
        str(dataset), tmp_path / "sync", writers, 30, during=lambda: reports.append(notes.compact())
    )
    assert compactions > 0 and any(r.snapshot for r in reports)  # they really raced
    check_nothing_lost(notes, seed + written)
    notes.compact()
    assert edit_files(dataset) == [] and len(snapshots(dataset)) == 1
    check_nothing_lost(notes, seed + written)


# -- quality scores as episode metadata -------------------------------------------------------


def test_store_and_load_quality(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [
        EpisodeArrays(rng.normal(size=(n, 2)), np.arange(n) / 30, episode_index=i)
        for i, n in enumerate([60, 61, 59, 300])
    ]
    scores = score_episodes(episodes)
    url = store_quality(str(tmp_path), list(reversed(scores)))
    assert url == quality_url(str(tmp_path)) == str(tmp_path / "annotations" / "quality.json")
    assert load_quality(str(tmp_path)) == scores  # sorted by episode
    document = json.loads((tmp_path / "annotations/quality.json").read_text())
    assert document["format"] == "physai.quality" and len(document["episodes"]) == 4
    assert walk_files(str(tmp_path)) == ["annotations/quality.json"]

    with pytest.raises(UserError, match=r"more than once: \[1\]"):
        store_quality(str(tmp_path), [scores[1], scores[1]])
    with pytest.raises(NotFoundError, match="store_quality first"):
        load_quality(str(tmp_path / "other"))


def test_quality_and_annotations_in_memory() -> None:
    url = f"memory://labels-{os.getpid()}-{time.time_ns()}/ds"
    notes = Annotations(url, writer="m", author="ana")
    notes.set_outcome(1, "success")
    notes.compact()
    assert notes.get(1).outcome == "success"
    scores = score_episodes([EpisodeArrays(np.zeros((5, 1)), np.arange(5) / 10, episode_index=1)])
    store_quality(url, scores)
    assert load_quality(url) == scores


# -- against a real Blob service --------------------------------------------------------------


@pytest.fixture
def blob_env(azurite: Azurite, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PHYSAI_HOME": str(tmp_path / "home"),
        "PHYSAI_AZURE_STORAGE_ACCOUNT": azurite.account_name,
        "PHYSAI_AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "PHYSAI_AZURE_BLOB_ENDPOINT": azurite.blob_endpoint,
    }


@pytest.mark.integration
def test_blob_round_trip_and_quality(azurite: Azurite, tmp_path: Path) -> None:
    settings = azurite.settings(home=str(tmp_path / "home"))
    url = f"az://{azurite.create_container()}/datasets/pick"
    notes = Annotations(url, settings, writer="blob", author="ana")
    notes.set_outcome(0, "partial", note="half in the bin")
    notes.set_label(0, "k", [1, 2])
    assert notes.get(0).outcome == "partial" and notes.get(0).labels == {"k": [1, 2]}
    assert notes.compact().edits == 2
    assert walk_files(f"{url}/annotations", settings)[0].startswith("snapshot-")
    scores = score_episodes([EpisodeArrays(np.zeros((5, 1)), np.arange(5) / 10)])
    store_quality(url, scores, settings)
    assert load_quality(url, settings) == scores


@pytest.mark.integration
def test_blob_concurrent_writers_and_compactions_lose_nothing(
    azurite: Azurite, blob_env: dict[str, str], tmp_path: Path
) -> None:
    settings = azurite.settings(home=str(tmp_path / "home"))
    url = f"az://{azurite.create_container()}/datasets/pick"
    notes = Annotations(url, settings, writer="main", author="main")
    seed = [notes.set_label(e, "who", "seed") for e in range(3)]
    written, compactions = run_writers(
        url, tmp_path / "sync", ["w0", "w1", "w2", "compactor"], 10, env=blob_env
    )
    assert compactions > 0
    check_nothing_lost(notes, seed + written)
    notes.compact()
    names = walk_files(f"{url}/annotations", settings)
    assert len(names) == 1 and names[0].startswith("snapshot-")
    check_nothing_lost(notes, seed + written)


def test_annotation_snapshot_ships_with_a_new_dataset(tmp_path: Path) -> None:
    from physai.data_management import LeRobotDatasetWriter, annotation_snapshot, curate
    from physai.data_management.curation import Selection

    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": ["a", "b"]}}
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=10, features=features)
    for episode in range(3):
        writer.add_episode({"observation.state": np.full((5, 2), episode, np.float32)}, "t")
    snapshot = annotation_snapshot(
        {0: "success", 1: "failure", 2: "success"},
        {e: {"seed": 10 + e, "light": 0.2 * e} for e in range(3)},
        writer="demos",
    )
    assert snapshot is not None and snapshot[0].startswith("annotations/snapshot-")
    writer.add_file(*snapshot)
    writer.finish()
    notes = Annotations(str(tmp_path / "ds"))
    assert notes.get(1).outcome == "failure" and notes.get(2).labels == {"seed": 12, "light": 0.4}
    bright = curate(
        [str(tmp_path / "ds")],
        str(tmp_path / "bright"),
        selection=Selection(where="labels.light > 0.1 and outcome == 'success'"),
    )
    assert bright.selected_episodes == 1
    assert annotation_snapshot() is None
    with pytest.raises(UserError):
        annotation_snapshot({0: "maybe"})  # type: ignore[dict-item]
