"""The deterministic actor of a `physai training rl` checkpoint (skrl or RSL-RL), as plain torch.

    policy = rl_actor(load_checkpoint("outputs/ppo/latest.json"), "outputs/ppo/latest.json")
    policy.module(obs)                                   # mean action, normalizer folded in

The actor is rebuilt from the checkpoint's state dict alone (no library objects, no
environment): linear layers from their weights, the activation from the payload's
`activation` (default `tanh`, what `physai training rl` trains), the Gaussian head's mean as
the action. An observation normalizer in the checkpoint is folded in front of the MLP:

- RSL-RL (`state["actor_state_dict"]`, rsl-rl-lib 5.x models): `mlp.<i>` linears,
  `obs_normalizer._mean/_std` (`(x - mean) / (std + 0.01)`), `distribution.std_param` or
  `log_std_param`, and for recurrent actors `rnn.rnn.*` (an LSTM or GRU).
- skrl (`state["policy"]`): `net.<i>` linears, `log_std`, and a `RunningStandardScaler` state
  under `state["state_preprocessor"]` when there is one
  (`clamp((x - mean) / (sqrt(var) + 1e-8), -5, 5)`).

Recurrent actors take and return their hidden state batch-first: inputs `obs`, `h_in`
(and `c_in` for an LSTM), each `(batch, layers, hidden)`; outputs `actions`, `h_out` (`c_out`).
A key the layout does not know, a layer chain that does not fit, or sizes that differ from the
task's spaces raise a one-line UserError naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from physai.core.errors import UserError
from physai.training.export.policy import ExportablePolicy
from physai.training.policy_card import Normalization, PolicySource, Recurrent, TensorSpec

DEFAULT_ACTIVATION = "tanh"
"""What `physai training rl` puts between the layers (checkpoints may name another)."""
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "crelu": nn.CELU,
    "lrelu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}
RSL_NORMALIZER_EPS = 1e-2
"""rsl_rl EmpiricalNormalization's default eps (not stored in its state dict)."""
SKRL_SCALER_EPS = 1e-8
SKRL_SCALER_CLIP = 5.0
"""skrl RunningStandardScaler's default epsilon and clip_threshold (not stored either)."""


class ObservationNormalizer(nn.Module):
    """`(obs - mean) / denominator`, clamped to +-clip when `clip` is set."""

    mean: torch.Tensor
    denominator: torch.Tensor

    def __init__(self, mean: torch.Tensor, denominator: torch.Tensor, clip: float | None) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().reshape(1, -1).clone())
        self.register_buffer("denominator", denominator.float().reshape(1, -1).clone())
        self.clip = clip

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalize a (batch, obs) tensor."""
        normalized = (obs - self.mean) / self.denominator
        if self.clip is not None:
            normalized = torch.clamp(normalized, -self.clip, self.clip)
        return normalized


class MlpActor(nn.Module):
    """Normalizer then MLP: observation -> mean action."""

    def __init__(self, normalizer: nn.Module, mlp: nn.Sequential) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.mlp = mlp

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action of each observation."""
        return self.mlp(self.normalizer(obs))  # type: ignore[no-any-return]


