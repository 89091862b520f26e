"""Labels and annotations per episode, beside a dataset; concurrent writers never lose an edit.

    notes = Annotations("az://datasets/pick/v3", author="ana")
    notes.set_outcome(3, "failure", note="dropped the cup")
    notes.set_label(3, "operator", "ana")
    notes.set_instructions(3, ["pick up the red cup"])
    notes.get(3).outcome                       # "failure"
    notes.compact()                            # optional: fold edits into one snapshot

Layout, under `<dataset_url>/annotations/` (LeRobot ignores folders it does not know):

    edits/episode_<index:06d>/<time_ns:020d>-<writer>-<uuid32>.json   one immutable edit each
    snapshot-<time_ns:020d>-<writer>-<uuid32>.json                     edits folded by compact()
    quality.json                                                       store_quality's scores

No locks: every edit is its own object under a name no other writer can pick, written
atomically (core.storage). The view is the fold of the union of every edit found (in edit
files and snapshots, each id once) ordered by (time_ns, id): the last edit wins per field. A
compaction writes a snapshot holding every edit it read, then deletes only the files it read;
an edit written meanwhile stays in `edits/` and is folded on top. Readers list edits, read
them, then list and read snapshots (retrying if a snapshot vanished), so a concurrent
compaction never hides an edit either.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import numbers
import os
import re
import socket
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from physai.core.errors import NotFoundError, StorageError, UserError
from physai.core.settings import settings_or_default
from physai.core.storage import join_url, ls, read_bytes, resolve, rm, walk_files, write_bytes
from physai.data_management.quality import (
    EpisodeArrays,
    EpisodeQuality,
    QualitySettings,
    score_episodes,
)

if TYPE_CHECKING:
    from physai.core.settings import Settings

Outcome = Literal["success", "failure", "partial"]
Op = Literal[
    "set_outcome",
    "clear_outcome",
    "set_label",
    "remove_label",
    "add_note",
    "remove_note",
    "set_instructions",
    "add_instruction",
    "clear",
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)

ANNOTATIONS_DIR: Final = "annotations"
EDITS_DIR: Final = "edits"
QUALITY_FILE: Final = "quality.json"
EDIT_FORMAT: Final = "physai.annotations.edit"
SNAPSHOT_FORMAT: Final = "physai.annotations.snapshot"
QUALITY_FORMAT: Final = "physai.quality"
FORMAT_VERSION: Final = 1
MAX_TEXT: Final = 200  # characters of a key, author or writer name
READ_ATTEMPTS: Final = 20
READ_THREADS: Final = 16

_NAME = r"\d{20}-[A-Za-z0-9_.]+-[0-9a-f]{32}"
_EDIT_PATH = re.compile(rf"^episode_(\d+)/({_NAME})\.json$")
_SNAPSHOT_NAME = re.compile(rf"^snapshot-{_NAME}\.json$")
_WRITER = re.compile(r"^[A-Za-z0-9_.]+$")

_clock_lock = threading.Lock()
_last_ns = 0


def _next_time_ns() -> int:
    """Wall-clock ns, strictly increasing within this process (edits keep their call order)."""
    global _last_ns
    with _clock_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def _iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, UTC).isoformat(timespec="microseconds")


# -- models ----------------------------------------------------------------------------------


class Edit(BaseModel):
    """One immutable change to one episode's annotations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=rf"^{_NAME}$", description="<time_ns>-<writer>-<uuid>")
    time_ns: int = Field(ge=0)
    writer: str
    author: str
    episode: int = Field(ge=0)
    op: Op
    key: str | None = None
    value: JsonValue = None
    note: str | None = None

    @property
    def time(self) -> datetime:
        """When the edit was made (UTC, the writer's clock)."""
        return datetime.fromtimestamp(self.time_ns / 1e9, UTC)

    @property
    def order(self) -> tuple[int, str]:
        """The fold order: time, then id."""
        return self.time_ns, self.id


class Stamp(BaseModel):
    """Who set a field last, when, and by which edit."""

    model_config = ConfigDict(frozen=True)

    edit: str
    author: str
    time: datetime


