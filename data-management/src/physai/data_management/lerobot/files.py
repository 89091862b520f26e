"""Reading and writing a dataset's files at any storage location, with one-line errors.

Reads go through the location's fsspec filesystem (a plain path for local files). Writes go to
a local directory: the publish staging directory itself for local destinations, else a scratch
directory whose finished files are uploaded into the staging prefix one by one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from physai.core.errors import NotFoundError, PhysaiError, StorageError, UserError
from physai.core.storage import Location, Staging


@contextlib.contextmanager
def reading(display: str, what: str) -> Iterator[None]:
    """Map the errors of reading `display` onto physai's family (one line each)."""
    try:
        yield
    except PhysaiError:
        raise
    except FileNotFoundError:
        raise NotFoundError(f"{display} does not exist ({what})") from None
    except (pa.ArrowException, ValueError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise UserError(f"{display} is not a valid {what}: {detail}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {display}: {exc}") from None


def read_bytes(location: Location, what: str) -> bytes:
    """The whole file."""
    with reading(location.display, what):
        return bytes(location.fs.cat_file(location.path))


def read_json(location: Location, what: str) -> Any:
    """A JSON document."""
    data = read_bytes(location, what)
    with reading(location.display, what):
        return json.loads(data)


def read_jsonl(location: Location, what: str) -> list[Any]:
    """A JSON-lines document (blank lines skipped)."""
    data = read_bytes(location, what)
    with reading(location.display, what):
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def read_parquet(location: Location, what: str, columns: list[str] | None = None) -> pa.Table:
    """A parquet file as an arrow table."""
    # ParquetFile, not read_table: read_table imports pyarrow.dataset (and pandas), ~0.5 s.
    with reading(location.display, what):
        if location.local_path is not None:
            return pq.ParquetFile(str(location.local_path)).read(columns=columns)
        with location.fs.open(location.path, "rb") as handle:
            return pq.ParquetFile(handle).read(columns=columns)


def exists(location: Location) -> bool:
    """True when a file is at `location`."""
    with reading(location.display, "file"):
        return bool(location.fs.exists(location.path))


def glob(location: Location, pattern: str) -> list[str]:
    """Sorted relative paths below `location` matching `pattern` ('*' within one segment)."""
    base = location.path.rstrip("/")
    with reading(location.display, "directory"):
        found = location.fs.glob(f"{base}/{pattern}")
    return sorted(str(p)[len(base) + 1 :] for p in found)


def write_json(path: Path, document: Any) -> None:
    """JSON with LeRobot's layout (indent 4, UTF-8 kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


class OutputDir:
    """Where a writer builds its files: the staging directory, or a scratch one uploaded."""

    def __init__(self, staging: Staging) -> None:
        self._staging = staging
        local = staging.local_path
        self._scratch = local is None
        self.root = Path(tempfile.mkdtemp(prefix="physai-lerobot-out-")) if local is None else local

    def path(self, relative: str) -> Path:
        """The local path of `relative` (parents created)."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def done(self, relative: str) -> None:
        """`relative` is complete: upload it now (remote destinations)."""
        if self._scratch:
            local = self.root / relative
            self._staging.put(local, relative)
            local.unlink()

    def cleanup(self) -> None:
        """Remove the scratch directory (remote destinations)."""
        if self._scratch:
            shutil.rmtree(self.root, ignore_errors=True)


def skip_pandas_in_pyarrow() -> None:
    """Keep pyarrow from importing pandas in this process (about 0.6 s of a CLI's start-up).

    When pandas is installed, pyarrow imports it on its first array conversion, only to check
    whether the input is a pandas object; ours never are. Hiding pandas during that first check
    makes pyarrow remember "no pandas" for the rest of the process, so `Table.to_pandas()` will
    not work afterwards: call this only in short-lived CLI commands that never convert to pandas.
    Importing pandas directly still works.
    """
    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])  # pyarrow's one pandas check happens here
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas:
    """An import finder that makes `import pandas` fail."""

    def find_spec(self, name: str, *args: object) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is hidden from pyarrow here")
