"""What every off-policy actor-critic agent shares: networks, target copies, optimisers, the
optimisation step, Polyak averaging, training statistics and checkpoint state.

An algorithm subclass names its actor class, builds its networks with `add_network` /
`add_optimizer` (`make_actor` and `make_critic` give the configured bodies) and writes its `update`
with `optimize` and `soft_update`; it never loops over parameters itself and knows nothing of
sparsity methods.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sparserl.algos.draws import Draws
from sparserl.architecture import BODIES, Architecture
from sparserl.nets import Actor, DeterministicActor, QEnsemble, RunningNorm
from sparserl.optim import LeanAdam
from sparserl.replay import Batch
from sparserl.streaming.init import initialise

if TYPE_CHECKING:
    from sparserl.config import Config
    from sparserl.envs import EnvInfo


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a NumPy array for the environment (a copy from the device where it is not the CPU)."""
    return tensor.cpu().numpy()


def make_adam(params, lr: float, weight_decay: float = 0.0, decoupled: bool = False) -> torch.optim.Optimizer:
    """Adam (AdamW if `decoupled`) stepping with PyTorch's fused kernel (LeanAdam); foreach Adam
    where fused is unavailable."""
    params = list(params)
    try:
        return LeanAdam(params, lr=lr, weight_decay=weight_decay, decoupled_weight_decay=decoupled)
    except (RuntimeError, TypeError, ValueError):
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        return cls(params, lr=lr, weight_decay=weight_decay, foreach=True)


