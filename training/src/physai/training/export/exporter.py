"""`export_policy`: checkpoint -> checked ONNX / TorchScript / TensorRT files + policy.json.

    result = export_policy("outputs/ppo/latest.json", "exports/ppo", formats=("onnx",))
    result.card.parity["onnx"].max_abs_error             # checked against the PyTorch policy
    result.files["onnx"]                                  # 'exports/ppo/policy.onnx'

Everything is written into a hidden staging folder beside `output` (core storage's atomic
`publish`: a rename locally, a commit marker on Blob) and appears only when every format
exported and passed its parity check; a failure at any point leaves nothing at `output`.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from physai.core import storage
from physai.core.errors import UserError
from physai.training.export.parity import DEFAULT_SAMPLES, DEFAULT_TOLERANCE, FP16_TOLERANCE
from physai.training.policy_card import (
    CARD_NAME,
    FORMATS,
    Format,
    Parity,
    PolicyCard,
    PolicyFile,
)

if TYPE_CHECKING:
    from physai.core.settings import Settings
    from physai.training.export.parity import Arrays, Kind
    from physai.training.export.policy import ExportablePolicy
    from physai.training.export.tensorrt import Precision

FILE_NAMES: dict[Format, str] = {
    "onnx": "policy.onnx",
    "torchscript": "policy.pt",
    "tensorrt": "policy.engine",
}
DEFAULT_FORMATS: tuple[Format, ...] = ("onnx", "torchscript")


@dataclass
class ExportResult:
    """What an export wrote: the output URL, its card and each format's file URL."""

    output: str
    card: PolicyCard
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what `--json` prints)."""
        return {
            "output": self.output,
            "card": storage.join_url(self.output, CARD_NAME),
            "files": self.files,
            "parity": {k: v.model_dump() for k, v in self.card.parity.items()},
            "policy": self.card.policy,
            "name": self.card.name,
        }


def parse_formats(formats: str | Sequence[str]) -> list[Format]:
    """`'onnx,torchscript'` (or a list) as known formats in a fixed order; UserError otherwise.

    TensorRT is built from the ONNX file, so asking for it exports ONNX too.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        shown = ", ".join(unknown) if unknown else "none"
        raise UserError(f"unknown export format(s) {shown}: choose from {', '.join(FORMATS)}")
    if "tensorrt" in wanted:
        wanted.add("onnx")
    return [f for f in FORMATS if f in wanted]


def _default_name(output: str) -> str:
    name = output.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    return name or "policy"


def export_policy(
    checkpoint: str,
    output: str,
    *,
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    tolerance: float = DEFAULT_TOLERANCE,
    observations: str | Path | None = None,
    samples: int = DEFAULT_SAMPLES,
    name: str | None = None,
    dataset: str | None = None,
    control_rate_hz: float | None = None,
    precision: Precision = "fp32",
    overwrite: bool = False,
    settings: Settings | None = None,
    uint8_images: bool = False,
) -> ExportResult:
    """Export the policy in `checkpoint` to `output` (a folder path or storage URL).

    Every format is checked against the PyTorch policy on `samples` random observations (or
    the recorded ones in `observations`, .npy/.npz) and fails with ParityError above
    `tolerance` (fp16 TensorRT engines: at least `FP16_TOLERANCE`). `precision` applies to
    TensorRT only. `uint8_images`: an ACT policy's cameras become (batch, height, width, 3)
    uint8 inputs, converted inside the exported graph. UserError (one line, nothing written)
    for bad input.
    """
    from physai.training.export.actors import load_actor
    from physai.training.export.parity import parity_inputs

    chosen = parse_formats(formats)
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise UserError(f"tolerance must be a positive number, not {tolerance}")
    if control_rate_hz is not None and not control_rate_hz > 0:
        raise UserError(f"control rate must be positive, not {control_rate_hz}")
    if precision not in ("fp32", "fp16"):
        raise UserError(f"precision must be fp32 or fp16, not {precision!r}")
    if "tensorrt" in chosen:
        from physai.training.export.tensorrt import require_tensorrt

        require_tensorrt()  # before any work: fail fast, write nothing
    if not overwrite and storage.exists(output, settings):
        raise UserError(f"{output} already exists: pass --overwrite or another --output")
    policy = load_actor(checkpoint, dataset=dataset, settings=settings, uint8_images=uint8_images)
    values, kind = parity_inputs(policy, observations, samples)
    card_name = name or _default_name(output)
    with storage.publish(output, settings, overwrite=overwrite) as staging:
        local = staging.local_path
        scratch = None if local is not None else Path(tempfile.mkdtemp(prefix="physai-export-"))
        folder = cast(Path, local if local is not None else scratch)
        try:
            files, parity = _export_all(policy, folder, chosen, values, kind, tolerance, precision)
            card = _card(policy, card_name, control_rate_hz, files, parity)
            (folder / CARD_NAME).write_text(card.to_json())
            if scratch is not None:
                for child in sorted(scratch.iterdir()):
                    staging.put(child, child.name)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    urls = {str(fmt): storage.join_url(output, entry.path) for fmt, entry in card.files.items()}
    return ExportResult(output=output, card=card, files=urls)


def _export_all(
    policy: ExportablePolicy,
    folder: Path,
    formats: list[Format],
    values: Arrays,
    kind: Kind,
    tolerance: float,
    precision: Precision,
) -> tuple[dict[Format, PolicyFile], dict[Format, Parity]]:
    """Write every format into `folder` and check it: its card entries and parity results."""
    from physai.training.export.onnx import ONNX_OPSET, export_onnx, onnx_runner
    from physai.training.export.parity import check_parity
    from physai.training.export.torchscript import export_torchscript, torchscript_runner
    from physai.training.policy_card import sha256_file

    files: dict[Format, PolicyFile] = {}
    parity: dict[Format, Parity] = {}
    for fmt in formats:
        path = folder / FILE_NAMES[fmt]
        if fmt == "onnx":
            export_onnx(policy, path)
            run = onnx_runner(path)
        elif fmt == "torchscript":
            export_torchscript(policy, path)
            run = torchscript_runner(path, policy.output_names, policy.input_names)
        else:
            from physai.training.export.tensorrt import build_engine, engine_runner

            build_engine(folder / FILE_NAMES["onnx"], path, policy, precision)
            run = engine_runner(path, policy)
        fp16 = fmt == "tensorrt" and precision == "fp16"
        limit = max(tolerance, FP16_TOLERANCE) if fp16 else tolerance
        parity[fmt] = check_parity(policy, fmt, run, values, kind, limit)
        files[fmt] = PolicyFile(
            path=path.name,
            sha256=sha256_file(path),
            opset=ONNX_OPSET if fmt == "onnx" else None,
            precision=precision if fmt == "tensorrt" else "fp32",
        )
    return files, parity


def _card(
    policy: ExportablePolicy,
    name: str,
    control_rate_hz: float | None,
    files: dict[Format, PolicyFile],
    parity: dict[Format, Parity],
) -> PolicyCard:
    """The policy.json of an export."""
    import torch

    from physai.training import __version__

    exported_with = {
        "torch": torch.__version__,
        "physai-training": __version__,
        "onnx_exporter": "torch.onnx.export(dynamo=True)",
    }
    return PolicyCard(
        name=name,
        policy=policy.kind,
        inputs=policy.inputs,
        outputs=policy.outputs,
        normalization=policy.normalization,
        recurrent=policy.recurrent,
        control_rate_hz=control_rate_hz or policy.control_rate_hz,
        source=policy.source,
        files=files,
        parity=parity,
        extra={**policy.extra, "exported_with": exported_with},
    )
