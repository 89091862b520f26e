"""TensorRT backend: a deserialized engine with device buffers held as torch CUDA tensors.

Only usable where `tensorrt` (TensorRT 10's Python API) imports and torch sees a GPU. Input
shapes are set once for the policy's batch size, every tensor address is set once, and a call
is one asynchronous host-to-device copy per input, `execute_async_v3` on a dedicated stream,
one device-to-host copy per output into page-locked memory, and a synchronize.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError, UserError
from physai.training.policy_card import Format
from physai.training.runtime.backend import Binding, Device

INSTALL = "pip install 'physai-training[tensorrt]'"


def tensorrt() -> Any:
    """The tensorrt module, or a one-line MissingDependencyError naming the extra."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        raise MissingDependencyError("TensorRT (the tensorrt Python package)", INSTALL) from None


def available() -> bool:
    """Whether tensorrt imports and torch sees a CUDA device."""
    try:
        tensorrt()
    except MissingDependencyError:
        return False
    import torch

    return bool(torch.cuda.is_available())


class TensorRTBackend:
    """Runs a serialized TensorRT engine (.engine / .plan) on the current CUDA device."""

    format: Format = "tensorrt"

    def __init__(
        self, file: Path, inputs: Sequence[Binding], outputs: Sequence[Binding], *, device: Device
    ) -> None:
        trt = tensorrt()
        import torch

        if device != "cuda" or not torch.cuda.is_available():
            raise UserError("format 'tensorrt' needs a CUDA device: use format='onnx' on CPU")
        self.device: Device = "cuda"
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(file.read_bytes())
        if engine is None:
            raise UserError(
                f"{file} is not a TensorRT engine this TensorRT ({trt.__version__}) and GPU can "
                "load: rebuild it on this machine"
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        expected = [b.name for b in (*inputs, *outputs)]
        if sorted(names) != sorted(expected):
            raise UserError(f"{file} has tensors {names} but policy.json lists {expected}")
        for b in inputs:
            if engine.get_tensor_mode(b.name) != trt.TensorIOMode.INPUT:
                raise UserError(f"{file}: {b.name} is not an input of the engine")
            self.context.set_input_shape(b.name, b.shape)
        self.stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        self._host_in: list[Any] = []
        self._host_out: list[Any] = []
        self._device_in: list[Any] = []
        self._device_out: list[Any] = []
        self.inputs: dict[str, NDArray[Any]] = {}
        self.outputs: dict[str, NDArray[Any]] = {}
        for b, hosts, devices, arrays in (
            *((b, self._host_in, self._device_in, self.inputs) for b in inputs),
            *((b, self._host_out, self._device_out, self.outputs) for b in outputs),
        ):
            shape = tuple(self.context.get_tensor_shape(b.name))
            if shape != b.shape:
                raise UserError(f"{file}: {b.name} has shape {shape}, policy.json says {b.shape}")
            dtype = torch.from_numpy(np.zeros(0, b.dtype)).dtype
            host = torch.zeros(b.shape, dtype=dtype, pin_memory=True)
            on_device = torch.zeros(b.shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(b.name, on_device.data_ptr())
            hosts.append(host)
            devices.append(on_device)
            arrays[b.name] = host.numpy()
        self._handle = self.stream.cuda_stream

    def run(self) -> None:
        """Copy in, execute the engine, copy out, wait."""
        import torch

        with torch.cuda.stream(self.stream):
            for device_in, host in zip(self._device_in, self._host_in, strict=True):
                device_in.copy_(host, non_blocking=True)
            if not self.context.execute_async_v3(self._handle):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            for host, device_out in zip(self._host_out, self._device_out, strict=True):
                host.copy_(device_out, non_blocking=True)
        self.stream.synchronize()

    def describe(self) -> dict[str, str]:
        """The GPU and TensorRT version."""
        import torch

        return {"gpu": torch.cuda.get_device_name(), "tensorrt": str(tensorrt().__version__)}
