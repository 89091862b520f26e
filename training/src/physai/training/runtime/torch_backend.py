"""TorchScript backend: `torch.jit.load`, inference mode, inputs as tensors over fixed buffers.

On CPU the input tensors are `torch.from_numpy` views of the backend's numpy buffers, so the
policy's observation copy is the only copy in. On CUDA the forward pass is captured once in a
`torch.cuda.CUDAGraph` after warm-up; a call is then one host-to-device copy from page-locked
memory, one graph replay, one device-to-host copy and a stream synchronize.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physai.core.errors import UserError
from physai.training.policy_card import Format
from physai.training.runtime.backend import Binding, Device

log = logging.getLogger(__name__)

CUDA_WARMUP = 5  # forward passes before capture (TorchScript's profiling executor specializes)


class TorchScriptBackend:
    """Runs a TorchScript file on CPU, or on CUDA as a replayed CUDA graph."""

    format: Format = "torchscript"

    def __init__(
        self,
        file: Path,
        inputs: Sequence[Binding],
        outputs: Sequence[Binding],
        *,
        device: Device,
        threads: int | None,
        tf32: bool = False,
    ) -> None:
        self.device: Device = device
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("device 'cuda' was asked for but torch sees no CUDA device")
        if device == "cpu" and threads is not None:
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # "switch to torch.export"
                # Loaded on the CPU, then parameters and buffers moved: map_location would also
                # move the trace's scalar constants, turning its shape arithmetic (size -> tensor
                # -> int) into GPU work with a device-to-host read, which a CUDA graph refuses.
                module = torch.jit.load(str(file), map_location="cpu").to(device)  # type: ignore[no-untyped-call]
        except Exception as exc:  # torch raises RuntimeError or its own types
            raise UserError(f"{file} is not a loadable TorchScript module: {_first(exc)}") from None
        self.module = module.eval()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.run: Callable[[], None]
        if device == "cuda":
            with _cuda_math(tf32):
                self._init_cuda(file, inputs, outputs)
            return
        self.inputs = {b.name: np.zeros(b.shape, b.dtype) for b in inputs}
        self.outputs = {b.name: np.zeros(b.shape, b.dtype) for b in outputs}
        self._args = [torch.from_numpy(a) for a in self.inputs.values()]
        self._results = [torch.from_numpy(a) for a in self.outputs.values()]
        with torch.inference_mode():
            _check_outputs(file, _forward(file, self.module, self._args, inputs), outputs)
        self.optimized = self._optimize()
        self.run = self._run_cpu

    def describe(self) -> dict[str, str]:
        """Threads on CPU; the GPU and whether a CUDA graph is replayed on CUDA."""
        if self.device == "cuda":
            return {"gpu": torch.cuda.get_device_name(), "cuda_graph": str(self.graph is not None)}
        return {"torch_threads": str(torch.get_num_threads()), "optimized": str(self.optimized)}

    def _optimize(self) -> bool:
        # torch.jit.optimize_for_inference (freeze + fusions, oneDNN linear layers) made the
        # ANYmal-sized MLP ~9% faster on CPU; keep it only if it runs and agrees with the module.
        probe = [
            torch.randn_like(a) if a.is_floating_point() else torch.randint_like(a, 0, 100)
            for a in self._args
        ]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optimized = torch.jit.optimize_for_inference(self.module)
            with torch.inference_mode():
                expected = _as_list(self.module(*probe))
                got = _as_list(optimized(*probe))
        except Exception as exc:  # any failure of the optional pass: keep the plain module
            log.info("optimize_for_inference skipped: %s", _first(exc))
            return False
        close = len(got) == len(expected) and all(
            g.shape == e.shape and torch.allclose(g, e, rtol=1e-4, atol=1e-5)
            for g, e in zip(got, expected, strict=False)
        )
        if close:
            self.module = optimized
        return close

    def _run_cpu(self) -> None:
        with torch.inference_mode():
            produced = self.module(*self._args)
            if isinstance(produced, torch.Tensor):
                self._results[0].copy_(produced)
            else:
                for target, tensor in zip(self._results, produced, strict=True):
                    target.copy_(tensor)

    # -- CUDA (guarded by device == "cuda"; exercised only where torch sees a GPU) --------

    def _init_cuda(self, file: Path, inputs: Sequence[Binding], outputs: Sequence[Binding]) -> None:
        # Host side: page-locked tensors whose numpy views are the backend's buffers, so the
        # copies to and from the device are asynchronous DMA.
        self._host_in = [_pinned(b) for b in inputs]
        self._host_out = [_pinned(b) for b in outputs]
        self.inputs = {b.name: t.numpy() for b, t in zip(inputs, self._host_in, strict=True)}
        self.outputs = {b.name: t.numpy() for b, t in zip(outputs, self._host_out, strict=True)}
        self._args = [torch.zeros(b.shape, dtype=_torch_dtype(b), device="cuda") for b in inputs]
        if any(len(b.shape) == 4 and b.dtype == np.uint8 for b in inputs):
            # Camera frames come in as (batch, h, w, 3): permuted to NCHW they are channels-last
            # already, and with the convolution weights channels-last too cuDNN runs its NHWC
            # kernels instead of converting layouts around every convolution.
            self.module = self.module.to(memory_format=torch.channels_last)
        self.run = self._run_eager_cuda
        # Warm up on a side stream (as torch.cuda.graphs recommends), then capture.
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(CUDA_WARMUP):
                produced = _forward(file, self.module, self._args, inputs)
        torch.cuda.current_stream().wait_stream(side)
        _check_outputs(file, produced, outputs)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.inference_mode(), torch.cuda.graph(graph):
                captured = self.module(*self._args)
        except RuntimeError as exc:
            log.warning("CUDA graph capture of %s failed, running without it: %s", file, exc)
            torch.cuda.synchronize()
            return
        self._static_out = _as_list(captured)  # the graph's own output memory, rewritten per replay
        self.graph = graph
        self.run = self._run_graph

    def _run_graph(self) -> None:
        assert self.graph is not None
        for device_in, host in zip(self._args, self._host_in, strict=True):
            device_in.copy_(host, non_blocking=True)
        self.graph.replay()
        for host, device_out in zip(self._host_out, self._static_out, strict=True):
            host.copy_(device_out, non_blocking=True)
        torch.cuda.current_stream().synchronize()

    def _run_eager_cuda(self) -> None:
        for device_in, host in zip(self._args, self._host_in, strict=True):
            device_in.copy_(host, non_blocking=True)
        with torch.inference_mode():
            produced = _as_list(self.module(*self._args))
        for host, tensor in zip(self._host_out, produced, strict=True):
            host.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream().synchronize()


@contextlib.contextmanager
def _cuda_math(tf32: bool) -> Iterator[None]:
    """cuDNN autotuning (and TF32 matrix products when asked) while warming up and capturing,
    with TorchScript's optimizing executor off.

    The CUDA graph keeps the kernels chosen at capture, so the process-wide flags are restored
    afterwards and nothing else in the process is affected. The optimizing executor profiles,
    re-specializes and compiles fusion kernels on later calls, which invalidated the capture of
    an ACT policy on an H200; the plain interpreter launches the same aten kernels, and a replay
    does not run the interpreter at all. Without a graph (capture failed) the eager calls run
    with the process's own settings.
    """
    saved = torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.jit.optimized_execution(False):  # type: ignore[attr-defined]
            yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved


def _forward(file: Path, module: Any, args: list[torch.Tensor], inputs: Sequence[Binding]) -> Any:
    try:
        return module(*args)
    except RuntimeError as exc:
        given = ", ".join(b.describe() for b in inputs)
        # TorchScript's interpreter puts its traceback first and the reason last.
        lines = [line for line in str(exc).splitlines() if line.strip()]
        reason = lines[-1].strip().removeprefix("RuntimeError: ") if lines else type(exc).__name__
        raise UserError(f"{file} does not run on {given}: {reason}") from None


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_list(produced: Any) -> list[torch.Tensor]:
    return [produced] if isinstance(produced, torch.Tensor) else list(produced)


def _torch_dtype(binding: Binding) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, binding.dtype)).dtype


def _pinned(binding: Binding) -> torch.Tensor:
    return torch.zeros(binding.shape, dtype=_torch_dtype(binding), pin_memory=True)


def _check_outputs(file: Path, produced: Any, outputs: Sequence[Binding]) -> None:
    shapes = [tuple(t.shape) for t in _as_list(produced)]
    expected = [b.shape for b in outputs]
    if shapes != expected:
        raise UserError(f"{file} returns shapes {shapes} but policy.json lists {expected}")
