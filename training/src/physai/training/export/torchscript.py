"""TorchScript: the policy traced with `torch.jit.trace` and saved as one `.pt` file.

    export_torchscript(policy, Path("out/policy.pt"))
    run = torchscript_runner(Path("out/policy.pt"))      # torch.jit.load: numpy in, out

Tracing (not scripting) because the policies are straight-line tensor code (no data-dependent
branches: the ONNX export would refuse those) and the library modules inside them (lerobot's
ACT, einops) are not scriptable. Sizes read from inputs are recorded as size ops, so the file
runs at any batch size; the parity check runs it at a batch size other than the traced one.
Load it with `torch.jit.load(path)` and call it with the inputs in policy.json order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.training.export.policy import ExportablePolicy


def export_torchscript(policy: ExportablePolicy, path: Path) -> None:
    """Trace `policy.module` and save it to `path` (UserError when it does not trace)."""
    example = policy.example_inputs(batch=2)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]
                policy.module, example, check_trace=False
            )
    except Exception as exc:  # tracing raises many types; all mean "does not trace"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"the {policy.kind} policy does not trace to TorchScript: {first}"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.11 deprecates torch.jit
        torch.jit.save(traced, str(path))


def torchscript_runner(
    path: Path, output_names: list[str], input_names: list[str]
) -> Callable[[dict[str, NDArray[np.float32]]], dict[str, NDArray[np.float32]]]:
    """A function running the saved TorchScript file on CPU: {input: array} -> {output: array}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]

    def run(values: dict[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
        args = [torch.from_numpy(np.ascontiguousarray(values[n])) for n in input_names]
        with torch.no_grad():
            result = module(*args)
        results = result if isinstance(result, tuple) else (result,)
        return {
            name: tensor.numpy().astype(np.float32)
            for name, tensor in zip(output_names, results, strict=True)
        }

    return run