class Note(BaseModel):
    """A free-text note (its id is the id of the edit that added it)."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    author: str
    time: datetime


class EpisodeAnnotations(BaseModel):
    """The current view of one episode's annotations: all its edits folded."""

    model_config = ConfigDict(frozen=True)

    episode: int
    outcome: Outcome | None = None
    labels: dict[str, JsonValue] = Field(default_factory=dict)
    notes: list[Note] = Field(default_factory=list)
    instructions: list[str] = Field(default_factory=list)
    stamps: dict[str, Stamp] = Field(
        default_factory=dict,
        description="last setter of 'outcome', 'instructions' and 'label:<key>'",
    )
    edits: int = Field(default=0, description="how many edits were folded")
    updated: Stamp | None = None


class CompactionReport(BaseModel):
    """What `Annotations.compact` did."""

    snapshot: str | None = Field(
        description="URL of the snapshot written (without a SAS); None when nothing to do"
    )
    edits: int = Field(description="edits the snapshot holds")
    removed: int = Field(description="edit and snapshot files it deleted")


@dataclass
class _Fold:
    episode: int
    outcome: Outcome | None = None
    labels: dict[str, JsonValue] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    stamps: dict[str, Stamp] = field(default_factory=dict)
    edits: int = 0
    updated: Stamp | None = None

    def apply(self, e: Edit) -> None:
        stamp = Stamp(edit=e.id, author=e.author, time=e.time)
        self.edits += 1
        self.updated = stamp
        match e.op:
            case "set_outcome":
                self.outcome = _outcome(e.value)
                self.stamps["outcome"] = stamp
            case "clear_outcome":
                self.outcome = None
                self.stamps.pop("outcome", None)
            case "set_label":
                self.labels[str(e.key)] = e.value
                self.stamps[f"label:{e.key}"] = stamp
            case "remove_label":
                self.labels.pop(str(e.key), None)
                self.stamps.pop(f"label:{e.key}", None)
            case "remove_note":
                self.notes = [n for n in self.notes if n.id != e.value]
            case "set_instructions":
                self.instructions = [str(v) for v in _list(e.value)]
                self.stamps["instructions"] = stamp
            case "add_instruction":
                self.instructions.append(str(e.value))
                self.stamps["instructions"] = stamp
            case "clear":
                self.outcome, self.labels, self.notes, self.instructions = None, {}, [], []
                self.stamps = {}
            case "add_note":
                pass  # the note is added below
        if e.note is not None:
            self.notes.append(Note(id=e.id, text=e.note, author=e.author, time=e.time))

    def view(self) -> EpisodeAnnotations:
        return EpisodeAnnotations(
            episode=self.episode,
            outcome=self.outcome,
            labels=dict(self.labels),
            notes=list(self.notes),
            instructions=list(self.instructions),
            stamps=dict(self.stamps),
            edits=self.edits,
            updated=self.updated,
        )


def _outcome(value: JsonValue) -> Outcome:
    for outcome in OUTCOMES:
        if value == outcome:
            return outcome
    raise UserError(f"outcome must be one of {', '.join(OUTCOMES)}, got {value!r}")


def _list(value: JsonValue) -> list[JsonValue]:
    return list(value) if isinstance(value, list) else []


def fold(edits: Iterable[Edit]) -> dict[int, EpisodeAnnotations]:
    """Fold edits (any order; duplicates by id count once) into each episode's view."""
    unique = {e.id: e for e in edits}
    folds: dict[int, _Fold] = {}
    for e in sorted(unique.values(), key=lambda e: e.order):
        folds.setdefault(e.episode, _Fold(e.episode)).apply(e)
    return {episode: folds[episode].view() for episode in sorted(folds)}


# -- validation ------------------------------------------------------------------------------


def _check_episode(episode: object) -> int:
    if isinstance(episode, bool) or not isinstance(episode, numbers.Integral):
        raise UserError(f"episode index must be an integer, got {episode!r}")
    if episode < 0:
        raise UserError(f"episode index must be >= 0, got {episode}")
    return int(episode)


