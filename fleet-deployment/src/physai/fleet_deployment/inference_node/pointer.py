"""The watched pointer: which version folder of a policy the node should be running.

A pointer is one of two things, told apart by its name:

- `current.json` (any name ending in `.json`): `{"policy": "v7"}`, the version folder, relative
  to the pointer's own folder (or absolute).
- anything else, e.g. `current`: a symbolic link to the version folder.

    write_pointer("policies/current", "policies/v7")      # atomic: a new link renamed over
    read_pointer("policies/current")                      # Path('/abs/policies/v7')
    watcher = PointerWatcher("policies/current", on_change=node.swap_to)

Both are replaced atomically by `write_pointer` (written beside, then renamed), so a reader
never sees a half-written pointer. A version folder must be complete before the pointer names
it; the policy's sha256 check refuses a half-copied file.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from physai.core.errors import UserError

POINTER_KEY = "policy"
Identity = tuple[str, tuple[tuple[str, int, int], ...]]


def is_json_pointer(pointer: str | Path) -> bool:
    """Whether `pointer` is the JSON kind (its name ends in `.json`) rather than a link."""
    return str(pointer).endswith(".json")


def read_pointer(pointer: str | Path) -> Path:
    """The absolute, resolved version folder `pointer` names; UserError when it names none."""
    path = Path(pointer)
    if is_json_pointer(path):
        try:
            named = json.loads(path.read_text(encoding="utf-8"))[POINTER_KEY]
        except FileNotFoundError:
            raise UserError(f"pointer {path} does not exist") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f'pointer {path} is not JSON like {{"{POINTER_KEY}": "v7"}} (a version folder)'
            ) from None
        if not isinstance(named, str) or not named:
            raise UserError(f'pointer {path}: "{POINTER_KEY}" must name a version folder')
        target = path.parent / named
    else:
        if not path.exists() and not path.is_symlink():
            raise UserError(f"pointer {path} does not exist")
        target = path
    resolved = target.resolve()
    if not resolved.is_dir():
        raise UserError(f"pointer {path} names {resolved}, which is not a folder")
    return resolved


def write_pointer(pointer: str | Path, target: str | Path) -> None:
    """Point `pointer` at the version folder `target`, atomically (relative when they share a
    parent, so the pair can be moved together)."""
    path = Path(pointer)
    folder = Path(target)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a policy version folder")
    name = os.path.relpath(folder.resolve(), path.parent.resolve())
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if is_json_pointer(path):
        staging.write_text(json.dumps({POINTER_KEY: name}) + "\n", encoding="utf-8")
    else:
        staging.unlink(missing_ok=True)
        staging.symlink_to(name, target_is_directory=True)
    os.replace(staging, path)


def identity(folder: Path) -> Identity:
    """What makes a version folder new to the watcher: its path and the size and mtime of each
    file in it, so a folder refused while half-copied is tried again once the copy completes
    (and a refused complete one is not retried every poll)."""
    files: list[tuple[str, int, int]] = []
    try:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file():
                stat = entry.stat()
                files.append((entry.name, stat.st_size, stat.st_mtime_ns))
    except OSError:
        pass
    return str(folder), tuple(files)


class PointerWatcher:
    """Polls a pointer every `interval_s` on a thread of its own and calls `on_change(folder)`
    when it names a different version folder than the last one seen.

    `on_change` runs on the watcher's thread (loading there keeps it off the control loop).
    Problems with the pointer itself (missing, bad JSON) go to `on_problem`, once per distinct
    message, and the watcher keeps polling.
    """

    def __init__(
        self,
        pointer: str | Path,
        on_change: Callable[[Path], None],
        *,
        interval_s: float = 0.5,
        current: Path | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise UserError(f"watch interval must be above 0 s, got {interval_s}")
        self.pointer = Path(pointer)
        self.interval_s = interval_s
        self._on_change = on_change
        self._on_problem = on_problem
        self._last: Identity | None = identity(current.resolve()) if current else None
        self._problem: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> Path | None:
        """Check the pointer once; the new folder when it changed (after `on_change` ran)."""
        try:
            folder = read_pointer(self.pointer)
        except UserError as exc:
            if exc.message != self._problem and self._on_problem is not None:
                self._on_problem(exc.message)
            self._problem = exc.message
            return None
        self._problem = None
        seen = identity(folder)
        if seen == self._last:
            return None
        self._last = seen
        self._on_change(folder)
        return folder

    def start(self) -> None:
        """Start polling on a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="physai-pointer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for a swap in progress to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # the watcher must outlive any bad version
                if self._on_problem is not None:
                    self._on_problem(f"pointer {self.pointer}: {type(exc).__name__}: {exc}")
