"""`load_policy`: an exported policy folder as a callable with fixed buffers and timings.

    policy = load_policy("exports/anymal", device="cpu")
    actions = policy(obs)            # obs: (1, 235) float32 -> (1, 12) float32
    policy.latency()                 # LatencyStats over the calls made

The returned array is the policy's own output buffer, rewritten by the next call: copy it
(`policy(obs, copy=True)`) to keep it. A recurrent policy carries its hidden state between calls;
`reset()` zeroes it (at the start of each episode).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.training.policy_card import CARD_NAME, FORMATS, Format, PolicyCard, sha256_file
from physai.training.runtime.backend import Backend, Binding, Device
from physai.training.runtime.stats import DEFAULT_CAPACITY, LatencyRecorder, LatencyStats

DeviceChoice = Literal["auto", "cpu", "cuda"]
Observation = NDArray[Any] | dict[str, NDArray[Any]]

DEFAULT_WARMUP = 50


class Policy:
    """A loaded policy: call it with an observation, get the actions.

    Calls are not thread-safe (one buffer set per policy): use one Policy per thread.
    """

    def __init__(self, card: PolicyCard, folder: Path, backend: Backend, batch_size: int) -> None:
        self.card = card
        self.folder = folder
        self.backend = backend
        self.format: Format = backend.format
        self.device: Device = backend.device
        self.batch_size = batch_size
        hidden_in = card.recurrent.hidden_inputs if card.recurrent else []
        hidden_out = card.recurrent.hidden_outputs if card.recurrent else []
        self.observation_specs = [
            Binding.of(s, batch_size) for s in card.inputs if s.name not in hidden_in
        ]
        self.action_specs = [
            Binding.of(s, batch_size) for s in card.outputs if s.name not in hidden_out
        ]
        pairs = zip(hidden_in, hidden_out, strict=True)
        self._hidden = [(backend.inputs[i], backend.outputs[o]) for i, o in pairs]
        self._observations = {b.name: backend.inputs[b.name] for b in self.observation_specs}
        self._actions = {b.name: backend.outputs[b.name] for b in self.action_specs}
        first = self.observation_specs[0]
        self._single = len(self.observation_specs) == 1
        self._in = backend.inputs[first.name]
        self._shape, self._dtype = first.shape, first.dtype
        self._out = backend.outputs[self.action_specs[0].name]
        self._single_out = len(self.action_specs) == 1
        self._run = backend.run
        self._timings = LatencyRecorder(DEFAULT_CAPACITY)
        self._call = self._make_call()

    def __call__(self, obs: Observation, *, copy: bool = False) -> Observation:
        """The actions for `obs`.

        `obs` is an array shaped like the policy's one observation input, or a dict of them by
        name. An array comes back for one action output and an array in, a dict otherwise. The
        result is the policy's output buffer, rewritten by the next call, unless `copy`.
        """
        return self._call(obs, copy)

    def _make_call(self) -> Callable[[Observation, bool], Observation]:
        # The hot path (one array in, one array out) as a closure over everything it touches:
        # no attribute lookups, no allocation, one copy in. Anything else takes `_call_general`,
        # reached through a weak reference: a strong one would make policy -> closure -> policy
        # a cycle, and a dropped Policy (a hot-swapped version, its session, its GPU memory)
        # would wait for the garbage collector instead of going at once.
        general_ref = weakref.WeakMethod(self._call_general)

        def general(obs: Observation, copy: bool, start: int) -> Observation:
            method = general_ref()
            assert method is not None  # the closure lives on the policy it refers to
            return method(obs, copy, start)

        if not (self._single and self._single_out):
            return lambda obs, copy: general(obs, copy, perf_counter_ns())
        buffer, shape, dtype, out = self._in, self._shape, self._dtype, self._out
        run, copyto, clock, ndarray = self._run, np.copyto, perf_counter_ns, np.ndarray
        timings = self._timings
        ring, mask = timings.ring, timings.mask
        step = run
        if self._hidden:
            hidden = tuple(self._hidden)

            def step() -> None:
                run()
                for hidden_in, hidden_out in hidden:
                    copyto(hidden_in, hidden_out)

        def call(obs: Observation, copy: bool) -> Observation:
            start = clock()
            if obs.__class__ is not ndarray or obs.shape != shape or obs.dtype is not dtype:
                return general(obs, copy, start)
            copyto(buffer, obs)
            step()
            ring[timings.calls & mask] = clock() - start
            timings.calls += 1
            return out.copy() if copy else out

        return call

    def _call_general(self, obs: Observation, copy: bool, start: int) -> Observation:
        self._feed(obs)
        self._run()
        for hidden_in, hidden_out in self._hidden:
            np.copyto(hidden_in, hidden_out)
        self._timings.record(perf_counter_ns() - start)
        if self._single_out and not isinstance(obs, dict):
            return self._out.copy() if copy else self._out
        if copy:
            return {name: array.copy() for name, array in self._actions.items()}
        return self._actions

    def _feed(self, obs: Observation) -> None:
        if isinstance(obs, dict):
            if obs.keys() != self._observations.keys():
                expected = ", ".join(self._observations)
                got = ", ".join(obs)
                raise UserError(f"policy expects observations {{{expected}}}, got {{{got}}}")
            for spec in self.observation_specs:
                np.copyto(self._observations[spec.name], _checked(spec, obs[spec.name]))
            return
        if not self._single:
            expected = ", ".join(self._observations)
            raise UserError(f"policy expects a dict of observations {{{expected}}}")
        np.copyto(self._in, _checked(self.observation_specs[0], obs))

    def reset(self) -> None:
        """Zero the hidden state of a recurrent policy (no-op otherwise)."""
        for hidden_in, _ in self._hidden:
            hidden_in.fill(0)

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a hidden state between calls."""
        return bool(self._hidden)

    def latency(self) -> LatencyStats:
        """Per-call latency over the calls made (the last 65536), in microseconds."""
        return self._timings.stats()

    def clear_latency(self) -> None:
        """Forget the recorded call timings."""
        self._timings.clear()

    def benchmark(self, n: int = 1000, *, seed: int = 0) -> LatencyStats:
        """Time `n` calls on random observations (a different one each call) and return their
        latency (over the last 65536 of them). The policy's own latency record is left as it
        was, and a recurrent policy's state is reset."""
        rng = np.random.default_rng(seed)
        specs = self.observation_specs
        pool = [{b.name: _random(rng, b) for b in specs} for _ in range(min(n, 256))]
        feeds: list[Observation] = [p[next(iter(p))] for p in pool] if self._single else list(pool)
        saved = self._timings.save()
        self._timings.clear()
        try:
            for i in range(n):
                self._call(feeds[i % len(feeds)], False)
            return self._timings.stats()
        finally:
            self._timings.restore(saved)
            self.reset()

    def describe(self) -> dict[str, str]:
        """Format, device, batch size and the backend's facts (provider, threads, ...)."""
        facts = {"format": self.format, "device": self.device, "batch_size": str(self.batch_size)}
        return facts | self.backend.describe()

    def __repr__(self) -> str:
        return f"Policy({self.card.name!r}, format={self.format!r}, device={self.device!r})"


