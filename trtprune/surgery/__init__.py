"""Plans and what they do to a network: which channels survive (plans), applying them (hard or as masks), cutting layers.

In: a module, its groups and a :class:`~trtprune.surgery.plan.Plan`. Out: the pruned (or masked) module."""
