"""LAP (Chen et al., Neural Networks 2022), the seed baseline, on the shared pipeline.

- Layer sparsity: a DDPG agent (:mod:`trtprune.methods.ddpg`) walks the groups in
  network order and picks a keep ratio for each. Its state holds the group's position,
  width, the width kept so far and its *latency sensitivity* (the latency the table
  says the group's sparsity buys, per channel removed: LAP's prior knowledge), plus
  the latency removed so far and still needed. As AMC does, each action is clamped
  so the goal stays reachable with every later group at its smallest width, so every
  episode meets the goal on the table. After the episode the soft-masked model is
  evaluated, without fine-tuning, on a held-out slice of the *training* split (never
  the test split); the reward is accuracy minus the unused share of the latency goal
  (LAP's feedback on accuracy error and latency), so the agent learns to spend the
  budget where it costs least accuracy. The best episode's widths are the decision.
- Filter selection, dynamic-based: a copy of the model is fine-tuned for a few
  batches and each channel is ranked by how much its output filters changed (L1 of
  the weight change over the group's producers); filters still moving are kept.
- Cost: ``episodes`` held-out evaluations per stage (``repair_episodes`` more for
  each tightening by the shared measure loop) plus ``dynamic_steps`` training steps.
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np

from trtprune.data import get_dataset
from trtprune.decide.decision import infeasible
from trtprune.graph.norms import channel_sq_norms
from trtprune.methods.base import METHODS, Method, MethodContext, StageState, allowed_widths_of, width_decision
from trtprune.methods.ddpg import Ddpg
from trtprune.methods.description import MethodDescription
from trtprune.surgery.apply import apply_masks
from trtprune.surgery.plan import top_k_plan
from trtprune.train.loop import evaluate

log = logging.getLogger(__name__)

STATE_DIM = 8


def dynamic_scores(groups, before: dict[str, Any], after: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per group channel: L1 of the change of its producers' output filters between two state dicts."""
    import torch

    delta = copy.deepcopy(groups.model)
    with torch.no_grad():
        for name, p in delta.named_parameters():
            p.copy_((after[name] - before[name]).abs())
    view = SimpleNamespace(model=delta)
    return {g.name: channel_sq_norms(view, g, "out", power=1.0) for g in groups.groups}


