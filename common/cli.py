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
    parser."""
    args = parser.parse_args(underscore_options(argv))
    init = parser.instantiate_classes(args)
    values = {k: v for k, v in vars(init[args.command]).items()
              if k not in ("config", "__path__")}
    return args.command, values
