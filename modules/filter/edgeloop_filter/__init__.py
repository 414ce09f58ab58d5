"""The filter module: the selection policy engine of EdgeLoop.

It reads ``predictions``, decides per sample with a declarative, versioned policy (rules,
strategies, budgets, time windows, near-duplicate suppression, drift statistics) and sends
the chosen ones on ``selected`` and periodic counts on ``summaries``.
"""
