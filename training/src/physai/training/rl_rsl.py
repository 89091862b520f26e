"""PPO through RSL-RL 5.x, driven by the shared loop in `physai.training.rl`.

`RslVecEnv` adapts a `TorchVecEnv` (a gymnasium VectorEnv with same-step autoreset) to
`rsl_rl.env.VecEnv`: observations are a TensorDict with one group, `policy`, used by both the
actor and the critic (`obs_groups`); `step` returns (obs, rewards (N,), dones (N,) as long,
extras) with `extras["time_outs"]` set for truncated-but-not-terminated episodes, so PPO
bootstraps their value. The runner's `OnPolicyRunner` builds the algorithm from the cfg dict;
its `learn` loop is replaced by `RslLearner.iteration` (the same steps, one iteration at a
time), so the shared loop logs, checkpoints and guards against NaN.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from rsl_rl.env import VecEnv
from rsl_rl.runners import OnPolicyRunner
from tensordict import TensorDict

from physai.core.errors import UserError
from physai.training.rl import RLConfig, TorchVecEnv


class RslVecEnv(VecEnv):  # type: ignore[misc]
    """A `TorchVecEnv` as RSL-RL's `VecEnv`."""

    def __init__(self, env: TorchVecEnv, device: str = "cpu") -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = env.num_actions
        self.max_episode_length = env.max_episode_length
        self.episode_length_buf = torch.zeros(env.num_envs, dtype=torch.long, device=device)
        self.device = device
        self.cfg: dict[str, Any] = {"task": env.task.name, "env_id": env.task.env_id}

    def _obs(self, obs: torch.Tensor) -> TensorDict:
        return TensorDict({"policy": obs.to(self.device)}, batch_size=[obs.shape[0]])

    def get_observations(self) -> TensorDict:
        """The current observations as {"policy": (N, obs_dim)}."""
        return self._obs(self.env.obs)

    def step(
        self, actions: torch.Tensor
    ) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step all environments; finished ones are already reset in the returned obs."""
        obs, reward, terminated, truncated = self.env.step(actions)
        done = terminated | truncated
        self.episode_length_buf += 1
        self.episode_length_buf[done] = 0
        extras = {"time_outs": (truncated & ~terminated).to(self.device), "log": {}}
        return self._obs(obs), reward.to(self.device), done.to(torch.long).to(self.device), extras


def runner_cfg(config: RLConfig) -> dict[str, Any]:
    """The OnPolicyRunner cfg dict for `config` (RSL-RL 5.x layout)."""
    hidden = list(config.hidden_sizes)
    return {
        "num_steps_per_env": config.steps_per_iteration,
        "save_interval": 10**9,  # checkpoints are written by physai's loop, not the runner
        "check_for_nan": True,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": {
            "class_name": "PPO",
            "num_learning_epochs": config.learning_epochs,
            "num_mini_batches": config.mini_batches,
            "learning_rate": config.learning_rate,
            "schedule": "adaptive" if config.schedule == "adaptive" else "fixed",
            "gamma": config.discount,
            "lam": config.gae_lambda,
            "entropy_coef": config.entropy_coef,
            "value_loss_coef": 1.0,
            "max_grad_norm": 1.0,
            "clip_param": 0.2,
            "desired_kl": config.desired_kl,
        },
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": hidden,
            "activation": "tanh",
            "obs_normalization": False,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0},
        },
        "critic": {
            "class_name": "MLPModel",
            "hidden_dims": hidden,
            "activation": "tanh",
            "obs_normalization": False,
        },
    }


class RslLearner:
    """RSL-RL's PPO (built by its OnPolicyRunner) over a `TorchVecEnv`."""

    def __init__(self, config: RLConfig, env: TorchVecEnv) -> None:
        self.config = config
        self.vec_env = RslVecEnv(env, config.device)
        with contextlib.redirect_stdout(io.StringIO()):  # the runner prints the models
            self.runner = OnPolicyRunner(
                self.vec_env, runner_cfg(config), log_dir=None, device=config.device
            )
        self.alg = self.runner.alg
        self.alg.train_mode()

    def iteration(self) -> dict[str, float]:
        """One rollout and one PPO update, as `OnPolicyRunner.learn` does per iteration."""
        obs = self.vec_env.get_observations()
        with torch.inference_mode():
            for _ in range(self.config.steps_per_iteration):
                actions = self.alg.act(obs)
                obs, rewards, dones, extras = self.vec_env.step(actions)
                self.alg.process_env_step(obs, rewards, dones, extras)
            self.alg.compute_returns(obs)
        losses = self.alg.update()
        policy_loss = float(losses["surrogate"])
        value_loss = float(losses["value"])
        entropy = float(losses["entropy"])
        return {
            "train/policy_loss": policy_loss,
            "train/value_loss": value_loss,
            "train/entropy": entropy,
            "train/loss": policy_loss + value_loss - self.config.entropy_coef * entropy,
            "train/learning_rate": float(self.alg.learning_rate),
        }

    def state_dict(self) -> dict[str, Any]:
        """RSL-RL's own save dict: actor, critic and optimizer state dicts."""
        return dict(self.alg.save())

    def load_state_dict(self, state: dict[str, Any], *, weights_only: bool) -> None:
        """Restore the actor and critic (and, unless `weights_only`, the optimizer)."""
        load_cfg = {"actor": True, "critic": True, "optimizer": not weights_only}
        try:
            self.alg.load(state, load_cfg, True)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint does not fit this RSL-RL PPO model: {exc}") from None

    def set_learning_rate(self, learning_rate: float) -> None:
        """Set the Adam learning rate (RSL-RL keeps it in `alg.learning_rate` too)."""
        self.alg.learning_rate = learning_rate
        for group in self.alg.optimizer.param_groups:
            group["lr"] = learning_rate

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's mean action."""
        return torch.as_tensor(self.alg.actor(self.vec_env._obs(obs), stochastic_output=False))

    def weights_finite(self) -> bool:
        """Whether every actor and critic parameter is finite."""
        modules = (self.alg.actor, self.alg.critic)
        return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())
