"""The SiL report: what one closed-loop evaluation of an exported policy measured.

    report = SilReport.model_validate_json(Path("report.json").read_text())
    report.success_rate, report.mean_return, report.latency.p99_us
    [e.episode_return for e in report.episodes]

`report.json` is this model as indented JSON (`format: physai.sil-report/1`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_FORMAT: Literal["physai.sil-report/1"] = "physai.sil-report/1"
REPORT_NAME = "report.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EpisodeResult(_Frozen):
    """One closed-loop episode."""

    index: int = Field(ge=0)
    seed: int = Field(ge=0, description="the environment's reset seed (first seed + index)")
    episode_return: float = Field(description="sum of the rewards")
    length: int = Field(ge=0, description="environment steps (= policy calls)")
    success: bool | None = Field(description="the task's success signal; None when it has none")
    terminated: bool = Field(description="ended by the task (a fall, ...), not by the time limit")


class PolicyInfo(_Frozen):
    """Which exported policy ran, and how."""

    name: str
    path: str
    kind: str = Field(description="policy.json `policy`: mlp_actor, recurrent_actor, ...")
    format: str = Field(description="the file that ran: onnx, torchscript or tensorrt")
    device: str
    sha256: str = Field(description="sha256 of the file that ran (checked against policy.json)")
    source_task: str | None = None
    source_checkpoint: str | None = None


class LatencySummary(_Frozen):
    """Per-call latency of the policy during the rollouts, in microseconds."""

    count: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    max_us: float
    budget_us: float | None = Field(
        None, description="1e6 / control_rate_hz: the time one control step may take"
    )


class SilReport(_Frozen):
    """The whole of report.json."""

    format: Literal["physai.sil-report/1"] = REPORT_FORMAT
    task: str
    env_id: str
    policy: PolicyInfo
    seed: int = Field(ge=0, description="first seed; episode i resets with seed + i")
    episodes: list[EpisodeResult] = Field(min_length=1)
    success_rate: float | None = Field(description="None when the task has no success signal")
    mean_return: float
    std_return: float
    mean_length: float
    latency: LatencySummary
    control_rate_hz: float | None = None
    video: str | None = Field(None, description="the first episode's mp4, relative to the report")
    created: datetime
    seconds: float = Field(description="wall-clock time of the rollouts")
    versions: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> str:
        """The report as indented JSON text (what report.json holds)."""
        return self.model_dump_json(indent=2) + "\n"

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows of the human summary."""
        count = len(self.episodes)
        success = "n/a" if self.success_rate is None else f"{self.success_rate:.0%}"
        p99 = f"{self.latency.p99_us:.1f} us"
        if self.latency.budget_us is not None:
            p99 += f" (budget {self.latency.budget_us:.0f} us at {self.control_rate_hz:g} Hz)"
        return [
            ("task", f"{self.task} ({self.env_id})"),
            ("policy", f"{self.policy.name} [{self.policy.format} on {self.policy.device}]"),
            ("episodes", f"{count} (seeds {self.seed}..{self.seed + count - 1})"),
            ("success rate", success),
            ("return", f"{self.mean_return:.3f} +/- {self.std_return:.3f}"),
            ("length", f"{self.mean_length:.1f} steps"),
            ("latency p50", f"{self.latency.p50_us:.1f} us"),
            ("latency p99", p99),
        ]
