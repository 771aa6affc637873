"""The shared helpers of common/: the entry-point convention for bad input."""

from __future__ import annotations

import pytest

from common.cli import EXIT_BAD_INPUT, entry_point
from common.errors import InputError


def test_an_input_error_is_one_line_and_exit_2(capsys):
    def main(argv):
        raise InputError(f"houses.json: field 'rooms'\n  is empty; add a room ({argv})")

    assert entry_point("spoc-x", main, ["--flag"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == "spoc-x: houses.json: field 'rooms' is empty; add a room (['--flag'])\n"


def test_debug_shows_the_traceback_and_is_not_passed_on(capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        raise InputError("bad")

    assert entry_point("spoc-x", main, ["a", "--debug"]) == EXIT_BAD_INPUT
    assert seen == [["a"]]
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_a_clean_run_returns_its_status():
    def broken(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        entry_point("spoc-x", broken, [])
    assert entry_point("spoc-x", lambda argv: None, []) == 0
    assert entry_point("spoc-x", lambda argv: 3, []) == 3
