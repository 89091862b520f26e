"""A curation judge: success or failure of each episode, with a reason, from a VLM or a rule.

    judge = OpenAIJudge("http://localhost:8000/v1", "nvidia/Cosmos-Reason1-7B")  # any
    verdicts = judge_dataset("datasets/pick/v1", judge, camera="observation.images.front")
    annotate(verdicts, "datasets/pick/v1")          # outcomes + reasons as episode annotations

`OpenAIJudge` posts sampled frames (JPEG data URLs) and the task text to an OpenAI-compatible
chat-completions endpoint (vLLM serving Cosmos-Reason, or a hosted model) and parses a strict
JSON verdict `{"outcome": "success"|"failure", "reason": str, "confidence": float}`; it retries
429 and 5xx with exponential backoff. The API key comes from an argument or an environment
variable and is never logged or printed. `LocalJudge` decides from the episode's own data
(a success label or a rule) with stable reasons: the same interface, for tests and offline use.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import httpx
import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.core.logs import redact
from physai.core.storage import write_bytes

if TYPE_CHECKING:
    from physai.data_management import LeRobotDatasetReader

Outcome = Literal["success", "failure"]
API_KEY_ENV: Final = "PHYSAI_JUDGE_API_KEY"
URL_ENV: Final = "PHYSAI_JUDGE_URL"
MODEL_ENV: Final = "PHYSAI_JUDGE_MODEL"
REPORT_FORMAT: Final = "physai.judge.report"
RETRY_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})
SYSTEM_PROMPT: Final = (
    "You review recordings of a robot doing a task. You get frames in time order and the task. "
    "Decide whether the robot completed the task. Answer with one JSON object and nothing else: "
    '{"outcome": "success" or "failure", "reason": one short sentence naming what you saw, '
    '"confidence": a number from 0 to 1}.'
)


class JudgeError(UserError):
    """The judge could not give a verdict (bad answer, refused request, endpoint down)."""


@dataclass(frozen=True)
class Verdict:
    """One judgment of one episode."""

    outcome: Outcome
    reason: str
    confidence: float

    def to_json(self) -> dict[str, Any]:
        """The verdict as a JSON object."""
        return {"outcome": self.outcome, "reason": self.reason, "confidence": self.confidence}


@dataclass(frozen=True)
class EpisodeVerdict:
    """A verdict and the episode it is about."""

    episode: int
    verdict: Verdict


@dataclass
class Evidence:
    """What a judge sees of one episode: task text, sampled frames, the episode's columns."""

    episode: int
    task: str
    frames: list[NDArray[np.uint8]] = field(default_factory=list)
    data: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    label: bool | None = None


class Judge(Protocol):
    """Anything that turns the evidence of one episode into a verdict."""

    def judge(self, evidence: Evidence) -> Verdict:
        """The verdict on one episode."""
        ...


