"""Command-line conventions shared by the ``spoc-*`` entry points."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from common.errors import InputError

EXIT_BAD_INPUT = 2
"""The exit status of a command given input it cannot use."""
DEBUG_FLAG = "--debug"
"""Anywhere on a command line: show the traceback of an input error too."""


def entry_point(prog: str, main: Callable[[list[str]], int | None],
                argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` (default: ``sys.argv[1:]``) and return its exit status. An
    :class:`common.errors.InputError` becomes one line, ``prog: message``, on stderr and exit
    status :data:`EXIT_BAD_INPUT`; with :data:`DEBUG_FLAG` among the arguments (removed before
    ``main`` sees them) its traceback is printed too. Any other exception is a bug and keeps
    its traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        return int(main(args) or 0)
    except InputError as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


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


def config_commands(prog: str, description: str, commands: dict):
    """A parser with one subcommand per config dataclass (``name -> cls``): each takes
    ``--config FILE.yaml`` and the class's fields as options, documented from its docstrings."""
    from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog=prog, description=description)
    sub = parser.add_subcommands(dest="command")
    for name, cls in commands.items():
        cmd = ArgumentParser(description=cls.__doc__)
        cmd.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
        cmd.add_class_arguments(cls, as_group=False)
        sub.add_subcommand(name, cmd, help=cls.__doc__)
    return parser


def parse_config_command(parser, argv: list[str]) -> tuple[str, dict]:
    """(the subcommand, its fields' values) of ``argv`` parsed by a :func:`config_commands`
    parser; a config class that refuses its values is an :func:`config_error`."""
    args = parser.parse_args(underscore_options(argv))
    return args.command, instantiated(parser, args)[args.command]


def instantiated(parser, args) -> dict:
    """``parser.instantiate_classes(args)`` as a dict of each subcommand's values without
    ``config``; a config class that refuses its values is a one-line :func:`config_error`."""
    try:
        init = parser.instantiate_classes(args)
    except ValueError as e:
        raise config_error(e) from None
    return {name: {k: v for k, v in vars(value).items() if k not in ("config", "__path__")}
            for name, value in vars(init).items() if hasattr(value, "__dict__")}


def config_error(exn: ValueError) -> InputError:
    """The one-line input error of a config class that refused its values while the parser
    built it: the class's own error, which jsonargparse raises wrapped (an optional class's
    inside the error of every type it tried)."""
    while exn.__cause__ is not None:
        exn = exn.__cause__
    return exn if isinstance(exn, InputError) else InputError(" ".join(str(exn).split()))
