"""``spoc-detector``: fit the colour detector on a dataset's frames and score it."""
