"""Start a real service for the length of a test session, and stop it cleanly.

Every fixture that needs a server (Azurite, `mlflow server`, mosquitto, ...) starts it with
`run_service`: its own process group (so workers it forks stop with it), output to a log file,
a readiness check polled until a deadline, and the log tail in the error when it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path


class ServiceStartError(RuntimeError):
    """A service did not start; its log tail is in the message."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int) -> bool:
    """True once something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@contextmanager
def run_service(
    name: str,
    command: Sequence[str],
    *,
    ready: Callable[[], bool],
    log_path: Path,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    poll_s: float = 0.2,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; enter the block only once `ready()` is true."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None:
                raise ServiceStartError(
                    f"{name} exited with code {process.returncode} before it was ready; "
                    f"log tail:\n{log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"{name} was not ready within {timeout_s:.0f} s; "
                    f"log tail:\n{log_tail(log_path)}"
                )
            time.sleep(poll_s)
        yield process
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM the process's group, then SIGKILL it if it has not exited in time."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout_s)
