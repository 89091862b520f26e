"""Packing episodes into files with LeRobot's size rules and chunk numbering.

Data (lerobot 0.6.1 `dataset_writer.py`): the next episode goes to a new parquet file when
`current size + average bytes per frame x its frames >= data_files_size_in_mb`. Videos: to a new
MP4 when `current size + the episode's encoded size >= video_files_size_in_mb`. Each camera
numbers its files on its own; a chunk directory holds `chunks_size` files. Episode metadata
rows are flushed in batches of 10 and roll over at `data_files_size_in_mb` too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from physai.data_management.lerobot import format as fmt
from physai.data_management.lerobot.files import OutputDir
from physai.data_management.lerobot.video_encode import PackedVideo
from physai.data_management.lerobot.video_remux import FilePart, VideoWindow

EPISODE_ROWS_PER_FLUSH = 10
ROW_GROUP_ROWS = 16_384
ROW_GROUP_BYTES = 16 * 1024 * 1024


class ParquetFiles:
    """Rows appended to `chunk-XXX/file-XXX.parquet` files, rolling over by size.

    Tables are buffered and written as row groups of up to `ROW_GROUP_ROWS` rows or
    `ROW_GROUP_BYTES` bytes (many small row groups make writing and reading slower).
    """

    def __init__(
        self,
        out: OutputDir,
        template: str,
        schema: pa.Schema,
        *,
        limit_mb: float,
        chunks_size: int,
    ) -> None:
        self._out = out
        self._template = template
        self._schema = schema
        self._limit = limit_mb * fmt.MB
        self._chunks_size = chunks_size
        self.chunk = self.file = 0
        self._sink: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0  # rows in the current file, buffered ones included
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._flushed_bytes = 0  # in-memory bytes of the rows already written to the file
        self._relative = ""

    def _estimated_size(self) -> float:
        written = float(self._sink.tell())
        ratio = written / self._flushed_bytes if self._flushed_bytes else 1.0
        return written + self._pending_bytes * ratio

    def target(self, rows: int) -> tuple[int, int]:
        """The (chunk, file) that `rows` more rows would go to."""
        if self._writer is None:
            return self.chunk, self.file
        size = self._estimated_size()
        per_row = size / self._rows if self._rows else 0.0
        if size + per_row * rows >= self._limit:
            return fmt.next_chunk_file(self.chunk, self.file, self._chunks_size)
        return self.chunk, self.file

    def write(self, table: pa.Table) -> tuple[int, int]:
        """Append `table`'s rows; the (chunk, file) they go to."""
        target = self.target(table.num_rows)
        if self._writer is not None and target != (self.chunk, self.file):
            self.close()
        self.chunk, self.file = target
        if self._writer is None:
            self._relative = self._template.format(chunk_index=self.chunk, file_index=self.file)
            self._sink = pa.OSFile(str(self._out.path(self._relative)), "wb")
            self._writer = pq.ParquetWriter(
                self._sink, self._schema, compression="snappy", use_dictionary=True
            )
            self._rows = self._flushed_bytes = 0
        rows = table.cast(self._schema)
        self._pending.append(rows)
        self._pending_rows += rows.num_rows
        self._pending_bytes += rows.nbytes
        self._rows += rows.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()
        return self.chunk, self.file

    def _flush(self) -> None:
        if self._writer is not None and self._pending:
            self._writer.write_table(pa.concat_tables(self._pending))
            self._flushed_bytes += self._pending_bytes
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def close(self) -> None:
        """Finish the current file (and upload it, for remote destinations)."""
        if self._writer is not None:
            self._flush()
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None
            self._out.done(self._relative)

    def abort(self) -> None:
        """Drop the current file's writer (the staging directory is discarded anyway)."""
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        if self._writer is not None:
            try:
                self._writer.close()
                self._sink.close()
            finally:
                self._writer = self._sink = None


