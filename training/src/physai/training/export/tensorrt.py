"""TensorRT: a serialized engine built from the exported ONNX file, fp32 or fp16.

    require_tensorrt()                                   # MissingDependencyError without it
    build_engine(Path("out/policy.onnx"), Path("out/policy.engine"), policy, "fp16")
    run = engine_runner(Path("out/policy.engine"), policy)   # on the GPU, through torch CUDA

TensorRT 10 API: an explicit-batch network parsed from the ONNX file, one optimization profile
covering batch 1..`MAX_BATCH` (optimal `OPT_BATCH`) for every input, fp16 kernels allowed when
asked. An engine only runs on the GPU model and TensorRT version that built it, so build it on
the target (a Jetson with JetPack, which ships tensorrt, or the deployment GPU). UNTESTED here:
the development machine has neither tensorrt nor a GPU.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError, UserError
from physai.training.export.policy import ExportablePolicy

Precision = Literal["fp32", "fp16"]
MAX_BATCH = 64
OPT_BATCH = 1
WORKSPACE_BYTES = 1 << 30
INSTALL_HINT = (
    "pip install 'physai-training[tensorrt]' on a machine with an NVIDIA GPU "
    "(on Jetson, JetPack ships tensorrt)"
)


def require_tensorrt() -> ModuleType:
    """The `tensorrt` module, or MissingDependencyError saying how to install it."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        raise MissingDependencyError("tensorrt (for --format tensorrt)", INSTALL_HINT) from None


def build_engine(
    onnx_path: Path, engine_path: Path, policy: ExportablePolicy, precision: Precision
) -> None:
    """Parse `onnx_path` and write the serialized engine to `engine_path`."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_path.name}: {errors or 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for spec in policy.inputs:
        rest = tuple(spec.shape[1:])
        profile.set_shape(spec.name, (1, *rest), (OPT_BATCH, *rest), (MAX_BATCH, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT could not build an engine from {onnx_path.name} (see its log)")
    engine_path.write_bytes(bytes(serialized))


def engine_runner(
    engine_path: Path, policy: ExportablePolicy
) -> Callable[[dict[str, NDArray[np.float32]]], dict[str, NDArray[np.float32]]]:
    """A function running the engine on the current CUDA device: {input: array} -> {output}."""
    import torch

    trt = require_tensorrt()
    if not torch.cuda.is_available():
        raise UserError("checking a TensorRT engine needs a CUDA GPU, and torch sees none")
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    context = engine.create_execution_context()

    def run(values: dict[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
        batch = len(next(iter(values.values())))
        keep: list[torch.Tensor] = []
        for spec in policy.inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(values[spec.name])).cuda()
            context.set_input_shape(spec.name, tuple(tensor.shape))
            context.set_tensor_address(spec.name, tensor.data_ptr())
            keep.append(tensor)
        outputs: dict[str, torch.Tensor] = {}
        for spec in policy.outputs:
            shape = (batch, *spec.shape[1:])
            outputs[spec.name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            context.set_tensor_address(spec.name, outputs[spec.name].data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise UserError(f"TensorRT engine {engine_path.name} failed to run")
        stream.synchronize()
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}

    return run
