"""`policy.json`: what an exported policy is, written beside its files by `physai training export`.

    card = PolicyCard.read("exports/ppo-pendulum/policy.json")
    card.inputs[0].name, card.inputs[0].shape        # 'obs', [-1, 4]  (-1: the dynamic batch)
    card.files["onnx"].path, card.files["onnx"].sha256

One card describes one policy and every format it was exported to. The runtime
(`physai.training.runtime.load_policy`), packaging (the OCI model carrier) and registration
read it; nothing else about an exported policy is assumed. Paths in `files` are relative to the
card's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from physai.core.errors import UserError

CARD_NAME = "policy.json"
CARD_FORMAT: Literal["physai.policy/1"] = "physai.policy/1"
Format = Literal["onnx", "torchscript", "tensorrt"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript", "tensorrt")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Frozen):
    """One named input or output. `shape` uses -1 for the dynamic batch dimension."""

    name: str = Field(min_length=1)
    shape: list[int]
    dtype: str = Field("float32", description="numpy dtype name")


class Normalization(_Frozen):
    """How raw observations are normalized. `folded`: the exported graph already does it."""

    folded: bool
    kind: Literal["none", "mean_std", "min_max"] = "none"
    stats: dict[str, dict[str, list[float]]] = Field(
        default_factory=dict, description="per input/output name: {'mean': [...], 'std': [...]}"
    )


class Recurrent(_Frozen):
    """A recurrent policy's state: each hidden input is fed back from the same-index output."""

    hidden_inputs: list[str]
    hidden_outputs: list[str]


class PolicyFile(_Frozen):
    """One exported file of the policy."""

    path: str = Field(min_length=1, description="relative to the card's folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    opset: int | None = Field(None, description="ONNX opset, for onnx files")
    precision: Literal["fp32", "fp16"] = "fp32"


class Parity(_Frozen):
    """A parity check of one format against the PyTorch policy."""

    max_abs_error: float
    tolerance: float
    samples: int = Field(ge=1)
    observations: Literal["recorded", "random"] = "random"


class PolicySource(_Frozen):
    """Where the policy came from (lineage)."""

    kind: Literal["skrl", "rsl_rl", "lerobot"]
    checkpoint: str
    run: str | None = Field(None, description="runs:/<id> of the training run, when known")
    task: str | None = None
    dataset: str | None = None


class PolicyCard(_Frozen):
    """The whole of policy.json."""

    format: Literal["physai.policy/1"] = CARD_FORMAT
    name: str = Field(min_length=1)
    policy: str = Field(description="what it is: 'mlp_actor', 'recurrent_actor', 'act', ...")
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    normalization: Normalization = Normalization(folded=False)
    recurrent: Recurrent | None = None
    control_rate_hz: float | None = Field(None, gt=0)
    source: PolicySource
    files: dict[Format, PolicyFile] = Field(default_factory=dict)
    parity: dict[Format, Parity] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict, description="policy-specific facts")

    @classmethod
    def read(cls, path: str | Path) -> PolicyCard:
        """The card at `path` (a policy.json or the folder holding one); UserError if invalid."""
        file = Path(path)
        if file.is_dir():
            file = file / CARD_NAME
        try:
            return cls.model_validate_json(file.read_bytes())
        except FileNotFoundError:
            raise UserError(f"{file} does not exist: export the policy first") from None
        except OSError as exc:
            raise UserError(f"{file} cannot be read: {exc.strerror or exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "card"
            message = f"{file} is not a valid {CARD_FORMAT} card: {where}: {first['msg']}"
            raise UserError(message) from None

    def to_json(self) -> str:
        """The card as indented JSON text (what export writes)."""
        return self.model_dump_json(indent=2, exclude_none=False) + "\n"

    def verify_files(self, folder: str | Path) -> None:
        """UserError when a listed file is missing or its sha256 differs from the card's."""
        for fmt, entry in self.files.items():
            file = Path(folder) / entry.path
            if not file.is_file():
                raise UserError(f"{fmt} file {file} named by {CARD_NAME} is missing")
            if sha256_file(file) != entry.sha256:
                raise UserError(f"{fmt} file {file} does not match the sha256 in {CARD_NAME}")


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a local file (core storage's hasher)."""
    from physai.core.storage import resolve
    from physai.core.storage.manifest import hash_file

    return hash_file(resolve(str(Path(path).resolve()))).sha256
