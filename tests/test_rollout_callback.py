"""Rollouts while training (training.rollout_callback.RolloutEvaluation): the numbers it logs
are spoc-eval's for the saved checkpoint, a ModelCheckpoint keeps the best of them, training
is unchanged by it, and bad settings are one line. Tiny dataset, tiny policy, few episodes."""

from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from training_helpers import HOUSE, write_dataset

from agents.checkpoint import load_policy
from eval.cli import main as eval_main
from training.cli import build_cli
from training.cli import main as train_main
from training.data.datamodule import ShardDataModule
from training.module import PolicyModule
from training.rollout_callback import METRICS, PREFIX, RolloutEvaluation

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "train" / "tiny.yaml")
CALLBACK = "training.rollout_callback.RolloutEvaluation"
EPISODES, MAX_STEPS = 6, 30
NAMES = [PREFIX + name for name in METRICS]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> Path:
    """A held-out house (the training data's is house_3703)."""
    house = json.loads((ROOT / "tests" / "fixtures" / "143.json").read_text())
    house["metadata"]["houseId"] = "val-0-0"
    path = tmp_path_factory.mktemp("houses") / "val.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(house) + "\n")
    return path


def fit_args(dataset: Path, run: Path, *extra: str) -> list[str]:
    return ["fit", "--config", CONFIG, "--data.root", str(dataset),
            "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false",
            *extra]


def rollout_flags(houses: Path, *more: str) -> list[str]:
    return [f"--trainer.callbacks+={CALLBACK}", "--trainer.callbacks.houses", str(houses),
            "--trainer.callbacks.episodes", str(EPISODES),
            "--trainer.callbacks.max_steps", str(MAX_STEPS), *more]


def rollout_rows(run: Path) -> dict[int, dict[str, float]]:
    """The rollout metrics of each logged step, from the CSV log."""
    rows = {}
    for path in sorted((run / "logs").glob("version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get(NAMES[0]):
                    rows[int(row["step"])] = {k: float(row[k]) for k in NAMES}
    return rows


@pytest.fixture(scope="module")
def runs(dataset, houses, tmp_path_factory) -> dict:
    """Three tiny fits (2 epochs of 5 steps) from the same seed: rollouts every 5 steps in
    the training process with the checkpoints spoc-train adds; rollouts at every validation
    in 2 workers with a ModelCheckpoint of a YAML config; and no rollouts."""
    tmp = tmp_path_factory.mktemp("runs")
    config = tmp / "rollouts.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": CALLBACK,
         "init_args": {"houses": str(houses), "episodes": EPISODES, "max_steps": MAX_STEPS,
                       "workers": 2}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"dirpath": str(tmp / "nearest"), "filename": "nearest-{step}",
                       "monitor": "rollout/final_distance", "mode": "min"}}]}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.argv", ["spoc-train"])
        steps = build_cli(fit_args(dataset, tmp / "steps", *rollout_flags(
            houses, "--trainer.callbacks.every_n_train_steps", "5")))
        val = build_cli(fit_args(dataset, tmp / "val", "--config", str(config)))
        build_cli(fit_args(dataset, tmp / "plain"))
    return {"tmp": tmp, "steps": steps, "val": val}


def test_rollouts_are_logged_at_their_steps_whatever_the_schedule_and_workers(runs):
    """Every 5 steps and at every validation (the end of each 5-step epoch) roll out the same
    weights, so they log the same numbers; 1 or 2 workers give the same."""
    tmp = runs["tmp"]
    steps, val = rollout_rows(tmp / "steps"), rollout_rows(tmp / "val")
    assert sorted(steps) == [5, 10]
    assert val == steps
    assert steps[5] != steps[10]  # the numbers tell the two policies apart
    last = runs["steps"].trainer.callback_metrics
    assert {k: float(last[k]) for k in NAMES} == pytest.approx(steps[10])  # float32 there
    assert all(0 <= steps[s][PREFIX + "success"] <= 1 for s in steps)
    assert all(1 <= steps[s][PREFIX + "steps"] <= MAX_STEPS for s in steps)


def spoc_eval(ckpt: Path, houses: Path, out: Path) -> dict:
    """``spoc-eval run`` of a checkpoint on the callback's episodes."""
    assert eval_main(["run", "--checkpoint", str(ckpt), "--houses", str(houses),
                      "--episodes", str(EPISODES), "--seed", "0", "--max_steps", str(MAX_STEPS),
                      "--out", str(out), "--videos", "0", "--progress", "false"]) == 0
    return json.loads((out / "eval_info.json").read_text())


