"""Command-line conventions shared by the ``spoc-*`` entry points.

Every command goes through :func:`entry_point`, which gives them the same behaviour: option
names take dashes or underscores (:func:`underscore_options`), ``--version`` prints the
version (:func:`version_line`), bad input is one line and exit status 2 (its traceback with
``--debug``). Parsers built by :func:`command_parser` or as a :class:`Parser` print help
without reST markup (:class:`HelpFormatter`); long work shows a :func:`progress_bar` on
stderr; ``--workers`` means the same on every command (:mod:`common.workers`).
"""

from __future__ import annotations

import re
import sys
import traceback
from argparse import SUPPRESS, Action
from collections.abc import Callable

from jsonargparse import (
    ActionConfigFile,
    ArgumentParser,
    DefaultHelpFormatter,
    set_parsing_settings,
)
from tqdm import tqdm

from common.errors import InputError
from common.version import git_commit, package_version

EXIT_BAD_INPUT = 2
"""The exit status of a command given input it cannot use."""
DEBUG_FLAG = "--debug"
"""Anywhere on a command line: show the traceback of an input error too."""
VERSION_FLAG = "--version"
"""Anywhere on a command line: print the command's version and exit."""
END_OF_OPTIONS = "--"
"""Everything after it is a positional argument, taken as it is."""


