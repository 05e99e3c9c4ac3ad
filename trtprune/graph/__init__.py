"""Step 1, the network's structure: coupled channel groups on Torch-Pruning's graph, exact index maps and ties.

In: an ``nn.Module`` and its input shape. Out: :class:`~trtprune.graph.groups.ModelGroups`."""
