"""The one kind of error a user's input raises.

Every check of a house, config, dataset, checkpoint or command line raises an
:class:`InputError` (or a subclass of it) whose message names the file, the field and the
fix in one line. Entry points print that line and exit with status 2; anything else that
escapes is a bug, and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input the program cannot use; the message says which, where, and what to do."""
