"""``trtprune compare``: every method at every budget through the same pipeline, measured side by side.

In: a table, methods, budgets, seeds. Out: ``compare.{md,json}`` and a Pareto plot."""