def _check_name(text: object, what: str) -> str:
    """A non-empty single-line string: no control characters, at most MAX_TEXT characters."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{what} must be a non-empty string, got {text!r}")
    if len(text) > MAX_TEXT:
        raise UserError(f"{what} is longer than {MAX_TEXT} characters: {text[:40]!r}...")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
        raise UserError(f"{what} {text!r} contains control characters")
    return text


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{what} must be a non-empty string, got {text!r}")
    return text


def _check_json(value: object, where: str = "value") -> None:
    if value is None or isinstance(value, bool | str | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UserError(f"{where} is {value}: JSON has no NaN or infinity")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise UserError(f"{where} has a non-string key {k!r}: JSON keys are strings")
            _check_json(item, f"{where}[{k!r}]")
        return
    raise UserError(
        f"{where} is a {type(value).__name__}, not JSON (use None, bool, int, float, str, "
        "list or dict; .item() or .tolist() for numpy values)"
    )


def _json_value(value: object) -> JsonValue:
    _check_json(value)
    loaded: JsonValue = json.loads(json.dumps(value, allow_nan=False))  # tuples become lists
    return loaded


def _default_writer() -> str:
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:60] or "host"
    return f"{host}.{os.getpid()}"


def _default_author() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


# -- the store -------------------------------------------------------------------------------


@dataclass
class _Found:
    edits: dict[str, Edit]
    edit_urls: list[str]
    snapshot_urls: list[str]


class Annotations:
    """Episode annotations of the dataset at `dataset_url` (local path, memory:// or Blob).

    Every setter writes one immutable edit and returns it; readers fold all edits. Many
    processes on many machines may write at once; none loses an edit (the module doc says how).
    """

    def __init__(
        self,
        dataset_url: str | os.PathLike[str],
        settings: Settings | None = None,
        *,
        author: str | None = None,
        writer: str | None = None,
    ) -> None:
        self.dataset_url = os.fspath(dataset_url)
        self._settings = settings_or_default(settings)
        resolve(self.dataset_url, self._settings)  # a bad URL fails here, not at first write
        self.url = join_url(self.dataset_url, ANNOTATIONS_DIR)
        self.author = _check_name(author if author is not None else _default_author(), "author")
        self.writer = writer if writer is not None else _default_writer()
        if not _WRITER.match(self.writer) or len(self.writer) > MAX_TEXT:
            raise UserError(
                f"writer {self.writer!r} must be letters, digits, '_' or '.' "
                f"(at most {MAX_TEXT} characters)"
            )

    def __repr__(self) -> str:
        return f"Annotations({resolve(self.url, self._settings).display!r})"

    # -- writing --

    def _write(
        self,
        episode: object,
        op: Op,
        *,
        author: str | None,
        key: str | None = None,
        value: JsonValue = None,
        note: str | None = None,
    ) -> Edit:
        index = _check_episode(episode)
        who = self.author if author is None else _check_name(author, "author")
        time_ns = _next_time_ns()
        edit = Edit(
            id=f"{time_ns:020d}-{self.writer}-{uuid.uuid4().hex}",
            time_ns=time_ns,
            writer=self.writer,
            author=who,
            episode=index,
            op=op,
            key=key,
            value=value,
            note=note,
        )
        document = {"format": EDIT_FORMAT, "version": FORMAT_VERSION, "time": _iso(time_ns)}
        document.update(edit.model_dump(mode="json"))
        url = join_url(self.url, EDITS_DIR, f"episode_{index:06d}", f"{edit.id}.json")
        write_bytes(url, json.dumps(document, indent=1).encode(), self._settings)
        return edit

    def set_outcome(
        self, episode: int, outcome: Outcome, *, author: str | None = None, note: str | None = None
    ) -> Edit:
        """Set the outcome (success | failure | partial), optionally adding a note with it."""
        value = _outcome(outcome)
        text = None if note is None else _check_text(note, "note")
        return self._write(episode, "set_outcome", author=author, value=value, note=text)

    def clear_outcome(self, episode: int, *, author: str | None = None) -> Edit:
        """Remove the outcome."""
        return self._write(episode, "clear_outcome", author=author)

    def set_label(
        self, episode: int, key: str, value: object, *, author: str | None = None
    ) -> Edit:
        """Set custom label `key` to a JSON value (None, bool, number, str, list, dict)."""
        key = _check_name(key, "label key")
        return self._write(episode, "set_label", author=author, key=key, value=_json_value(value))

    def remove_label(self, episode: int, key: str, *, author: str | None = None) -> Edit:
        """Remove custom label `key` (no error if it is not set)."""
        key = _check_name(key, "label key")
        return self._write(episode, "remove_label", author=author, key=key)

    def add_note(self, episode: int, text: str, *, author: str | None = None) -> Edit:
        """Append a free-text note; its id (for remove_note) is the returned edit's id."""
        note = _check_text(text, "note")
        return self._write(episode, "add_note", author=author, note=note)

    def remove_note(self, episode: int, note_id: str, *, author: str | None = None) -> Edit:
        """Remove the note whose id is `note_id`."""
        note_id = _check_name(note_id, "note id")
        return self._write(episode, "remove_note", author=author, value=note_id)

    def set_instructions(
        self, episode: int, instructions: Sequence[str], *, author: str | None = None
    ) -> Edit:
        """Replace the language instructions with `instructions` (a list of strings)."""
        if isinstance(instructions, str) or not isinstance(instructions, Sequence):
            raise UserError(
                f"instructions must be a list of strings, got {type(instructions).__name__}"
            )
        values: list[JsonValue] = [_check_text(s, "instruction") for s in instructions]
        return self._write(episode, "set_instructions", author=author, value=values)

    def add_instruction(self, episode: int, instruction: str, *, author: str | None = None) -> Edit:
        """Append one language instruction."""
        text = _check_text(instruction, "instruction")
        return self._write(episode, "add_instruction", author=author, value=text)

    def clear(self, episode: int, *, author: str | None = None) -> Edit:
        """Reset the episode's annotations (its history is kept)."""
        return self._write(episode, "clear", author=author)

    # -- reading --

    def get(self, episode: int) -> EpisodeAnnotations:
        """The current view of one episode (empty when it has no edits)."""
        index = _check_episode(episode)
        return fold(self.history(index)).get(index) or EpisodeAnnotations(episode=index)

    def all(self) -> dict[int, EpisodeAnnotations]:
        """The current view of every episode that has edits, by episode index."""
        return fold(self.edits())

    def history(self, episode: int) -> list[Edit]:
        """Every edit of one episode, in fold order (time, then id)."""
        index = _check_episode(episode)
        return sorted(self._load(index).edits.values(), key=lambda e: e.order)

    def edits(self) -> list[Edit]:
        """Every edit of every episode, in fold order (time, then id)."""
        return sorted(self._load(None).edits.values(), key=lambda e: e.order)

    def compact(self) -> CompactionReport:
        """Fold every edit found into one new snapshot, then delete the files it folded.

        Safe while writers (and other compactions) run: edits written meanwhile stay in
        `edits/`, and a file is deleted only after a snapshot holding its edits was written.
        """
        found = self._load(None)
        if not found.edit_urls and len(found.snapshot_urls) <= 1:
            return CompactionReport(snapshot=None, edits=len(found.edits), removed=0)
        edits = sorted(found.edits.values(), key=lambda e: e.order)
        time_ns = _next_time_ns()
        name = f"snapshot-{time_ns:020d}-{self.writer}-{uuid.uuid4().hex}.json"
        document = {
            "format": SNAPSHOT_FORMAT,
            "version": FORMAT_VERSION,
            "created": _iso(time_ns),
            "writer": self.writer,
            "cutoff": edits[-1].id if edits else None,
            "edits": [e.model_dump(mode="json") for e in edits],
        }
        url = join_url(self.url, name)
        write_bytes(url, json.dumps(document, indent=1).encode(), self._settings)
        stale = found.edit_urls + found.snapshot_urls
        self._map(self._remove, stale)
        return CompactionReport(snapshot=_display(url), edits=len(edits), removed=len(stale))

    # -- internals --

    def _map(self, fn: Any, items: list[str]) -> list[Any]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(items))) as pool:
            return list(pool.map(fn, items))

    def _remove(self, url: str) -> None:
        with contextlib.suppress(NotFoundError):  # another compaction removed it first
            rm(url, self._settings)

    def _read(self, url: str) -> bytes | None:
        try:
            return read_bytes(url, self._settings)
        except NotFoundError:
            return None

    def _load(self, episode: int | None) -> _Found:
        """Edits from edit files and snapshots (of one episode, or all), each id once."""
        edit_base = join_url(self.url, EDITS_DIR)
        prefix = "" if episode is None else f"episode_{episode:06d}/"
        edits_url = join_url(edit_base, prefix)
        # Edits first, snapshots second: an edit deleted by a compaction after we listed it
        # is in a snapshot written before the deletion, so the snapshot listing sees it.
        relative = [prefix + p for p in walk_files(edits_url, self._settings)]
        named = [p for p in relative if _EDIT_PATH.match(p)]
        edit_urls = [join_url(edit_base, p) for p in named]
        edits: dict[str, Edit] = {}
        read: list[str] = []
        for path, url, blob in zip(named, edit_urls, self._map(self._read, edit_urls), strict=True):
            if blob is not None:
                edit = _parse_edit(path, url, blob)
                edits[edit.id] = edit
                read.append(url)
        # A snapshot that vanished between listing and reading was folded into a newer one,
        # written before it was deleted: list again and read the new ones.
        snapshots: dict[str, list[Edit]] = {}
        for attempt in range(READ_ATTEMPTS):
            listed = [
                join_url(self.url, n)
                for n in ls(self.url, self._settings)
                if _SNAPSHOT_NAME.match(n)
            ]
            new = [u for u in listed if u not in snapshots]
            vanished = False
            for url, blob in zip(new, self._map(self._read, new), strict=True):
                if blob is None:
                    vanished = True
                else:
                    snapshots[url] = _parse_snapshot(url, blob)
            if not vanished:
                for content in snapshots.values():
                    edits.update(
                        (e.id, e) for e in content if episode is None or e.episode == episode
                    )
                return _Found(edits, read, list(snapshots))
            time.sleep(0.01 * attempt)
        raise StorageError(
            f"annotations at {resolve(self.url, self._settings).display} kept changing during "
            f"{READ_ATTEMPTS} reads (compactions in a loop?): try again"
        )


