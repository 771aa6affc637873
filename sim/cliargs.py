"""Command-line conveniences shared by the ``spoc-*`` entry points."""

from __future__ import annotations


def underscore_options(argv: list[str]) -> list[str]:
    """``--num-shards 4`` -> ``--num_shards 4``: option names accept dashes or underscores
    (jsonargparse knows only the field names); values are left alone."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            arg = "--" + key.replace("-", "_") + eq + value
        out.append(arg)
    return out