class RecurrentCells(nn.Module):
    """One time step of a stacked LSTM or GRU, written out gate by gate.

    Same math as torch's nn.LSTM/nn.GRU (gate order i, f, g, o and r, z, n), as plain linear
    layers and element-wise ops: the dynamo ONNX exporter's translation of nn.LSTM gives
    hidden-state outputs of the wrong rank (onnxruntime rejects the graph once they are
    transposed), and plain ops also suit TensorRT. Parity with nn.LSTM/GRU is tested.
    """

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.lstm = isinstance(rnn, nn.LSTM)
        self.num_layers = rnn.num_layers
        self.hidden_size = rnn.hidden_size
        self.input_size = rnn.input_size
        self.ih = nn.ModuleList()
        self.hh = nn.ModuleList()
        for layer in range(rnn.num_layers):
            for linears, kind in ((self.ih, "ih"), (self.hh, "hh")):
                weight = getattr(rnn, f"weight_{kind}_l{layer}")
                bias = getattr(rnn, f"bias_{kind}_l{layer}", None)
                linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
                with torch.no_grad():
                    linear.weight.copy_(weight)
                    if bias is not None:
                        linear.bias.copy_(bias)
                linears.append(linear)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(top layer output, h_out, c_out) for one step; h, c are (batch, layers, hidden)."""
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        for layer, (ih, hh) in enumerate(zip(self.ih, self.hh, strict=True)):
            h_prev = h[:, layer]
            if self.lstm:
                assert c is not None
                i, f, g, o = (ih(x) + hh(h_prev)).chunk(4, dim=-1)
                c_new = torch.sigmoid(f) * c[:, layer] + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c_new)
                cs.append(c_new)
            else:
                xr, xz, xn = ih(x).chunk(3, dim=-1)
                hr, hz, hn = hh(h_prev).chunk(3, dim=-1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                x = (1 - z) * n + z * h_prev
            hs.append(x)
        return x, torch.stack(hs, dim=1), torch.stack(cs, dim=1) if cs else None


class GruActor(nn.Module):
    """Normalizer, one GRU step, MLP; the hidden state is batch-first (batch, layers, hidden)."""

    def __init__(self, normalizer: nn.Module, rnn: RecurrentCells, mlp: nn.Sequential) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.rnn = rnn
        self.mlp = mlp

    def forward(self, obs: torch.Tensor, h_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions, h_out) for one step."""
        x, h, _ = self.rnn(self.normalizer(obs), h_in)
        return self.mlp(x), h


