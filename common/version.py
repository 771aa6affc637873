"""What code is running: the installed package's version and the git commit of the checkout
the code runs from (``--version`` of every command, and the card of every dataset)."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "spoc-pipeline"
"""The installed package whose version is reported."""
ROOT = Path(__file__).resolve().parents[1]
"""The directory holding the project's packages."""


def package_version() -> str | None:
    """The installed :data:`DISTRIBUTION`'s version (None when it is not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """HEAD of the git checkout whose top is :data:`ROOT` (uncommitted changes are not
    recorded); None outside one, or without git. A checkout above the code (a virtual
    environment inside another repository) does not count."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != ROOT:
        return None
    return lines[1]
