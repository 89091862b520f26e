"""Tiny training presets the training tests share (imported as `from tiny_presets import ...`,
as the workspace tests import `physai_workspace`): small enough to train in seconds on a CPU."""

from __future__ import annotations

from typing import Any

TINY_RL: dict[str, Any] = {
    "num_envs": 2,
    "steps_per_iteration": 8,
    "iterations": 2,
    "hidden_sizes": (16, 16),
    "mini_batches": 2,
    "learning_epochs": 1,
    "eval_episodes": 0,
}
"""RLConfig fields: two PPO iterations of 16 steps on a 16-16 MLP, no final evaluation."""

TINY_ACT: dict[str, Any] = {
    "dim_model": 32,
    "n_heads": 2,
    "dim_feedforward": 64,
    "n_encoder_layers": 1,
    "n_decoder_layers": 1,
    "n_vae_encoder_layers": 1,
    "latent_dim": 8,
    "chunk_size": 5,
    "n_action_steps": 5,
    "pretrained_backbone_weights": None,  # no torchvision download
}
"""ACTConfig overrides: a one-layer, 32-wide ACT with a 5-step chunk."""

JOINT_NAMES = [f"joint_{i}" for i in range(6)]
"""The 6-dim state and action of the tiny datasets."""
