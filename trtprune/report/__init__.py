"""What users read: the prune run's report (markdown and plots).

In: a :class:`~trtprune.prune.result.PruneResult`. Out: ``report.md`` and figures."""
