"""Choosing widths: channel importance and norms, the exact knapsack solvers, the decision and the matching loop.

In: groups, scores and a latency table. Out: a :class:`~trtprune.decide.decision.Decision` (widths, kept channels, prediction)."""
