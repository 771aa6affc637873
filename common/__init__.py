"""Generic helpers with no knowledge of houses, agents or training: atomic file writes and
hashes (:mod:`common.files`), worker processes that end with their parent
(:mod:`common.workers`) and the command-line conventions every ``spoc-*`` entry point shares
(:mod:`common.cli`). The lowest layer: it imports no other package of the project."""
