"""LeRobot ACT checkpoints (`physai training il --policy act`) as one exportable forward.

    policy = act_policy(Path("outputs/act/checkpoints/000020/pretrained_model"), "...")
    chunk = policy.module(state, env_state, image)       # raw observations -> raw action chunk

The exported forward is ACT's inference pass (`ACT.forward` in eval mode: no VAE encoder, a
zero latent) with lerobot's processor normalization folded in: each observation input is
normalized with the stats of the checkpoint's `policy_preprocessor` (its
`normalizer_processor` step) and the predicted chunk is unnormalized with the
`policy_postprocessor`'s stats, exactly as lerobot's pipelines do (MEAN_STD:
`(x - mean) / (std + eps)` and `x * std + mean`; MIN_MAX: to and from [-1, 1]; features whose
type the norm map does not name pass through). Inputs are lerobot's feature names
(`observation.state`, `observation.environment_state`, `observation.images.<camera>`), images
float32 in [0, 1], channels first; the output `action` is `(batch, chunk_size, action_dim)`.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from physai.core.errors import MissingDependencyError, UserError
from physai.training.export.policy import ExportablePolicy
from physai.training.policy_card import Normalization, PolicySource, TensorSpec

PREPROCESSOR = "policy_preprocessor.json"
POSTPROCESSOR = "policy_postprocessor.json"
FOLDABLE = ("IDENTITY", "MEAN_STD", "MIN_MAX")


class FeatureNormalizer(nn.Module):
    """lerobot's MEAN_STD / MIN_MAX (un)normalization of one feature, with fixed stats."""

    shift: torch.Tensor
    scale: torch.Tensor
    denominator: torch.Tensor

    def __init__(self, mode: str, stats: dict[str, torch.Tensor], eps: float, inverse: bool):
        super().__init__()
        self.mode = mode
        self.inverse = inverse
        if mode == "MEAN_STD":
            self.register_buffer("shift", stats["mean"].float().clone())
            self.register_buffer("scale", stats["std"].float().clone())
            self.register_buffer("denominator", stats["std"].float() + eps)
        else:  # MIN_MAX
            low, high = stats["min"].float(), stats["max"].float()
            span = high - low
            self.register_buffer("shift", low.clone())
            self.register_buffer("scale", span.clone())
            self.register_buffer("denominator", torch.where(span == 0, torch.tensor(eps), span))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize (or, with `inverse`, unnormalize) `x`."""
        if self.mode == "MEAN_STD":
            if self.inverse:
                return x * self.scale + self.shift
            return (x - self.shift) / self.denominator
        if self.inverse:
            return (x + 1) / 2 * self.denominator + self.shift
        return 2 * (x - self.shift) / self.denominator - 1


class ActChunk(nn.Module):
    """Raw observations (in `keys` order) -> unnormalized action chunk.

    ACT's inference pass written over the lerobot model's own layers, so that it traces to a
    device-independent graph and can be captured as a CUDA graph. lerobot's `ACT.forward`
    builds the zero latent on the CPU and copies it over, and computes the cameras' sinusoidal
    position embedding with `arange(device=...)`; a trace would bake those devices in, and the
    copy is refused during CUDA graph capture. Here the latent token is its projection's bias
    (the projection of zero) and each camera's position embedding, which depends only on the
    feature map's size, is computed once at export and kept as a buffer. The result equals
    lerobot's forward (training/tests/test_export.py compares it with lerobot's policy and
    processors; the export's own parity check compares each format with this module).
    """

    def __init__(
        self,
        model: nn.Module,
        keys: list[str],
        image_keys: list[str],
        normalizers: dict[str, nn.Module],
        unnormalizer: nn.Module,
        image_shapes: dict[str, tuple[int, ...]],
        uint8_images: bool = False,
    ) -> None:
        super().__init__()
        self.uint8_images = uint8_images
        self.model = model
        self.keys = keys
        self.state_at = keys.index("observation.state") if "observation.state" in keys else -1
        env = "observation.environment_state"
        self.env_at = keys.index(env) if env in keys else -1
        self.image_at = [keys.index(k) for k in image_keys]
        self.normalizers = nn.ModuleList([normalizers.get(k, nn.Identity()) for k in keys])
        self.unnormalizer = unnormalizer
        layers: Any = model
        embeddings = [layers.encoder_1d_feature_pos_embed.weight.detach().unsqueeze(1)]
        with torch.no_grad():  # one position embedding per camera, for its fixed image size
            for key in image_keys:
                feature_map = layers.backbone(torch.zeros(1, *image_shapes[key]))["feature_map"]
                embedding = layers.encoder_cam_feat_pos_embed(feature_map)
                embeddings.append(embedding.flatten(2).permute(2, 0, 1))  # (h*w, 1, dim)
        self.register_buffer("position", torch.cat(embeddings))

    def forward(self, *observations: torch.Tensor) -> torch.Tensor:
        """The action chunk (batch, chunk_size, action_dim) for one observation per row."""
        model: Any = self.model
        raw = list(observations)
        if self.uint8_images:  # camera frames as they come: (batch, h, w, 3) uint8
            for at in self.image_at:
                raw[at] = raw[at].permute(0, 3, 1, 2).float().div(255.0)
        x = [normalize(value) for normalize, value in zip(self.normalizers, raw, strict=True)]
        batch = x[0].shape[0]
        tokens = [model.encoder_latent_input_proj.bias.expand(batch, -1)]  # proj(zero latent)
        if self.state_at >= 0:
            tokens.append(model.encoder_robot_state_input_proj(x[self.state_at]))
        if self.env_at >= 0:
            tokens.append(model.encoder_env_state_input_proj(x[self.env_at]))
        sequence = [torch.stack(tokens, dim=0)]
        for at in self.image_at:
            features = model.encoder_img_feat_input_proj(model.backbone(x[at])["feature_map"])
            sequence.append(features.flatten(2).permute(2, 0, 1))  # (h*w, batch, dim)
        encoded = model.encoder(torch.cat(sequence, dim=0), pos_embed=self.position)
        queries = model.decoder_pos_embed.weight.unsqueeze(1)
        decoded = model.decoder(
            torch.zeros_like(queries.expand(-1, batch, -1)),
            encoded,
            encoder_pos_embed=self.position,
            decoder_pos_embed=queries,
        )
        return self.unnormalizer(model.action_head(decoded.transpose(0, 1)))  # type: ignore[no-any-return]


def _step(folder: Path, config_name: str, step_type: type) -> Any:
    from lerobot.processor import PolicyProcessorPipeline

    if not (folder / config_name).is_file():
        raise UserError(
            f"{folder} has no {config_name}: not a lerobot 0.6 checkpoint (its normalization "
            "stats are missing)"
        )
    try:
        pipeline = PolicyProcessorPipeline.from_pretrained(folder, config_filename=config_name)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{folder}/{config_name} does not load: {exc}") from None
    for step in pipeline.steps:
        if isinstance(step, step_type):
            return step
    return None


def _mode(step: Any, key: str) -> str:
    """The normalization mode lerobot applies to `key` ('IDENTITY' when it applies none)."""
    if step is None or key not in step.features or key not in step._tensor_stats:
        return "IDENTITY"
    mode = step.norm_map.get(step.features[key].type)
    return "IDENTITY" if mode is None else str(mode.value)


def _normalizer(step: Any, key: str, inverse: bool) -> tuple[nn.Module, str, dict[str, Any]]:
    mode = _mode(step, key)
    if mode not in FOLDABLE:
        raise UserError(
            f"cannot export the ACT policy: {key} uses {mode} normalization, which the exporter "
            f"cannot fold in (supported: {', '.join(FOLDABLE)})"
        )
    if mode == "IDENTITY":
        return nn.Identity(), mode, {}
    stats = {k: v.detach().cpu() for k, v in step._tensor_stats[key].items()}
    names = ("mean", "std") if mode == "MEAN_STD" else ("min", "max")
    listed = {n: [float(v) for v in stats[n].reshape(-1)] for n in names}
    return FeatureNormalizer(mode, stats, float(step.eps), inverse), mode, listed


def dataset_fps(dataset: str, settings: Any = None) -> float:
    """The fps in a LeRobot dataset's meta/info.json (a path or storage URL)."""
    from physai.core import storage

    url = storage.join_url(dataset, "meta", "info.json")
    try:
        info = json.loads(storage.read_text(url, settings))
        return float(info["fps"])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        raise UserError(f"{dataset} is not a LeRobot dataset (no fps in meta/info.json)") from None


