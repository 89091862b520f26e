"""ONNX: one self-contained `.onnx` file, opset `ONNX_OPSET`, a dynamic batch on every tensor.

    export_onnx(policy, Path("out/policy.onnx"))
    run = onnx_runner(Path("out/policy.onnx"))           # onnxruntime (CPU): numpy in, out
    run({"obs": obs})["actions"]

The exporter is torch 2.11's default, `torch.onnx.export(..., dynamo=True)` (torch.export +
onnxscript). It is the maintained path (the TorchScript-based one is deprecated), it exports
ACT's einops and list-of-camera code and the LSTM/GRU actors as they are, and when a model
cannot be exported it fails loudly (an op with no ONNX function, data-dependent control flow)
instead of tracing one branch in silently, which the old exporter does. Its failures become a
one-line UserError naming the op or source line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.training.export.policy import ExportablePolicy

ONNX_OPSET = 18
"""The opset of every exported file: what onnxruntime >= 1.14, TensorRT >= 8.6 (JetPack 6
included) and the dynamo exporter all support."""
SINGLE_FILE_LIMIT = 2**31 - 1
"""protobuf's limit: a bigger model would need external data, which the export refuses."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, warnings and onnxscript's optimizer logs."""
    logger = logging.getLogger("onnxscript")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_cause(exc: BaseException) -> str:
    """One line saying why torch.export / the ONNX conversion failed (op, layer, source line)."""
    text = _ANSI.sub("", str(exc))
    lines = [line.strip() for line in text.splitlines()]
    cause = ""
    if "## Exception summary" in lines:
        start = lines.index("## Exception summary") + 1
        cause = next((line for line in lines[start:] if line.startswith("<class")), "")
        cause = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>:\s*", r"\1: ", cause)
    if not cause:
        cause = next((line for line in lines if line), type(exc).__name__)
    if "The following call raised this error:" in lines:
        at = lines.index("The following call raised this error:")
        where = " ".join(line for line in lines[at + 1 : at + 3] if line)
        cause += f" (at {where})"
    return cause[:400]


def export_onnx(policy: ExportablePolicy, path: Path) -> None:
    """Write `policy` to `path` as one ONNX file (UserError when it does not export)."""
    example = policy.example_inputs(batch=2)
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    if _takes_varargs(policy.module):  # forward(*observations): one entry for the tuple
        dynamic = (dynamic,)  # type: ignore[assignment]
    try:
        with quiet():
            program = torch.onnx.export(
                policy.module,
                example,
                dynamo=True,
                opset_version=ONNX_OPSET,
                input_names=policy.input_names,
                output_names=policy.output_names,
                dynamic_shapes=dynamic,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "does not export"
        raise UserError(
            f"the {policy.kind} policy does not export to ONNX: {export_cause(exc)}"
        ) from None
    if program is None:
        raise UserError(f"the {policy.kind} policy does not export to ONNX (no program)")
    size = program.model_proto.ByteSize()
    if size > SINGLE_FILE_LIMIT:
        raise UserError(f"the {policy.kind} policy is {size} bytes: too big for one ONNX file")
    with quiet():
        program.save(str(path), external_data=False)


def _takes_varargs(module: torch.nn.Module) -> bool:
    import inspect

    parameters = inspect.signature(module.forward).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)


def onnx_runner(
    path: Path,
) -> Callable[[dict[str, NDArray[np.float32]]], dict[str, NDArray[np.float32]]]:
    """A function running the ONNX file with onnxruntime (CPU): {input: array} -> {output}."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(values: dict[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
        results = session.run(names, {k: np.ascontiguousarray(v) for k, v in values.items()})
        return {n: np.asarray(r, dtype=np.float32) for n, r in zip(names, results, strict=True)}

    return run