# -- parsing ---------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_verdict(text: str) -> Verdict:
    """A verdict from a model's answer: one JSON object (a ```json fence around it is allowed)
    with exactly outcome, reason and confidence; anything else raises JudgeError saying why."""
    if not isinstance(text, str) or not text.strip():
        raise JudgeError("the judge's answer is empty: expected a JSON verdict")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise JudgeError(f"the judge's answer is not JSON: {_excerpt(text)}") from None
    if not isinstance(data, dict):
        raise JudgeError(f"the judge's answer is not a JSON object: {_excerpt(text)}")
    keys = {"outcome", "reason", "confidence"}
    if set(data) != keys:
        missing, extra = sorted(keys - set(data)), sorted(set(data) - keys)
        parts = ([f"missing {missing}"] if missing else []) + (
            [f"unexpected {extra}"] if extra else []
        )
        raise JudgeError(f"the judge's verdict has the wrong fields: {'; '.join(parts)}")
    outcome, reason, confidence = data["outcome"], data["reason"], data["confidence"]
    if outcome not in ("success", "failure"):
        raise JudgeError(f"the judge's outcome must be 'success' or 'failure', got {outcome!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise JudgeError("the judge's reason must be a non-empty string")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise JudgeError(f"the judge's confidence must be a number, got {confidence!r}")
    if not 0.0 <= float(confidence) <= 1.0:
        raise JudgeError(f"the judge's confidence must be within 0..1, got {confidence!r}")
    return Verdict(outcome, " ".join(reason.split()), float(confidence))


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(str(text).split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


# -- frames ----------------------------------------------------------------------------------


def jpeg_data_url(frame: NDArray[np.uint8], *, quality: int = 85, max_side: int = 512) -> str:
    """An HxWx3 uint8 frame as a `data:image/jpeg;base64,...` URL (longest side <= max_side)."""
    from PIL import Image

    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"a frame must be HxWx3 uint8, got {array.shape} {array.dtype}")
    image = Image.fromarray(array, "RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def sample_indices(length: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `length` frames, first and last included."""
    if length <= 0:
        return []
    if count <= 1:
        return [length - 1]
    return sorted({round(i * (length - 1) / (count - 1)) for i in range(count)})


def collect_evidence(
    reader: LeRobotDatasetReader,
    episode: int,
    *,
    camera: str | None,
    frames: int = 8,
    label_key: str | None = None,
) -> Evidence:
    """The evidence of one episode: its task, `frames` sampled frames of `camera` (none when
    None) and its columns; `label_key` names a column whose last value is a success label."""
    if camera is not None and camera not in reader.camera_keys:
        raise UserError(
            f"dataset {reader.url} has no camera feature {camera!r} "
            f"(cameras: {', '.join(reader.camera_keys) or 'none'})"
        )
    info = next((e for e in reader.episodes if e.episode_index == episode), None)
    if info is None:
        raise UserError(f"dataset {reader.url} has no episode {episode}")
    data = reader.episode_data(episode)
    images: list[NDArray[np.uint8]] = []
    if camera is not None:
        for row in sample_indices(info.length, frames):
            images.append(reader.get_frame(info.dataset_from_index + row)[camera])
    label: bool | None = None
    if label_key is not None:
        if label_key not in data:
            raise UserError(f"dataset {reader.url} has no column {label_key!r} for labels")
        label = bool(np.asarray(data[label_key])[-1].reshape(-1)[0])
    return Evidence(episode, " / ".join(info.tasks) or "", images, data, label)


# -- judges ----------------------------------------------------------------------------------


class LocalJudge:
    """A deterministic judge: the evidence's success label, else `rule(evidence)`.

    The reason names what decided, so the same episode always gets the same verdict.
    """

    def __init__(
        self,
        rule: Callable[[Evidence], bool] | None = None,
        *,
        rule_name: str = "rule",
    ) -> None:
        self.rule = rule
        self.rule_name = rule_name

    def judge(self, evidence: Evidence) -> Verdict:
        """Success or failure from the label, else the rule; JudgeError when neither exists."""
        if evidence.label is not None:
            outcome: Outcome = "success" if evidence.label else "failure"
            return Verdict(
                outcome,
                f"success label of episode {evidence.episode} is {str(evidence.label).lower()}",
                1.0,
            )
        if self.rule is None:
            raise JudgeError(
                f"episode {evidence.episode} has no success label and the LocalJudge no rule"
            )
        passed = bool(self.rule(evidence))
        outcome = "success" if passed else "failure"
        word = "met" if passed else "not met"
        return Verdict(outcome, f"{self.rule_name} {word} by episode {evidence.episode}", 1.0)


def final_state_rule(
    key: str, index: int, *, above: float | None = None, below: float | None = None
) -> Callable[[Evidence], bool]:
    """A LocalJudge rule: the last value of column `key`, element `index`, is above/below."""
    if above is None and below is None:
        raise UserError("final_state_rule needs above= or below=")

    def rule(evidence: Evidence) -> bool:
        if key not in evidence.data:
            raise UserError(f"episode {evidence.episode} has no column {key!r}")
        value = float(np.asarray(evidence.data[key])[-1].reshape(-1)[index])
        return (above is None or value > above) and (below is None or value < below)

    return rule


class OpenAIJudge:
    """A judge behind an OpenAI-compatible `/chat/completions` endpoint.

    `base_url` ends before `/chat/completions` (e.g. `http://host:8000/v1`). The key comes from
    `api_key` or the `api_key_env` environment variable (sent as a Bearer token; never shown).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str = API_KEY_ENV,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        json_mode: bool = True,
        system_prompt: str = SYSTEM_PROMPT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not re.match(r"^https?://", base_url or ""):
            raise UserError(f"judge endpoint {base_url!r} must be an http(s) URL")
        if not model:
            raise UserError("name the judge's model (e.g. nvidia/Cosmos-Reason1-7B)")
        if max_retries < 0 or backoff_s < 0:
            raise UserError("max_retries and backoff_s must be >= 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.json_mode = json_mode
        self.system_prompt = system_prompt
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    @classmethod
    def from_env(cls, **kwargs: Any) -> OpenAIJudge:
        """A judge from PHYSAI_JUDGE_URL, PHYSAI_JUDGE_MODEL and PHYSAI_JUDGE_API_KEY."""
        url, model = os.environ.get(URL_ENV), os.environ.get(MODEL_ENV)
        if not url or not model:
            raise UserError(f"set {URL_ENV} and {MODEL_ENV} to use the VLM judge")
        return cls(url, model, **kwargs)

    def __repr__(self) -> str:
        key = "set" if self._key else "none"
        return f"OpenAIJudge({redact(self.url)!r}, {self.model!r}, key={key})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_body(self, evidence: Evidence) -> dict[str, Any]:
        """The chat-completions request for one episode."""
        content: list[dict[str, Any]] = [
            {
                "type": "text",
                "text": f"Task: {evidence.task or '(no task text)'}\n"
                f"Frames: {len(evidence.frames)} in time order. Give your JSON verdict.",
            }
        ]
        content += [
            {"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}}
            for frame in evidence.frames
        ]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": content},
            ],
            "temperature": 0,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def judge(self, evidence: Evidence) -> Verdict:
        """Ask the endpoint about one episode; JudgeError if no valid verdict comes back."""
        payload = self._post(self.request_body(evidence))
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            shown = _excerpt(json.dumps(payload))
            raise JudgeError(
                f"the judge's response has no choices[0].message.content: {shown}"
            ) from None
        if not isinstance(content, str):
            raise JudgeError("the judge's message content is not text")
        return parse_verdict(content)

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        where = redact(self.url)
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.post(self.url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                if last:
                    raise JudgeError(
                        f"judge endpoint {where} unreachable after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}"
                    ) from None
                self._sleep(attempt, None)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            if response.status_code != 200:
                raise JudgeError(
                    f"judge endpoint {where} answered HTTP {response.status_code} after "
                    f"{attempt + 1} attempt(s): {_excerpt(response.text)}"
                )
            try:
                payload = response.json()
            except ValueError:
                raise JudgeError(f"judge endpoint {where} did not answer JSON") from None
            if not isinstance(payload, dict):
                raise JudgeError(f"judge endpoint {where} answered {type(payload).__name__}")
            return payload
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff_s * (2**attempt), self.max_backoff_s)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = min(max(float(retry_after), 0.0), self.max_backoff_s)
        time.sleep(delay)


# -- datasets --------------------------------------------------------------------------------


def judge_dataset(
    dataset_url: str,
    judge: Judge,
    *,
    camera: str | None,
    frames: int = 8,
    episodes: Iterable[int] | None = None,
    label_key: str | None = None,
) -> list[EpisodeVerdict]:
    """Judge the episodes of a LeRobot dataset (all unless `episodes`), in episode order."""
    from physai.data_management import LeRobotDatasetReader

    reader = LeRobotDatasetReader(dataset_url)
    try:
        chosen = (
            [e.episode_index for e in reader.episodes]
            if episodes is None
            else sorted(set(episodes))
        )
        results = []
        for episode in chosen:
            evidence = collect_evidence(
                reader, episode, camera=camera, frames=frames, label_key=label_key
            )
            results.append(EpisodeVerdict(episode, judge.judge(evidence)))
        return results
    finally:
        reader.close()


def annotate(
    verdicts: Sequence[EpisodeVerdict], dataset_url: str, *, author: str = "physai-judge"
) -> int:
    """Write each verdict as the episode's outcome, its reason as the note; how many."""
    from physai.data_management import Annotations

    notes = Annotations(dataset_url, author=author)
    for item in verdicts:
        notes.set_outcome(item.episode, item.verdict.outcome, note=item.verdict.reason)
    return len(verdicts)


def report(verdicts: Sequence[EpisodeVerdict], *, dataset_url: str, judge: str) -> dict[str, Any]:
    """The JSON report of a judged dataset."""
    return {
        "format": REPORT_FORMAT,
        "version": 1,
        "dataset": redact(dataset_url),
        "judge": judge,
        "episodes": [{"episode": v.episode, **v.verdict.to_json()} for v in verdicts],
        "success": sum(v.verdict.outcome == "success" for v in verdicts),
        "failure": sum(v.verdict.outcome == "failure" for v in verdicts),
    }


def write_report(url: str, document: Mapping[str, Any]) -> None:
    """Write a report (atomically) to a path or storage URL."""
    write_bytes(url, (json.dumps(document, indent=1) + "\n").encode())


def load_report(data: bytes | str) -> list[EpisodeVerdict]:
    """The verdicts of a report written by `write_report` (strictly checked)."""
    try:
        document = json.loads(data)
    except json.JSONDecodeError:
        raise UserError("the judge report is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != REPORT_FORMAT:
        raise UserError(f"not a judge report (format must be {REPORT_FORMAT!r})")
    items = document.get("episodes")
    if not isinstance(items, list):
        raise UserError("the judge report has no episodes list")
    verdicts = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("episode"), int):
            raise UserError("a judge report entry has no episode index")
        fields = {k: item.get(k) for k in ("outcome", "reason", "confidence")}
        verdicts.append(EpisodeVerdict(item["episode"], parse_verdict(json.dumps(fields))))
    return verdicts
