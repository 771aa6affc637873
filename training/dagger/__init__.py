"""``spoc-dagger``: DAgger rounds on the pipeline's own stages (:mod:`training.dagger.cli`)."""