def _random(rng: np.random.Generator, binding: Binding) -> NDArray[Any]:
    """A random observation: N(0, 1) for floats, uniform over 0-255 for integers (camera frames)."""
    if np.issubdtype(binding.dtype, np.floating):
        return rng.standard_normal(binding.shape).astype(binding.dtype)
    return rng.integers(0, 256, binding.shape).astype(binding.dtype)


def load_policy(
    path: str | Path,
    *,
    format: str | None = None,
    device: DeviceChoice = "auto",
    batch_size: int = 1,
    threads: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    tf32: bool = False,
) -> Policy:
    """Load the exported policy in `path` (a folder with policy.json, or the card itself).

    `format`: 'onnx', 'torchscript' or 'tensorrt'; None picks the fastest the card has and this
    machine can run (TensorRT on a GPU, else ONNX Runtime, else TorchScript). `device`: 'auto'
    uses a GPU when the chosen runtime has one. `threads`: intra-op threads on CPU (default 1 for
    batch 1, else the usable cores). `warmup` calls on zeros are made before returning, untimed.
    The chosen file's sha256 is checked against the card. `tf32`: on a GPU, matrix products may
    use TF32 tensor cores (TorchScript's convolutions already do, torch's default; ONNX Runtime's
    CUDA provider is held to fp32 unless `tf32`): faster, with outputs within ~1e-3 of fp32
    rather than ~1e-6.
    """
    card_path = Path(path)
    folder = card_path if card_path.is_dir() else card_path.parent
    card = PolicyCard.read(card_path)
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"unknown device {device!r}: choose auto, cpu or cuda")
    _check_recurrent(card)
    chosen = _choose_format(card, format, device)
    entry = card.files[chosen]
    file = folder / entry.path
    if not file.is_file():
        raise UserError(f"{chosen} file {file} named by {CARD_NAME} is missing")
    if sha256_file(file) != entry.sha256:
        raise UserError(f"{chosen} file {file} does not match the sha256 in {CARD_NAME}")
    inputs = [Binding.of(s, batch_size) for s in card.inputs]
    outputs = [Binding.of(s, batch_size) for s in card.outputs]
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    cpu_threads = threads or (1 if batch_size == 1 else _usable_cores())
    backend = _backend(chosen, file, inputs, outputs, device, cpu_threads, threads, tf32)
    policy = Policy(card, folder, backend, batch_size)
    try:
        for _ in range(warmup):
            backend.run()
    except Exception as exc:  # the runtimes raise their own types; a node must not die of one
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{chosen} policy {file} fails on its warm-up inputs: {first}") from exc
    policy.reset()
    for array in backend.outputs.values():
        array.fill(0)
    return policy


