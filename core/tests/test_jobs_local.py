"""The local backend: real subprocesses, logs, retries, timeouts, cancellation, DAGs, fan-out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from physai.core.errors import JobError, UserError
from physai.core.jobs import (
    JobDag,
    JobFailedError,
    JobSpec,
    LocalRunner,
    RunSummary,
    fan_out,
    local,
    run_dag,
    run_job,
    run_many,
)
from physai.core.settings import Settings

PY = sys.executable
TRUE = shutil.which("true") or "/bin/true"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "state")


def py(name: str, code: str, **fields: object) -> JobSpec:
    """A job running `python -c code` (argv, no shell)."""
    command = fields.pop("command_tail", [])
    return JobSpec(name=name, command=[PY, "-c", code, *command], **fields)  # type: ignore[arg-type]


def test_runs_a_job_with_placeholders_log_and_summary(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("hello")
    code = (
        "import sys, os, pathlib;"
        "text = pathlib.Path(sys.argv[1]).read_text();"
        "pathlib.Path(sys.argv[2], 'copy.txt').write_text(text + os.environ['GREETING']);"
        "print('read', text); print('oops', file=sys.stderr)"
    )
    spec = py(
        "copy",
        code,
        command_tail=["${{inputs.data}}", "${{outputs.result}}"],
        inputs={"data": {"uri": str(data), "type": "file"}},
        outputs={"result": {}},
        env={"GREETING": "!"},
    )
    result = run_job(spec, settings, run_id="r1")
    run_dir = settings.state_dir / "jobs" / "r1"
    assert result.status == "succeeded" and result.exit_code == 0 and result.attempts == 1
    assert result.log_path == run_dir / "copy" / "attempt-1.log"
    log = result.log_path.read_text()
    assert "read hello" in log and "oops" in log  # stdout and stderr both captured
    out = Path(result.outputs["result"])
    assert out == run_dir / "copy" / "outputs" / "result"
    assert (out / "copy.txt").read_text() == "hello!"
    assert result.command[3] == str(data)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    assert summary["jobs"]["copy"]["exit_code"] == 0
    assert RunSummary.read(run_dir).jobs["copy"].status == "succeeded"


def test_failure_is_a_job_error_after_retries(settings: Settings) -> None:
    code = "import os, sys; print('attempt', os.environ['PHYSAI_ATTEMPT']); sys.exit(3)"
    spec = py("flaky", code, retries=2)
    with pytest.raises(JobFailedError) as info:
        run_job(spec, settings, run_id="r2")
    assert isinstance(info.value, JobError) and not isinstance(info.value, UserError)
    result = info.value.summary.jobs["flaky"]
    assert (result.status, result.exit_code, result.attempts) == ("failed", 3, 3)
    assert result.log_path is not None and result.log_path.name == "attempt-3.log"
    assert "attempt 3" in result.log_path.read_text()
    assert (result.log_path.parent / "attempt-1.log").read_text().strip() == "attempt 1"
    assert "exit code 3" in str(info.value)


def test_retry_until_success(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "count"
    code = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]);"
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1));"
        "sys.exit(0 if n >= 1 else 1)"
    )
    result = run_job(py("eventually", code, command_tail=[str(marker)], retries=3), settings)
    assert result.status == "succeeded" and result.attempts == 2


def test_timeout_stops_the_job(settings: Settings) -> None:
    spec = py("slow", "import time; time.sleep(30)", timeout_s=0.5)
    t0 = time.monotonic()
    result = LocalRunner(settings, grace_s=1).run_job(spec, check=False)
    assert time.monotonic() - t0 < 5
    assert result.status == "failed" and result.timed_out
    assert "timed out after 0.5s" in (result.reason or "")


def test_cancel_stops_a_running_job_and_its_children(settings: Settings, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The job ignores SIGTERM (so only the SIGKILL after the grace period stops it) and starts a
    # grandchild in its process group, which cancel() must reach too.
    code = (
        "import os, signal, subprocess, sys, time;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "open(sys.argv[1], 'w').write(f'{os.getpid()} {child.pid}');"
        "time.sleep(60)"
    )
    runner = LocalRunner(settings, grace_s=0.3)
    box: dict[str, RunSummary] = {}
    thread = threading.Thread(
        target=lambda: box.update(
            s=runner.run(py("stuck", code, command_tail=[str(pids)]), check=False)
        )
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.02)
    job_pid, child_pid = map(int, pids.read_text().split())
    t0 = time.monotonic()
    runner.cancel()
    thread.join(20)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 5
    result = box["s"].jobs["stuck"]
    assert result.status == "cancelled" and box["s"].status == "cancelled"
    assert result.exit_code == -9  # SIGTERM was ignored: SIGKILL after the grace period
    for pid in (job_pid, child_pid):
        assert _exits(pid, within_s=5), f"process {pid} survived cancel()"


def _exits(pid: int, within_s: float) -> bool:
    """Whether `pid` is gone within `within_s`: a process group's SIGKILL lands at once, but a
    grandchild nobody waits for may still be tearing down when the runner returns."""
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its reparented init) counts as stopped.
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except FileNotFoundError:
        return False


STAMP = (
    "import json, os, sys, time; t0 = time.time(); time.sleep(float(sys.argv[1]));"
    "open(os.path.join(sys.argv[2], os.environ['PHYSAI_JOB_NAME']), 'w')"
    ".write(json.dumps([t0, time.time()]))"
)


def _intervals(folder: Path) -> dict[str, tuple[float, float]]:
    return {p.name: tuple(json.loads(p.read_text())) for p in folder.iterdir()}  # type: ignore[misc]


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_fan_out_runs_concurrently_within_the_bound(settings: Settings, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    spec = py("shard", STAMP, command_tail=["0.4", str(stamps)])
    summary = run_many(fan_out(spec, 6), settings, max_workers=2)
    assert summary.ok and len(summary.jobs) == 6
    spans = list(_intervals(stamps).values())
    assert len(spans) == 6
    assert _max_overlap(spans) == 2  # concurrent (2 at once), and never more than the bound


def test_dag_runs_in_order_with_independent_jobs_in_parallel(
    settings: Settings, tmp_path: Path
) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    write = "import pathlib, sys; pathlib.Path(sys.argv[1], 'v.txt').write_text(sys.argv[2])"
    add = (
        "import pathlib, sys; v = pathlib.Path(sys.argv[1], 'v.txt').read_text();"
        "pathlib.Path(sys.argv[2], 'v.txt').write_text(v + sys.argv[3])"
    )
    join = (
        "import pathlib, sys; a = pathlib.Path(sys.argv[1], 'v.txt').read_text();"
        "b = pathlib.Path(sys.argv[2], 'v.txt').read_text();"
        "pathlib.Path(sys.argv[3], 'v.txt').write_text(a + '|' + b)"
    )
    dag = JobDag(
        name="diamond",
        jobs=[
            py(
                "join",
                join,
                command_tail=["${{inputs.a}}", "${{inputs.b}}", "${{outputs.o}}"],
                inputs={"a": "az://runs/left", "b": "az://runs/right"},
                outputs={"o": {}},
            ),
            py(
                "left",
                add,
                command_tail=["${{inputs.i}}", "${{outputs.o}}", "L"],
                inputs={"i": "az://runs/root"},
                outputs={"o": "az://runs/left"},
            ),
            py(
                "right",
                add,
                command_tail=["${{inputs.i}}", "${{outputs.o}}", "R"],
                inputs={"i": "az://runs/root"},
                outputs={"o": "az://runs/right"},
            ),
            py(
                "root", write, command_tail=["${{outputs.o}}", "x"], outputs={"o": "az://runs/root"}
            ),
            py("slow-a", STAMP, command_tail=["0.8", str(stamps)], after=["root"]),
            py("slow-b", STAMP, command_tail=["0.8", str(stamps)], after=["root"]),
        ],
    )
    summary = run_dag(dag, settings, max_workers=4)
    assert summary.ok
    joined = Path(summary.jobs["join"].outputs["o"], "v.txt").read_text()
    assert joined == "xL|xR"  # data flowed along the URI edges, in order
    spans = _intervals(stamps)
    assert _max_overlap(list(spans.values())) == 2  # the two independent jobs overlapped
    assert list(summary.jobs) == dag.topological_order()


def test_failed_upstream_skips_downstream(settings: Settings) -> None:
    dag = JobDag(
        name="broken",
        jobs=[
            py("a", "import sys; sys.exit(2)"),
            py("b", "pass", after=["a"]),
            py("c", "pass", after=["b"]),
            py("d", "pass"),
        ],
    )
    summary = run_dag(dag, settings, check=False)
    statuses = {n: r.status for n, r in summary.jobs.items()}
    assert statuses == {"a": "failed", "b": "skipped", "c": "skipped", "d": "succeeded"}
    assert summary.status == "failed"
    assert summary.jobs["c"].attempts == 0


def test_distributed_job_starts_every_rank(settings: Settings) -> None:
    code = (
        "import os, pathlib;"
        "pathlib.Path(os.environ['OUT'], os.environ['RANK']).write_text("
        "'{LOCAL_RANK} {NODE_RANK} {WORLD_SIZE} {MASTER_ADDR}'.format(**os.environ))"
    )
    out = settings.home / "ranks"
    out.mkdir(parents=True)
    spec = py("ddp", code, env={"OUT": str(out)}, resources={"nodes": 2, "processes_per_node": 2})
    result = run_job(spec, settings)
    assert result.ok
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "0": "0 0 4 127.0.0.1",
        "1": "1 0 4 127.0.0.1",
        "2": "0 1 4 127.0.0.1",
        "3": "1 1 4 127.0.0.1",
    }
    assert (result.log_path.parent / "attempt-1.rank-3.log").exists()  # type: ignore[union-attr]


def test_bad_input_is_a_user_error_and_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    spec = py("needs", "pass", command_tail=["${{inputs.d}}"], inputs={"d": str(tmp_path / "no")})
    with pytest.raises(UserError, match=r"input d=.*no does not exist"):
        run_job(spec, settings, run_id="nothing")
    assert not (settings.state_dir / "jobs" / "nothing").exists()


def test_missing_executable_fails_without_retries(settings: Settings) -> None:
    spec = JobSpec(name="ghost", command=["/nonexistent/tool"], retries=3)
    result = run_job(spec, settings, check=False)
    assert result.status == "failed" and result.attempts == 1
    assert "cannot start '/nonexistent/tool'" in (result.reason or "")


def test_plan_resolves_remote_inputs_verbatim(settings: Settings) -> None:
    spec = JobSpec(
        name="p",
        command=["tool", "${{inputs.model}}", "${{outputs.out}}"],
        inputs={"model": "hf://lerobot/pi0@0123456789abcdef"},  # type: ignore[dict-item]
        outputs={"out": {"uri": str(settings.home / "out")}},  # type: ignore[dict-item]
    )
    runner = LocalRunner(settings, run_id="plan")
    (planned,) = runner.plan(spec)
    assert planned.argv == ["tool", "hf://lerobot/pi0@0123456789abcdef", str(settings.home / "out")]
    assert not runner.run_dir.exists()  # planning writes nothing


def test_an_unexpected_error_fails_that_job_only(settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where an output folder should go")
    dag = JobDag(
        name="mixed",
        jobs=[
            py("writes", "pass", outputs={"o": {"uri": str(blocker / "out")}}),
            py("fine", "pass"),
        ],
    )
    summary = run_dag(dag, settings, check=False)
    assert summary.jobs["writes"].status == "failed"
    assert "internal error" in (summary.jobs["writes"].reason or "")
    assert summary.jobs["fine"].status == "succeeded"


def test_stop_waits_on_the_processes_not_a_sleep_loop(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"_stop polled with sleep({seconds})")

    monkeypatch.setattr(local, "time", SimpleNamespace(monotonic=time.monotonic, sleep=no_sleep))
    ready = "print('ready', flush=True); import time; time.sleep(60)"
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + ready
    procs = [
        subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
        for code in (ready, ignore)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    runner = LocalRunner(settings, grace_s=0.5)
    t0 = time.monotonic()
    runner._stop(procs)
    elapsed = time.monotonic() - t0
    assert [p.returncode for p in procs] == [-signal.SIGTERM, -signal.SIGKILL]
    assert 0.45 < elapsed < 5  # SIGKILL came after the grace period, not before
    for p in procs:
        assert p.stdout is not None
        p.stdout.close()


def test_summary_writes_are_bounded_for_big_fan_outs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    real_write = RunSummary.write

    def counted(self: RunSummary) -> Path:
        writes.append(self.status)
        return real_write(self)

    monkeypatch.setattr(RunSummary, "write", counted)
    seen_on_first: list[RunSummary] = []

    def first(result: object) -> None:
        if not seen_on_first:  # crash-safe: the first finished job is on disk at once
            seen_on_first.append(RunSummary.read(runner.run_dir))

    shards = fan_out(JobSpec(name="tick", command=[TRUE]), 150)
    runner = LocalRunner(settings, max_workers=8, poll_s=0.005, on_result=first)
    summary = runner.run(shards)
    assert summary.ok and len(summary.jobs) == 150
    assert seen_on_first[0].status == "running" and len(seen_on_first[0].jobs) >= 1
    # Rewriting after each job was 151 writes of a growing file (O(n^2) for big fan-outs); now it
    # is the first job, at most one per interval, and the final one.
    assert writes[-1] == "succeeded" and writes.count("succeeded") == 1
    assert len(writes) <= 3 + summary.duration_s / 0.5  # the default interval: 0.5 s
    assert len(writes) < 150 / 4
    on_disk = RunSummary.read(runner.run_dir)
    assert on_disk.status == "succeeded" and list(on_disk.jobs) == list(summary.jobs)
    assert not (runner.run_dir / "summary.json.tmp").exists()


def test_summary_catches_up_while_a_long_job_runs(settings: Settings, tmp_path: Path) -> None:
    release = tmp_path / "release"
    waiter = py(
        "waiter",
        "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)",
        command_tail=[str(release)],
    )
    quick = [py(f"quick-{i}", "pass") for i in range(4)]
    runner = LocalRunner(settings, max_workers=5)
    thread = threading.Thread(target=runner.run, args=([waiter, *quick],))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, "summary.json never listed the finished jobs"
            try:
                on_disk = RunSummary.read(runner.run_dir)
            except (FileNotFoundError, ValueError):
                on_disk = None
            if on_disk is not None and len(on_disk.jobs) == 4:
                break
            time.sleep(0.05)
        assert on_disk.status == "running" and "waiter" not in on_disk.jobs
    finally:
        release.touch()
        thread.join(20)
    assert RunSummary.read(runner.run_dir).status == "succeeded"
