"""Release folders (agents.release, spoc-eval export): what a release holds, a run of it gives
the rows of its checkpoint with the same settings and takes them from deploy.json, an option
given wins and is recorded, training houses are refused, and a malformed release or export is
one line naming the file and the field. A tiny untrained policy on the fixture houses."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from test_eval import ANCHORS, bad_input, write_checkpoint, write_houses
from training_helpers import palette_detector

from agents.checkpoint import policy_state
from agents.detector import ColourDetector
from agents.release import load_release
from datagen.constants import OBJECTNAV_TARGETS
from eval.cli import main
from eval.export import ExportConfig
from sim.house import file_content_hashes

ROOT = Path(__file__).resolve().parents[1]
CARD_YAML = ROOT / "models" / "best-card.yaml"
END = "0.4"
"""The stopping rule of the tiny runs: the sharpened policy's ``end`` is sometimes below it."""


def run_args(houses: Path, out: Path, *args: str, episodes: int = 6) -> list[str]:
    return ["run", "--houses", str(houses), "--out", str(out), "--episodes", str(episodes),
            "--seed", "0", "--videos", "0", "--max_steps", "30", "--progress", "false", *args]


def evaluate(houses: Path, out: Path, *args: str, episodes: int = 6) -> dict:
    assert main(run_args(houses, out, *args, episodes=episodes)) == 0
    return json.loads((out / "eval_info.json").read_text())


def export_args(ckpt: Path, eval_info: Path, detector: Path, out: Path, *args: str) -> list[str]:
    return ["export", "--config", str(CARD_YAML), "--checkpoint", str(ckpt),
            "--eval_info", str(eval_info), "--detector", str(detector), "--end_threshold", END,
            "--room_anchors", json.dumps(ANCHORS), "--out", str(out), *args]


def sharpened_checkpoint(path: Path) -> Path:
    """An untrained box policy with room anchors whose logits are scaled 3x, so that its
    ``end`` is sometimes the argmax below :data:`END` and its box input changes its actions:
    the stopping rule and the detector both change its rows."""
    ckpt = write_checkpoint(path, ["train-0-0"], target_box=True, room_anchors=ANCHORS)
    data = torch.load(ckpt, weights_only=False)
    data["state_dict"]["policy.head.weight"] *= 3
    torch.save(data, ckpt)
    return ckpt