def _backend(
    chosen: Format,
    file: Path,
    inputs: list[Binding],
    outputs: list[Binding],
    device: DeviceChoice,
    cpu_threads: int,
    threads: int | None,
    tf32: bool = False,
) -> Backend:
    if chosen == "onnx":
        from physai.training.runtime.onnx_backend import OnnxBackend, cuda_available

        cuda = device == "cuda" or (device == "auto" and cuda_available())
        device_name: Device = "cuda" if cuda else "cpu"
        return OnnxBackend(
            file, inputs, outputs, device=device_name, threads=cpu_threads, tf32=tf32
        )
    if chosen == "torchscript":
        import torch

        from physai.training.runtime.torch_backend import TorchScriptBackend

        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        return TorchScriptBackend(
            file,
            inputs,
            outputs,
            device="cuda" if cuda else "cpu",
            threads=None if cuda else (threads or cpu_threads),
            tf32=tf32,
        )
    from physai.training.runtime.tensorrt_backend import TensorRTBackend

    if device == "cpu":
        raise UserError("format 'tensorrt' runs on a GPU only: use format='onnx' with device='cpu'")
    return TensorRTBackend(file, inputs, outputs, device="cuda")


def _choose_format(card: PolicyCard, asked: str | None, device: DeviceChoice) -> Format:
    have = [f for f in FORMATS if f in card.files]
    if not have:
        raise UserError(f"{CARD_NAME} of {card.name!r} lists no exported files")
    if asked is not None:
        if asked not in FORMATS:
            raise UserError(f"unknown format {asked!r}: choose {', '.join(FORMATS)}")
        if asked not in card.files:
            raise UserError(f"policy {card.name!r} has no {asked} file (it has: {', '.join(have)})")
        if asked == "tensorrt":
            from physai.training.runtime.tensorrt_backend import tensorrt

            tensorrt()  # MissingDependencyError naming the extra
        return asked
    if "tensorrt" in have and device != "cpu":
        from physai.training.runtime import tensorrt_backend

        if tensorrt_backend.available():
            return "tensorrt"
    for candidate in ("onnx", "torchscript"):
        if candidate in have:
            return candidate
    raise UserError(
        f"policy {card.name!r} has only a tensorrt file and TensorRT cannot run here "
        f"(it needs a GPU and {_tensorrt_install()})"
    )


def _tensorrt_install() -> str:
    from physai.training.runtime.tensorrt_backend import INSTALL

    return INSTALL


def _check_recurrent(card: PolicyCard) -> None:
    if card.recurrent is None:
        return
    ins = {s.name for s in card.inputs}
    outs = {s.name for s in card.outputs}
    hidden_in, hidden_out = card.recurrent.hidden_inputs, card.recurrent.hidden_outputs
    paired = len(hidden_in) == len(hidden_out)
    if not paired or not set(hidden_in) <= ins or not set(hidden_out) <= outs:
        raise UserError(
            f"{CARD_NAME}: recurrent hidden_inputs {hidden_in} and hidden_outputs {hidden_out} "
            "must pair up and name inputs and outputs of the policy"
        )
    if len(ins) == len(hidden_in) or len(outs) == len(hidden_out):
        raise UserError(f"{CARD_NAME}: a recurrent policy needs an observation and an action")


def _checked(spec: Binding, value: object) -> NDArray[Any]:
    if not isinstance(value, np.ndarray):
        raise UserError(f"policy expects {spec.describe()}, got {type(value).__name__}")
    if value.shape != spec.shape or value.dtype != spec.dtype:
        raise UserError(f"policy expects {spec.describe()}, got {value.shape} {value.dtype}")
    return value


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
