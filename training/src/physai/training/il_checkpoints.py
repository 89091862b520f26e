"""Checkpoints of imitation-learning runs: atomic, verified, never half-visible.

    store = ILCheckpointStore("outputs/act-pick")
    store.save(step=100, write=lambda folder: ...)        # -> outputs/act-pick/checkpoints/000100
    store.latest()                                        # {"step": 100, "checkpoint": ...}
    with store.open_latest() as folder:                   # verified local copy (None: no latest)
        ...

Layout under the run's output URL:

    checkpoints/<step:06d>/pretrained_model/   lerobot `save_pretrained` output (config.json,
                                               model.safetensors, processor JSON + safetensors)
    checkpoints/<step:06d>/training_state.pt   optimizer, scheduler, step, RNG: tensors and
                                               plain values, loaded with weights_only=True
    checkpoints/<step:06d>/manifest.json       sha256 of every file (written by storage.publish)
    latest.json                                {"step", "checkpoint", "manifest_sha256"}

A checkpoint is written to a local temporary folder, then published with
`physai.core.storage.publish` (a rename locally, a commit marker on Blob), and `latest.json` is
rewritten (atomically) only after that succeeded: a kill, a full disk or an exception at any
point leaves `latest.json` naming the previous complete checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from physai.core import storage
from physai.core.errors import NotFoundError, PhysaiError, UserError

if TYPE_CHECKING:
    from physai.core.settings import Settings

LATEST = "latest.json"
CHECKPOINTS = "checkpoints"
POINTER_FORMAT = "physai.il.latest/1"


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, storage refused); latest.json is untouched."""


def step_name(step: int) -> str:
    """The folder name of the checkpoint of `step` (zero-padded so that names sort by step)."""
    return f"{step:06d}"


class ILCheckpointStore:
    """The checkpoints and latest.json pointer under one run output URL (local or Blob)."""

    def __init__(self, output_url: str, settings: Settings | None = None) -> None:
        self.output_url = output_url.rstrip("/")
        self.settings = settings

    def url(self, *parts: str) -> str:
        """A URL under the output."""
        return storage.join_url(self.output_url, *parts)

    def checkpoint_url(self, step: int) -> str:
        """Where the checkpoint of `step` is published."""
        return self.url(CHECKPOINTS, step_name(step))

    def save(self, step: int, write: Callable[[Path], None]) -> str:
        """Write a checkpoint with `write(folder)`, publish it, then point latest.json at it.

        Returns the checkpoint URL. A failure while writing or publishing (for example a full
        disk) raises CheckpointWriteError and leaves latest.json as it was.
        """
        url = self.checkpoint_url(step)
        previous = self.latest()
        kept = f"latest.json still names step {previous['step']}" if previous else "none saved"
        try:
            with tempfile.TemporaryDirectory(prefix="physai-il-ckpt-") as tmp:
                folder = Path(tmp) / step_name(step)
                folder.mkdir()
                write(folder)
                with storage.publish(url, self.settings, overwrite=True) as staging:
                    for child in sorted(folder.iterdir()):
                        staging.put(child, child.name)
        except OSError as exc:
            reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise CheckpointWriteError(
                f"could not write the checkpoint of step {step} to {url}: {reason} ({kept})"
            ) from exc
        except PhysaiError as exc:
            raise CheckpointWriteError(
                f"could not publish the checkpoint of step {step} to {url}: {exc} ({kept})"
            ) from exc
        manifest = storage.read_text(storage.join_url(url, storage.MANIFEST_NAME), self.settings)
        pointer = {
            "format": POINTER_FORMAT,
            "step": step,
            "checkpoint": f"{CHECKPOINTS}/{step_name(step)}",
            "manifest_sha256": hashlib.sha256(manifest.encode()).hexdigest(),
        }
        storage.write_text(self.url(LATEST), json.dumps(pointer, indent=2) + "\n", self.settings)
        return url

    def latest(self) -> dict[str, Any] | None:
        """The latest.json pointer, or None when there is none (UserError when it is unreadable)."""
        url = self.url(LATEST)
        if not storage.exists(url, self.settings):
            return None
        try:
            pointer = json.loads(storage.read_text(url, self.settings))
        except ValueError:
            raise UserError(f"{url} is not a valid latest.json") from None
        if not isinstance(pointer, dict) or not isinstance(pointer.get("step"), int):
            raise UserError(f"{url} is not a valid latest.json (no integer 'step')")
        if not isinstance(pointer.get("checkpoint"), str):
            raise UserError(f"{url} is not a valid latest.json (no 'checkpoint')")
        return pointer

    @contextmanager
    def open_latest(self) -> Iterator[Path | None]:
        """A verified local folder holding the latest checkpoint (None when there is none).

        Local outputs are verified in place; remote ones are copied (sha256-checked) to a
        temporary folder. A checkpoint whose files differ from its manifest raises UserError.
        """
        pointer = self.latest()
        if pointer is None:
            yield None
            return
        url = self.url(str(pointer["checkpoint"]))
        where = f"checkpoint {url} (step {pointer['step']})"
        try:
            storage.require_published(url, self.settings)
            problems = storage.verify_manifest(url, self.settings)
        except NotFoundError as exc:
            raise UserError(f"{where} is missing or incomplete: {exc}") from None
        if problems:
            listed = ", ".join(str(p) for p in problems[:3])
            raise UserError(f"{where} is corrupt ({listed}): delete it or start a fresh output")
        manifest = storage.read_text(storage.join_url(url, storage.MANIFEST_NAME), self.settings)
        expected = pointer.get("manifest_sha256")
        if expected and hashlib.sha256(manifest.encode()).hexdigest() != expected:
            raise UserError(f"{where} is corrupt: its manifest differs from latest.json's")
        local = storage.resolve(url, self.settings).local_path
        if local is not None:
            yield local
            return
        tmp = Path(tempfile.mkdtemp(prefix="physai-il-resume-"))
        try:
            storage.copy_tree(url, str(tmp), self.settings, progress=False, fresh=True)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
