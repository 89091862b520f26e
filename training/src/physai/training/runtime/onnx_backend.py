"""ONNX Runtime backend: one InferenceSession with I/O bound once to preallocated numpy buffers.

Per call the only work outside ONNX Runtime's kernels is `run_with_iobinding` on a binding
made at load time: no feed dict, no output list, no new arrays. The session options are the
ones measured fastest for small policies on CPU (see benchmarks/policy_latency.py).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError, UserError
from physai.training.policy_card import Format
from physai.training.runtime.backend import Binding, Device

# Session config entries applied on CPU (keys from onnxruntime_session_options_config_keys.h).
# Prepacking stays on (ONNX Runtime's default): without it the fp32 GEMMs take another path and
# the outputs are no longer bit-identical to a default session's.
# The name `physai training export` gives the dynamic batch dimension.
BATCH_DIM = "batch"

CPU_SESSION_CONFIG: dict[str, str] = {
    "session.intra_op.allow_spinning": "1",
    "session.inter_op.allow_spinning": "0",
}


def onnxruntime() -> Any:
    """The onnxruntime module, or a one-line MissingDependencyError."""
    try:
        return importlib.import_module("onnxruntime")
    except ImportError:
        raise MissingDependencyError(
            "onnxruntime", "pip install 'physai-training' (it is a dependency)"
        ) from None


def cuda_available() -> bool:
    """Whether this onnxruntime build has the CUDA execution provider."""
    try:
        return "CUDAExecutionProvider" in onnxruntime().get_available_providers()
    except MissingDependencyError:
        return False


def session_options(
    threads: int, *, config: Mapping[str, str] | None = None, memory_arena: bool = True
) -> Any:
    """SessionOptions for a latency-bound policy: `threads` intra-op threads, one inter-op
    thread, sequential execution, every graph optimization, plus `config` entries."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = memory_arena
    options.log_severity_level = 3
    for key, value in (CPU_SESSION_CONFIG if config is None else config).items():
        options.add_session_config_entry(key, value)
    return options


class OnnxBackend:
    """Runs an .onnx file with ONNX Runtime (CPU, or CUDA when device is 'cuda').

    On CPU, ONNX Runtime reads and writes the host buffers themselves. On CUDA, inputs and
    outputs live in device buffers bound once; each run copies the observation in, replays the
    session (as a CUDA graph when every node runs on the GPU) and copies the actions out.
    """

    format: Format = "onnx"

    def __init__(
        self,
        file: Path,
        inputs: Sequence[Binding],
        outputs: Sequence[Binding],
        *,
        device: Device,
        threads: int,
        tf32: bool = False,
    ) -> None:
        ort = onnxruntime()
        self.device: Device = device
        self.threads = threads
        if device == "cuda" and not cuda_available():
            raise UserError(
                "device 'cuda' needs onnxruntime-gpu (CUDAExecutionProvider is not "
                "available): pip install onnxruntime-gpu, or use format='torchscript'"
            )
        options = session_options(threads)
        # Fixing the exported dynamic batch lets the optimizer fold the shape arithmetic away
        # (on CUDA such CPU-side shape nodes would rule out a CUDA graph).
        options.add_free_dimension_override_by_name(BATCH_DIM, inputs[0].shape[0])
        self.inputs = {b.name: np.zeros(b.shape, b.dtype) for b in inputs}
        self.outputs = {b.name: np.zeros(b.shape, b.dtype) for b in outputs}
        names = ([b.name for b in inputs], [b.name for b in outputs])
        self.cuda_graph = False
        if device == "cuda":
            bound, self.cuda_graph = _cuda_bound(ort, file, options, tf32, self, names)
        else:
            session = _open(ort, file, options, ["CPUExecutionProvider"])
            bound = _Bound(ort, file, session, self.inputs, self.outputs, names, device)
        self.session = bound.session
        self.provider = str(bound.session.get_providers()[0])
        self._bound = bound  # keeps the OrtValues ONNX Runtime reads and writes alive
        self.run: Callable[[], None] = bound.run

    def describe(self) -> dict[str, str]:
        """Provider, threads and, on CUDA, whether runs replay a CUDA graph."""
        facts = {"provider": self.provider, "intra_op_threads": str(self.threads)}
        if self.device == "cuda":
            facts["cuda_graph"] = str(self.cuda_graph)
        return facts