def _load_json(url: str, blob: bytes, expected: str) -> dict[str, Any]:
    where = _display(url)
    try:
        data = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where} is not valid JSON ({exc}): fix or delete it") from None
    if not isinstance(data, dict) or data.get("format") != expected:
        raise UserError(f"{where} is not a {expected} file: fix or delete it")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{where} has format version {version!r}; this physai-data-management reads "
            f"version {FORMAT_VERSION}: upgrade it"
        )
    return data


def _display(url: str) -> str:
    return url.split("?", 1)[0]  # never show a SAS


def _edit(url: str, data: object) -> Edit:
    try:
        return Edit.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(
            f"{_display(url)} holds an invalid edit ({where}: {first['msg']}): fix or delete it"
        ) from None


def _parse_edit(path: str, url: str, blob: bytes) -> Edit:
    data = _load_json(url, blob, EDIT_FORMAT)
    body = {k: v for k, v in data.items() if k not in ("format", "version", "time")}
    edit = _edit(url, body)
    match = _EDIT_PATH.match(path)
    if match is None or int(match.group(1)) != edit.episode or match.group(2) != edit.id:
        raise UserError(f"{_display(url)}: its name does not match its content: fix or delete it")
    return edit


def _parse_snapshot(url: str, blob: bytes) -> list[Edit]:
    data = _load_json(url, blob, SNAPSHOT_FORMAT)
    items = data.get("edits")
    if not isinstance(items, list):
        raise UserError(f"{_display(url)} has no list of edits: fix or delete it")
    return [_edit(url, item) for item in items]