@METHODS.register("lap")
class Lap(Method):
    name = "lap"
    tasks = ("classify",)  # its reward and dynamic scores are classification accuracy and cross-entropy

    def __init__(
        self,
        episodes: int = 40,
        warmup: int = 10,
        repair_episodes: int = 8,
        holdout: int = 500,
        dynamic_steps: int = 30,
        dynamic_lr: float = 0.01,
        penalty: float = 1.0,
        min_keep: float = 0.05,
    ) -> None:
        self.episodes, self.warmup, self.repair_episodes = episodes, warmup, repair_episodes
        self.holdout, self.dynamic_steps, self.dynamic_lr = holdout, dynamic_steps, dynamic_lr
        self.penalty, self.min_keep = penalty, min_keep
        self.agent = None
        self.searched_stage = 0
        self.history: list[dict[str, Any]] = []
        self.search_s = 0.0
        self.heldout = None  # a held-out slice of the training split (setup)
        self.archive: list[tuple[float, float, dict[str, int]]] = []  # this stage's (accuracy, predicted, widths)

    def setup(self, context: MethodContext) -> None:
        import torch.utils.data

        full = get_dataset(
            context.data, "train", context.data_root, augment=False, input_size=tuple(context.input_shape[1:])
        )
        n = min(self.holdout, len(full) // 10)
        self.heldout = torch.utils.data.Subset(full, range(len(full) - n, len(full)))

    # filter selection ---------------------------------------------------------------
    def score(self, state: StageState) -> dict[str, np.ndarray]:
        import torch
        import torch.nn.functional as F

        model = copy.deepcopy(state.model)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = torch.optim.SGD(model.parameters(), lr=self.dynamic_lr, momentum=0.9)
        model.train()
        for x, y in state.batches(self.dynamic_steps):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        after = {n: p.detach() for n, p in model.named_parameters()}
        return dynamic_scores(state.groups, before, after)

    # layer sparsity -----------------------------------------------------------------
    def decide(self, state: StageState, goal_ms: float):

        t0 = time.perf_counter()
        lat = state.latency
        ks = allowed_widths_of(state)
        smallest = lat.predict_widths({n: int(k[0]) for n, k in ks.items()})
        if smallest > goal_ms:
            raise infeasible(goal_ms, smallest, lat, state.model_name)
        if self.agent is None:
            self.agent = Ddpg(STATE_DIM, seed=state.seed)
        full_search = self.searched_stage != state.stage
        if full_search:
            self.archive = []
        self.searched_stage = state.stage
        episodes = self.episodes if full_search else self.repair_episodes
        warmup = self.warmup if self.agent.episodes == 0 else 0
        env = _Episode(state, ks, goal_ms, self.min_keep)

        def reward_of(acc: float, predicted: float) -> float:  # accuracy minus the unused share of the goal
            return acc - self.penalty * max(0.0, goal_ms - predicted) / lat.base_ms

        with _restoring(state.model):
            for e in range(episodes):
                states, actions, widths = env.run(self.agent, random=e < warmup)
                predicted = lat.predict_widths(widths)
                acc = self._accuracy(state, widths)
                reward = reward_of(acc, predicted)
                self.agent.end_episode(states, actions, reward, warmup=e < warmup)
                self.history.append({"stage": state.stage, "reward": reward, "acc": acc, "predicted_ms": predicted})
                self.archive.append((acc, predicted, widths))
        # the best episode of this stage (searches at earlier goals included) that fits this goal
        best = max(
            ((reward_of(acc, p), w) for acc, p, w in self.archive if p <= goal_ms),
            key=lambda rw: rw[0],
        )
        self.search_s += time.perf_counter() - t0
        log.info("lap: %d episodes, best reward %.4f (%.1f s)", episodes, best[0], time.perf_counter() - t0)
        return width_decision(state, best[1], best[0])

    def _accuracy(self, state: StageState, widths: dict[str, int]) -> float:

        plan = top_k_plan(state.groups, state.scores, widths, state.model_name)
        mask = apply_masks(state.groups, plan, state.model_name)
        mask.remove()  # zeroed in place; no training follows
        return evaluate(state.model, self.heldout, batch_size=500)

    def describe(self) -> MethodDescription:
        rewards = [float(h["reward"]) for h in self.history]
        return MethodDescription(
            method=self.name,
            importance=f"dynamic-based ({self.dynamic_steps} steps)",
            search="DDPG over per-group keep ratios",
            episodes=len(self.history),
            search_s=self.search_s,
            first_rewards=tuple(rewards[:5]),
            best_reward=max(rewards) if rewards else None,
        )


@contextmanager
def _restoring(model):
    """Every weight of ``model`` restored on exit (episodes zero channels in place)."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was = model.training
    try:
        yield
    finally:
        model.load_state_dict(saved)
        model.train(was)


class _Episode:
    """One walk over the groups: state features, action -> width, the AMC clamp."""

    def __init__(self, state: StageState, ks: dict[str, np.ndarray], goal_ms: float, min_keep: float) -> None:
        self.state, self.ks, self.goal, self.min_keep = state, ks, goal_ms, min_keep
        lat = state.latency
        self.groups = state.groups.groups
        self.base = lat.base_ms
        self.now = lat.predict_widths(state.current)
        self.floor = {n: int(k[0]) for n, k in ks.items()}
        # latency sensitivity: ms the table says cutting the group to its floor saves, per channel removed
        sens = {}
        for g in self.groups:
            cur = state.current[g.name]
            cut = cur - self.floor[g.name]
            sens[g.name] = (lat.delta_ms(g.name, cur) - lat.delta_ms(g.name, self.floor[g.name])) / cut if cut else 0.0
        top = max(max(abs(v) for v in sens.values()), 1e-12)
        self.sens = {n: v / top for n, v in sens.items()}
        self.max_channels = max(g.channels for g in self.groups)

    def run(self, agent, random: bool) -> tuple[list[np.ndarray], list[float], dict[str, int]]:
        lat = self.state.latency
        widths = dict(self.floor)  # groups not yet visited sit at their floor for the clamp
        states, actions = [], []
        prev = 1.0
        visited: dict[str, int] = {}
        for t, g in enumerate(self.groups):
            cur = self.state.current[g.name]
            so_far = self.now - lat.predict_widths({**self.state.current, **visited})
            with_floor = lat.predict_widths(widths)
            s = np.array(
                [
                    t / len(self.groups),
                    g.channels / self.max_channels,
                    cur / g.channels,
                    self.sens[g.name],
                    (self.goal - with_floor) / self.base,  # room left if every unvisited group sits at its floor
                    (self.now - self.goal) / self.base,  # latency this stage must remove
                    so_far / self.base,
                    prev,
                ],
                dtype=np.float32,
            )
            a = agent.act(s, random=random)
            keep = self.min_keep + a * (1 - self.min_keep)
            ks = self.ks[g.name]
            w = int(ks[ks <= keep * cur + 1e-9][-1]) if (ks <= keep * cur + 1e-9).any() else int(ks[0])
            while w > ks[0] and lat.predict_widths({**widths, g.name: w}) > self.goal:  # AMC's clamp
                w = int(ks[ks < w][-1])
            widths[g.name] = visited[g.name] = w
            effective = ((w / cur) - self.min_keep) / (1 - self.min_keep)
            states.append(s)
            actions.append(float(np.clip(effective, 0.0, 1.0)))
            prev = actions[-1]
        return states, actions, widths
