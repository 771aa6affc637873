"""Every user mistake on the command lines of spoc-datagen, spoc-eval, spoc-dagger,
spoc-detector and spoc-explorer is one line on stderr naming the option or the file, and exit
status 2, with no traceback (``--debug`` adds it); their own parse errors keep printing the
usage. Each case calls the entry point's ``main(argv)`` in this process on tiny inputs, and
fails before any work."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from training_helpers import palette_detector, write_dataset

import datagen.cli
import eval.cli
import training.dagger.cli
import training.detector.cli
import training.explorer.cli
from datagen.constants import OBJECTNAV_TARGETS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MAINS = {"spoc-datagen": datagen.cli.main, "spoc-eval": eval.cli.main,
         "spoc-dagger": training.dagger.cli.main, "spoc-detector": training.detector.cli.main,
         "spoc-explorer": training.explorer.cli.main}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """Placeholders of the cases: ``{file}`` (a text file that is nothing the commands read),
    ``{missing}``, ``{dir}`` (an empty folder), tiny held-out and training houses, a dataset
    (its train split of house_3703), a detector, a spoc-train config and ``{tmp}`` for
    outputs that are never written."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "junk.txt").write_text("not what any command reads\n")
    (tmp / "folder").mkdir()
    palette_detector([*OBJECTNAV_TARGETS, "Fridge"]).save(tmp / "detector.json")
    training = json.loads((FIXTURES / "house_3703.json").read_text())
    del training["metadata"]  # the dataset's training house, without its id or split
    with gzip.open(tmp / "renamed.jsonl.gz", "wt") as f:
        f.write(json.dumps(training) + "\n")
    held_out = json.loads((FIXTURES / "143.json").read_text())
    held_out["metadata"]["generator"] = {"split": "val"}
    (tmp / "val.json").write_text(json.dumps(held_out))
    return {"file": str(tmp / "junk.txt"), "missing": str(tmp / "missing.jsonl.gz"),
            "dir": str(tmp / "folder"), "houses": str(FIXTURES / "143.json"),
            "train_houses": str(FIXTURES / "house_3703.json"),
            "renamed": str(tmp / "renamed.jsonl.gz"), "val_houses": str(tmp / "val.json"),
            "dataset": str(write_dataset(tmp / "dataset", {"train": (1, 1)})),
            "detector": str(tmp / "detector.json"),
            "train_config": str(ROOT / "configs" / "train" / "tiny.yaml"), "tmp": str(tmp)}


# Each case would run a few steps at most if its mistake were not found.
EVAL = ["run", "--houses", "{houses}", "--out", "{tmp}/eval", "--progress", "false",
        "--episodes", "1", "--max_steps", "5", "--videos", "0"]
ORACLE = [*EVAL, "--policy", "oracle"]
MAPPER = [*EVAL, "--policy", "mapper", "--detector", "{detector}"]
DATAGEN = ["episodes", "--houses", "{train_houses}", "--out", "{tmp}/data", "--progress",
           "false", "--camera.height", "32", "--camera.width", "48", "--episodes-per-shard",
           "1", "--max_steps", "5"]
FIT = ["fit", "--data", "{dataset}", "--out", "{tmp}/detector.json", "--episodes", "1"]
SCORE = ["score", "--data", "{dataset}", "--detector", "{detector}", "--split", "train",
         "--episodes", "1"]
COLLECT = ["collect", "--houses", "{train_houses}", "--detector", "{detector}", "--out",
           "{tmp}/collect", "--episodes", "1", "--max_steps", "5", "--workers", "1"]
LEARN = ["fit", "--data", "[{tmp}]", "--out", "{tmp}/explorer", "--epochs", "1"]
DAGGER = ["--dataset", "{dataset}", "--out", "{tmp}/dagger", "--train_config",
          "{train_config}", "--eval_houses", "{houses}", "--rounds", "1", "--initial_epochs",
          "0", "--episodes_per_round", "1", "--max_steps", "5", "--eval_episodes", "1",
          "--eval_max_steps", "5"]

