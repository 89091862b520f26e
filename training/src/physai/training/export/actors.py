"""Load the policy a checkpoint holds, whatever trained it: `load_actor(checkpoint)`.

    load_actor("outputs/ppo/latest.json")                       # physai RL (skrl or RSL-RL)
    load_actor("outputs/ppo/ckpt_150.pt")
    load_actor("outputs/act")                                   # an IL run: its latest.json
    load_actor("outputs/act/checkpoints/000020")                # one IL checkpoint
    load_actor("outputs/act/checkpoints/000020/pretrained_model")

What it looks at, in order: a local folder holding a LeRobot `pretrained_model`
(config.json + model.safetensors), directly or under `pretrained_model/`, or an IL run output
whose latest.json is a `physai.il.latest/1` pointer -> LeRobot ACT; anything else (a .pt file,
a latest.json, an RL checkpoint folder or URL, `runs:/` / `models:/`) -> a physai RL
checkpoint (`physai.rl.checkpoint/1`). Anything that is neither is a one-line UserError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from physai.core.errors import UserError
from physai.training.export.policy import ExportablePolicy

if TYPE_CHECKING:
    from physai.core.settings import Settings

PRETRAINED_DIR = "pretrained_model"
IL_POINTER_FORMAT = "physai.il.latest/1"


def _is_pretrained(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _il_pointer(folder: Path) -> bool:
    pointer = folder / "latest.json"
    if not pointer.is_file():
        return False
    try:
        return bool(json.loads(pointer.read_text()).get("format") == IL_POINTER_FORMAT)
    except (ValueError, AttributeError):
        return False


def _local(checkpoint: str) -> Path | None:
    if "://" in checkpoint and not checkpoint.startswith("file://"):
        return None
    if checkpoint.startswith(("runs:/", "models:/")):
        return None
    return Path(checkpoint.removeprefix("file://")).expanduser()


def load_actor(
    checkpoint: str,
    *,
    dataset: str | None = None,
    settings: Settings | None = None,
    uint8_images: bool = False,
) -> ExportablePolicy:
    """The exportable policy in `checkpoint` (see the module docstring for what it accepts).

    `dataset` (a LeRobot dataset path or URL) is recorded as the source of an ACT policy and
    gives its control rate (the dataset's fps). `uint8_images`: an ACT policy takes its cameras
    as (batch, height, width, 3) uint8 frames (UserError for policies without cameras).
    """
    local = _local(checkpoint)
    if local is not None and not local.exists():
        raise UserError(f"checkpoint {checkpoint} does not exist")
    if local is not None and local.is_dir():
        where = str(local.resolve())
        if _is_pretrained(local):
            return _act(local, where, dataset, settings, uint8_images)
        if _is_pretrained(local / PRETRAINED_DIR):
            return _act(local / PRETRAINED_DIR, where, dataset, settings, uint8_images)
        if _il_pointer(local):
            from physai.training.il_checkpoints import ILCheckpointStore

            with ILCheckpointStore(str(local), settings).open_latest() as folder:
                assert folder is not None  # _il_pointer saw latest.json
                where = str(folder.resolve())
                return _act(folder / PRETRAINED_DIR, where, dataset, settings, uint8_images)
        if not (local / "latest.json").is_file():
            raise UserError(
                f"{checkpoint} holds neither a physai RL checkpoint (latest.json, ckpt_<n>.pt) "
                "nor a LeRobot policy (config.json + model.safetensors)"
            )
    if uint8_images:
        raise UserError("uint8 images apply to policies with cameras (LeRobot ACT), not RL actors")
    from physai.training.export.rl_actors import rl_actor
    from physai.training.rl import load_checkpoint

    payload = load_checkpoint(checkpoint, settings)
    where = str(local.resolve()) if local is not None else checkpoint
    return rl_actor(payload, where)


def _act(
    folder: Path,
    where: str,
    dataset: str | None,
    settings: Settings | None,
    uint8_images: bool,
) -> ExportablePolicy:
    from physai.training.export.act import act_policy

    policy = act_policy(
        folder, where, dataset=dataset, settings=settings, uint8_images=uint8_images
    )
    if uint8_images and not any(spec.dtype == "uint8" for spec in policy.inputs):
        raise UserError(f"{where} has no camera: --uint8-images needs one")
    return policy