class LstmActor(nn.Module):
    """Normalizer, one LSTM step, MLP; hidden and cell states are batch-first."""

    def __init__(self, normalizer: nn.Module, rnn: RecurrentCells, mlp: nn.Sequential) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.rnn = rnn
        self.mlp = mlp

    def forward(
        self, obs: torch.Tensor, h_in: torch.Tensor, c_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(actions, h_out, c_out) for one step."""
        x, h, c = self.rnn(self.normalizer(obs), h_in, c_in)
        assert c is not None
        return self.mlp(x), h, c


@dataclass(frozen=True)
class TaskFacts:
    """What the task's environment says about the policy's interface."""

    observations: int
    actions: int
    action_low: list[float]
    action_high: list[float]
    control_rate_hz: float | None


def task_facts(task: str) -> TaskFacts | None:
    """Observation/action sizes and control rate of a gymnasium task (None: unknown task or
    one that cannot be made here, such as Isaac Lab's)."""
    from physai.training.tasks import TASKS, get_task

    try:
        spec = get_task(task)
    except UserError:
        return None
    if spec.name not in TASKS or spec.source != "gymnasium":
        return None
    import gymnasium as gym

    env = gym.make(spec.env_id, **dict(spec.kwargs))
    try:
        obs_space, act_space = env.observation_space, env.action_space
        dt = getattr(env.unwrapped, "dt", None)
        return TaskFacts(
            observations=math.prod(obs_space.shape or (1,)),
            actions=math.prod(act_space.shape or (1,)),
            action_low=_bounds(act_space, "low"),
            action_high=_bounds(act_space, "high"),
            control_rate_hz=round(1.0 / float(dt), 6) if dt else None,
        )
    finally:
        env.close()


def _bounds(space: Any, which: str) -> list[float]:
    values = getattr(space, which, None)
    return [] if values is None else [float(v) for v in values.reshape(-1)]


def _fail(where: str, problem: str) -> UserError:
    return UserError(f"cannot export {where}: {problem}")


def build_mlp(
    state: dict[str, torch.Tensor], prefix: str, activation: str, where: str
) -> nn.Sequential:
    """The linear/activation chain stored under `prefix<i>.weight` (i = 0, 2, 4, ...)."""
    indices = sorted(
        int(m.group(1))
        for key in state
        if (m := re.fullmatch(rf"{re.escape(prefix)}(\d+)\.weight", key)) is not None
    )
    if not indices:
        raise _fail(where, f"no linear layers under '{prefix}' (unknown checkpoint layout)")
    if indices != list(range(0, 2 * len(indices), 2)):
        found = ", ".join(f"{prefix}{i}" for i in indices)
        raise _fail(where, f"layers {found} are not a linear/activation chain (unknown layout)")
    if activation not in ACTIVATIONS:
        raise _fail(where, f"unknown activation {activation!r} (known: {', '.join(ACTIVATIONS)})")
    layers: list[nn.Module] = []
    previous: int | None = None
    for position, index in enumerate(indices):
        weight = state[f"{prefix}{index}.weight"]
        bias = state.get(f"{prefix}{index}.bias")
        if weight.ndim != 2:
            raise _fail(where, f"layer {prefix}{index} is not a linear layer ({weight.ndim}-d)")
        outputs, inputs = int(weight.shape[0]), int(weight.shape[1])
        if previous is not None and inputs != previous:
            raise _fail(
                where,
                f"layer {prefix}{index} takes {inputs} inputs, the one before gives {previous}",
            )
        linear = nn.Linear(inputs, outputs, bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weight.float())
            if bias is not None:
                linear.bias.copy_(bias.float())
        layers.append(linear)
        if position < len(indices) - 1:
            layers.append(ACTIVATIONS[activation]())
        previous = outputs
    return nn.Sequential(*layers)


def _rnn(state: dict[str, torch.Tensor], prefix: str, inputs: int, where: str) -> nn.RNNBase:
    """The LSTM or GRU stored under `prefix` (rsl_rl's `rnn.rnn.`)."""
    layers = sum(1 for key in state if re.fullmatch(rf"{re.escape(prefix)}weight_ih_l\d+", key))
    hh = state[f"{prefix}weight_hh_l0"]
    hidden = int(hh.shape[1])
    gates = int(hh.shape[0]) // hidden
    if gates not in (3, 4) or gates * hidden != int(hh.shape[0]):
        raise _fail(where, f"{prefix}weight_hh_l0 has shape {tuple(hh.shape)}: not a GRU or LSTM")
    rnn: nn.RNNBase = (nn.LSTM if gates == 4 else nn.GRU)(inputs, hidden, layers)
    local = {k.removeprefix(prefix): v.float() for k, v in state.items() if k.startswith(prefix)}
    try:
        rnn.load_state_dict(local, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(where, f"the recurrent layer {prefix} does not load: {first}") from None
    return rnn


def _check_keys(state: dict[str, Any], allowed: tuple[str, ...], where: str, part: str) -> None:
    unknown = sorted(k for k in state if not k.startswith(allowed))
    if unknown:
        raise _fail(where, f"{part} has layers this exporter does not know: {', '.join(unknown)}")


def _as_state(value: Any, where: str, key: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise _fail(where, f"the checkpoint's state has no {key} state dict (unknown layout)")
    return value


def _rsl_actor(state: dict[str, Any], activation: str, where: str) -> tuple[nn.Module, Any]:
    actor = _as_state(state.get("actor_state_dict"), where, "actor_state_dict")
    allowed = ("mlp.", "obs_normalizer.", "distribution.", "rnn.rnn.")
    _check_keys(actor, allowed, where, "the RSL-RL actor")
    mlp = build_mlp(actor, "mlp.", activation, where)
    head = [k for k in actor if k.startswith("distribution.")]
    std = actor.get("distribution.std_param", actor.get("distribution.log_std_param"))
    actions = _out_features(mlp)
    if head and (std is None or len(head) != 1 or std.numel() != actions):
        raise _fail(
            where,
            f"the actor's output distribution ({', '.join(head)}) is not a Gaussian with "
            f"{actions} means: only GaussianDistribution heads export",
        )
    normalizer: nn.Module = nn.Identity()
    stats = None
    if "obs_normalizer._mean" in actor:
        mean, std_obs = actor["obs_normalizer._mean"], actor["obs_normalizer._std"]
        normalizer = ObservationNormalizer(mean, std_obs.float() + RSL_NORMALIZER_EPS, None)
        stats = (mean, std_obs, RSL_NORMALIZER_EPS, None)
    if "rnn.rnn.weight_hh_l0" in actor:
        inputs = int(actor["rnn.rnn.weight_ih_l0"].shape[1])
        rnn = _rnn(actor, "rnn.rnn.", inputs, where)
        if rnn.hidden_size != _in_features(mlp):
            raise _fail(where, "the MLP after the recurrent layer does not take its output")
        cells = RecurrentCells(rnn)
        if cells.lstm:
            return LstmActor(normalizer, cells, mlp), stats
        return GruActor(normalizer, cells, mlp), stats
    return MlpActor(normalizer, mlp), stats


def _skrl_actor(state: dict[str, Any], activation: str, where: str) -> tuple[nn.Module, Any]:
    policy = _as_state(state.get("policy"), where, "policy")
    _check_keys(policy, ("net.", "log_std"), where, "the skrl policy")
    mlp = build_mlp(policy, "net.", activation, where)
    normalizer: nn.Module = nn.Identity()
    stats = None
    scaler = state.get("state_preprocessor")
    if isinstance(scaler, dict) and "running_mean" in scaler:
        mean = scaler["running_mean"].float()
        std = torch.sqrt(scaler["running_variance"].float())
        normalizer = ObservationNormalizer(mean, std + SKRL_SCALER_EPS, SKRL_SCALER_CLIP)
        stats = (mean, std, SKRL_SCALER_EPS, SKRL_SCALER_CLIP)
    return MlpActor(normalizer, mlp), stats


def rl_actor(payload: dict[str, Any], checkpoint: str) -> ExportablePolicy:
    """The exportable deterministic actor of a physai RL checkpoint payload (see module doc)."""
    library = payload.get("library")
    where = f"RL checkpoint {checkpoint}"
    activation = str(payload.get("activation", DEFAULT_ACTIVATION))
    state = payload.get("state")
    if not isinstance(state, dict):
        raise _fail(where, "it has no state")
    if library == "rsl_rl":
        module, stats = _rsl_actor(state, activation, where)
    elif library == "skrl":
        module, stats = _skrl_actor(state, activation, where)
    else:
        raise _fail(where, f"unknown library {library!r} (skrl or rsl_rl)")
    module.eval()
    assert isinstance(module, MlpActor | GruActor | LstmActor)
    if isinstance(module, MlpActor):
        observations = _in_features(module.mlp)
    else:
        observations = module.rnn.input_size
    actions = _out_features(module.mlp)
    if stats is not None and stats[0].numel() != observations:
        raise _fail(
            where, f"its normalizer has {stats[0].numel()} entries, its actor {observations} inputs"
        )
    task = str(payload.get("task") or "") or None
    facts = task_facts(task) if task else None
    extra: dict[str, Any] = {
        "library": library,
        "iteration": payload.get("iteration"),
        "activation": activation,
    }
    if facts is not None:
        if facts.observations != observations:
            raise _fail(
                where,
                f"its actor takes {observations} observations but task {task} has "
                f"{facts.observations}",
            )
        if facts.actions != actions:
            raise _fail(
                where, f"its actor gives {actions} actions but task {task} has {facts.actions}"
            )
        extra["action_space"] = {"low": facts.action_low, "high": facts.action_high}
    inputs = [TensorSpec(name="obs", shape=[-1, observations])]
    outputs = [TensorSpec(name="actions", shape=[-1, actions])]
    recurrent = None
    if isinstance(module, GruActor | LstmActor):
        hidden = [-1, module.rnn.num_layers, module.rnn.hidden_size]
        names = ["h", "c"] if isinstance(module, LstmActor) else ["h"]
        inputs += [TensorSpec(name=f"{n}_in", shape=hidden) for n in names]
        outputs += [TensorSpec(name=f"{n}_out", shape=hidden) for n in names]
        recurrent = Recurrent(
            hidden_inputs=[f"{n}_in" for n in names], hidden_outputs=[f"{n}_out" for n in names]
        )
        extra["rnn"] = "lstm" if isinstance(module, LstmActor) else "gru"
    normalization = Normalization(folded=False)
    if stats is not None:
        mean, std, eps, clip = stats
        normalization = Normalization(
            folded=True,
            kind="mean_std",
            stats={"obs": {"mean": _floats(mean), "std": _floats(std)}},
        )
        extra["normalizer"] = {"eps": eps, "clip": clip}
    return ExportablePolicy(
        name=f"{library}-{task or 'policy'}",
        kind="recurrent_actor" if recurrent else "mlp_actor",
        module=module,
        inputs=inputs,
        outputs=outputs,
        source=PolicySource(kind=library, checkpoint=checkpoint, task=task),
        normalization=normalization,
        recurrent=recurrent,
        control_rate_hz=facts.control_rate_hz if facts else None,
        extra=extra,
    )


def _in_features(mlp: nn.Sequential) -> int:
    first = mlp[0]
    assert isinstance(first, nn.Linear)
    return first.in_features


def _out_features(mlp: nn.Sequential) -> int:
    last = mlp[-1]
    assert isinstance(last, nn.Linear)
    return last.out_features


def _floats(tensor: torch.Tensor) -> list[float]:
    return [float(v) for v in tensor.detach().float().reshape(-1)]