CASES = {  # id: (program, argv, what the line names)
    "eval-out-is-a-file": ("spoc-eval", [*ORACLE, "--out", "{file}"], "--out {file}"),
    "eval-out-under-a-file": ("spoc-eval", [*ORACLE, "--out", "{file}/run"], "--out"),
    "eval-workers-negative": ("spoc-eval", [*ORACLE, "--workers", "-1"], "--workers -1"),
    "eval-episodes-0": ("spoc-eval", [*ORACLE, "--episodes", "0"], "--episodes 0"),
    "eval-seed-negative": ("spoc-eval", [*ORACLE, "--seed", "-1"], "--seed -1"),
    "eval-houses-missing": ("spoc-eval", [*ORACLE, "--houses", "{missing}"],
                            "--houses {missing}"),
    "eval-houses-training-content": ("spoc-eval", [*ORACLE, "--dataset", "{dataset}",
                                                   "--houses", "{renamed}"],
                                     "--houses {renamed}: house 0"),
    "eval-dataset-not-a-dataset": ("spoc-eval", [*ORACLE, "--dataset", "{dir}"],
                                   "--dataset {dir}"),
    "eval-checkpoint-garbage": ("spoc-eval", [*EVAL, "--checkpoint", "{file}"],
                                "--checkpoint {file}"),
    "eval-checkpoint-missing": ("spoc-eval", [*EVAL, "--checkpoint", "{missing}"],
                                "--checkpoint {missing}"),
    "eval-detector-garbage": ("spoc-eval", [*EVAL, "--policy", "mapper", "--detector",
                                            "{file}"], "--detector {file}"),
    "eval-explorer-garbage": ("spoc-eval", [*MAPPER, "--mapper.explorer", "{file}"],
                              "--mapper.explorer {file}"),
    "eval-mapper-size-0": ("spoc-eval", [*MAPPER, "--mapper.size", "0"], "--mapper.size"),
    "eval-config-class-check": ("spoc-eval", [*ORACLE, "--camera.height", "0"],
                                "camera.height"),
    "eval-compare-not-a-run": ("spoc-eval", ["compare", "{file}"], "{file}"),
    "eval-report-not-a-run": ("spoc-eval", ["report", "{dir}"], "{dir}"),
    "datagen-out-is-a-file": ("spoc-datagen", [*DATAGEN, "--out", "{file}"], "--out {file}"),
    "datagen-workers-negative": ("spoc-datagen", [*DATAGEN, "--workers", "-1"],
                                 "--workers -1"),
    "datagen-num-shards-0": ("spoc-datagen", [*DATAGEN, "--num-shards", "0"], "num_shards"),
    "datagen-shard-index-past-the-end": ("spoc-datagen", [*DATAGEN, "--num-shards", "2",
                                                          "--shard-index", "2"],
                                         "--shard-index 2"),
    "datagen-shard-index-negative": ("spoc-datagen", [*DATAGEN, "--shard-index", "-1"],
                                     "--shard-index -1"),
    "datagen-houses-missing": ("spoc-datagen", [*DATAGEN, "--houses", "{missing}"],
                               "--houses {missing}"),
    "datagen-houses-garbage": ("spoc-datagen", [*DATAGEN, "--houses", "{file}"],
                               "--houses {file}"),
    "datagen-seed-negative": ("spoc-datagen", [*DATAGEN, "--seed", "-1"], "seed"),
    "datagen-video-preset": ("spoc-datagen", [*DATAGEN, "--video.preset", "fastest"],
                             "video.preset"),
    "datagen-config-class-check": ("spoc-datagen", [*DATAGEN, "--camera.height", "0"],
                                   "camera.height"),
    "datagen-verify-not-a-dataset": ("spoc-datagen", ["verify", "{dir}"], "{dir}"),
    "detector-out-under-a-file": ("spoc-detector", [*FIT, "--out", "{file}/d.json"],
                                  "--out {file}/d.json"),
    "detector-out-is-a-folder": ("spoc-detector", [*FIT, "--out", "{dir}"], "--out {dir}"),
    "detector-data-not-a-dataset": ("spoc-detector", [*FIT, "--data", "{dir}"],
                                    "point --data at"),
    "detector-episodes-0": ("spoc-detector", [*FIT, "--episodes", "0"], "--episodes 0"),
    "detector-stride-0": ("spoc-detector", [*FIT, "--stride", "0"], "--stride 0"),
    "detector-split-missing": ("spoc-detector", [*FIT, "--split", "test"],
                               "the 'test' split"),
    "detector-score-detector-garbage": ("spoc-detector", [*SCORE, "--detector", "{file}"],
                                        "--detector {file}"),
    "detector-score-out-is-a-folder": ("spoc-detector", [*SCORE, "--out", "{dir}"],
                                       "--out {dir}"),
    "explorer-collect-out-is-a-file": ("spoc-explorer", [*COLLECT, "--out", "{file}"],
                                       "--out {file}"),
    "explorer-collect-workers-negative": ("spoc-explorer", [*COLLECT, "--workers", "-1"],
                                          "--workers -1"),
    "explorer-collect-episodes-0": ("spoc-explorer", [*COLLECT, "--episodes", "0"],
                                    "--episodes 0"),
    "explorer-collect-houses-missing": ("spoc-explorer", [*COLLECT, "--houses", "{missing}"],
                                        "--houses {missing}"),
    "explorer-collect-held-out-houses": ("spoc-explorer", [*COLLECT, "--houses",
                                                           "{val_houses}"],
                                         "--houses {val_houses}"),
    "explorer-collect-detector-garbage": ("spoc-explorer", [*COLLECT, "--detector", "{file}"],
                                          "--detector {file}"),
    "explorer-collect-dataset-not-a-dataset": ("spoc-explorer", [*COLLECT, "--dataset",
                                                                 "{dir}"], "--dataset {dir}"),
    "explorer-collect-explorer-garbage": ("spoc-explorer", [*COLLECT, "--explorer", "{file}"],
                                          "--explorer {file}"),
    "explorer-collect-config-class-check": ("spoc-explorer", [*COLLECT, "--camera.height",
                                                              "0"], "camera.height"),
    "explorer-fit-out-is-a-file": ("spoc-explorer", [*LEARN, "--out", "{file}"],
                                   "--out {file}"),
    "explorer-fit-data-not-collected": ("spoc-explorer", [*LEARN, "--data", "[{dir}]"],
                                        "--data {dir}"),
    "explorer-fit-epochs-0": ("spoc-explorer", [*LEARN, "--epochs", "0"], "--epochs 0"),
    "explorer-fit-checkpoint-garbage": ("spoc-explorer", [*LEARN, "--ckpt_path", "{file}"],
                                        "--ckpt_path {file}"),
    "dagger-out-is-a-file": ("spoc-dagger", [*DAGGER, "--out", "{file}"], "--out {file}"),
    "dagger-dataset-not-a-dataset": ("spoc-dagger", [*DAGGER, "--dataset", "{dir}"],
                                     "--dataset {dir}"),
    "dagger-eval-workers-negative": ("spoc-dagger", [*DAGGER, "--eval_workers", "-1"],
                                     "--eval_workers -1"),
    "dagger-envs-negative": ("spoc-dagger", [*DAGGER, "--envs", "-1"], "envs"),
    "dagger-seed-negative": ("spoc-dagger", [*DAGGER, "--seed", "-1"], "seed"),
    "dagger-eval-houses-missing": ("spoc-dagger", [*DAGGER, "--eval_houses", "{missing}"],
                                   "--eval_houses {missing}"),
    "dagger-eval-houses-training-content": ("spoc-dagger", [*DAGGER, "--eval_houses",
                                                            "{renamed}"],
                                            "--eval_houses {renamed}: house 0"),
    "dagger-train-houses-missing": ("spoc-dagger", [*DAGGER, "--train_houses", "{missing}"],
                                    "--train_houses {missing}"),
    "dagger-train-config-garbage": ("spoc-dagger", [*DAGGER, "--train_config", "{file}"],
                                    "--train_config {file}"),
    "dagger-checkpoint-garbage": ("spoc-dagger", [*DAGGER, "--init_checkpoint", "{file}"],
                                  "--init_checkpoint {file}"),
    "dagger-detector-garbage": ("spoc-dagger", [*DAGGER, "--detector", "{file}"],
                                "--detector {file}"),
}


def fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in argv]


@pytest.mark.parametrize("program, argv, named", CASES.values(), ids=CASES)
def test_a_mistake_is_one_line_and_exit_2(paths, capsys, program, argv, named):
    code = MAINS[program](fill(argv, paths))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{program}: "), err
    assert named.format(**paths) in lines[0], lines[0]
    for out in ("eval", "data", "collect", "explorer", "dagger"):
        assert not (Path(paths["tmp"]) / out).exists(), f"{out} written"


def test_debug_adds_the_traceback(paths, capsys):
    argv = fill([*ORACLE, "--out", "{file}", "--debug"], paths)
    assert eval.cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == f"spoc-eval: --out {paths['file']}: {paths['file']} is an existing file, " \
                      "not a folder; give another directory"


@pytest.mark.parametrize("program, argv", [
    ("spoc-eval", ["run", "--no-such-option", "1"]),
    ("spoc-datagen", ["episodes", "--num-shards", "many"]),
    ("spoc-dagger", ["--rounds", "three"]),
    ("spoc-detector", ["fit", "--episodes", "x"]),
    ("spoc-explorer", ["collect", "--no-such-option", "1"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_parse_errors_keep_the_usage_and_exit_2(capsys, program, argv):
    with pytest.raises(SystemExit) as e:
        MAINS[program](argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err.lower() and "Traceback" not in err
