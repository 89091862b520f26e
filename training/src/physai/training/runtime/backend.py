"""What every runtime backend provides: host buffers bound once, and `run()`.

A backend owns one preallocated numpy array per input and per output (page-locked where the
device is a GPU). `run()` executes the policy on whatever the input arrays hold and leaves the
results in the output arrays; it allocates nothing. `Policy` copies observations in and hands
the output arrays back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import UserError
from physai.training.policy_card import Format, TensorSpec

Device = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class Binding:
    """One input or output with its dynamic dimensions fixed to the batch size."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @classmethod
    def of(cls, spec: TensorSpec, batch_size: int) -> Binding:
        """`spec` with every -1 replaced by `batch_size`."""
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            message = f"policy.json: {spec.name} has an unknown dtype {spec.dtype!r}"
            raise UserError(message) from None
        shape = tuple(batch_size if d == -1 else d for d in spec.shape)
        if any(d < 1 for d in shape):
            raise UserError(f"policy.json: {spec.name} has an invalid shape {spec.shape}")
        return cls(spec.name, shape, dtype)

    def describe(self) -> str:
        """'obs (1, 235) float32'."""
        return f"{self.name} {self.shape} {self.dtype}"


class Backend(Protocol):
    """An executor of one exported file, bound to fixed host buffers."""

    format: Format
    device: Device
    inputs: dict[str, NDArray[Any]]
    outputs: dict[str, NDArray[Any]]

    def run(self) -> None:
        """Run the policy on `inputs`, writing `outputs`."""

    def describe(self) -> dict[str, str]:
        """Facts about the execution (provider, threads, CUDA graph, ...)."""
