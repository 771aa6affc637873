"""The recipe scripts of the headline rows (scripts/research/recipes/*.sh).

Each recipe is dry-run (DRY_RUN=1: it prints its commands and runs none), as is and with
EXTRAS=1, and must exit 0 and print at least one command. Every spoc-* command it prints must
then parse with the current command line without doing the work: with --print_config appended
where the subcommand has it; otherwise (spoc-datagen verify, spoc-eval compare and report) the
subcommand must be one the program's --help lists. Every --config file and every results/ file
a command names must exist.

The parses run in a subprocess per program, in the repository root, with a time limit per
command: each command calls the entry point pyproject.toml declares for its program, as the
console script does, so the program's imports (torch and Lightning take seconds) are paid once,
not once per command, and the tree's own command line is what is checked.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES_DIR = ROOT / "scripts" / "research" / "recipes"
RECIPES = sorted(p.name for p in RECIPES_DIR.glob("*.sh") if not p.name.startswith("_"))
VARIANTS = ({}, {"EXTRAS": "1"})
PRINT_CONFIG = {
    "spoc-houses": {"generate", "validate", "show"},
    "spoc-sim": {"render"},
    "spoc-datagen": {"episodes"},
    "spoc-train": {"fit"},
    "spoc-pretrain": {"fit"},
    "spoc-eval": {"run"},
    "spoc-dagger": {None},
    "spoc-detector": {"fit", "score"},
    "spoc-explorer": {"collect", "fit"},
}
"""The subcommands that take --print_config (None: a program without subcommands)."""
COMMAND_TIMEOUT = 90
"""Seconds one command may take to parse, its program's imports included."""

DRIVER = r"""
import contextlib, importlib, io, json, signal, sys, traceback

class Timeout(Exception):
    pass

def alarm(signum, frame):
    raise Timeout

signal.signal(signal.SIGALRM, alarm)
jobs_path, results_path = sys.argv[1], sys.argv[2]
with open(jobs_path) as f:
    jobs = json.load(f)
results = []
for job in jobs:
    out, err = io.StringIO(), io.StringIO()
    module, function = job["entry"].split(":")
    sys.argv = [job["program"], *job["args"]]
    signal.alarm(job["timeout"])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sys.exit(getattr(importlib.import_module(module), function)())
    except SystemExit as e:
        if isinstance(e.code, str):
            err.write(e.code)
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    except Timeout:
        code = "timed out after %d s" % job["timeout"]
    except BaseException:
        err.write(traceback.format_exc())
        code = "raised"
    finally:
        signal.alarm(0)
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()[-3000:]})
with open(results_path, "w") as f:
    json.dump(results, f)
"""


def dry_run(recipe: str, variant: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("EXTRAS", "WORKERS")}
    env.update(DRY_RUN="1", **variant)
    return subprocess.run(["bash", str(RECIPES_DIR / recipe)], env=env, capture_output=True,
                          text=True, timeout=60)


def program_argv(line: str) -> list[str]:
    """A printed command's argv, without a leading `env NAME=VALUE ...`."""
    argv = shlex.split(line)
    if argv and argv[0] == "env":
        argv = argv[1:]
        while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
            argv = argv[1:]
    return argv


def subcommand(argv: list[str]) -> str | None:
    if argv[0] == "spoc-dagger" or len(argv) < 2 or argv[1].startswith("-"):
        return None
    return argv[1]


