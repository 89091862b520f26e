"""The curation judge: the HTTP client against a real local chat-completions server (retries,
auth, frames as JPEG data URLs, strict parsing), the deterministic LocalJudge, verdicts written
as episode annotations and as a report, and the Cosmos-Reason runner path end to end."""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from physai.core.errors import UserError
from physai.data_management import Annotations, LeRobotDatasetReader, LeRobotDatasetWriter
from physai.synthetic_data.cosmos_runner import run, run_reason
from physai.synthetic_data.judge import (
    Evidence,
    JudgeError,
    LocalJudge,
    OpenAIJudge,
    annotate,
    collect_evidence,
    final_state_rule,
    jpeg_data_url,
    judge_dataset,
    load_report,
    parse_verdict,
    report,
    sample_indices,
    write_report,
)

CAM = "observation.images.front"
H, W, FRAMES = 24, 32, 6
KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("judge") / "ds"
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": None},
        "success": {"dtype": "float32", "shape": [1], "names": None},
        CAM: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
    }
    with LeRobotDatasetWriter(root, fps=10, features=features, video_codec="h264") as writer:
        for episode in range(2):
            state = np.linspace(0, 1 - episode, FRAMES * 2, dtype=np.float32).reshape(FRAMES, 2)
            frames = np.zeros((FRAMES, H, W, 3), dtype=np.uint8)
            frames[..., episode] = 200
            writer.add_episode(
                {
                    "observation.state": state,
                    "success": np.full((FRAMES, 1), 1 - episode, dtype=np.float32),
                    CAM: frames,
                },
                task=f"put the cube in bin {episode}",
            )
        writer.finish()
    return root


