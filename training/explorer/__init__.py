"""``spoc-explorer``: collect the map agent's exploring steps with the oracle's labels, and fit
the explorer network on them."""