def test_logged_numbers_are_spoc_evals_for_the_saved_checkpoints(runs, houses):
    """spoc-eval run on a saved checkpoint gives exactly the numbers logged at its step; the
    checkpoint spoc-train adds keeps the highest success (the earliest on a tie)."""
    tmp = runs["tmp"]
    rows = rollout_rows(tmp / "steps")
    ckpts = tmp / "steps" / "checkpoints"
    best = sorted(ckpts.glob("best-rollout-*.ckpt"))
    assert len(best) == 1
    top = max(r[PREFIX + "success"] for r in rows.values())
    assert load_policy(best[0])[1].trained_steps == min(
        s for s, r in rows.items() if r[PREFIX + "success"] == top)
    for ckpt in (best[0], ckpts / "last.ckpt"):
        info = spoc_eval(ckpt, houses, tmp / "eval" / ckpt.stem)
        agg = info["aggregated"]
        assert agg["num_episodes"] == EPISODES
        got = {PREFIX + name: float(agg[key]) for name, key in METRICS.items()}
        assert got == rows[info["run"]["trained_steps"]], ckpt.name


def test_a_model_checkpoint_from_yaml_keeps_the_best_rollout(runs):
    tmp = runs["tmp"]
    rows = rollout_rows(tmp / "val")
    saved = sorted((tmp / "nearest").glob("*.ckpt"))
    assert len(saved) == 1
    nearest = min(rows, key=lambda s: (rows[s][PREFIX + "final_distance"], s))
    assert saved[0].name == f"nearest-step={nearest}.ckpt"
    callback = runs["val"].trainer.checkpoint_callback
    assert float(callback.best_model_score) == rows[nearest][PREFIX + "final_distance"]


def test_training_with_rollouts_gives_the_same_weights(runs):
    tmp = runs["tmp"]
    with_rollouts = torch.load(tmp / "steps/checkpoints/last.ckpt", weights_only=False)
    without = torch.load(tmp / "plain/checkpoints/last.ckpt", weights_only=False)
    assert with_rollouts["global_step"] == without["global_step"] == 10
    assert with_rollouts["state_dict"].keys() == without["state_dict"].keys()
    for key, value in without["state_dict"].items():
        assert torch.equal(with_rollouts["state_dict"][key], value), key


def test_a_rollout_leaves_the_random_states_and_the_train_mode_alone(dataset, houses):
    dm = ShardDataModule(str(dataset), seq_len=8, image_size=(32, 48), batch_size=4,
                         num_workers=0, augment=False)
    module = PolicyModule(dataset_spec=dm.spec)
    callback = RolloutEvaluation(str(houses), episodes=2, max_steps=10)
    trainer = SimpleNamespace(checkpoint_callbacks=[], global_step=3, is_global_zero=True,
                              strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj))
    callback.setup(trainer, module, "fit")
    folder = callback._dir
    # building the evaluated policy draws from torch's generator, which the callback restores
    state = torch.get_rng_state()
    load_policy(folder / "policy.ckpt")
    assert not torch.equal(state, torch.get_rng_state())

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    metrics = callback.rollout_metrics(trainer, module)
    assert sorted(metrics) == sorted(NAMES)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
    assert module.training and module.policy.training
    callback.teardown(trainer, module, "fit")
    assert not folder.exists()


@pytest.mark.parametrize("case", ["every_0", "episodes_0", "no_file", "training_house",
                                  "checkpoint_schedule"])
def test_bad_settings_are_one_line(case, dataset, houses, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    flags, expected = {
        "every_0": (rollout_flags(houses, "--trainer.callbacks.every_n_train_steps", "0"),
                    "every_n_train_steps=0"),
        "episodes_0": (rollout_flags(houses, "--trainer.callbacks.episodes", "0"),
                       "episodes=0"),
        "no_file": (rollout_flags(tmp_path / "none.jsonl.gz"), "no such file"),
        "training_house": (rollout_flags(Path(HOUSE)), "training"),
        "checkpoint_schedule": (
            [*rollout_flags(houses, "--trainer.callbacks.every_n_train_steps", "5"),
             "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor",
             "rollout/success", "--trainer.callbacks.mode", "max"], "every_n_train_steps: 5"),
    }[case]
    assert train_main(fit_args(dataset, tmp_path / "run", *flags)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and "RolloutEvaluation" in err[0], err