def entry_points() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: program -> "module:function"."""
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.scripts\]\n(.*?)(?=^\[)", text, re.M | re.S)
    assert section, "pyproject.toml: no [project.scripts]"
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+:\w+)"', section.group(1), re.M))


def run_jobs(program: str, jobs: list[list[str]], tmp: Path) -> list[dict]:
    """Run each argv (the program's arguments) through the program's entry point, all in one
    Python process in the repository root; a result per argv."""
    entry = entry_points().get(program)
    if entry is None:
        why = f"{program}: not in pyproject.toml's [project.scripts]"
        return [{"code": why, "stdout": "", "stderr": ""}] * len(jobs)
    spec = [{"entry": entry, "program": program, "args": args, "timeout": COMMAND_TIMEOUT}
            for args in jobs]
    jobs_path, results_path = tmp / f"{program}-jobs.json", tmp / f"{program}-results.json"
    jobs_path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(jobs_path), str(results_path)],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT * (len(jobs) + 1))
    if proc.returncode != 0 or not results_path.exists():
        why = f"driver exited {proc.returncode}: {proc.stderr[-2000:]}"
        return [{"code": why, "stdout": "", "stderr": ""}] * len(jobs)
    return json.loads(results_path.read_text())


def tail(text: str, lines: int = 4) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="module")
def dry_runs() -> dict:
    return {(recipe, json.dumps(variant)): dry_run(recipe, variant)
            for recipe in RECIPES for variant in VARIANTS}


def recipe_lines(dry_runs: dict, recipe: str) -> list[str]:
    """Every command the recipe prints in any variant, in order, without repeats."""
    lines = []
    for variant in VARIANTS:
        for line in dry_runs[(recipe, json.dumps(variant))].stdout.splitlines():
            if line.strip() and line not in lines:
                lines.append(line)
    return lines


@pytest.fixture
def parses(dry_runs, tmp_path_factory) -> dict:
    """For each distinct spoc-* command line of every recipe: None if it parses, else why."""
    tmp = tmp_path_factory.mktemp("recipes")
    checks: dict[str, list] = defaultdict(list)  # program -> [(line, sub, args)]
    for recipe in RECIPES:
        for line in recipe_lines(dry_runs, recipe):
            argv = program_argv(line)
            if not argv or not argv[0].startswith("spoc-"):
                continue
            if any(line == seen for seen, _, _ in checks[argv[0]]):
                continue
            sub = subcommand(argv)
            print_config = sub in PRINT_CONFIG.get(argv[0], set())
            checks[argv[0]].append((line, sub, argv[1:] + ["--print_config"]
                                    if print_config else None))
    verdicts = {}
    for program, items in checks.items():
        if program not in PRINT_CONFIG:
            verdicts.update({line: f"{program}: not a console script of the project"
                             for line, _, _ in items})
            continue
        jobs = [["--help"]] + [args for _, _, args in items if args is not None]
        results = run_jobs(program, jobs, tmp)
        helped, parsed = results[0], iter(results[1:])
        listed = re.search(r"\{([\w,-]+)\}", helped["stdout"])
        commands = set(listed.group(1).split(",")) if listed else set()
        for line, sub, args in items:
            if args is not None:
                result = next(parsed)
                verdicts[line] = None if result["code"] == 0 else (
                    f"exit {result['code']}: {tail(result['stderr'])}")
            elif helped["code"] != 0:
                why = tail(helped["stderr"])
                verdicts[line] = f"{program} --help: exit {helped['code']}: {why}"
            else:
                verdicts[line] = (None if sub in commands else
                                  f"{program} --help lists {sorted(commands)}, not {sub!r}")
    return verdicts


def test_there_are_recipes():
    assert {"data-big.sh", "baselines.sh", "bc-pixels.sh", "best-learned-agent.sh",
            "map-agent.sh", "map-agent-explorer.sh"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_dry_run_prints_commands(dry_runs, recipe):
    for variant in VARIANTS:
        proc = dry_runs[(recipe, json.dumps(variant))]
        assert proc.returncode == 0, f"{recipe} {variant}: {proc.stderr}"
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert lines, f"{recipe} {variant}: printed no command"
        for line in lines:
            assert program_argv(line), f"{recipe}: an empty command: {line!r}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_command_goes_through_run(recipe):
    """Nothing runs outside `run`, so a dry run has no side effects."""
    bare = re.compile(r"^\s*(?:env\s+\S+=\S+\s+)?(?:spoc-[\w-]+|cp|mkdir|mv|rm|ln|python3?)\s")
    lines = (RECIPES_DIR / recipe).read_text().splitlines()
    found = [f"{n}: {line}" for n, line in enumerate(lines, 1) if bare.match(line)]
    assert not found, f"{recipe}: commands not given to run:\n" + "\n".join(found)


@pytest.mark.parametrize("recipe", RECIPES)
def test_evaluating_recipe_ends_with_compare(dry_runs, recipe):
    """A recipe that evaluates ends by pairing runs (spoc-eval compare)."""
    for variant in VARIANTS:
        lines = dry_runs[(recipe, json.dumps(variant))].stdout.splitlines()
        runs = [program_argv(line) for line in lines]
        if any(argv[:2] == ["spoc-eval", "run"] for argv in runs):
            assert runs[-1][:2] == ["spoc-eval", "compare"], f"{recipe} ends with {runs[-1]}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_named_files_exist(dry_runs, recipe):
    missing = []
    for line in recipe_lines(dry_runs, recipe):
        argv = program_argv(line)
        named = [b for a, b in zip(argv, argv[1:]) if a == "--config"]
        named += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
        named += [a for a in argv if a.startswith("results/")]
        missing += [f"{path} (in: {line})" for path in named if not (ROOT / path).exists()]
    assert not missing, "\n".join(missing)


def test_commands_parse(dry_runs, parses):
    """One test for every recipe, so that the parses run once (under pytest-xdist too)."""
    failures = [f"{recipe}: {line}\n  -> {parses[line]}" for recipe in RECIPES
                for line in recipe_lines(dry_runs, recipe) if parses.get(line)]
    assert not failures, "\n\n".join(failures)
