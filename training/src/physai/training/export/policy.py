"""`ExportablePolicy`: a PyTorch module plus everything policy.json says about it.

    policy = load_actor("outputs/ppo/latest.json")       # physai.training.export.actors
    policy.module(*policy.example_inputs(batch=2))       # the deterministic forward
    policy.inputs[0].name, policy.inputs[0].shape        # 'obs', [-1, 4]

Every loader (RL actors, LeRobot ACT) produces one, so the format writers (ONNX, TorchScript,
TensorRT) and the parity check never look at a checkpoint. `module` takes the inputs as
positional tensors in the order of `inputs` and returns the outputs (a tuple when there are
several) in the order of `outputs`; every tensor is batch-first with a dynamic batch (-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from physai.training.policy_card import Normalization, PolicySource, Recurrent, TensorSpec


@dataclass
class ExportablePolicy:
    """A policy ready to export: its module (eval mode, CPU, fp32) and its card facts."""

    name: str
    kind: str
    """policy.json `policy`: 'mlp_actor', 'recurrent_actor', 'act'."""
    module: torch.nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    source: PolicySource
    normalization: Normalization = field(default_factory=lambda: Normalization(folded=False))
    recurrent: Recurrent | None = None
    control_rate_hz: float | None = None
    value_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per input: the range random parity samples are drawn from (default: standard normal)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        """The input names, in the module's argument order."""
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """The output names, in the module's result order."""
        return [spec.name for spec in self.outputs]

    def random_inputs(self, batch: int, seed: int = 0) -> dict[str, NDArray[Any]]:
        """`batch` random samples of every input (uniform in `value_ranges`, else N(0, 1);
        uint8 inputs such as camera frames: uniform over 0-255)."""
        rng = np.random.default_rng(seed)
        samples: dict[str, NDArray[Any]] = {}
        for spec in self.inputs:
            shape = (batch, *spec.shape[1:])
            if spec.dtype == "uint8":
                samples[spec.name] = rng.integers(0, 256, shape, dtype=np.uint8)
            elif spec.name in self.value_ranges:
                low, high = self.value_ranges[spec.name]
                samples[spec.name] = rng.uniform(low, high, shape).astype(np.float32)
            else:
                samples[spec.name] = rng.standard_normal(shape).astype(np.float32)
        return samples

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Random example inputs as tensors (what tracing and export run once)."""
        values = self.random_inputs(batch, seed=1)
        return tuple(torch.from_numpy(values[name]) for name in self.input_names)

    def run(self, values: dict[str, NDArray[Any]]) -> dict[str, NDArray[np.float32]]:
        """The PyTorch policy on numpy inputs: {output name: array} (the parity reference)."""
        args = tuple(torch.from_numpy(np.ascontiguousarray(values[n])) for n in self.input_names)
        with torch.no_grad():
            result = self.module(*args)
        results = result if isinstance(result, tuple) else (result,)
        return {
            name: tensor.detach().cpu().numpy().astype(np.float32)
            for name, tensor in zip(self.output_names, results, strict=True)
        }
