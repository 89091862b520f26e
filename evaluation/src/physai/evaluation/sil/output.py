"""Where a SiL report goes: a folder (path or storage URL) published atomically.

The folder appears whole (report.json, the video when asked, manifest.json) or not at all; an
existing folder is refused unless `overwrite`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from physai.core import storage
from physai.core.errors import UserError
from physai.evaluation.sil.report import REPORT_NAME, SilReport

if TYPE_CHECKING:
    from physai.core.settings import Settings


def check_output(out: str, overwrite: bool, settings: Settings | None = None) -> None:
    """UserError when `out` exists and may not be replaced (checked before any rollout)."""
    if not overwrite and storage.exists(out, settings):
        raise UserError(f"{out} already exists: choose another --out or pass --overwrite")


def publish_report(
    report: SilReport,
    out: str,
    *,
    video: Path | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
) -> str:
    """Publish `report` as OUT/report.json (and `video` as OUT/<report.video>); return `out`."""
    if (video is None) != (report.video is None):
        raise ValueError("pass the video file exactly when the report names one")
    with storage.publish(out, settings, overwrite=overwrite) as staging:
        staging.write_text(REPORT_NAME, report.to_json())
        if video is not None and report.video is not None:
            staging.put(video, report.video)
    return out