def loose_detector(path: Path) -> Path:
    """A detector of every target and anchor that also takes colours near its own: its boxes
    are not the simulator's."""
    exact = palette_detector([*OBJECTNAV_TARGETS, "Fridge"])
    ColourDetector(exact.centre, {t: 0.5 for t in exact.radius}, exact.min_pixels).save(path)
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A box policy with room anchors, its detector, its evaluation with the detector and a
    stopping rule, and the release exported from them."""
    tmp = tmp_path_factory.mktemp("release")
    houses = write_houses(tmp / "val.jsonl.gz")
    ckpt = sharpened_checkpoint(tmp / "tiny.ckpt")
    detector = loose_detector(tmp / "detector.json")
    checkpoint_run = evaluate(houses, tmp / "ckpt-run", "--checkpoint", str(ckpt),
                              "--detector", str(detector), "--end_threshold", END)
    release = tmp / "models" / "tiny"
    assert main(export_args(ckpt, tmp / "ckpt-run", detector, release)) == 0
    return dict(tmp=tmp, houses=houses, ckpt=ckpt, detector=detector, release=release,
                checkpoint_run=checkpoint_run)


def test_a_release_holds_plain_tensors_its_record_settings_detector_and_card(made):
    release, ckpt = made["release"], made["ckpt"]
    assert sorted(p.name for p in release.iterdir()) == [
        "deploy.json", "detector.json", "model_card.md", "policy.json", "weights.pt"]
    assert not list(release.parent.glob(".*tmp*"))  # nothing left of the temporary folder
    weights = torch.load(release / "weights.pt", weights_only=True)
    original = policy_state(torch.load(ckpt, weights_only=False))
    assert weights.keys() == original.keys()
    assert all(torch.equal(weights[k], original[k]) for k in original)
    policy = json.loads((release / "policy.json").read_text())
    record = torch.load(ckpt, weights_only=False)["spoc_policy"]
    assert list(policy["config"]["room_anchors"].items()) == list(ANCHORS.items())
    assert policy["config"] == json.loads(json.dumps(record["config"]))  # tuples as lists
    assert policy["goals"] == record["goals"]
    assert policy["train_house_ids"] == ["train-0-0"] and policy["trained_steps"] == 0
    assert policy["weights_sha256"] == hashlib.sha256(
        (release / "weights.pt").read_bytes()).hexdigest()
    deploy = json.loads((release / "deploy.json").read_text())
    assert deploy == {"format": "spoc-release/1", "end_threshold": float(END),
                      "end_threshold_by_task": None, "sample": False,
                      "detector": "detector.json"}
    assert (release / "detector.json").read_bytes() == made["detector"].read_bytes()
    card = (release / "model_card.md").read_text()
    rows = made["checkpoint_run"]["aggregated"]
    lo, hi = rows["success_ci95"]
    assert f"{100 * rows['success_rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]" in card
    assert re.search(rf"\| all \| {rows['num_episodes']} \| .* \| \d\.\d{{3}} "
                     r"\[\d\.\d{3}, \d\.\d{3}\] \|", card)
    assert "| objectnav |" in card and f"end >= {END}, detector detector.json" in card
    text = yaml.safe_load(CARD_YAML.read_text())
    assert " ".join(text["recipe"].split()) in " ".join(card.split())
    assert f"spoc-eval run --checkpoint {release} --houses {made['houses']}" in card


def test_a_release_runs_as_its_checkpoint_did_without_options(made):
    """No --detector, no --end_threshold: deploy.json's, and the same rows as the checkpoint
    run with them (which differ from the checkpoint's rows without them, and from those with
    one of them only)."""
    info = evaluate(made["houses"], made["tmp"] / "release-run", "--checkpoint",
                    str(made["release"]))
    before = made["checkpoint_run"]
    assert info["per_episode"] == before["per_episode"]
    ckpt = ["--checkpoint", str(made["ckpt"])]
    plain = evaluate(made["houses"], made["tmp"] / "plain", *ckpt)
    detected = evaluate(made["houses"], made["tmp"] / "detected", *ckpt, "--detector",
                        str(made["detector"]))
    assert plain["per_episode"] != before["per_episode"] != detected["per_episode"]
    assert plain["per_episode"] != detected["per_episode"]
    assert info["aggregated"] == before["aggregated"]
    run = info["run"]
    assert run["end_threshold"] == float(END) and run["detector"].endswith("detector.json")
    assert run["room_anchors"] == ANCHORS and run["trained_steps"] == 0
    assert run["release"]["path"] == str(made["release"]) and run["release"]["differs"] is None


def test_an_option_given_wins_and_the_run_records_it(made, capsys):
    info = evaluate(made["houses"], made["tmp"] / "override", "--checkpoint",
                    str(made["release"]), "--end_threshold", "0.5", episodes=2)
    assert info["run"]["end_threshold"] == 0.5
    assert info["run"]["release"]["differs"] == {
        "end_threshold": {"release": float(END), "run": 0.5}}
    assert "--end_threshold 0.5: the release" in capsys.readouterr().err
    same = evaluate(made["houses"], made["tmp"] / "same-detector", "--checkpoint",
                    str(made["release"]), "--detector", str(made["detector"]), episodes=2)
    assert same["run"]["release"]["differs"] is None  # the same detector file, by its bytes
    sampled = evaluate(made["houses"], made["tmp"] / "sampled", "--checkpoint",
                       str(made["release"]), "--sample", "true", episodes=2)
    assert sampled["run"]["sample"] is True and sampled["run"]["end_threshold"] is None
    assert set(sampled["run"]["release"]["differs"]) == {"sample", "end_threshold"}
    bare = evaluate(made["houses"], made["tmp"] / "bare", "--checkpoint", str(made["release"]),
                    "--release_defaults", "false", episodes=2)
    assert bare["run"]["end_threshold"] is None and bare["run"]["detector"] is None
    assert set(bare["run"]["release"]["differs"]) == {"end_threshold", "detector"}


def test_a_release_refuses_its_training_houses(made, capsys):
    """The training houses' content hashes travel in policy.json."""
    tmp = made["tmp"]
    hashes = list(file_content_hashes(str(made["houses"])).values())
    seen = write_checkpoint(tmp / "seen.ckpt", ["train-0-0"], target_box=True,
                            room_anchors=ANCHORS, train_house_hashes=hashes[1:])
    assert main(export_args(seen, tmp / "ckpt-run", made["detector"], tmp / "seen")) == 0
    err = bad_input(capsys, run_args(made["houses"], tmp / "x", "--checkpoint",
                                     str(tmp / "seen")))
    assert "house 1 is one of the checkpoint's training houses" in err
    assert not (tmp / "x" / "eval_info.json").exists()


