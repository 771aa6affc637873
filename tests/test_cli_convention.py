"""One command-line convention for every console script in pyproject.toml's [project.scripts]:
readable ``--help`` (no reST markup, no ``<class ...>``) for the command and each subcommand it
lists, ``--version``, option names with dashes or underscores, one meaning of ``--workers``,
and progress bars that stay off a stderr that is not a terminal. Each command's ``main(argv)``
runs in this process, as its console script calls it."""

from __future__ import annotations

import importlib
import io
import re
from importlib import metadata
from pathlib import Path

import pytest
from lightning.pytorch import LightningModule
from test_recipes import entry_points

from common.cli import clean_help, progress_bar, underscore_options
from common.errors import InputError
from common.workers import cpu_count, worker_count

ROOT = Path(__file__).resolve().parents[1]
HOUSE = str(ROOT / "tests" / "fixtures" / "house_3703.json")
PROGRAMS = entry_points()
MARKUP = re.compile(r"``|:[a-z]+(?::[a-z]+)?:`|<class ")
"""reST literals and roles, Python's class repr."""
WORKERS = "1 works in this process, 0 starts one per CPU core"
"""What every worker-count option's help says."""
HOOKS = {"fit": "training_step", "validate": "validation_step", "test": "test_step",
         "predict": "predict_step"}
"""The LightningModule method each Lightning subcommand needs."""
MODULES = {"spoc-train": ("training.module", "PolicyModule"),
           "spoc-pretrain": ("training.pretrain.module", "EncoderPretrainModule")}


def main_of(program: str):
    module, function = PROGRAMS[program].split(":")
    return getattr(importlib.import_module(module), function)


