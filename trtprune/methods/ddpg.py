"""A small DDPG agent (deterministic policy gradient with an actor, a critic and replay),
as AMC and LAP use to choose one keep ratio per layer.

An episode walks the layers in order; at step t the agent sees the layer's state and
emits an action in [0, 1]. The episode's reward arrives at the end and, as AMC does,
is credited to every step (minus a moving-average baseline): the critic regresses
Q(s_t, a_t) on that Monte-Carlo return (undiscounted, no bootstrapping, so no target
networks), and the actor ascends dQ/da. Exploration: the actor's action plus
truncated normal noise whose scale decays after a warm-up of random episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DdpgConfig:
    hidden: int = 64
    lr_actor: float = 1e-3
    lr_critic: float = 2e-3
    batch: int = 64
    buffer: int = 5000
    sigma: float = 0.5  # initial exploration noise (action units)
    sigma_decay: float = 0.95  # per episode after the warm-up
    sigma_min: float = 0.02
    baseline_decay: float = 0.95
    updates_per_step: int = 4


class Ddpg:
    def __init__(self, state_dim: int, config: DdpgConfig = DdpgConfig(), seed: int = 0) -> None:
        import torch
        from torch import nn

        self.config = config
        self.rng = np.random.default_rng(seed)
        g = torch.Generator().manual_seed(seed)
        h = config.hidden

        def mlp(n_in: int, out: nn.Module | None) -> nn.Sequential:
            layers = [nn.Linear(n_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1)]
            for m in layers:
                if isinstance(m, nn.Linear):
                    bound = 1 / np.sqrt(m.in_features)
                    with torch.no_grad():
                        m.weight.uniform_(-bound, bound, generator=g)
                        m.bias.uniform_(-bound, bound, generator=g)
            return nn.Sequential(*layers, *([out] if out is not None else []))

        self.actor = mlp(state_dim, nn.Sigmoid())
        self.critic = mlp(state_dim + 1, None)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=config.lr_actor)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=config.lr_critic)
        self.sigma = config.sigma
        self.baseline: float | None = None
        self.states: list[np.ndarray] = []
        self.actions: list[float] = []
        self.returns: list[float] = []
        self.episodes = 0

    def act(self, state: np.ndarray, explore: bool = True, random: bool = False) -> float:
        """An action in [0, 1]: uniform in warm-up (``random``), else the actor's (plus noise)."""
        import torch

        if random:
            return float(self.rng.uniform())
        with torch.no_grad():
            mu = float(self.actor(torch.as_tensor(state, dtype=torch.float32)[None])[0, 0])
        if not explore:
            return mu
        for _ in range(100):  # truncated normal on [0, 1]
            a = self.rng.normal(mu, self.sigma)
            if 0.0 <= a <= 1.0:
                return float(a)
        return float(np.clip(mu, 0.0, 1.0))

    def end_episode(self, states: list[np.ndarray], actions: list[float], reward: float, warmup: bool) -> None:
        """Store the episode (its reward credited to every step) and train on the replay buffer."""
        c = self.config
        self.baseline = (
            reward if self.baseline is None else c.baseline_decay * self.baseline + (1 - c.baseline_decay) * reward
        )
        advantage = reward - self.baseline
        self.states.extend(states)
        self.actions.extend(actions)
        self.returns.extend([advantage] * len(states))
        excess = len(self.states) - c.buffer
        if excess > 0:
            del self.states[:excess], self.actions[:excess], self.returns[:excess]
        self.episodes += 1
        if not warmup:
            self.sigma = max(c.sigma_min, self.sigma * c.sigma_decay)
        for _ in range(c.updates_per_step * len(states)):
            self._update()

    def _update(self) -> None:
        import torch

        c = self.config
        n = len(self.states)
        if n < min(c.batch, 8):
            return
        idx = self.rng.integers(0, n, size=min(c.batch, n))
        s = torch.as_tensor(np.stack([self.states[i] for i in idx]), dtype=torch.float32)
        a = torch.as_tensor([[self.actions[i]] for i in idx], dtype=torch.float32)
        y = torch.as_tensor([[self.returns[i]] for i in idx], dtype=torch.float32)
        q = self.critic(torch.cat([s, a], 1))
        loss = torch.nn.functional.mse_loss(q, y)
        self.opt_critic.zero_grad()
        loss.backward()
        self.opt_critic.step()
        policy = -self.critic(torch.cat([s, self.actor(s)], 1)).mean()
        self.opt_actor.zero_grad()
        policy.backward()
        self.opt_actor.step()