def twin_mse(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over critics of each critic's mean squared error: q is (E, B), target (B,); for a
    population, (K, E, B) and (K, B) give each agent's loss, (K,)."""
    return F.mse_loss(q, target.unsqueeze(-2).expand_as(q), reduction="none").sum((-2, -1)) / q.shape[-1]


def architecture(config: Config, role: str, in_dim: int, out_dim: int, heads: int = 1) -> Architecture:
    """The configured body of network `role` (actor or critic): an MLP body of `hidden` widths, or a
    residual body of `<role>_width` and `<role>_blocks`. `heads` splits the output into that many
    equal layers where the body builds heads apart (SimBa's and BroNet's Gaussian actors, as Lee
    et al. 2025 and Ma et al. 2025 have them: a mean and a log-std head); one layer elsewhere."""
    spec = BODIES.get(config.network)
    heads = heads if spec.split_heads else 1
    if spec.layered:
        return Architecture(config.network, in_dim, out_dim, hidden=tuple(config.hidden), heads=heads)
    return Architecture(config.network, in_dim, out_dim, width=getattr(config, f"{role}_width"),
                        blocks=getattr(config, f"{role}_blocks"), heads=heads)


class Agent(ABC):
    """Base of the algorithms (registered in sparserl.algos). Subclasses define `name`, `stat_names`,
    `act` and `update`, and build their networks in `__init__`.

    A population of K agents (config.population > 1) is one Agent whose networks hold the K agents
    as ensemble members: every tensor of its acting and updates gains a leading axis of K, each
    agent's loss is its own entry of a (K,) vector and the optimisers step on their sum (the agents'
    parameters are disjoint, so each gets its own gradient). An algorithm written with reductions
    over trailing axes (`amin(dim=-2)` over critics, `mean(-1)` over the batch) runs both ways."""

    name: ClassVar[str] = ""
    stat_names: tuple[str, ...] = ()
    settings: ClassVar[tuple[str, ...]] = ()
    """The algorithm-specific config settings it reads (sparserl.config.sections: DeterministicPolicy,
    MaximumEntropy; sparserl.config.streaming: Streaming); the others of those, set away from their
    defaults, draw a ConfigWarning."""
    actor_class: ClassVar[type[Actor]] = DeterministicActor
    """The actor's head (its output width per action dimension comes with it)."""
    streaming: ClassVar[bool] = False
    """Learns from each transition once, as it arrives (sparserl.streaming), instead of from replay."""
    discrete_actions: ClassVar[bool] = False
    """Also acts in environments with a discrete action space."""
    pixels: ClassVar[bool] = False
    """Learns from rendered frames (config.pixels) instead of state vectors."""
    defaults: ClassVar[dict] = {}
    """Config values the algorithm starts from instead of the dataclass defaults (a layer below any
    preset, config file or flag; sparserl.config.resolve)."""

    def __init__(self, info: EnvInfo, config: Config):
        self.info, self.config = info, config
        self.device = torch.get_default_device()
        """Where the networks live (make_agent builds the agent inside its device's context)."""
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.updates = 0  # gradient updates done (the iteration counter of TD3's policy delay)
        self.sparsifier = None  # set by attach_sparsity
        self.population: int | None = config.population if config.population > 1 else None
        """K, the agents this one trains (None for a single agent: no leading axis)."""
        self.draws = Draws(config.agent_seeds, device=self.device) if self.population else Draws(device=self.device)
        """The source of every random draw of acting and updates (one stream per agent)."""
        self.obs_norm = self.make_obs_norm() if config.obs_norm else None
        """Running observation statistics shared by actor, critics and targets (None if off)."""
        self._stat_sums = torch.zeros(*(() if self.population is None else (self.population,)), len(self.stat_names))
        self._stat_counts = [0] * len(self.stat_names)

    # --- construction ------------------------------------------------------------------------
    def add_network(self, name: str, module: nn.Module, target: bool = False) -> nn.Module:
        """Register `module`; with `target=True` also a frozen copy registered as `<name>_target`
        (which shares, not copies, the running observation statistics)."""
        self.networks[name] = module
        if target:
            shared = {id(m): m for m in module.modules() if isinstance(m, RunningNorm)}
            clone = copy.deepcopy(module, memo=shared).requires_grad_(False)
            self.networks[f"{name}_target"] = clone
        return module

    def add_optimizer(self, name: str, params, lr: float, weight_decay: float | None = None) -> torch.optim.Optimizer:
        """Adam (or AdamW, per config.optimizer) with the config's weight decay unless given."""
        decay = self.config.weight_decay if weight_decay is None else weight_decay
        self.optimizers[name] = make_adam(params, lr, decay, decoupled=self.config.optimizer == "adamw")
        return self.optimizers[name]

    # --- networks from the config ------------------------------------------------------------
    @classmethod
    def critic_members(cls, config: Config) -> int:
        """Q-networks in the critic ensemble (the config's `critics`; DDPG has one)."""
        return config.critics

    @classmethod
    def actor_for(cls, info: EnvInfo) -> type[Actor]:
        """The actor class for an environment (an algorithm acting in several kinds of action space
        picks by `info.discrete`)."""
        return cls.actor_class

    @classmethod
    def actor_architecture(cls, info: EnvInfo, config: Config) -> Architecture:
        """The actor's body: the observation in, the head of `actor_for(info)` out."""
        outputs = cls.actor_for(info).outputs_per_action
        return architecture(config, "actor", info.obs_dim, info.act_dim * outputs, heads=outputs)

    @classmethod
    def architectures(cls, info: EnvInfo, config: Config) -> dict[str, tuple[Architecture, int]]:
        """The (architecture, members) of the actor and the critic ensemble, before anything is built
        (parameter counts need no modules)."""
        return {"actor": (cls.actor_architecture(info, config), 1),
                "critic": (architecture(config, "critic", info.obs_dim + info.act_dim, 1), cls.critic_members(config))}

    def make_obs_norm(self) -> nn.Module:
        """The observation normaliser of `obs_norm` (SimBa's running statistics)."""
        return RunningNorm(self.info.obs_dim, self.population)

    def make_actor(self, **kwargs) -> Actor:
        arch, _ = self.architectures(self.info, self.config)["actor"]
        actor = self.actor_for(self.info)(arch, obs_norm=self.obs_norm or False, population=self.population, **kwargs)
        return initialise(actor, self.config.init)

    def make_critic(self) -> QEnsemble:
        arch, members = self.architectures(self.info, self.config)["critic"]
        return initialise(QEnsemble(arch, members, obs_norm=self.obs_norm, population=self.population),
                          self.config.init)

    def observe(self, obs: np.ndarray) -> None:
        """Called with every observation the agent acts on in training (warm-up included)."""
        if self.obs_norm is not None:
            self.obs_norm.update(self.as_input(obs))

    def as_input(self, obs) -> torch.Tensor:
        """Observations from the environment as a tensor on the agent's device."""
        return torch.as_tensor(obs, device=self.device)

    # --- the training step -------------------------------------------------------------------
    @staticmethod
    def optimize(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One gradient step of `optimizer` on `loss` (a population's (K,) losses: on their sum)."""
        optimizer.zero_grad(set_to_none=True)
        (loss if loss.dim() == 0 else loss.sum()).backward()
        optimizer.step()

    # --- sparsity -----------------------------------------------------------------------------
    sparse_networks: tuple[str, ...] = ("actor", "critic")
    """Networks the sparsity engine manages (each with its optimiser and any `<name>_target`)."""
    policy_networks: ClassVar[tuple[str, ...]] = ("actor",)
    """The networks the deployed policy runs (its inference FLOPs): the actor, and a pixel agent's encoder."""

    def optimizer_steps(self, name: str, updates: int) -> int:
        """Optimiser steps network `name` takes in `updates` gradient updates."""
        return updates

    def attach_sparsity(self, sparsifier, updates: int) -> None:
        """Put the sparse networks (with their targets) under `sparsifier` for a run of `updates` gradient
        updates, each as a group at its configured level; the algorithm stays unaware of the method."""
        self.sparsifier = sparsifier
        for name in self.sparse_networks:
            target = self.networks.get(f"{name}_target")
            sparsifier.attach(name, self.networks[name], self.optimizers[name],
                              targets=[target] if target is not None else [],
                              sparsity=self.config.sparsity.level(name),
                              total_steps=max(1, self.optimizer_steps(name, updates)), uses=self.weight_uses(name))
        sparsifier.check_dense_layers()

    def weight_uses(self, name: str) -> dict[str, int] | None:
        """Times network `name`'s weights are applied per sample where that is not once (a
        convolution's output positions, by weight name), for the FLOPs accounting."""
        return None

    def record(self, first: int, values: torch.Tensor) -> None:
        """Accumulate detached scalar statistics stat_names[first:first+len(values)] (no host sync);
        a population's values are (K, count)."""
        count = values.shape[-1]
        self._stat_sums[..., first:first + count] += values.detach()
        self.count_recorded(first, count)

    def count_recorded(self, first: int, count: int) -> None:
        """Count one recording of stat_names[first:first+count] whose values were added to the
        sums elsewhere (a compiled step adds them inside its graph)."""
        for i in range(first, first + count):
            self._stat_counts[i] += 1

    def pop_stats(self) -> dict[str, float]:
        """Means of the statistics recorded since the last call (unrecorded ones are left out)."""
        if self.population is not None:
            raise TypeError("a population's statistics are per agent: call pop_agent_stats")
        return self.pop_agent_stats()[0]

    def pop_agent_stats(self) -> list[dict[str, float]]:
        """`pop_stats` of each agent of the population (one dict for a single agent)."""
        rows = self._stat_sums.reshape(-1, len(self.stat_names)).tolist()
        out = [{name: s / c for name, s, c in zip(self.stat_names, row, self._stat_counts) if c} for row in rows]
        self._stat_sums.zero_()
        self._stat_counts = [0] * len(self.stat_names)
        return out

    def stats_finite(self) -> bool:
        """True unless a statistic recorded since the last `pop_stats` is NaN or infinite."""
        return bool(torch.isfinite(self._stat_sums).all())

    # --- acting ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def policy(self) -> nn.Module:
        """The actor; its forward(obs) is the deterministic evaluation action in [-1, 1]."""

    @torch.no_grad()
    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """The evaluation action at one observation (a population: (K, obs) in, one per agent out)."""
        x = self.as_input(obs).unsqueeze(-2)
        return to_host(self.policy(x).select(x.dim() - 2, 0))

    @abstractmethod
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exploration action and the policy's noise-free action for one observation."""

    def agent_policy(self, k: int) -> nn.Module:
        """Agent k's actor as a one-agent module on the CPU (what its policy file holds; the policy
        itself for a single agent on the CPU)."""
        if self.population is not None:
            return self.policy.agent(k)
        return self.policy if self.device.type == "cpu" else copy.deepcopy(self.policy).cpu()

    # --- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "networks": {k: m.state_dict() for k, m in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "updates": self.updates,
            "stat_sums": self._stat_sums.clone(),
            "stat_counts": list(self._stat_counts),
            "draws": self.draws.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.networks.items():
            module.load_state_dict(state["networks"][name])  # (format 2 checkpoints: see runs.checkpoint)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.updates = int(state["updates"])
        self._stat_sums.copy_(state["stat_sums"])
        self._stat_counts = list(state["stat_counts"])
        self.draws.load_state_dict(state.get("draws"))

    def all_finite(self) -> bool:
        """True if every parameter of every network is finite (one reduction per network)."""
        with torch.no_grad():
            return all(bool(torch.isfinite(torch.cat([p.reshape(-1) for p in m.parameters()])).all())
                       for m in self.networks.values())


class ReplayAgent(Agent):
    """Base of the replay-based actor-critics (TD3, SAC, DDPG): minibatch updates from a replay
    buffer (sparserl.runs.learner.OffPolicyLearner), target networks averaged by Polyak's rule."""

    def target_pairs(self, *names: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(target parameters, online parameters) of the named networks, flattened for one lerp."""
        targets, online = [], []
        for name in names:
            targets += list(self.networks[f"{name}_target"].parameters())
            online += list(self.networks[name].parameters())
        return targets, online

    @torch.no_grad()
    def soft_update(self, pairs: tuple[list[torch.Tensor], list[torch.Tensor]], tau: float) -> None:
        """Polyak averaging target <- (1 - tau) target + tau online, as one foreach op."""
        torch._foreach_lerp_(pairs[0], pairs[1], tau)
        if self.sparsifier is not None:
            self.sparsifier.after_target_update()

    @property
    def horizon(self) -> int:
        """Transitions per TD window in the next update: one for the first `delay_nstep` gradient
        updates, `nstep` from then on (RLx2's delayed multi-step target)."""
        return self.config.nstep if self.updates >= self.config.delay_nstep else 1

    @abstractmethod
    def update(self, batch: Batch) -> None:
        """One gradient update from a minibatch."""

    @abstractmethod
    def actor_objective(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's loss per sample, (B,), as in its update (for diagnostics)."""

    @abstractmethod
    def critic_objective(self, batch: Batch) -> torch.Tensor:
        """The critics' loss on a batch, as in their update (for diagnostics)."""
