"""The parity check: an exported file must give the PyTorch policy's outputs, within a tolerance.

    values, kind = parity_inputs(policy, observations=None, samples=64)   # random, seeded
    parity = check_parity(policy, "onnx", onnx_runner(path), values, kind, tolerance=1e-4)
    parity.max_abs_error                                  # ParityError above the tolerance

Inputs are random (N(0, 1); images uniform in [0, 1]; hidden states too) or recorded ones: a
`.npy` array for the policy's first input (rows are samples) or a `.npz` with one array per
input name (inputs it lacks are drawn at random). Both run in batches of `CHUNK` rows, so a
check also exercises a batch size other than the one the export traced with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.training.export.policy import ExportablePolicy
from physai.training.policy_card import Parity

DEFAULT_TOLERANCE = 1e-4
"""Max abs error allowed between an fp32 export and the PyTorch policy."""
FP16_TOLERANCE = 1e-2
"""Max abs error allowed for fp16 TensorRT engines (unless a larger tolerance is given)."""
DEFAULT_SAMPLES = 64
CHUNK = 16
MAX_RECORDED = 4096

Arrays = dict[str, NDArray[np.float32]]
Runner = Callable[[Arrays], Arrays]
Kind = Literal["recorded", "random"]


class ParityError(UserError):
    """An exported file's outputs differ from the PyTorch policy's by more than the tolerance."""


def _recorded(policy: ExportablePolicy, path: Path) -> Arrays:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"observations file {path} does not load: {exc}") from None
    if isinstance(loaded, np.ndarray):
        found = {policy.inputs[0].name: loaded}
    else:
        found = {name: loaded[name] for name in loaded.files}
        unknown = sorted(set(found) - set(policy.input_names))
        if unknown:
            raise UserError(
                f"observations file {path} has arrays {', '.join(unknown)}; the policy's inputs "
                f"are {', '.join(policy.input_names)}"
            )
    rows = {len(v) for v in found.values()}
    if len(rows) != 1 or 0 in rows:
        raise UserError(f"observations file {path}: every array needs the same, non-zero rows")
    values = policy.random_inputs(min(rows.pop(), MAX_RECORDED), seed=0)
    for spec in policy.inputs:
        if spec.name not in found:
            continue
        array = found[spec.name]
        if list(array.shape[1:]) != spec.shape[1:]:
            raise UserError(
                f"observations file {path}: {spec.name} has shape {list(array.shape)}, the "
                f"policy takes {spec.shape} (-1: any number of rows)"
            )
        values[spec.name] = np.asarray(array[:MAX_RECORDED], dtype=spec.dtype)
    return values


def parity_inputs(
    policy: ExportablePolicy, observations: str | Path | None, samples: int = DEFAULT_SAMPLES
) -> tuple[Arrays, Kind]:
    """The inputs every format is checked on: recorded ones from a file, else random."""
    if observations is not None:
        return _recorded(policy, Path(observations)), "recorded"
    if samples < 1:
        raise UserError(f"parity samples must be 1 or more, not {samples}")
    return policy.random_inputs(samples, seed=0), "random"


def _chunks(values: Arrays) -> list[Arrays]:
    rows = len(next(iter(values.values())))
    return [{k: v[i : i + CHUNK] for k, v in values.items()} for i in range(0, rows, CHUNK)]


def max_abs_error(reference: Runner, candidate: Runner, values: Arrays) -> tuple[float, str]:
    """The largest |reference - candidate| over every output and row, and where it was."""
    worst, where = 0.0, ""
    for chunk in _chunks(values):
        expected, got = reference(chunk), candidate(chunk)
        for name, array in expected.items():
            if name not in got or got[name].shape != array.shape:
                shape = None if name not in got else list(got[name].shape)
                raise ParityError(f"output {name} has shape {shape}, expected {list(array.shape)}")
            diff = np.abs(got[name].astype(np.float64) - array.astype(np.float64))
            error = float(diff.max()) if diff.size else 0.0
            if not np.isfinite(diff).all():
                error = math.inf
            if error > worst or not where:
                worst, where = error, name
    return worst, where


def check_parity(
    policy: ExportablePolicy,
    fmt: str,
    run: Runner,
    values: Arrays,
    kind: Kind,
    tolerance: float,
) -> Parity:
    """Compare `run` (an exported file) with the PyTorch policy; ParityError above `tolerance`."""
    error, output = max_abs_error(policy.run, run, values)
    if not error <= tolerance:
        raise ParityError(
            f"{fmt} export differs from the PyTorch policy by {error:.3g} (output {output}) > "
            f"tolerance {tolerance:g}: nothing was written"
        )
    samples = len(next(iter(values.values())))
    return Parity(max_abs_error=error, tolerance=tolerance, samples=samples, observations=kind)