def _open(ort: Any, file: Path, options: Any, providers: list[Any]) -> Any:
    try:
        return ort.InferenceSession(str(file), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{file} is not a loadable ONNX model: {first}") from None


class _Bound:
    """A session with every input and output bound once: to OrtValues over the host arrays on
    CPU, to device OrtValues (with copies in and out around each run) on CUDA."""

    def __init__(
        self,
        ort: Any,
        file: Path,
        session: Any,
        host_in: dict[str, NDArray[Any]],
        host_out: dict[str, NDArray[Any]],
        names: tuple[list[str], list[str]],
        device: Device,
    ) -> None:
        _check_names(file, "inputs", names[0], session.get_inputs())
        _check_names(file, "outputs", names[1], session.get_outputs())
        self.session = session
        binding = session.io_binding()
        where = ("cuda", 0) if device == "cuda" else ("cpu", 0)
        values = {}
        for name, array in [*host_in.items(), *host_out.items()]:
            value = ort.OrtValue.ortvalue_from_numpy(array, *where)
            values[name] = value
            if name in host_in:
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_ortvalue_output(name, value)
        self.values = values
        self.binding = binding
        run = _bound_run(session, binding)
        if device == "cuda":
            run = _with_copies(run, host_in, host_out, values)
        self.run: Callable[[], None] = run


# ONNX Runtime's CUDA provider captures its graph after a couple of plain runs; these many runs
# at load make sure the capture has happened (and succeeded) before the caller's first call.
CUDA_GRAPH_CAPTURE_RUNS = 3


def _cuda_bound(
    ort: Any,
    file: Path,
    options: Any,
    tf32: bool,
    backend: OnnxBackend,
    names: tuple[list[str], list[str]],
) -> tuple[_Bound, bool]:
    """A CUDA session replaying a CUDA graph, or a plain one where the graph cannot be used
    (a node that falls back to the CPU, or a capture that fails in the first runs)."""
    # onnxruntime-gpu finds the CUDA and cuDNN libraries torch loads (ONNX Runtime's documented
    # way; the CUDA major versions must match, as they do for torch 2.11 and onnxruntime-gpu 1.31).
    importlib.import_module("torch")
    cuda = {"device_id": "0", "use_tf32": "1" if tf32 else "0"}
    for graph in (True, False):
        # A refused graph is expected on some models: keep ONNX Runtime's error line quiet then.
        options.log_severity_level = 4 if graph else 3
        provider = ("CUDAExecutionProvider", cuda | {"enable_cuda_graph": "1" if graph else "0"})
        try:
            session = _open(ort, file, options, [provider, "CPUExecutionProvider"])
            bound = _Bound(ort, file, session, backend.inputs, backend.outputs, names, "cuda")
            if graph:
                for _ in range(CUDA_GRAPH_CAPTURE_RUNS):
                    bound.run()
            return bound, graph
        except Exception:  # onnxruntime raises its own types; the plain session is the answer
            if not graph:
                raise
    raise AssertionError("unreachable")


def _with_copies(
    run: Callable[[], None],
    host_in: Mapping[str, NDArray[Any]],
    host_out: Mapping[str, NDArray[Any]],
    device: Mapping[str, Any],
) -> Callable[[], None]:
    """`run` with the host inputs copied to their device buffers before it and the device
    outputs copied back after (synchronous copies: the run's own stream is synchronized)."""
    inputs = [(device[name].update_inplace, array) for name, array in host_in.items()]
    outputs = [(device[name].numpy, array) for name, array in host_out.items()]
    copyto = np.copyto

    def copied_run() -> None:
        for update, array in inputs:
            update(array)
        run()
        for fetch, array in outputs:
            copyto(array, fetch())

    return copied_run


def _bound_run(session: Any, binding: Any) -> Callable[[], None]:
    # The public `session.run_with_iobinding(binding)` is a Python wrapper around the C++
    # method; calling the C++ method directly saves a Python frame per call (~0.5 us). One
    # RunOptions made here saves constructing a default one in C++ every call (~0.2 us).
    run_options = onnxruntime().RunOptions()
    inner = getattr(session, "_sess", None)
    raw = getattr(binding, "_iobinding", None)
    if inner is not None and raw is not None and hasattr(inner, "run_with_iobinding"):
        return functools.partial(inner.run_with_iobinding, raw, run_options)
    return functools.partial(session.run_with_iobinding, binding, run_options)


def _check_names(file: Path, what: str, card: list[str], model: Sequence[Any]) -> None:
    names = [node.name for node in model]
    if sorted(card) != sorted(names):
        raise UserError(f"{file} has {what} {names} but policy.json lists {card}")
