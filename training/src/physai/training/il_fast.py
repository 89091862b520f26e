"""The fast IL engine: decoded frames on the GPU and the whole training step as one CUDA graph.

lerobot's loop spends most of a small policy's step outside the GPU: a DataLoader that decodes
video per sample, a preprocessor that moves and normalizes each batch, about 1,400 kernel
launches from Python, and `.item()` syncs for the metrics. This engine removes that overhead
without changing what is computed:

- `FrameCache`: every frame of the dataset decoded once through `LeRobotDataset` itself (the
  same decoder, the same frames), images kept as uint8, then moved to the GPU. A batch is a
  gather by index: images -> float/255, and each delta-indexed feature (ACT's action chunk)
  through an index table with the same clamping and `*_is_pad` flags as lerobot's
  `_get_query_indices`.
- `FastStep`: gather -> lerobot's own preprocessor (normalization) -> the policy's loss
  (`ACT_LOSS` for ACT: `ACTPolicy.forward` without its `.item()` calls) -> backward ->
  gradient clipping (foreach) -> the same optimizer with the same groups, fused and capturable.
  After a few eager warm-up steps the step is captured in a `torch.cuda.CUDAGraph` and replayed:
  one launch per step. The loss and gradient norm accumulate on the GPU and are read once per
  log window, so nothing synchronizes in between.
- Batch indices come from the same `EpisodeAwareSampler` (seeded) as the lerobot engine; a batch
  never ends short at an epoch boundary (the graph has a fixed batch size), it continues into the
  next epoch.

On a CPU (tests) the same step runs eagerly. When capture fails the engine logs why and keeps
running the step eagerly. Used for policies in `FAST_POLICIES` (`engine="auto"` on CUDA).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from physai.core.errors import UserError
from physai.core.logs import get_logger

_log = get_logger(__name__)

LossFn = Callable[[Any, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor]]]
WARMUP_STEPS = 3
"""Eager steps before capture (cuDNN autotuning, lazy state, optimizer state allocation)."""
CACHE_GPU_FRACTION = 0.5
"""The frame cache goes to the GPU only when it needs at most this share of free memory."""


def act_loss(policy: Any, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """`ACTPolicy.forward`'s loss (masked L1 + kl_weight x KL) without its host syncs."""
    config = policy.config
    if config.image_features:
        batch = dict(batch)
        batch["observation.images"] = [batch[key] for key in config.image_features]  # type: ignore[assignment]
    actions_hat, (mu, log_sigma_x2) = policy.model(batch)
    abs_err = torch.nn.functional.l1_loss(batch["action"], actions_hat, reduction="none")
    valid = ~batch["action_is_pad"].unsqueeze(-1)
    num_valid = valid.sum() * abs_err.shape[-1]
    l1 = (abs_err * valid).sum() / num_valid.clamp_min(1)
    parts = {"l1_loss": l1.detach()}
    if config.use_vae and log_sigma_x2 is not None:
        kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
        parts["kld_loss"] = kld.detach()
        return l1 + kld * config.kl_weight, parts
    return l1, parts


FAST_POLICIES: dict[str, LossFn] = {"act": act_loss}
"""Policies the fast engine trains, with their sync-free loss."""


