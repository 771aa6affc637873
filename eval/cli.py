"""``spoc-eval``: evaluate a policy on held-out houses and compare runs.

    spoc-eval run --checkpoint CKPT --houses data/houses/val.jsonl.gz --episodes 200 \\
        --seed 0 --out runs/eval/NAME --workers 2
    spoc-eval run --policy oracle --houses data/houses/val.jsonl.gz --out runs/eval/oracle
    spoc-eval compare runs/eval/oracle runs/eval/NAME --out runs/eval/compare  # paired tests
    spoc-eval report runs/eval/NAME --baselines runs/eval/oracle  # rebuild its report
    spoc-eval export --checkpoint CKPT --eval_info runs/eval/NAME --config CARD.yaml \
        --out models/NAME  # a release folder: spoc-eval run --checkpoint models/NAME

Options take dashes or underscores (``--max-steps`` = ``--max_steps``). Bad input (a file
that is not a spoc-train checkpoint, training houses, no valid episode, an ``--out`` that is a
file) prints one line and exits with status 2; ``--debug`` adds its traceback.
"""

from __future__ import annotations

import sys

from jsonargparse import ActionConfigFile, ArgumentParser

from common.cli import Parser, command_parser, entry_point, instantiated
from eval.config import EvalConfig
from eval.evaluate import compare, evaluate, rebuild_reports
from eval.export import ExportConfig, export


def build_parser():
    """The ``spoc-eval`` parser: ``run`` (typed from EvalConfig), ``compare``, ``report`` and
    ``export`` (typed from ExportConfig)."""
    parser = command_parser("spoc-eval", __doc__)
    sub = parser.add_subcommands(dest="command")
    run = Parser(description=EvalConfig.__doc__)
    run.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    run.add_class_arguments(EvalConfig, as_group=False)
    sub.add_subcommand("run", run, help=EvalConfig.__doc__)
    cmp = ArgumentParser(description="Pair runs with a reference run on the same episodes: "
                         "success with its Wilson interval and the exact McNemar test, SPL with "
                         "its bootstrap interval, the paired SPL difference with its bootstrap "
                         "interval and the Wilcoxon signed-rank test. Prints a narrow table.")
    cmp.add_argument("runs", nargs="+", help="Run directories written by `spoc-eval run`, or "
                     "their eval_info.json (gzipped or not).")
    cmp.add_argument("--reference", type=str | None, default=None,
                     help="The run the others are paired with (default: the first run).")
    cmp.add_argument("--out", type=str | None, default=None,
                     help="Also write compare.md and compare.json to this directory.")
    sub.add_subcommand("compare", cmp, help="Pair runs with a reference run.")
    rep = ArgumentParser(description="Rebuild report.md, report.html and the plots of finished "
                         "runs from their eval_info.json.")
    rep.add_argument("runs", nargs="+", help="Run directories written by `spoc-eval run`.")
    rep.add_argument("--baselines", nargs="+", default=None,
                     help="Runs each report pairs its run with, on the same episodes.")
    sub.add_subcommand("report", rep, help="Rebuild the reports of finished runs.")
    exp = Parser(description=ExportConfig.__doc__)
    exp.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    exp.add_class_arguments(ExportConfig, as_group=False)
    sub.add_subcommand("export", exp, help="Write a release folder of a checkpoint.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``spoc-eval``: bad input is one line and exit status 2 (:func:`common.cli.entry_point`)."""
    return entry_point("spoc-eval", run, argv)


def run(argv: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        print(compare(args.compare.runs, args.compare.reference, args.compare.out))
        return
    if args.command == "report":
        for path in rebuild_reports(args.report.runs, args.report.baselines):
            print(path)
        return
    if args.command == "export":
        out = export(ExportConfig(**instantiated(parser, args)["export"]))
        size = sum(p.stat().st_size for p in out.iterdir())
        print(f"{out}: {', '.join(sorted(p.name for p in out.iterdir()))} "
              f"({size / 1e6:.1f} MB)")
        return
    values = instantiated(parser, args)["run"]
    info = evaluate(EvalConfig(**values))
    agg = info["aggregated"]
    lo, hi = agg["success_ci95"]
    print(f"{agg['num_episodes']} episodes: success {100 * agg['success_rate']:.1f}% "
          f"[{100 * lo:.1f}, {100 * hi:.1f}], SPL {agg['spl']:.3f} -> {values['out']}")


if __name__ == "__main__":
    sys.exit(main())