def test_export_refuses_to_overwrite_and_an_evaluation_of_other_settings(made, capsys):
    tmp, release = made["tmp"], made["release"]
    args = (made["ckpt"], tmp / "ckpt-run", made["detector"])
    weights = (release / "weights.pt").read_bytes()
    assert "already exists; give --force true" in bad_input(capsys, export_args(*args, release))
    assert main(export_args(*args, release, "--force", "true")) == 0
    assert (release / "weights.pt").read_bytes() == weights  # the same bytes again
    assert not list(release.parent.glob(".*tmp*"))
    err = bad_input(capsys, [*export_args(*args, tmp / "o1"), "--end_threshold", "0.5"])
    assert f"field 'run.end_threshold' is {END}, the release's is 0.5" in err
    err = bad_input(capsys, [*export_args(*args, tmp / "o2"), "--room_anchors",
                             "{Kitchen: Fridge}"])
    assert "--room_anchors" in err and "was trained with" in err
    err = bad_input(capsys, [*export_args(*args, tmp / "o3"), "--max_mb", "0.01"])
    assert "over --max_mb 0.01" in err
    err = bad_input(capsys, [*export_args(*args, tmp / "o4"), "--recipe", ""])
    assert "--recipe is empty" in err
    other = tmp / "other.json"
    palette_detector([*OBJECTNAV_TARGETS, "Fridge", "Desk"]).save(other)
    err = bad_input(capsys, export_args(made["ckpt"], tmp / "ckpt-run", other, tmp / "o5"))
    assert "field 'run.detector'" in err and "bytes differ" in err
    assert not any((tmp / f"o{k}").exists() for k in range(1, 6))
    assert not list(tmp.glob(".o*"))


class Payload:
    """Unpickled in full, it would create a file: a weights file that needs code run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def set_sha(release: Path) -> None:
    """Give policy.json the sha256 of the release's weights.pt as it now is."""
    policy = json.loads((release / "policy.json").read_text())
    policy["weights_sha256"] = hashlib.sha256((release / "weights.pt").read_bytes()).hexdigest()
    (release / "policy.json").write_text(json.dumps(policy))


def edit_json(name: str, **changes):
    def edit(release: Path):
        data = json.loads((release / name).read_text())
        for key, value in changes.items():
            if key.startswith("config_"):
                data["config"][key.removeprefix("config_")] = value
            else:
                data[key] = value
        (release / name).write_text(json.dumps(data))
    return edit