class CameraFiles:
    """One camera's packed MP4 files: episodes packed into new files, or whole files copied."""

    def __init__(self, out: OutputDir, key: str, *, limit_mb: float, chunks_size: int) -> None:
        self._out = out
        self._key = key
        self._limit = limit_mb * fmt.MB
        self._chunks_size = chunks_size
        self.chunk = self.file = 0
        self._used = False  # a file was started at (chunk, file): the next one moves on
        self._current: PackedVideo | None = None
        self._relative = ""
        self._copy: str | None = None  # the copied file whose episodes are being added

    def append(self, episode_mp4: Path, frames: int, fps: int) -> dict[str, Any]:
        """Pack one episode's MP4; its `videos/<camera>/...` episode-metadata values."""
        self._roll_over(os.path.getsize(episode_mp4), None)
        current = self._open()
        return self._row(*current.append(episode_mp4, frames, fps))

    def append_window(self, window: VideoWindow) -> dict[str, Any]:
        """Pack one episode's encoded packets (no re-encoding); its episode-metadata values.

        A window whose codec parameters differ from the current file's starts a new file.
        """
        self._roll_over(window.payload_bytes, window)
        current = self._open()
        return self._row(*current.append_window(window))

    def append_from_copy(self, part: FilePart) -> dict[str, Any]:
        """Add an episode of a source file copied whole: the file is copied at its first
        episode (as a new file) and finished at its last; the windows stay the source's."""
        if part.first:
            self.close()
            self._next_slot()
            self._relative = fmt.video_path(self._key, self.chunk, self.file)
            target = self._out.path(self._relative)
            source = part.location
            if source.local_path is not None:
                shutil.copyfile(source.local_path, target)
            else:
                source.fs.get_file(source.path, str(target))
            self._copy = self._relative
        if self._copy is None:
            raise ValueError("append_from_copy: the file's first episode was not added first")
        row = self._row(part.from_timestamp, part.to_timestamp)
        if part.last:
            self._out.done(self._copy)
            self._copy = None
        return row

    def _next_slot(self) -> None:
        if self._used:
            self.chunk, self.file = fmt.next_chunk_file(self.chunk, self.file, self._chunks_size)
        self._used = True

    def _roll_over(self, size: int, window: VideoWindow | None) -> None:
        current = self._current
        if current is None:
            return
        if current.bytes + size >= self._limit or (
            window is not None and not current.accepts(window)
        ):
            self.close()

    def _open(self) -> PackedVideo:
        if self._copy is not None:
            raise ValueError("a copied file's episodes were not all added")
        if self._current is None:
            self._next_slot()
            self._relative = fmt.video_path(self._key, self.chunk, self.file)
            self._current = PackedVideo(self._out.path(self._relative))
        return self._current

    def _row(self, start: float, end: float) -> dict[str, Any]:
        prefix = f"videos/{self._key}/"
        return {
            prefix + "chunk_index": self.chunk,
            prefix + "file_index": self.file,
            prefix + "from_timestamp": start,
            prefix + "to_timestamp": end,
        }

    def close(self) -> None:
        """Finish the current file (and upload it, for remote destinations)."""
        if self._copy is not None:
            raise ValueError("a copied file's episodes were not all added")
        if self._current is not None:
            self._current.close()
            self._current = None
            self._out.done(self._relative)

    def abort(self) -> None:
        """Drop the current file."""
        self._copy = None
        if self._current is not None:
            self._current.abort()
            self._current = None


class EpisodeRows:
    """`meta/episodes/chunk-XXX/file-XXX.parquet`: one row per episode, flushed in batches."""

    def __init__(
        self, out: OutputDir, schema: pa.Schema, *, limit_mb: float, chunks_size: int
    ) -> None:
        self._files = ParquetFiles(
            out, fmt.EPISODES_PATH, schema, limit_mb=limit_mb, chunks_size=chunks_size
        )
        self._schema = schema
        self._buffer: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Queue one episode's row."""
        self._buffer.append(row)
        if len(self._buffer) >= EPISODE_ROWS_PER_FLUSH:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows, with the meta/episodes file indices they land in."""
        if not self._buffer:
            return
        chunk, file = self._files.target(len(self._buffer))
        for row in self._buffer:
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = chunk, file
        self._files.write(pa.Table.from_pylist(self._buffer, schema=self._schema))
        self._buffer = []

    def close(self) -> None:
        """Write what is queued and finish the file."""
        self.flush()
        self._files.close()

    def abort(self) -> None:
        """Drop the writer."""
        self._buffer = []
        self._files.abort()