def renumbered_snapshot(
    edits: Iterable[Edit], episodes: Mapping[int, int], *, writer: str = "curate"
) -> tuple[str, bytes] | None:
    """A snapshot carrying the edits of the episodes in `episodes` (old index → new index),
    renumbered, for a dataset made from this one: (path under `annotations/`, content).

    None when no edit concerns those episodes. Edits keep their ids, times and authors.
    """
    kept = sorted(
        (
            e.model_copy(update={"episode": episodes[e.episode]})
            for e in edits
            if e.episode in episodes
        ),
        key=lambda e: e.order,
    )
    if not kept:
        return None
    time_ns = _next_time_ns()
    name = f"snapshot-{time_ns:020d}-{writer}-{uuid.uuid4().hex}.json"
    document = {
        "format": SNAPSHOT_FORMAT,
        "version": FORMAT_VERSION,
        "created": _iso(time_ns),
        "writer": writer,
        "cutoff": kept[-1].id,
        "edits": [e.model_dump(mode="json") for e in kept],
    }
    return f"{ANNOTATIONS_DIR}/{name}", json.dumps(document, indent=1).encode()


def annotation_snapshot(
    outcomes: Mapping[int, Outcome] | None = None,
    labels: Mapping[int, Mapping[str, object]] | None = None,
    *,
    writer: str = "physai",
    author: str | None = None,
) -> tuple[str, bytes] | None:
    """Annotations for a dataset being written: (path under the dataset, snapshot bytes) to
    publish with it (`LeRobotDatasetWriter.add_file`), so episodes carry their outcome and
    labels from the moment the dataset appears. None when there is nothing to write."""
    writer = _check_name(writer, "writer")
    if not _WRITER.match(writer):
        raise UserError(f"writer {writer!r} must be letters, digits, '_' or '.'")
    who = _default_author() if author is None else _check_name(author, "author")
    edits: list[Edit] = []

    def edit(episode: int, op: Op, key: str | None = None, value: JsonValue = None) -> None:
        time_ns = _next_time_ns()
        edits.append(
            Edit(
                id=f"{time_ns:020d}-{writer}-{uuid.uuid4().hex}",
                time_ns=time_ns,
                writer=writer,
                author=who,
                episode=_check_episode(episode),
                op=op,
                key=key,
                value=value,
            )
        )

    for episode, outcome in sorted((outcomes or {}).items()):
        edit(episode, "set_outcome", value=_outcome(outcome))
    for episode, values in sorted((labels or {}).items()):
        for key, value in values.items():
            edit(episode, "set_label", _check_name(key, "label key"), _json_value(value))
    episodes = {e.episode: e.episode for e in edits}
    return renumbered_snapshot(edits, episodes, writer=writer)


