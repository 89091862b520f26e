"""The `local` backend: each job is a subprocess (no shell) on this machine.

    runner = LocalRunner(settings, max_workers=4)
    summary = runner.run(dag)           # JobDag, JobSpec or a list of JobSpecs
    summary.jobs["train"].log_path      # <state_dir>/jobs/<run-id>/train/attempt-1.log

Placeholders become local paths: a local input is its absolute path, an input that another job
of the run writes is that job's output directory, any other URI (az://, hf://, ...) is passed as
it is; an output is its local path when the URI is one, else `<run>/<job>/outputs/<name>`.
Independent jobs run in parallel, at most `max_workers` at a time. A job with
`resources.nodes * processes_per_node > 1` starts that many processes with the torchrun
environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, ...), as AzureML and OSMO would.
`cancel()` (or Ctrl-C) terminates every running process group, then kills what is left after
`grace_s`. A summary is kept in `<run>/summary.json`: replaced atomically as jobs finish (at most
every `summary_interval_s`, so a 10,000-shard fan-out does not rewrite it 10,000 times) and always
when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from physai.core.errors import UserError
from physai.core.jobs.dag import JobDag, Target, as_dag
from physai.core.jobs.results import JobFailedError, JobResult, JobStatus, RunStatus, RunSummary
from physai.core.jobs.spec import IOKind, JobSpec, substitute
from physai.core.logs import get_logger, redact
from physai.core.settings import Settings, load_settings
from physai.core.uris import LocalPath

log = get_logger(__name__)

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SUMMARY_INTERVAL_S = 0.5


def new_run_id() -> str:
    """A sortable, unique run id: `20250101-120000-1a2b3c`."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def default_max_workers() -> int:
    """How many jobs run at once when not told: the CPU count, capped at 8."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class PlannedJob:
    """A job with its placeholders resolved: what the local backend will execute."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None
    job_dir: Path
    outputs: dict[str, Path]
    output_types: dict[str, str]
    missing_inputs: list[str] = field(default_factory=list)
    world_size: int = 1
    processes_per_node: int = 1
    retries: int = 0
    timeout_s: float | None = None


@dataclass
class _Outcome:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    reason: str | None = None