def run(program: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``program argv`` run through its entry point."""
    try:
        code = main_of(program)(argv)
    except SystemExit as e:  # --help, --print_config
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def listed_subcommands(help_text: str) -> list[str]:
    """The subcommands a usage line lists (``{fit,validate}``); none for spoc-dagger."""
    usage = help_text.split("\n\n")[0]
    found = re.search(r"\{([\w,-]+)\} \.\.\.", usage)
    return found.group(1).split(",") if found else []


def description(help_text: str) -> str:
    """The paragraph between the usage and the options."""
    return " ".join(help_text.split("\n\n")[1].split())


def test_every_console_script_is_checked():
    assert {"spoc-houses", "spoc-datagen", "spoc-train", "spoc-eval", "spoc-dagger"} \
        <= set(PROGRAMS)


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_of_the_command_and_every_subcommand_is_readable(program, capsys):
    code, out, err = run(program, ["--help"], capsys)
    assert code == 0, err
    assert not MARKUP.search(out), MARKUP.search(out).group(0)
    assert "--version" in out
    assert description(out).endswith("."), description(out)  # a whole sentence, not a cut line
    for sub in listed_subcommands(out):
        code, text, err = run(program, [sub, "--help"], capsys)
        assert code == 0, f"{program} {sub} --help: {err}"
        found = MARKUP.search(text)
        assert not found, f"{program} {sub} --help shows {found.group(0)!r}"


@pytest.mark.parametrize("program", PROGRAMS)
def test_version(program, capsys):
    expected = f"{program} {metadata.version('spoc-pipeline')}"
    code, out, _ = run(program, ["--version"], capsys)
    assert code == 0 and out.startswith(expected), out
    code, out, _ = run(program, ["some-subcommand", "--no-such-option", "--version"], capsys)
    assert code == 0 and out.startswith(expected), out


@pytest.mark.parametrize("program", ["spoc-train", "spoc-pretrain"])
def test_lightning_commands_list_only_subcommands_their_module_runs(program, capsys):
    code, out, _ = run(program, ["--help"], capsys)
    listed = listed_subcommands(out)
    assert code == 0 and listed == ["fit", "validate"], listed
    module, name = MODULES[program]
    model_class = getattr(importlib.import_module(module), name)
    for sub in listed:
        hook = HOOKS[sub]
        assert getattr(model_class, hook) is not getattr(LightningModule, hook), (sub, hook)


def test_underscore_options_renames_option_names_only():
    argv = ["--num-shards", "4", "--split=train-noise", "--trainer.max-epochs=3", "-c",
            "a-b.yaml", "--data.train_splits", "[train, train-noise]", "--", "--a-file"]
    assert underscore_options(argv) == [
        "--num_shards", "4", "--split=train-noise", "--trainer.max_epochs=3", "-c", "a-b.yaml",
        "--data.train_splits", "[train, train-noise]", "--", "--a-file"]


DATAGEN = ["episodes", "--config", "configs/datagen/tiny.yaml", "--houses", HOUSE]
TRAIN = ["fit", "--config", "configs/train/tiny.yaml", "--data.root", "data/nav"]


@pytest.mark.parametrize("program, dashes, underscores, value", [
    ("spoc-datagen", [*DATAGEN, "--num-shards", "3", "--action-noise", "0.1", "--split",
                      "train-noise", "--camera.eye-height", "1.4"],
     [*DATAGEN, "--num_shards", "3", "--action_noise", "0.1", "--split=train-noise",
      "--camera.eye_height", "1.4"], "split: train-noise"),
    ("spoc-train", [*TRAIN, "--trainer.max-epochs", "3", "--data.batch-size", "5",
                    "--data.train-splits", "[train, train-noise]"],
     [*TRAIN, "--trainer.max_epochs=3", "--data.batch_size", "5",
      "--data.train_splits", "[train, train-noise]"], "- train-noise"),
    ("spoc-dagger", ["--config", "configs/dagger/tiny.yaml", "--eval-workers", "2",
                     "--episodes-per-round", "8", "--train-args", '["--data.batch-size", "4"]'],
     ["--config", "configs/dagger/tiny.yaml", "--eval_workers", "2",
      "--episodes_per_round", "8", "--train_args", '["--data.batch-size", "4"]'],
     "- --data.batch-size"),
    ("spoc-eval", ["run", "--policy", "oracle", "--max-steps", "10", "--envs-per-worker", "2",
                   "--end-threshold-by-task", "{roomnav: 0.7}", "--mapper.scan-spacing", "2"],
     ["run", "--policy", "oracle", "--max_steps", "10", "--envs_per_worker", "2",
      "--end_threshold_by_task", "{roomnav: 0.7}", "--mapper.scan_spacing", "2"],
     "scan_spacing: 2.0"),
], ids=["datagen", "train", "dagger", "eval"])
def test_dashes_and_underscores_parse_the_same(program, dashes, underscores, value, capsys,
                                               monkeypatch):
    monkeypatch.chdir(ROOT)
    printed = []
    for argv in (dashes, underscores):
        code, out, err = run(program, [*argv, "--print_config"], capsys)
        assert code == 0, err
        printed.append(out)
    assert printed[0] == printed[1]
    assert value in printed[0]  # values keep their dashes


def test_clean_help():
    assert clean_help("like ``spoc-eval --sample`` and :class:`~a.b.Trainer` or "
                      ":func:`torch.no_grad` (type: <class 'Path'>)") == \
        "like `spoc-eval --sample` and `Trainer` or `torch.no_grad` (type: Path)"


# ------------------------------------------------------------------------------ --workers

def test_workers_zero_is_one_per_core_and_negative_is_refused():
    assert worker_count(0) == cpu_count() >= 1
    assert worker_count(1) == 1 and worker_count(3) == 3
    with pytest.raises(InputError, match="--workers -1: give a number of worker processes"):
        worker_count(-1)


def workers_options(help_text: str) -> dict[str, str]:
    """Each worker-count option of a help text: its help, on one line."""
    text = " ".join(help_text.split())
    return dict(re.findall(r"(--(?:eval_)?workers) (?:EVAL_)?WORKERS (.*?\(type: int, "
                           r"default: \d+\))", text))


def test_every_workers_option_means_the_same(capsys):
    seen = {}
    for program in PROGRAMS:
        _, out, _ = run(program, ["--help"], capsys)
        for sub in listed_subcommands(out) or [None]:
            argv = [sub, "--help"] if sub else ["--help"]
            for option, text in workers_options(run(program, argv, capsys)[1]).items():
                seen[f"{program} {sub or ''} {option}"] = text
    assert {"spoc-houses generate --workers", "spoc-datagen episodes --workers",
            "spoc-eval run --workers", "spoc-explorer collect --workers",
            "spoc-dagger  --eval_workers"} <= set(seen), sorted(seen)
    for where, text in seen.items():
        assert WORKERS in text and text.endswith("default: 1)"), f"{where}: {text}"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_workers_do_not_change_the_shards_and_verify_shows_progress_on_a_terminal(
        tmp_path, capsys, monkeypatch):
    argv = ["episodes", "--houses", HOUSE, "--num-shards", "2", "--episodes-per-shard", "1",
            "--camera.height", "32", "--camera.width", "48", "--tasks.min-pixels", "3",
            "--frames", "none", "--progress", "false"]
    datagen = main_of("spoc-datagen")
    for workers in ("1", "0"):
        assert datagen([*argv, "--out", str(tmp_path / workers), "--workers", workers]) == 0
    shards = sorted(p.relative_to(tmp_path / "1") for p in (tmp_path / "1").rglob("*.tar"))
    assert len(shards) == 2
    for shard in shards:
        assert (tmp_path / "1" / shard).read_bytes() == (tmp_path / "0" / shard).read_bytes()
    capsys.readouterr()

    assert datagen(["verify", str(tmp_path / "1")]) == 0  # stderr is no terminal: no bar
    assert "%|" not in capsys.readouterr().err
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert datagen(["verify", str(tmp_path / "1")]) == 0
    assert "verify: 100%" in terminal.getvalue() and "2/2" in terminal.getvalue()


def test_progress_bar_only_on_a_terminal_and_when_asked(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with progress_bar(3, "x", "ep") as bar:
        assert bar.disable
    monkeypatch.setattr("sys.stderr", Terminal())
    with progress_bar(3, "x", "ep", enabled=False) as bar:
        assert bar.disable
    with progress_bar(3, "x", "ep") as bar:
        assert not bar.disable