# -- quality scores as episode metadata ------------------------------------------------------


def quality_url(dataset_url: str) -> str:
    """Where `store_quality` writes: `<dataset_url>/annotations/quality.json`."""
    return join_url(dataset_url, ANNOTATIONS_DIR, QUALITY_FILE)


def quality_document(scores: Sequence[EpisodeQuality]) -> bytes:
    """The `quality.json` document of `scores` (one per episode), as bytes."""
    indices = [q.episode_index for q in scores]
    if len(set(indices)) != len(indices):
        twice = sorted({i for i in indices if indices.count(i) > 1})
        raise UserError(f"quality scores name episodes more than once: {twice[:10]}")
    document = {
        "format": QUALITY_FORMAT,
        "version": FORMAT_VERSION,
        "created": _iso(time.time_ns()),
        "episodes": [
            q.model_dump(mode="json") for q in sorted(scores, key=lambda q: q.episode_index)
        ],
    }
    try:
        return json.dumps(document, indent=1, allow_nan=False).encode()
    except ValueError as exc:
        raise UserError(f"quality scores are not valid JSON: {exc}") from None


def store_quality(
    dataset_url: str, scores: Sequence[EpisodeQuality], settings: Settings | None = None
) -> str:
    """Write quality scores (one per episode) to `annotations/quality.json`, atomically.

    The file is replaced whole: the last call wins. Returns its URL.
    """
    data = quality_document(scores)
    url = quality_url(dataset_url)
    write_bytes(url, data, settings)
    return url


def load_quality(dataset_url: str, settings: Settings | None = None) -> list[EpisodeQuality]:
    """The scores `store_quality` wrote, by episode index."""
    url = quality_url(dataset_url)
    try:
        blob = read_bytes(url, settings)
    except NotFoundError:
        raise NotFoundError(
            f"{_display(url)} does not exist: score the dataset and call store_quality first"
        ) from None
    data = _load_json(url, blob, QUALITY_FORMAT)
    items = data.get("episodes")
    if not isinstance(items, list):
        raise UserError(f"{_display(url)} has no list of episodes: fix or delete it")
    try:
        return [EpisodeQuality.model_validate(item) for item in items]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(
            f"{_display(url)}: invalid scores ({first['msg']}): fix or delete it"
        ) from None


def score_dataset(
    dataset_url: str,
    quality_settings: QualitySettings | None = None,
    settings: Settings | None = None,
    *,
    store: bool = True,
) -> list[EpisodeQuality]:
    """Score every episode of a LeRobot dataset (no video decoded) and, by default, store the
    scores in `annotations/quality.json`, where curation filters find them."""
    from physai.data_management.lerobot import LeRobotDatasetReader

    with LeRobotDatasetReader(dataset_url, settings=settings) as reader:
        arrays = [
            EpisodeArrays.from_columns(reader.episode_data(e.episode_index), e.episode_index)
            for e in reader.episodes
        ]
    scores = score_episodes(arrays, quality_settings)
    if store:
        store_quality(dataset_url, scores, settings)
    return scores