class LocalRunner:
    """Runs jobs as local subprocesses; one runner is one run (one run id, one run dir)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        run_id: str | None = None,
        max_workers: int | None = None,
        grace_s: float = 5.0,
        poll_s: float = 0.02,
        summary_interval_s: float = SUMMARY_INTERVAL_S,
        on_result: Callable[[JobResult], None] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.run_id = run_id or new_run_id()
        if not _RUN_ID.match(self.run_id):
            raise UserError(f"run id {self.run_id!r} is invalid: letters, digits, '.', '_', '-'")
        if max_workers is not None and max_workers < 1:
            raise UserError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or default_max_workers()
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.summary_interval_s = summary_interval_s  # least time between summary.json rewrites
        self.on_result = on_result  # called (in the scheduling thread) as each job finishes
        self.run_dir = self.settings.state_dir / "jobs" / self.run_id
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._started = False

    # -- public API ------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop the run: no new job starts; running process groups get SIGTERM, then SIGKILL."""
        self._cancel.set()

    def plan(self, target: Target | Sequence[JobSpec]) -> list[PlannedJob]:
        """Resolve every job of `target` (topological order) without running anything."""
        dag = _as_dag(target)
        return [self._resolve(dag, name) for name in dag.topological_order()]

    def run(self, target: Target | Sequence[JobSpec], *, check: bool = True) -> RunSummary:
        """Run a job, a DAG or a list of independent jobs; raise JobFailedError if `check`."""
        dag = _as_dag(target)
        with self._lock:
            if self._started:
                raise UserError(f"runner for run {self.run_id} was already used: make a new one")
            self._started = True
        plans = {p.name: p for p in self.plan(dag)}
        _preflight(plans.values())
        if self.run_dir.exists():
            raise UserError(f"run directory {self.run_dir} already exists: pick another run id")
        self.run_dir.mkdir(parents=True)
        summary = self._schedule(dag, plans)
        if check and not summary.ok:
            raise JobFailedError(summary)
        return summary

    def run_job(self, spec: JobSpec, *, check: bool = True) -> JobResult:
        """Run one job and return its result (JobFailedError if it fails and `check`)."""
        return self.run(spec, check=check).jobs[spec.name]

    # -- planning --------------------------------------------------------------------------

    def _resolve(self, dag: JobDag, name: str) -> PlannedJob:
        job = dag.job(name)
        job_dir = self.run_dir / job.name
        values: dict[tuple[IOKind, str], str] = {}
        outputs: dict[str, Path] = {}
        for out_name, out in job.outputs.items():
            uri = out.parsed()
            path = (
                uri.path.expanduser().absolute()
                if isinstance(uri, LocalPath)
                else job_dir / "outputs" / out_name
            )
            outputs[out_name] = path
            values[("outputs", out_name)] = str(path)
        missing = []
        for in_name, inp in job.inputs.items():
            producer = dag.producer(inp.uri)
            if producer is not None:
                upstream = self._resolve_output(dag, producer.job, producer.output)
                values[("inputs", in_name)] = str(upstream)
                continue
            uri = inp.parsed()
            if isinstance(uri, LocalPath):
                path = uri.path.expanduser().absolute()
                if not path.exists():
                    missing.append(f"{in_name}={path}")
                values[("inputs", in_name)] = str(path)
            else:
                values[("inputs", in_name)] = str(inp.uri)
        cwd = Path(job.working_dir).expanduser().absolute() if job.working_dir else None
        return PlannedJob(
            name=job.name,
            argv=[substitute(arg, values) for arg in job.command],
            env=dict(job.env),
            cwd=cwd,
            job_dir=job_dir,
            outputs=outputs,
            output_types={k: v.type for k, v in job.outputs.items()},
            missing_inputs=missing,
            world_size=job.resources.world_size,
            processes_per_node=job.resources.processes_per_node,
            retries=job.retries,
            timeout_s=job.timeout_s,
        )

    def _resolve_output(self, dag: JobDag, job_name: str, output: str) -> Path:
        uri = dag.job(job_name).outputs[output].parsed()
        if isinstance(uri, LocalPath):
            return uri.path.expanduser().absolute()
        return self.run_dir / job_name / "outputs" / output

    # -- scheduling ------------------------------------------------------------------------

    def _schedule(self, dag: JobDag, plans: Mapping[str, PlannedJob]) -> RunSummary:
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        results: dict[str, JobResult] = {}
        pending = dag.topological_order()

        def summary(final: bool) -> RunSummary:
            ordered = {n: results[n] for n in dag.topological_order() if n in results}
            return RunSummary(
                run_id=self.run_id,
                name=dag.name,
                run_dir=self.run_dir,
                status=_overall(ordered, len(plans)) if final else "running",
                started_at=started_at,
                finished_at=datetime.now(UTC) if final else None,
                duration_s=time.monotonic() - t0,
                jobs=ordered,
            )

        last_write: float | None = None  # the first finished job is written at once
        unwritten = False

        def checkpoint() -> None:
            """Write summary.json if a job finished since the last write, at most every interval."""
            nonlocal last_write, unwritten
            now = time.monotonic()
            if unwritten and (last_write is None or now - last_write >= self.summary_interval_s):
                summary(final=False).write()
                last_write, unwritten = now, False

        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="physai-job") as pool:
            running: dict[Future[JobResult], str] = {}
            while pending or running:
                for name in list(pending):
                    if self.cancelled:
                        break
                    deps = dag.dependencies(name)
                    failed = [d for d in deps if d in results and not results[d].ok]
                    if failed:
                        pending.remove(name)
                        results[name] = _not_run(
                            plans[name], "skipped", f"{failed[0]} did not succeed"
                        )
                    elif all(d in results for d in deps) and len(running) < self.max_workers:
                        pending.remove(name)
                        running[pool.submit(self._run_guarded, plans[name])] = name
                if self.cancelled:
                    for name in pending:
                        results[name] = _not_run(plans[name], "cancelled", "run cancelled")
                    pending = []
                if not running:
                    break  # nothing left that can start
                try:
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    log.warning("interrupted: cancelling run %s", self.run_id)
                    self.cancel()
                    continue
                for future in done:
                    name = running.pop(future)
                    results[name] = future.result()
                    unwritten = True
                    checkpoint()
                    if self.on_result is not None:
                        self.on_result(results[name])
                checkpoint()  # also catches up while long jobs run and nothing finishes
        for name in pending:  # unreachable in a valid DAG; kept so no job goes unreported
            results[name] = _not_run(plans[name], "skipped", "dependencies never finished")
        final = summary(final=True)
        final.write()
        return final

    def _run_guarded(self, plan: PlannedJob) -> JobResult:
        """`_run_one`, with an unexpected error reported as this job's failure, not the run's."""
        try:
            return self._run_one(plan)
        except Exception as exc:
            log.exception("job %s could not be run", plan.name)
            return JobResult(name=plan.name, status="failed", reason=f"internal error: {exc}")

    def _run_one(self, plan: PlannedJob) -> JobResult:
        t0 = time.monotonic()
        for path, kind in ((p, plan.output_types[n]) for n, p in plan.outputs.items()):
            (path if kind == "folder" else path.parent).mkdir(parents=True, exist_ok=True)
        plan.job_dir.mkdir(parents=True, exist_ok=True)
        outcome = _Outcome(exit_code=None, reason="not started")
        attempts = 0
        for attempt in range(1, plan.retries + 2):
            if self.cancelled:
                outcome = _Outcome(
                    exit_code=outcome.exit_code, cancelled=True, reason="run cancelled"
                )
                break
            attempts = attempt
            outcome = self._attempt(plan, attempt)
            if outcome.exit_code == 0 or outcome.cancelled or outcome.exit_code is None:
                break
            log.info("job %s attempt %d failed: %s", plan.name, attempt, outcome.reason)
        status: JobStatus = (
            "cancelled"
            if outcome.cancelled
            else "succeeded"
            if outcome.exit_code == 0
            else "failed"
        )
        return JobResult(
            name=plan.name,
            status=status,
            exit_code=outcome.exit_code,
            attempts=attempts,
            log_path=_log_path(plan, max(attempts, 1), 0),
            duration_s=time.monotonic() - t0,
            timed_out=outcome.timed_out,
            reason=None if status == "succeeded" else outcome.reason,
            outputs={k: str(v) for k, v in plan.outputs.items()},
            command=[redact(a) for a in plan.argv],
        )

    # -- processes -------------------------------------------------------------------------

    def _attempt(self, plan: PlannedJob, attempt: int) -> _Outcome:
        env = {**os.environ, **plan.env}
        env.update(
            PHYSAI_RUN_ID=self.run_id,
            PHYSAI_RUN_DIR=str(self.run_dir),
            PHYSAI_JOB_NAME=plan.name,
            PHYSAI_ATTEMPT=str(attempt),
        )
        port = _free_port() if plan.world_size > 1 else None
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for rank in range(plan.world_size):
                rank_env = dict(env)
                if port is not None:
                    rank_env.update(_torch_env(rank, plan, port))
                with _log_path(plan, attempt, rank).open("wb") as out:
                    procs.append(
                        subprocess.Popen(
                            plan.argv,
                            stdin=subprocess.DEVNULL,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            cwd=plan.cwd,
                            env=rank_env,
                            start_new_session=True,  # its own process group, for cancel()
                        )
                    )
        except OSError as exc:
            self._stop(procs)
            return _Outcome(exit_code=None, reason=f"cannot start {plan.argv[0]!r}: {exc.strerror}")
        return self._watch(plan, procs)

    def _watch(self, plan: PlannedJob, procs: list[subprocess.Popen[bytes]]) -> _Outcome:
        deadline = time.monotonic() + plan.timeout_s if plan.timeout_s else None
        while True:
            codes = [p.poll() for p in procs]
            bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if all(c is not None for c in codes) or bad:
                if bad and any(c is None for c in codes):
                    self._stop(procs)  # one rank failed: stop the others, as torchrun does
                rank, code = bad[0] if bad else (0, 0)
                where = f"rank {rank} " if plan.world_size > 1 else ""
                return _Outcome(code, reason=None if code == 0 else f"{where}exit code {code}")
            if self.cancelled:
                self._stop(procs)
                return _Outcome(procs[0].returncode, cancelled=True, reason="cancelled")
            if deadline is not None and time.monotonic() > deadline:
                self._stop(procs)
                return _Outcome(
                    procs[0].returncode,
                    timed_out=True,
                    reason=f"timed out after {plan.timeout_s:g}s",
                )
            self._cancel.wait(self.poll_s)

    def _stop(self, procs: Sequence[subprocess.Popen[bytes]]) -> None:
        """SIGTERM each process group, wait up to `grace_s`, then SIGKILL what is left."""
        groups = [p.pid for p in procs if p.poll() is None]
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p in procs:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=remaining)
        for pgid in groups:  # also reaches children that outlived their leader
            _signal_group(pgid, signal.SIGKILL)
        for p in procs:
            p.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _torch_env(rank: int, plan: PlannedJob, port: int) -> dict[str, str]:
    """The environment torchrun (and AzureML's PyTorch distribution) gives each process."""
    per_node = plan.processes_per_node
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank % per_node),
        "WORLD_SIZE": str(plan.world_size),
        "LOCAL_WORLD_SIZE": str(per_node),
        "NODE_RANK": str(rank // per_node),
        "GROUP_RANK": str(rank // per_node),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_path(plan: PlannedJob, attempt: int, rank: int) -> Path:
    suffix = "" if rank == 0 else f".rank-{rank}"
    return plan.job_dir / f"attempt-{attempt}{suffix}.log"


def _not_run(plan: PlannedJob, status: JobStatus, reason: str) -> JobResult:
    return JobResult(name=plan.name, status=status, reason=reason)


def _overall(results: Mapping[str, JobResult], total: int) -> RunStatus:
    statuses = {r.status for r in results.values()}
    if len(results) == total and statuses == {"succeeded"}:
        return "succeeded"
    if "cancelled" in statuses:
        return "cancelled"
    return "failed"


def _preflight(plans: Iterable[PlannedJob]) -> None:
    """Reject, before anything runs, local inputs and working directories that do not exist."""
    problems: list[str] = []
    for plan in plans:
        problems += [f"job {plan.name!r}: input {m} does not exist" for m in plan.missing_inputs]
        if plan.cwd is not None and not plan.cwd.is_dir():
            problems.append(f"job {plan.name!r}: working_dir {plan.cwd} is not a directory")
    if problems:
        raise UserError("; ".join(problems))


def _as_dag(target: Target | Sequence[JobSpec]) -> JobDag:
    if isinstance(target, JobSpec | JobDag):
        return as_dag(target)
    jobs = list(target)
    if not jobs:
        raise UserError("nothing to run: the list of jobs is empty")
    return JobDag(name=jobs[0].name, jobs=jobs)


# -- convenience functions -------------------------------------------------------------------


def run_job(
    spec: JobSpec,
    settings: Settings | None = None,
    *,
    check: bool = True,
    run_id: str | None = None,
) -> JobResult:
    """Run one job locally and return its result."""
    return LocalRunner(settings, run_id=run_id).run_job(spec, check=check)


def run_dag(
    dag: JobDag,
    settings: Settings | None = None,
    *,
    max_workers: int | None = None,
    check: bool = True,
    run_id: str | None = None,
) -> RunSummary:
    """Run a DAG locally: topological order, independent jobs in parallel."""
    return LocalRunner(settings, run_id=run_id, max_workers=max_workers).run(dag, check=check)


def run_many(
    specs: Sequence[JobSpec],
    settings: Settings | None = None,
    *,
    max_workers: int | None = None,
    check: bool = True,
    run_id: str | None = None,
) -> RunSummary:
    """Run independent jobs (fan-out shards, say) over a pool of at most `max_workers`."""
    return LocalRunner(settings, run_id=run_id, max_workers=max_workers).run(specs, check=check)