def entry_point(prog: str, main: Callable[[list[str]], int | None],
                argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` (default: ``sys.argv[1:]``) and return its exit status.

    Before ``main`` sees the arguments, option names are spelled with underscores
    (:func:`underscore_options`); :data:`VERSION_FLAG` prints :func:`version_line` and
    returns 0 without calling ``main``. An :class:`common.errors.InputError` becomes one line,
    ``prog: message``, on stderr and exit status :data:`EXIT_BAD_INPUT`; with
    :data:`DEBUG_FLAG` among the arguments (removed before ``main`` sees them) its traceback
    is printed too. Any other exception is a bug and keeps its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    options, rest = _split_options(args)
    if VERSION_FLAG in options:
        print(version_line(prog))
        return 0
    debug = DEBUG_FLAG in options
    args = underscore_options([a for a in options if a != DEBUG_FLAG]) + rest
    try:
        return int(main(args) or 0)
    except InputError as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _split_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the arguments before :data:`END_OF_OPTIONS`, it and the ones after it)."""
    if END_OF_OPTIONS in argv:
        k = argv.index(END_OF_OPTIONS)
        return argv[:k], argv[k:]
    return argv, []


def underscore_options(argv: list[str]) -> list[str]:
    """``--num-shards 4`` -> ``--num_shards 4``, ``--trainer.max-epochs=3`` ->
    ``--trainer.max_epochs=3``: option names accept dashes or underscores (the parsers know
    only the field names, which never hold a dash). Values, and every argument after
    ``--``, are left alone."""
    options, rest = _split_options(argv)
    out = []
    for arg in options:
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            arg = "--" + key.replace("-", "_") + eq + value
        out.append(arg)
    return out + rest


def version_line(prog: str) -> str:
    """``prog VERSION``: the installed package's version, and the commit when the code runs
    from a git checkout (``spoc-eval 0.1.0 (git b7639b9)``)."""
    version = package_version() or "unknown (not installed; pip install -e .)"
    commit = git_commit()
    return f"{prog} {version}" + (f" (git {commit[:7]})" if commit else "")


# ------------------------------------------------------------------------------------- help

_LITERAL = re.compile(r"``(.+?)``", re.S)
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]*?)\s*(?:<([^`>]*)>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<(https?://[^>]+)>`__?")
_CLASS_REPR = re.compile(r"<class '([^']+)'>")


def clean_help(text: str) -> str:
    """Help text without reST markup: ````x```` -> ```x```, ``:class:`~a.b.C``` -> ```C```
    (```a.b.C``` without the ``~``), ```text <url>`_`` -> ``text (url)``, and Python's
    ``<class 'X'>`` -> ``X``."""
    text = _CLASS_REPR.sub(r"\1", text)
    text = _LINK.sub(r"\1 (\2)", text)
    text = _ROLE.sub(_role_text, text)
    return _LITERAL.sub(r"`\1`", text)


def _role_text(match: re.Match) -> str:
    tilde, label, target = match.groups()
    if target is not None and label:  # :ref:`the CLI docs <lightning-cli>`
        return label
    name = target or label
    return f"`{name.rsplit('.', 1)[-1] if tilde else name}`"


def summary(doc: str | None) -> str:
    """The first paragraph of a docstring on one line (the help of a subcommand or a
    command), whole: never its first line alone."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def command_description(prog: str, doc: str | None) -> str:
    """A command's description from its module docstring: the :func:`summary`, without the
    leading ``"``prog``: "`` of a ``spoc-*`` module's first line."""
    text = summary(doc)
    if text.startswith(f"``{prog}``: "):
        text = text[len(prog) + 6:]
        text = text[:1].upper() + text[1:]
    return text


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help (types, defaults) with every text passed through
    :func:`clean_help` before it is wrapped."""

    def _expand_help(self, action) -> str:
        return clean_help(super()._expand_help(action))

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(clean_help(text), width, indent)

    def _get_type_str(self, action) -> str | None:
        text = super()._get_type_str(action)
        return None if text is None else clean_help(text)

    def start_section(self, heading: str | None) -> None:
        super().start_section(None if heading is None else clean_help(heading))


class VersionAction(Action):
    """``--version``: print :func:`version_line` and exit (looked up only when asked)."""

    def __init__(self, option_strings, dest=SUPPRESS, default=SUPPRESS, prog: str = "",
                 help: str = "Print the version and exit."):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.prog = prog

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line(self.prog))
        parser.exit()


class Parser(ArgumentParser):
    """jsonargparse's parser with :class:`HelpFormatter` by default: also for the help of a
    nested class (``--mapper.help MapperConfig``), which jsonargparse prints with a new parser
    of the same type."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def add_version(parser, prog: str) -> None:
    """``--version`` in ``parser`` and its help (:func:`entry_point` answers it before any
    parser does)."""
    parser.add_argument(VERSION_FLAG, action=VersionAction, prog=prog)


def command_parser(prog: str, description: str | None) -> Parser:
    """The top parser of a ``spoc-*`` command: readable help (:class:`HelpFormatter`, which
    its subcommands inherit), its :func:`command_description`, ``--version``."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = Parser(prog=prog, description=command_description(prog, description))
    add_version(parser, prog)
    return parser


def config_commands(prog: str, description: str, commands: dict) -> Parser:
    """A parser with one subcommand per config dataclass (``name -> cls``): each takes
    ``--config FILE.yaml`` and the class's fields as options, documented from its docstrings."""
    parser = command_parser(prog, description)
    sub = parser.add_subcommands(dest="command")
    for name, cls in commands.items():
        cmd = Parser(description=cls.__doc__)
        cmd.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
        cmd.add_class_arguments(cls, as_group=False)
        sub.add_subcommand(name, cmd, help=summary(cls.__doc__))
    return parser


def parse_config_command(parser, argv: list[str]) -> tuple[str, dict]:
    """(the subcommand, its fields' values) of ``argv`` (option names as
    :func:`underscore_options` spells them) parsed by a :func:`config_commands` parser; a
    config class that refuses its values is an :func:`config_error`."""
    args = parser.parse_args(argv)
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


# --------------------------------------------------------------------------------- progress

def progress_bar(total: int | None, desc: str, unit: str, enabled: bool = True):
    """A tqdm bar on stderr, shown only when ``enabled`` and stderr is a terminal (a log file
    or a test's captured output stays clean); use it as a context manager and ``update(n)``."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True,
                smoothing=0.1, file=sys.stderr)
