"""PPO through skrl 2.x's torch API, driven by the shared loop in `physai.training.rl`.

skrl's own trainers own the loop (and their checkpoints and TensorBoard files); here the loop
is ours: `SkrlLearner.iteration` calls `agent.act`, `record_transition` and `post_interaction`
for `steps_per_iteration` steps, and skrl's PPO updates on the last of them (its `rollouts`
equals `steps_per_iteration`). skrl's experiment writing (TensorBoard, checkpoints) is off.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from skrl.agents.torch.ppo import PPO, PPO_CFG
from skrl.memories.torch import RandomMemory
from skrl.models.torch import DeterministicMixin, GaussianMixin, Model
from skrl.resources.schedulers.torch import KLAdaptiveLR
from torch import nn

from physai.training.rl import RLConfig, TorchVecEnv


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    """A tanh MLP (orthogonal-free default init) from `inputs` to `outputs`."""
    layers: list[nn.Module] = []
    size = inputs
    for width in hidden:
        layers += [nn.Linear(size, width), nn.Tanh()]
        size = width
    layers.append(nn.Linear(size, outputs))
    return nn.Sequential(*layers)


class Policy(GaussianMixin, Model):  # type: ignore[misc]
    """Gaussian policy: an MLP mean and a state-independent learned log std."""

    def __init__(self, env: TorchVecEnv, hidden: tuple[int, ...], device: str) -> None:
        Model.__init__(
            self,
            observation_space=env.observation_space,
            action_space=env.action_space,
            device=device,
        )
        GaussianMixin.__init__(self, clip_actions=False, clip_log_std=True, min_log_std=-5.0)
        self.net = mlp(env.num_obs, hidden, env.num_actions)
        self.log_std = nn.Parameter(torch.zeros(env.num_actions))

    def compute(
        self, inputs: dict[str, Any], role: str = ""
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Mean actions and the log std."""
        return self.net(inputs["observations"]), {"log_std": self.log_std}


class Value(DeterministicMixin, Model):  # type: ignore[misc]
    """State-value function: an MLP."""

    def __init__(self, env: TorchVecEnv, hidden: tuple[int, ...], device: str) -> None:
        Model.__init__(
            self,
            observation_space=env.observation_space,
            action_space=env.action_space,
            device=device,
        )
        DeterministicMixin.__init__(self, clip_actions=False)
        self.net = mlp(env.num_obs, hidden, 1)

    def compute(
        self, inputs: dict[str, Any], role: str = ""
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The value of each observation."""
        return self.net(inputs["observations"]), {}


class SkrlLearner:
    """skrl's PPO agent over a `TorchVecEnv`."""

    def __init__(self, config: RLConfig, env: TorchVecEnv) -> None:
        self.config = config
        self.env = env
        device = config.device
        self.policy = Policy(env, config.hidden_sizes, device)
        self.value = Value(env, config.hidden_sizes, device)
        memory = RandomMemory(
            memory_size=config.steps_per_iteration, num_envs=env.num_envs, device=device
        )
        cfg = PPO_CFG(
            rollouts=config.steps_per_iteration,
            learning_epochs=config.learning_epochs,
            mini_batches=config.mini_batches,
            discount_factor=config.discount,
            gae_lambda=config.gae_lambda,
            learning_rate=config.learning_rate,
            entropy_loss_scale=config.entropy_coef,
            value_loss_scale=1.0,
            grad_norm_clip=1.0,
            time_limit_bootstrap=True,
            learning_rate_scheduler=KLAdaptiveLR if config.schedule == "adaptive" else None,
            learning_rate_scheduler_kwargs={"kl_threshold": config.desired_kl},
        )
        cfg.experiment.write_interval = 0
        cfg.experiment.checkpoint_interval = 0
        cfg.experiment.directory = ""
        self.agent = PPO(
            models={"policy": self.policy, "value": self.value},
            memory=memory,
            observation_space=env.observation_space,
            action_space=env.action_space,
            device=device,
            cfg=cfg,
        )
        self.agent.init()
        self.agent.enable_training_mode(True)
        self.timestep = 0

    def iteration(self) -> dict[str, float]:
        """One rollout of `steps_per_iteration` steps; skrl updates after the last one."""
        obs = self.env.obs
        for _ in range(self.config.steps_per_iteration):
            with torch.no_grad():
                actions, _ = self.agent.act(obs, None, timestep=self.timestep, timesteps=0)
                next_obs, reward, terminated, truncated = self.env.step(actions)
                self.agent.record_transition(
                    observations=obs,
                    states=None,
                    actions=actions,
                    rewards=reward.unsqueeze(-1),
                    next_observations=self.env.final_obs,
                    next_states=None,
                    terminated=terminated.unsqueeze(-1),
                    truncated=truncated.unsqueeze(-1),
                    infos={},
                    timestep=self.timestep,
                    timesteps=0,
                )
            self.agent.post_interaction(timestep=self.timestep, timesteps=0)
            self.timestep += 1
            obs = next_obs
        return self._metrics()

    def _metrics(self) -> dict[str, float]:
        data = self.agent.tracking_data
        policy_loss = float(data["Loss / Policy loss"][-1])
        value_loss = float(data["Loss / Value loss"][-1])
        # Entropy of the Gaussian policy (state-independent std): sum of 0.5*log(2*pi*e) + log std.
        log_std = self.policy.log_std.detach().clamp(min=-5.0, max=2.0)
        entropy = float((0.5 * math.log(2 * math.pi * math.e) + log_std).sum())
        self.agent.tracking_data.clear()
        return {
            "train/policy_loss": policy_loss,
            "train/value_loss": value_loss,
            "train/entropy": entropy,
            "train/loss": policy_loss + value_loss - self.config.entropy_coef * entropy,
            "train/learning_rate": float(self.agent.optimizer.param_groups[0]["lr"]),
        }

    def state_dict(self) -> dict[str, Any]:
        """Policy, value and optimizer state, plus skrl's timestep counter."""
        return {
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "optimizer": self.agent.optimizer.state_dict(),
            "scheduler": self.agent.scheduler.state_dict() if self.agent.scheduler else {},
            "timestep": self.timestep,
        }

    def load_state_dict(self, state: dict[str, Any], *, weights_only: bool) -> None:
        """Restore weights (and, unless `weights_only`, the optimizer and counter)."""
        try:
            self.policy.load_state_dict(state["policy"])
            self.value.load_state_dict(state["value"])
            if not weights_only:
                self.agent.optimizer.load_state_dict(state["optimizer"])
                if self.agent.scheduler and state.get("scheduler"):
                    self.agent.scheduler.load_state_dict(state["scheduler"])
                self.timestep = int(state["timestep"])
        except (KeyError, RuntimeError, ValueError) as exc:
            from physai.core.errors import UserError

            raise UserError(f"checkpoint does not fit this skrl PPO model: {exc}") from None

    def set_learning_rate(self, learning_rate: float) -> None:
        """Set the Adam learning rate."""
        for group in self.agent.optimizer.param_groups:
            group["lr"] = learning_rate

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's mean action."""
        mean, _ = self.policy.compute({"observations": obs})
        return torch.as_tensor(mean)

    def weights_finite(self) -> bool:
        """Whether every parameter is finite."""
        return all(
            bool(torch.isfinite(p).all())
            for p in (*self.policy.parameters(), *self.value.parameters())
        )