class FrameCache:
    """Every frame of a LeRobot dataset as tensors: a batch is one gather by frame index."""

    def __init__(
        self,
        columns: dict[str, Tensor],
        images: frozenset[str],
        tables: dict[str, tuple[Tensor, Tensor]],
    ) -> None:
        self.columns = columns
        self.images = images
        self.tables = tables
        """Per delta-indexed key: (frame indices (N, T), padding flags (N, T))."""

    @property
    def num_frames(self) -> int:
        """Frames held."""
        return int(next(iter(self.columns.values())).shape[0])

    def nbytes(self) -> int:
        """Bytes held by all tensors."""
        tensors = [*self.columns.values(), *(t for pair in self.tables.values() for t in pair)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def to(self, device: torch.device | str) -> FrameCache:
        """The same cache on `device`."""
        return FrameCache(
            {k: v.to(device) for k, v in self.columns.items()},
            self.images,
            {k: (i.to(device), p.to(device)) for k, (i, p) in self.tables.items()},
        )

    def batch(self, idx: Tensor) -> dict[str, Tensor]:
        """The batch lerobot's DataLoader collates for frames `idx` (images float in [0, 1])."""
        out: dict[str, Tensor] = {}
        for key, column in self.columns.items():
            if key in self.tables:
                rows, pad = self.tables[key]
                values = column[rows[idx]]
                out[f"{key}_is_pad"] = pad[idx]
            else:
                values = column[idx]
            out[key] = values.float().div_(255.0) if key in self.images else values
        return out

    @classmethod
    def build(
        cls,
        dataset: Any,
        keys: list[str],
        deltas: dict[str, list[int]],
        *,
        num_workers: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> FrameCache:
        """Decode `keys` of every frame of `dataset` (a LeRobotDataset opened WITHOUT
        delta_timestamps) through its own `__getitem__`; `deltas`: frame offsets per key."""
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=64, shuffle=False, num_workers=num_workers
        )
        images = frozenset(k for k in keys if k in dataset.meta.camera_keys)
        total = len(dataset)
        columns: dict[str, Tensor] = {}  # filled in place: no second copy at the end
        episodes = torch.empty(total, dtype=torch.long)
        done = 0
        for batch in loader:
            rows = len(batch["episode_index"])
            for key in keys:
                value = batch[key]
                if key in images:  # decoded as uint8 / 255: round back exactly
                    value = (value * 255.0).round_().to(torch.uint8)
                if key not in columns:
                    columns[key] = torch.empty((total, *value.shape[1:]), dtype=value.dtype)
                columns[key][done : done + rows] = value
            episodes[done : done + rows] = batch["episode_index"]
            done += rows
            if progress is not None:
                progress(done, total)
        starts = torch.as_tensor(dataset.meta.episodes["dataset_from_index"]).long()
        ends = torch.as_tensor(dataset.meta.episodes["dataset_to_index"]).long()
        frame = torch.arange(len(episodes))
        tables = {
            key: _delta_table(frame, starts[episodes], ends[episodes], offsets)
            for key, offsets in deltas.items()
            if key in columns
        }
        return cls(columns, images, tables)


def estimate_cache_bytes(info: dict[str, Any]) -> int:
    """What a FrameCache of a dataset will hold, from its meta/info.json: uint8 images and
    float32 (or the declared dtype) numeric features for every frame, plus 10% for the index
    tables."""
    per_frame = 0
    for feature in info.get("features", {}).values():
        dtype = str(feature.get("dtype"))
        size = 1
        for dim in feature.get("shape", []):
            size *= int(dim)
        if dtype in ("video", "image"):
            per_frame += size
        elif dtype in ("float32", "int32"):
            per_frame += 4 * size
        elif dtype in ("float64", "int64"):
            per_frame += 8 * size
    return int(1.1 * per_frame * int(info.get("total_frames", 0)))


def _delta_table(
    frame: Tensor, start: Tensor, end: Tensor, offsets: list[int]
) -> tuple[Tensor, Tensor]:
    """lerobot's query indices: frame + offset clamped into the episode, padded outside it."""
    wanted = frame[:, None] + torch.as_tensor(offsets)[None, :]
    rows = torch.maximum(torch.minimum(wanted, end[:, None] - 1), start[:, None])
    pad = (wanted < start[:, None]) | (wanted >= end[:, None])
    return rows, pad


def delta_indices(
    delta_timestamps: dict[str, list[float]] | None, fps: float
) -> dict[str, list[int]]:
    """lerobot's delta_timestamps (seconds) back to frame offsets."""
    return {k: [round(t * fps) for t in v] for k, v in (delta_timestamps or {}).items()}


def fused_optimizer(optimizer: torch.optim.Optimizer, device: str) -> torch.optim.Optimizer:
    """The same Adam/AdamW (groups, hyperparameters and state) with the fused kernel; on CUDA
    also capturable, with tensor learning rates a scheduler can update inside a graph.

    Also used after a checkpoint is loaded: `load_state_dict` replaces the parameter groups,
    and with them the fused and capturable flags, with the saved ones.
    """
    kind = type(optimizer)
    if kind not in (torch.optim.Adam, torch.optim.AdamW):
        raise UserError(f"the fast engine needs an Adam or AdamW optimizer, not {kind.__name__}")
    cuda = device == "cuda"
    flags = {"fused": True, "capturable": cuda, "foreach": None}
    groups = []
    for group in optimizer.param_groups:
        clean = {k: v for k, v in group.items() if k not in flags}
        clean["lr"] = float(group["lr"])
        groups.append(clean)
    fused = kind(groups, fused=True, capturable=cuda)
    if optimizer.state:
        saved = optimizer.state_dict()
        for group in saved["param_groups"]:
            group.update(flags, lr=float(group["lr"]))
        fused.load_state_dict(saved)  # capturable: the step counters move to the device too
    if cuda:
        for group in fused.param_groups:
            group["lr"] = torch.tensor(float(group["lr"]), device="cuda")
    return fused


def sampler_batches(sampler: Any, batch_size: int) -> Iterator[list[int]]:
    """Full batches of indices from `sampler` forever, running on into the next epoch."""
    pending: list[int] = []
    while True:
        for index in sampler:
            pending.append(int(index))
            if len(pending) == batch_size:
                yield pending
                pending = []


class FastStep:
    """One training step over a `FrameCache`, replayed as a CUDA graph once captured."""

    def __init__(
        self,
        *,
        policy: Any,
        preprocessor: Any,
        optimizer: torch.optim.Optimizer,
        cache: FrameCache,
        loss_fn: LossFn,
        batch_size: int,
        grad_clip_norm: float,
        device: str,
    ) -> None:
        self.policy, self.preprocessor, self.optimizer = policy, preprocessor, optimizer
        self.cache, self.loss_fn, self.device = cache, loss_fn, device
        self.clip = grad_clip_norm if grad_clip_norm > 0 else float("inf")
        self.params = [p for p in policy.parameters() if p.requires_grad]
        self.idx = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.extra_sums: dict[str, Tensor] = {}
        self.steps_in_window = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self._eager_steps = 0
        self._use_graph = device == "cuda"

    def _body(self) -> None:
        batch = self.preprocessor(self.cache.batch(self.idx))
        loss, parts = self.loss_fn(self.policy, batch)
        loss.backward()  # type: ignore[no-untyped-call]
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.optimizer.step()
        self.loss_sum.add_(loss.detach())
        self.grad_norm.copy_(norm)
        for name, value in parts.items():
            if name not in self.extra_sums:
                self.extra_sums[name] = torch.zeros((), device=self.device)
            self.extra_sums[name].add_(value)

    def _eager(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.device == "cuda":  # warm-up belongs on a side stream before capture
            side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._body()
            torch.cuda.current_stream().wait_stream(side)
        else:
            self._body()
        self._eager_steps += 1

    def _capture(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body()
        except Exception as exc:  # capture refuses host syncs and CPU tensors; run eagerly then
            _log.warning("CUDA graph capture failed (%s): the fast engine runs eagerly", exc)
            self._use_graph = False
            self.optimizer.zero_grad(set_to_none=True)
            return
        self.graph = graph

    def run(self, indices: Tensor) -> None:
        """Train on each row of `indices` (steps x batch_size frame indices) in turn."""
        rows = indices.to(self.device, non_blocking=True)
        for row in rows:
            self.idx.copy_(row, non_blocking=True)
            if self._use_graph and self.graph is None and self._eager_steps >= WARMUP_STEPS:
                self._capture()
            if self.graph is not None:
                self.graph.replay()
            else:
                self._eager()
            self.steps_in_window += 1

    def read_window(self) -> tuple[float, float, dict[str, float]]:
        """(mean loss, last gradient norm, mean extra losses) since the last read; resets."""
        count = max(self.steps_in_window, 1)
        values = torch.stack([self.loss_sum, self.grad_norm, *self.extra_sums.values()]).tolist()
        extras = {name: v / count for name, v in zip(self.extra_sums, values[2:], strict=True)}
        self.loss_sum.zero_()
        for tensor in self.extra_sums.values():
            tensor.zero_()
        self.steps_in_window = 0
        return values[0] / count, values[1], extras
