"""The hot-loader: the running policy, and how a new version replaces it between ticks.

    slot = PolicySlot(device="cpu")
    slot.swap("policies/v1")                 # load, warm up, check, install
    actions = slot.step(obs)                 # the control loop: a copy, safe to publish
    slot.swap("policies/v2")                 # from another thread: the loop never waits on it

`swap` does the slow part (load, sha256 check, warm-up) on the caller's thread, outside the
lock; only the final replacement takes the lock that `step` holds for one call, so it lands
between two control ticks. A new version must take and give arrays of the running one's shapes
and dtypes, else `IncompatiblePolicyError` and the running one stays. A recurrent policy
starts from a zero state after a swap.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError

if TYPE_CHECKING:
    from physai.training import LatencyStats, Policy

DEFAULT_WARMUP = 50
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")


class IncompatiblePolicyError(UserError):
    """A new policy version does not take or give the running one's arrays."""


@dataclass(frozen=True)
class Signature:
    """The one observation array a policy takes and the one action array it gives (batch 1)."""

    observation: tuple[int, ...]
    observation_dtype: str
    action: tuple[int, ...]
    action_dtype: str

    @property
    def observation_size(self) -> int:
        """Values in one flattened observation."""
        return int(np.prod(self.observation))

    @property
    def action_size(self) -> int:
        """Values in one flattened action."""
        return int(np.prod(self.action))

    def __str__(self) -> str:
        return f"{self.observation} {self.observation_dtype} -> {self.action} {self.action_dtype}"


@dataclass(frozen=True)
class ActivePolicy:
    """Which policy version runs: what the node publishes on `~/policy`."""

    name: str
    version: str
    path: str
    format: str
    sha256: str
    recurrent: bool
    control_rate_hz: float | None
    signature: str
    loaded_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.name} ({self.version}, {self.format} sha256 {self.sha256[:12]})"


def signature_of(policy: Policy) -> Signature:
    """The policy's observation and action arrays; UserError unless there is one of each."""
    observations, actions = policy.observation_specs, policy.action_specs
    if len(observations) != 1 or len(actions) != 1:
        raise UserError(
            f"policy {policy.card.name!r} takes {[b.name for b in observations]} and gives "
            f"{[b.name for b in actions]}: the inference node feeds one observation array and "
            "publishes one action array"
        )
    obs, act = observations[0], actions[0]
    return Signature(
        tuple(obs.shape), np.dtype(obs.dtype).name, tuple(act.shape), np.dtype(act.dtype).name
    )


def describe(policy: Policy, folder: Path) -> ActivePolicy:
    """The `ActivePolicy` record of a loaded policy."""
    entry = policy.card.files[policy.format]
    return ActivePolicy(
        name=policy.card.name,
        version=folder.name,
        path=str(folder),
        format=policy.format,
        sha256=entry.sha256,
        recurrent=policy.recurrent,
        control_rate_hz=policy.card.control_rate_hz,
        signature=str(signature_of(policy)),
        loaded_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


class PolicySlot:
    """Holds the running policy; `step` runs it, `swap` replaces it between two steps."""

    def __init__(self, *, device: str = "auto", warmup: int = DEFAULT_WARMUP) -> None:
        if device not in DEVICES:
            raise UserError(f"unknown device {device!r}: choose auto, cpu or cuda")
        if warmup < 0:
            raise UserError(f"warmup must be 0 or more calls, got {warmup}")
        self.device: Device = device
        self.warmup = warmup
        self._lock = threading.Lock()  # held by step() for one call, and by the replacement
        self._loading = threading.Lock()  # one load at a time
        self._policy: Policy | None = None
        self._active: ActivePolicy | None = None
        self._signature: Signature | None = None
        self._closed = False
        self.swaps = 0

    @property
    def loaded(self) -> bool:
        """Whether a policy is installed."""
        return self._policy is not None

    @property
    def active(self) -> ActivePolicy:
        """The running policy's record."""
        if self._active is None:
            raise UserError("no policy is loaded yet")
        return self._active

    @property
    def signature(self) -> Signature:
        """The running policy's arrays (every later version must match them)."""
        if self._signature is None:
            raise UserError("no policy is loaded yet")
        return self._signature

    @property
    def policy(self) -> Policy:
        """The running `physai.training.Policy` (call it only from the control thread)."""
        if self._policy is None:
            raise UserError("no policy is loaded yet")
        return self._policy

    def swap(self, path: str | Path) -> ActivePolicy:
        """Load the policy folder `path`, warm it up, check it fits, and install it.

        Runs on the caller's thread. On CPU the control loop keeps stepping the old policy until
        the final replacement. While a GPU policy runs, the loop pauses for the load instead:
        capturing the new version's CUDA graph is process-wide, and the old version's copies
        to and from the GPU in the meantime would break it. Raises UserError
        (IncompatiblePolicyError for other shapes) and leaves the running policy in place when
        the new one cannot run, or when the slot was closed meanwhile.
        """
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise UserError(f"policy folder {path} does not exist")
        with self._loading:
            running = self._policy
            exclusive = running is not None and running.device == "cuda"
            with self._lock if exclusive else contextlib.nullcontext():
                policy = self._load(folder)
            signature = signature_of(policy)
            if self._signature is not None and signature != self._signature:
                raise IncompatiblePolicyError(
                    f"policy {policy.card.name!r} in {folder} takes/gives {signature}, the running "
                    f"{self.active} takes/gives {self._signature}: refused, the running one stays"
                )
            policy.clear_latency()  # warm-up calls are not the robot's
            policy.reset()  # a recurrent policy starts from a zero state
            record = describe(policy, folder)
            with self._lock:
                if self._closed:
                    raise UserError(f"swap to {folder} abandoned: the node is shutting down")
                old = self._policy
                self._policy, self._active, self._signature = policy, record, signature
                self.swaps += 1
            del old  # the old version's session and buffers go here, outside the lock
        return record

    def _load(self, folder: Path) -> Policy:
        from physai.training import load_policy

        try:
            return load_policy(folder, device=self.device, warmup=self.warmup)
        except UserError:
            raise
        except Exception as exc:  # a runtime's own error type: the node must outlive it
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"policy {folder} cannot be loaded: {detail}") from exc

    def close(self) -> None:
        """Refuse any later swap (one loading now is dropped instead of installed)."""
        with self._lock:
            self._closed = True

    def step(self, observation: NDArray[Any]) -> NDArray[Any]:
        """The actions for one observation shaped like `signature.observation` (a copy)."""
        with self._lock:
            policy = self._policy
            if policy is None:
                raise UserError("no policy is loaded yet")
            return np.array(policy(observation), copy=True)

    def reset(self) -> None:
        """Zero the running recurrent policy's state (e.g. at the start of an episode)."""
        with self._lock:
            if self._policy is not None:
                self._policy.reset()

    def latency(self) -> LatencyStats:
        """Per-call latency of the running policy since it was installed (microseconds)."""
        with self._lock:
            return self.policy.latency()