@pytest.fixture
def dataset(source: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ds"
    shutil.copytree(source, copy)
    return copy


class ChatServer:
    """A local OpenAI-compatible endpoint: scripted answers first, then a verdict that names
    what it received (task text and number of frames)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, Any, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                owner.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                status, answer, headers = (
                    owner.script.pop(0) if owner.script else (200, owner.default(body), {})
                )
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def completion(content: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }

    def default(self, body: dict[str, Any]) -> dict[str, Any]:
        content = body["messages"][1]["content"]
        task = content[0]["text"].splitlines()[0]
        images = [c for c in content if c["type"] == "image_url"]
        outcome = "success" if "bin 0" in task else "failure"
        verdict = {
            "outcome": outcome,
            "reason": f"{task}; saw {len(images)} frames",
            "confidence": 0.75,
        }
        return self.completion("```json\n" + json.dumps(verdict) + "\n```")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer()
    yield chat
    chat.close()


def test_http_judge_end_to_end_with_retries(
    dataset: Path, server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = [
        (503, {"error": "loading"}, {}),
        (429, {"error": "slow down"}, {"Retry-After": "0"}),
    ]
    judge = OpenAIJudge(server.url, "cosmos-reason", api_key=KEY, backoff_s=0.01)
    verdicts = judge_dataset(str(dataset), judge, camera=CAM, frames=4)
    judge.close()

    assert [(v.episode, v.verdict.outcome) for v in verdicts] == [(0, "success"), (1, "failure")]
    assert verdicts[0].verdict.reason == "Task: put the cube in bin 0; saw 4 frames"
    assert verdicts[1].verdict.confidence == 0.75
    assert len(server.requests) == 4  # 503 and 429 retried, then one request per episode
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == f"Bearer {KEY}"
    body = first["body"]
    assert body["model"] == "cosmos-reason" and body["response_format"] == {"type": "json_object"}
    images = [c["image_url"]["url"] for c in body["messages"][1]["content"][1:]]
    assert len(images) == 4 and all(u.startswith("data:image/jpeg;base64,") for u in images)
    picture = Image.open(io.BytesIO(base64.b64decode(images[-1].split(",", 1)[1])))
    assert picture.format == "JPEG" and picture.size == (W, H)
    assert np.asarray(picture)[..., 0].mean() > 150  # episode 0's frames are red
    assert KEY not in repr(judge) and KEY not in caplog.text

    assert annotate(verdicts, str(dataset)) == 2
    notes = Annotations(dataset)
    assert notes.get(0).outcome == "success" and notes.get(1).outcome == "failure"
    assert notes.get(1).notes[0].text == "Task: put the cube in bin 1; saw 4 frames"
    assert notes.get(1).notes[0].author == "physai-judge"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("the robot did fine", "is not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"outcome": "maybe", "reason": "r", "confidence": 0.5}', "'success' or 'failure'"),
        ('{"outcome": "success", "reason": "r"}', "missing ['confidence']"),
        ('{"outcome": "success", "reason": "r", "confidence": 0.5, "x": 1}', "unexpected ['x']"),
        ('{"outcome": "success", "reason": "r", "confidence": 1.5}', "within 0..1"),
        ('{"outcome": "success", "reason": "", "confidence": 0.5}', "non-empty string"),
        ('{"outcome": "success", "reason": "r", "confidence": true}', "must be a number"),
        ("", "empty"),
    ],
)
def test_malformed_answers_are_one_line_errors(answer: str, message: str) -> None:
    with pytest.raises(JudgeError) as caught:
        parse_verdict(answer)
    assert isinstance(caught.value, UserError)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_malformed_answer_from_the_endpoint(dataset: Path, server: ChatServer) -> None:
    server.script = [(200, ChatServer.completion("Success! The cube is in the bin."), {})]
    with (
        OpenAIJudge(server.url, "m", backoff_s=0) as judge,
        pytest.raises(JudgeError, match="is not JSON"),
    ):
        judge_dataset(str(dataset), judge, camera=CAM, frames=2, episodes=[0])
    assert server.requests[0]["auth"] is None  # no key configured: no header
    server.script = [(200, {"choices": []}, {})]
    with OpenAIJudge(server.url, "m") as judge, pytest.raises(JudgeError, match="no choices"):
        judge_dataset(str(dataset), judge, camera=CAM, frames=1, episodes=[0])


def test_http_errors_retry_only_what_may_pass(dataset: Path, server: ChatServer) -> None:
    server.script = [(401, b'{"error": "bad key"}', {})]
    with OpenAIJudge(server.url, "m", api_key=KEY, backoff_s=0) as judge:
        with pytest.raises(JudgeError) as caught:
            judge_dataset(str(dataset), judge, camera=CAM, frames=1, episodes=[0])
        assert "HTTP 401 after 1 attempt" in caught.value.message
        assert KEY not in caught.value.message
        assert len(server.requests) == 1
        server.script = [(500, {"error": "boom"}, {})] * 3
        judge.max_retries = 2
        with pytest.raises(JudgeError, match="HTTP 500 after 3 attempt"):
            judge_dataset(str(dataset), judge, camera=CAM, frames=1, episodes=[0])
    assert len(server.requests) == 4


def test_unreachable_endpoint_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        OpenAIJudge("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0) as judge,
        pytest.raises(JudgeError, match="unreachable after 2 attempt"),
    ):
        judge.judge(Evidence(0, "t"))
    monkeypatch.delenv("PHYSAI_JUDGE_URL", raising=False)
    with pytest.raises(UserError, match="PHYSAI_JUDGE_URL"):
        OpenAIJudge.from_env()
    monkeypatch.setenv("PHYSAI_JUDGE_URL", "https://vlm.example/v1")
    monkeypatch.setenv("PHYSAI_JUDGE_MODEL", "nvidia/Cosmos-Reason1-7B")
    monkeypatch.setenv("PHYSAI_JUDGE_API_KEY", KEY)
    judge = OpenAIJudge.from_env()
    assert (
        repr(judge) == "OpenAIJudge('https://vlm.example/v1/chat/completions', "
        "'nvidia/Cosmos-Reason1-7B', key=set)"
    )
    judge.close()
    with pytest.raises(UserError, match="http"):
        OpenAIJudge("ftp://x", "m")


def test_local_judge_is_deterministic(dataset: Path) -> None:
    by_label = judge_dataset(str(dataset), LocalJudge(), camera=None, label_key="success")
    assert [v.verdict.outcome for v in by_label] == ["success", "failure"]
    assert by_label[1].verdict.reason == "success label of episode 1 is false"

    rule = LocalJudge(final_state_rule("observation.state", 1, above=0.5), rule_name="lifted")
    first = judge_dataset(str(dataset), rule, camera=None)
    again = judge_dataset(str(dataset), rule, camera=None)
    assert first == again
    assert [v.verdict.reason for v in first] == [
        "lifted met by episode 0",
        "lifted not met by episode 1",
    ]
    with pytest.raises(JudgeError, match="no success label"):
        judge_dataset(str(dataset), LocalJudge(), camera=None)


def test_evidence_and_report(dataset: Path, tmp_path: Path) -> None:
    assert sample_indices(6, 4) == [0, 2, 3, 5] and sample_indices(3, 1) == [2]
    big = jpeg_data_url(np.zeros((600, 900, 3), dtype=np.uint8))
    assert Image.open(io.BytesIO(base64.b64decode(big.split(",", 1)[1]))).size == (512, 341)
    with pytest.raises(UserError, match="HxWx3 uint8"):
        jpeg_data_url(np.zeros((4, 4), dtype=np.float32))  # type: ignore[arg-type]
    reader = LeRobotDatasetReader(dataset)
    try:
        evidence = collect_evidence(reader, 1, camera=CAM, frames=3)
        assert evidence.task == "put the cube in bin 1" and len(evidence.frames) == 3
        assert evidence.frames[0].shape == (H, W, 3)
        with pytest.raises(UserError, match="no camera feature 'nope'"):
            collect_evidence(reader, 0, camera="nope")
        with pytest.raises(UserError, match="no episode 9"):
            collect_evidence(reader, 9, camera=CAM)
    finally:
        reader.close()
    verdicts = judge_dataset(str(dataset), LocalJudge(), camera=None, label_key="success")
    url = str(tmp_path / "report.json")
    write_report(url, report(verdicts, dataset_url=str(dataset), judge="local"))
    assert load_report(Path(url).read_bytes()) == verdicts
    with pytest.raises(UserError, match="not a judge report"):
        load_report(b'{"format": "x"}')


def test_cosmos_reason_runner_writes_a_report(
    dataset: Path, server: ChatServer, tmp_path: Path
) -> None:
    out = tmp_path / "reports" / "judge.json"
    summary = run(
        [
            "reason",
            "--dataset",
            str(dataset),
            "--report",
            str(out),
            "--camera",
            CAM,
            "--frames",
            "2",
            "--endpoint",
            server.url,
            "--episodes",
            "1",
        ]
    )
    assert summary.startswith("judged 1 episode(s): 0 success, 1 failure")
    document = json.loads(out.read_text())
    assert document["judge"] == "nvidia/Cosmos-Reason1-7B"
    assert document["episodes"] == [
        {
            "episode": 1,
            "outcome": "failure",
            "reason": "Task: put the cube in bin 1; saw 2 frames",
            "confidence": 0.75,
        }
    ]
    again = run_reason(
        str(dataset),
        str(tmp_path / "all.json"),
        camera=CAM,
        model="m",
        frames=1,
        endpoint=server.url,
    )
    assert (again["success"], again["failure"]) == (1, 1)
    assert load_report((tmp_path / "all.json").read_bytes())[0].verdict.outcome == "success"


def test_judge_command_with_the_local_label_and_an_endpoint(
    dataset: Path, server: ChatServer, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from physai.core.cli import app

    runner = CliRunner()
    local = runner.invoke(
        app,
        ["synthetic-data", "judge", str(dataset), "--label-key", "success",
         "--report", str(tmp_path / "r.json"), "--annotate"],
    )  # fmt: skip
    assert local.exit_code == 0, local.output
    assert "1 success, 1 failure" in local.output
    assert json.loads((tmp_path / "r.json").read_text())["success"] == 1
    remote = runner.invoke(
        app,
        ["synthetic-data", "judge", str(dataset), "--camera", CAM, "--frames", "2",
         "--endpoint", server.url, "--model", "cosmos-reason"],
    )  # fmt: skip
    assert remote.exit_code == 0, remote.output
    assert remote.output.splitlines()[0].startswith("0\tsuccess\t")
    missing = runner.invoke(app, ["synthetic-data", "judge", str(dataset), "--camera", CAM], env={})
    assert missing.exit_code == 2 and "--endpoint and --model" in missing.output
    blind = runner.invoke(app, ["synthetic-data", "judge", str(dataset), "--endpoint", server.url,
                                "--model", "m"])  # fmt: skip
    assert blind.exit_code == 2 and "--camera" in blind.output
