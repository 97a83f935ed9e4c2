"""The scenarios: each ``run(options)`` starts its target, drives the workers, and
returns a :class:`~.common.Outcome` (a JSON-able result and the histograms to plot)."""