def act_policy(
    folder: Path,
    checkpoint: str,
    *,
    dataset: str | None = None,
    settings: Any = None,
    uint8_images: bool = False,
) -> ExportablePolicy:
    """The exportable inference forward of the ACT policy in a `pretrained_model` folder.

    `uint8_images`: cameras are inputs as a camera gives them, (batch, height, width, 3) uint8,
    converted inside the exported graph (a quarter of the bytes of float32 frames to copy)."""
    try:
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.processor.normalize_processor import (
            NormalizerProcessorStep,
            UnnormalizerProcessorStep,
        )
    except ImportError:
        raise MissingDependencyError(
            "lerobot", "pip install 'physai-training[lerobot]' (lerobot 0.6.1)"
        ) from None
    try:
        kind = json.loads((folder / "config.json").read_text()).get("type")
    except (OSError, ValueError, AttributeError):
        raise UserError(f"{folder}/config.json is not a lerobot policy config") from None
    if kind != "act":
        raise UserError(f"cannot export {folder}: it is a {kind!r} policy; only act exports now")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # lerobot prints where it loads from
            policy = ACTPolicy.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot load the ACT policy in {folder}: {first}") from None
    policy.eval()
    config = policy.config
    pre = _step(folder, PREPROCESSOR, NormalizerProcessorStep)
    post = _step(folder, POSTPROCESSOR, UnnormalizerProcessorStep)

    keys: list[str] = []
    if config.robot_state_feature:
        keys.append("observation.state")
    if config.env_state_feature:
        keys.append("observation.environment_state")
    image_keys = list(config.image_features)
    keys += image_keys
    normalizers: dict[str, nn.Module] = {}
    modes: dict[str, str] = {}
    stats: dict[str, dict[str, list[float]]] = {}
    for key in keys:
        normalizers[key], modes[key], listed = _normalizer(pre, key, inverse=False)
        if listed:
            stats[key] = listed
    unnormalizer, modes["action"], listed = _normalizer(post, "action", inverse=True)
    if listed:
        stats["action"] = listed
    shapes = {k: tuple(int(d) for d in config.input_features[k].shape) for k in image_keys}
    module = ActChunk(
        policy.model, keys, image_keys, normalizers, unnormalizer, shapes, uint8_images
    ).eval()

    features = config.input_features
    inputs = [TensorSpec(name=k, shape=[-1, *(int(d) for d in features[k].shape)]) for k in keys]
    if uint8_images:
        inputs = [
            TensorSpec(name=k, shape=[-1, shapes[k][1], shapes[k][2], shapes[k][0]], dtype="uint8")
            if k in image_keys
            else spec
            for k, spec in zip(keys, inputs, strict=True)
        ]
    action_dim = int(config.output_features["action"].shape[0])
    outputs = [TensorSpec(name="action", shape=[-1, int(config.chunk_size), action_dim])]
    used = sorted({m for m in modes.values() if m != "IDENTITY"})
    return ExportablePolicy(
        name=f"act-{folder.parent.name}",
        kind="act",
        module=module,
        inputs=inputs,
        outputs=outputs,
        source=PolicySource(kind="lerobot", checkpoint=checkpoint, dataset=dataset),
        normalization=Normalization(
            folded=True,
            kind="none" if not used else used[0].lower(),
            stats=stats,
        ),
        control_rate_hz=dataset_fps(dataset, settings) if dataset else None,
        value_ranges={} if uint8_images else {k: (0.0, 1.0) for k in image_keys},
        extra={
            "lerobot_policy": "act",
            "chunk_size": int(config.chunk_size),
            "n_action_steps": int(config.n_action_steps),
            "temporal_ensemble_coeff": config.temporal_ensemble_coeff,
            "normalization_modes": modes,
            "images": {
                "range": [0, 255] if uint8_images else [0.0, 1.0],
                "layout": "NHWC" if uint8_images else "NCHW",
                "dtype": "uint8" if uint8_images else "float32",
                "keys": image_keys,
            },
        },
    )