def pickled_code(release: Path) -> None:
    torch.save({"w": torch.zeros(1), "x": Payload(release / "ran")}, release / "weights.pt")
    set_sha(release)


def truncated(release: Path) -> None:
    data = (release / "weights.pt").read_bytes()
    (release / "weights.pt").write_bytes(data[:len(data) // 2])


def not_tensors(release: Path) -> None:
    torch.save({"w": [1, 2]}, release / "weights.pt")
    set_sha(release)


MALFORMED = {
    "missing policy.json": (lambda r: (r / "policy.json").unlink(),
                            "policy.json: no such file"),
    "bad deploy JSON": (lambda r: (r / "deploy.json").write_text("{not json"),
                        "deploy.json: not readable JSON"),
    "pickled code": (pickled_code, "weights.pt: not a plain dict of tensors that loads "
                     "without unpickling code"),
    "not tensors": (not_tensors, "weights.pt: entry 'w' is a list"),
    "damaged weights": (truncated, "weights.pt: its sha256 differs from policy.json's field "
                        "'weights_sha256'"),
    "shapes": (edit_json("policy.json", config_hidden_dim=16),
               "policy.json's config gives torch.float32"),
    "goals not strings": (edit_json("policy.json", goals=[1, 2]),
                          "policy.json: field 'goals' must be a list of strings"),
    "anchors": (edit_json("policy.json", config_room_anchors=["Bed"]),
                "policy.json: field 'config.room_anchors' is not a JSON object"),
    "format": (edit_json("policy.json", format="spoc-release/9"),
               "policy.json: field 'format' is 'spoc-release/9'"),
    "unknown setting": (edit_json("deploy.json", temperature=0.5),
                        "deploy.json: field 'temperature' is unknown"),
    "threshold": (edit_json("deploy.json", end_threshold="high"),
                  "deploy.json: field 'end_threshold' is 'high'"),
    "threshold range": (edit_json("deploy.json", end_threshold=1.5),
                        "deploy.json: end_threshold 1.5 must be in (0, 1]"),
    "detector path": (edit_json("deploy.json", detector="../detector.json"),
                      "deploy.json: field 'detector' is '../detector.json'"),
    "no detector file": (lambda r: (r / "detector.json").unlink(),
                         "deploy.json: field 'detector' names detector.json"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_release_is_one_line_naming_the_file_and_field(made, case, capsys):
    damage, expected = MALFORMED[case]
    release = made["tmp"] / f"bad-{case.replace(' ', '-')}"
    shutil.copytree(made["release"], release)
    damage(release)
    err = bad_input(capsys, run_args(made["houses"], made["tmp"] / "x", "--checkpoint",
                                     str(release)))
    assert err.startswith(f"spoc-eval: --checkpoint {release}/"), err
    assert expected in err, err
    assert not (release / "ran").exists()  # nothing in weights.pt was run
    assert not (made["tmp"] / "x" / "eval_info.json").exists()


def test_load_release_reads_weights_only(made, monkeypatch):
    """load_release never unpickles in full: every torch.load it makes is weights_only."""
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    policy, info = load_release(made["release"])
    assert calls == [True] and info.config["room_anchors"] == ANCHORS and not policy.training


def test_the_documented_export_of_the_best_agent_parses(capsys, monkeypatch):
    """docs/models.md's export command of models/best, with --print_config: every option and
    the card YAML are known to spoc-eval export."""
    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "models.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S)
                 if "--out models/best" in b)
    command = shlex.split(block.replace("\\\n", " "))
    assert command[:2] == ["spoc-eval", "export"]
    with pytest.raises(SystemExit) as done:  # --print_config prints and exits
        main([*command[1:], "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["end_threshold"] == 0.9 and printed["room_anchors"] == ANCHORS
    assert printed["detector"] == "runs/anchor/detector4.json"
    assert set(yaml.safe_load(CARD_YAML.read_text())) <= set(ExportConfig.__dataclass_fields__)
