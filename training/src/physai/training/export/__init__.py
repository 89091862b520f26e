"""Export a trained policy to ONNX, TorchScript and TensorRT, checked and described by policy.json.

    from physai.training.export import export_policy
    result = export_policy("outputs/ppo/latest.json", "exports/ppo",
                           formats="onnx,torchscript", tolerance=1e-4)
    result.card.inputs, result.card.parity["onnx"].max_abs_error

CLI: `physai training export CHECKPOINT --format onnx,torchscript --output DIR`.

Modules, one job each: `actors` (which policy a checkpoint holds) with `rl_actors` (skrl and
RSL-RL actors, normalizer folded in, recurrent ones with hidden-state inputs) and `act`
(LeRobot ACT's inference forward, processor normalization folded in); `onnx`, `torchscript`
and `tensorrt` (one format each: write it, run it); `parity` (compare a format with the
PyTorch policy); `exporter` (all of it, written atomically with policy.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from physai.core.lazy import lazy_exports

if TYPE_CHECKING:
    from physai.training.export.actors import load_actor
    from physai.training.export.exporter import ExportResult, export_policy, parse_formats
    from physai.training.export.onnx import ONNX_OPSET
    from physai.training.export.parity import DEFAULT_TOLERANCE, ParityError
    from physai.training.export.policy import ExportablePolicy

__all__ = [
    "DEFAULT_TOLERANCE",
    "ONNX_OPSET",
    "ExportResult",
    "ExportablePolicy",
    "ParityError",
    "export_policy",
    "load_actor",
    "parse_formats",
]

_PUBLIC = {
    "DEFAULT_TOLERANCE": "physai.training.export.parity",
    "ONNX_OPSET": "physai.training.export.onnx",
    "ExportResult": "physai.training.export.exporter",
    "ExportablePolicy": "physai.training.export.policy",
    "ParityError": "physai.training.export.parity",
    "export_policy": "physai.training.export.exporter",
    "load_actor": "physai.training.export.actors",
    "parse_formats": "physai.training.export.exporter",
}
__getattr__ = lazy_exports(__name__, _PUBLIC)
