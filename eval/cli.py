"""``spoc-eval``: evaluate a policy on held-out houses and compare runs.

    spoc-eval run --checkpoint CKPT --houses data/houses/val.jsonl.gz --episodes 200 \\
        --seed 0 --out runs/eval/NAME --workers 2
    spoc-eval run --policy oracle --houses data/houses/val.jsonl.gz --out runs/eval/oracle
    spoc-eval compare runs/eval/NAME runs/eval/oracle   # side by side, paired tests
    spoc-eval report runs/eval/NAME                     # rebuild its report from eval_info

Options take dashes or underscores (``--max-steps`` = ``--max_steps``). Bad input (a file
that is not a spoc-train checkpoint, training houses, no valid episode, an ``--out`` that is a
file) prints one line and exits with status 2; ``--debug`` adds its traceback.
"""

from __future__ import annotations

import sys

from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

from common.cli import entry_point, instantiated, underscore_options
from eval.config import EvalConfig
from eval.evaluate import compare, evaluate, rebuild_reports


def build_parser():
    """The ``spoc-eval`` parser: ``run`` (typed from EvalConfig) and ``compare``."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog="spoc-eval", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subcommands(dest="command")
    run = ArgumentParser(description=EvalConfig.__doc__)
    run.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    run.add_class_arguments(EvalConfig, as_group=False)
    sub.add_subcommand("run", run, help=EvalConfig.__doc__)
    cmp = ArgumentParser(description="Print success, SPL and CI of several runs side by side, "
                         "each paired with the one before it (exact McNemar test).")
    cmp.add_argument("runs", nargs="+", help="Run directories written by `spoc-eval run`.")
    sub.add_subcommand("compare", cmp, help="Print several runs side by side.")
    rep = ArgumentParser(description="Rebuild report.md, report.html and the plots of finished "
                         "runs from their eval_info.json.")
    rep.add_argument("runs", nargs="+", help="Run directories written by `spoc-eval run`.")
    sub.add_subcommand("report", rep, help="Rebuild the reports of finished runs.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``spoc-eval``: bad input is one line and exit status 2 (:func:`common.cli.entry_point`)."""
    return entry_point("spoc-eval", run, argv)


def run(argv: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(underscore_options(argv))
    if args.command == "compare":
        print(compare(args.compare.runs))
        return
    if args.command == "report":
        for path in rebuild_reports(args.report.runs):
            print(path)
        return
    values = instantiated(parser, args)["run"]
    info = evaluate(EvalConfig(**values))
    agg = info["aggregated"]
    lo, hi = agg["success_ci95"]
    print(f"{agg['num_episodes']} episodes: success {100 * agg['success_rate']:.1f}% "
          f"[{100 * lo:.1f}, {100 * hi:.1f}], SPL {agg['spl']:.3f} -> {values['out']}")


if __name__ == "__main__":
    sys.exit(main())
