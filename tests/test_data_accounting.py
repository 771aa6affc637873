"""What training reads, against info.json: shards missing on disk or not listed, episodes a
damaged shard does not yield, the training houses' content hashes in a checkpoint, and the
one-line errors of spoc-train and spoc-pretrain for bad input."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch._utils import ExceptionWrapper
from training_helpers import HOUSE, overwrite_middle, write_dataset

from agents.checkpoint import load_policy
from agents.policy import PolicyConfig
from common.cli import EXIT_BAD_INPUT
from sim.house import house_content_hash, load_houses
from training.cli import build_cli
from training.cli import main as train_main
from training.data.accounting import LostEpisodesError, MissingShardsError, UnreadableShardsError
from training.data.datamodule import ShardDataModule
from training.data.info import DataOptionError, DatasetMismatchError
from training.data.streams import worker_error
from training.module import PolicyModule
from training.pretrain.cli import main as pretrain_main
from training.pretrain.data import LabelledFrameDataModule

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = str(ROOT / "configs" / "train" / "tiny.yaml")
PRETRAIN_CONFIG = str(ROOT / "configs" / "pretrain" / "cpu.yaml")
TINY_POLICY = PolicyConfig(image_size=(32, 48), channels=(8, 16), groups=4, pool_size=(2, 3),
                           feature_dim=16, goal_dim=4, action_dim=4, hidden_dim=16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """2 train shards and 1 val shard of 4 episodes each."""
    return write_dataset(tmp_path_factory.mktemp("accounting"), {"train": (2, 4), "val": (1, 4)})


@pytest.fixture
def root(dataset, tmp_path) -> Path:
    """A copy of the dataset to damage."""
    shutil.copytree(dataset, tmp_path / "ds")
    return tmp_path / "ds"


def datamodule(root: Path, **kwargs) -> ShardDataModule:
    args = dict(seq_len=8, image_size=(32, 48), batch_size=4, batches_per_epoch=3,
                num_workers=0, augment=False)
    return ShardDataModule(str(root), **{**args, **kwargs})


def edit_info(root: Path, edit) -> None:
    info = json.loads((root / "info.json").read_text())
    edit(info)
    (root / "info.json").write_text(json.dumps(info))


# ------------------------------------------------------------------------ episodes not read


def test_a_shard_damaged_mid_archive_is_refused_naming_its_lost_episodes(root):
    """4 KB overwritten from a header after the first member: tarfile stops there without an
    error. The train split's scan (when the data module gives its spec, before training)
    finds the shard short of info.json's count."""
    shard = root / "train" / "shard-000001.tar"
    assert overwrite_middle(shard) == 2
    dm = datamodule(root)
    with pytest.raises(LostEpisodesError) as err:
        _ = dm.spec
    message = str(err.value)
    assert message.startswith(f"{shard}: yielded 2 of the 4 episodes info.json lists (2 lost")
    assert "split 'train'" in message and "lost 2 of its 8 episodes" in message
    assert "data.max_missing_fraction=0.01" in message
    assert f"`spoc-datagen verify {root}`" in message and "\n" not in message


def test_below_the_limit_lost_episodes_are_warned_about_and_counted_in_the_batches(root):
    shard = root / "train" / "shard-000001.tar"
    overwrite_middle(shard)
    dm = datamodule(root, val_split="train", max_missing_fraction=0.5, seq_len=512)
    with pytest.warns(UserWarning, match="shard-000001.tar: yielded 2 of the 4 episodes"):
        _ = dm.spec
    assert dm.ledger.lost == {str(shard): 2}
    val = list(dm.val_dataloader())  # every shard once
    assert sum(int(b["num_lost"]) for b in val) == 2
    assert sum(int(b["num_skipped"]) for b in val) == 0
    assert sum(len(b["goals"]) for b in val) == 6  # 6 episodes read, each in one chunk
    assert all("shard_reads" not in b for b in val)  # the loader takes them out
    lost = [int(b["num_lost"]) for b in dm.train_dataloader()]  # each visit counts
    assert len(lost) == 3 and sum(lost) > 0 and sum(lost) % 2 == 0


def test_a_damaged_validation_shard_stops_validation_in_one_line(root):
    """The val split is not scanned: its loss is found as validation reads it."""
    shard = root / "val" / "shard-000000.tar"
    overwrite_middle(shard)
    dm = datamodule(root)
    assert dm.spec["train_house_ids"]  # the train split is sound
    with pytest.raises(LostEpisodesError) as err:
        list(dm.val_dataloader())
    message = str(err.value)
    assert message.startswith(f"{shard}: yielded 2 of the 4 episodes")
    assert "split 'val'" in message and "\n" not in message


def test_a_validation_shard_that_yields_nothing_is_lost_whole(root):
    """Its first header damaged, a shard gives no sample (and its reader no batch): the end
    of the validation pass accounts for it."""
    shard = root / "val" / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[:4096] = b"\xab" * 4096
    shard.write_bytes(bytes(data))
    with pytest.raises(LostEpisodesError, match="yielded 0 of the 4 episodes"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skipped shard's warning
            list(datamodule(root).val_dataloader())


def test_a_loader_workers_input_error_is_its_own_line_again():
    try:
        raise LostEpisodesError("shard-000001.tar: yielded 2 of the 4 episodes")
    except LostEpisodesError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(LostEpisodesError) as err:
        wrapped.reraise()
    assert "Traceback" in str(err.value)
    again = worker_error(err.value)
    assert type(again) is LostEpisodesError
    assert str(again) == "shard-000001.tar: yielded 2 of the 4 episodes"


def test_pretraining_refuses_a_damaged_validation_shard(root):
    overwrite_middle(root / "val" / "shard-000000.tar")
    dm = LabelledFrameDataModule(str(root), image_size=(32, 48), batch_size=16,
                                 batches_per_epoch=1, num_workers=0)
    dm.grid = (2, 3)
    with pytest.raises(LostEpisodesError, match="shard-000000.tar: yielded 2 of the 4"):
        list(dm.val_dataloader())


# ---------------------------------------------------------------------- shards not on disk


def test_missing_and_unlisted_shards_are_refused_past_the_limit_and_named_below_it(root):
    (root / "train" / "shard-000001.tar").unlink()
    with pytest.raises(MissingShardsError) as err:
        datamodule(root)
    message = str(err.value)
    assert message.startswith(f"{root}: split 'train': 1 of its 2 shards are missing on disk "
                              "(shard-000001.tar), more than data.max_missing_fraction=0.01")
    assert f"`spoc-datagen verify {root}`" in message and "\n" not in message
    with pytest.warns(UserWarning, match=r"1 of its 2 shards are missing on disk"):
        dm = datamodule(root, max_missing_fraction=0.5)
    assert [Path(u).name for u in dm.train_urls] == ["shard-000000.tar"]

    shutil.copy(root / "train" / "shard-000000.tar", root / "train" / "shard-000007.tar")
    with pytest.raises(MissingShardsError, match=r"1 of its 3 shards are missing on disk "
                       r"\(shard-000001.tar\) and 1 shard\(s\) on disk are not listed in "
                       r"info.json \(shard-000007.tar\)"):
        datamodule(root, max_missing_fraction=0.5)


def test_shards_the_split_was_registered_with_but_never_written_are_missing(root):
    """5 of 6 shards gone: the 4 never written count as the deleted one does."""
    edit_info(root, lambda info: info["splits"]["train"].update(num_shards=6))
    (root / "train" / "shard-000001.tar").unlink()
    with pytest.raises(MissingShardsError, match=r"5 of its 6 shards are missing on disk "
                       r"\(shard-000001.tar, shard-000002.tar, shard-000003.tar, "
                       r"shard-000004.tar and 1 more\)"):
        datamodule(root, max_missing_fraction=0.5)


def test_a_validation_split_gone_from_disk_is_refused(root):
    shutil.rmtree(root / "val")
    with pytest.raises(MissingShardsError, match="split 'val': 1 of its 1 shards are missing"):
        datamodule(root)
    with pytest.raises(MissingShardsError, match="split 'val'"):
        LabelledFrameDataModule(str(root), image_size=(32, 48), num_workers=0)


def test_the_fraction_must_be_a_fraction(dataset):
    with pytest.raises(DataOptionError, match="data.max_missing_fraction: 2"):
        datamodule(dataset, max_missing_fraction=2)


# ---------------------------------------------------------------------- the training houses


def test_the_spec_and_a_checkpoint_carry_the_training_houses_content_hashes(dataset, tmp_path):
    dm = datamodule(dataset)
    hashes = sorted({house_content_hash(rec.house) for rec in load_houses(HOUSE)})
    assert dm.spec["train_house_hashes"] == hashes and len(hashes[0]) == 64
    module = PolicyModule(TINY_POLICY, dataset_spec=dm.spec)
    ckpt = {"state_dict": {f"policy.{k}": v for k, v in module.policy.state_dict().items()},
            "global_step": 0}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "policy.ckpt")
    _, info = load_policy(tmp_path / "policy.ckpt")
    assert info.train_house_hashes == hashes


def test_without_its_house_file_the_spec_warns_and_has_no_hashes(root, tmp_path):
    edit_info(root, lambda info: info["splits"]["train"]["houses"].update(
        path=str(tmp_path / "moved.jsonl.gz")))
    dm = datamodule(root)
    with pytest.warns(UserWarning, match="moved.jsonl.gz.*can only compare ids"):
        assert dm.spec["train_house_hashes"] == []


# ---------------------------------------------------------------------- the command line


def train_args(root, *extra) -> list[str]:
    return ["fit", "--config", TRAIN_CONFIG, "--data.root", str(root),
            "--trainer.enable_progress_bar", "false", *extra]


def pretrain_args(root, *extra) -> list[str]:
    return ["fit", "--config", PRETRAIN_CONFIG, "--data.root", str(root),
            "--data.image_size", "[32, 48]", "--data.num_workers", "0",
            "--trainer.enable_progress_bar", "false", *extra]


def garbage(path: Path, text: str = "not a checkpoint\n") -> Path:
    path.write_text(text)
    return path


MISTAKES = ["missing data root", "not a dataset", "info.json not JSON",
            "info.json not a dataset's", "info.json a list", "garbage ckpt_path",
            "missing ckpt_path", "another model's ckpt_path", "root dir is a file"]


def mistakes(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Each of :data:`MISTAKES` -> (the options that make it, what the one line says), its
    files made under ``tmp``."""
    notjson, notinfo, listed = tmp / "notjson", tmp / "notinfo", tmp / "list"
    for folder, text in ((notjson, "{not json"), (notinfo, '{"hello": 1}'), (listed, "[1, 2]")):
        folder.mkdir()
        garbage(folder / "info.json", text)
    foreign = tmp / "foreign.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"no_such_option": 1}}, foreign)
    return {
        "missing data root": (["--data.root", str(tmp / "nope")], "not a directory"),
        "not a dataset": (["--data.root", str(tmp)], "info.json: not found"),
        "info.json not JSON": (["--data.root", str(notjson)], "not readable as JSON"),
        "info.json not a dataset's": (["--data.root", str(notinfo)], "field 'version' is None"),
        "info.json a list": (["--data.root", str(listed)], "holds a JSON list"),
        "garbage ckpt_path": (["--ckpt_path", str(garbage(tmp / "g.ckpt"))], "unreadable"),
        "missing ckpt_path": (["--ckpt_path", str(tmp / "gone.ckpt")], "gone.ckpt: not found"),
        "another model's ckpt_path": (["--ckpt_path", str(foreign)],
                                      "written for another model (it has no_such_option"),
        "root dir is a file": (["--trainer.default_root_dir", str(garbage(tmp / "file"))],
                               "is an existing file, not a folder"),
    }


TRAIN_ONLY = {  # the option, what the line says of the file
    "garbage init_checkpoint": ("--model.init_checkpoint", "model.init_checkpoint {}: unreadable"),
    "missing init_checkpoint": ("--model.init_checkpoint", "model.init_checkpoint {}: not found"),
    "garbage encoder_init": ("--model.encoder_init",
                             "model.encoder_init: {} is not a `spoc-pretrain` checkpoint"),
    "missing encoder_init": ("--model.encoder_init", "model.encoder_init: {} not found"),
}


def one_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", [*MISTAKES, *TRAIN_ONLY])
def test_spoc_train_gives_one_line_and_status_2_for_each_mistake(case, dataset, tmp_path,
                                                                capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    if case in TRAIN_ONLY:
        option, says = TRAIN_ONLY[case]
        path = tmp_path / "w.ckpt" if "missing" in case else garbage(tmp_path / "w.ckpt")
        extra, says = [option, str(path)], says.format(path)
    else:
        extra, says = mistakes(tmp_path)[case]
    args = train_args(dataset, "--trainer.default_root_dir", str(tmp_path / "run"), *extra)
    assert train_main(args) == EXIT_BAD_INPUT
    assert says in one_line(capsys, "spoc-train")


@pytest.mark.parametrize("case", MISTAKES)
def test_spoc_pretrain_gives_one_line_and_status_2_for_each_mistake(case, dataset, tmp_path,
                                                                   capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-pretrain"])
    extra, says = mistakes(tmp_path)[case]
    args = pretrain_args(dataset, "--trainer.default_root_dir", str(tmp_path / "run"), *extra)
    assert pretrain_main(args) == EXIT_BAD_INPUT
    assert says in one_line(capsys, "spoc-pretrain")


def test_validate_refuses_a_garbage_checkpoint_and_debug_shows_the_traceback(
        dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    ckpt = garbage(tmp_path / "g.ckpt")
    args = ["validate", "--config", TRAIN_CONFIG, "--data.root", str(dataset),
            "--ckpt_path", str(ckpt)]
    assert train_main(args) == EXIT_BAD_INPUT
    assert f"--ckpt_path {ckpt}: unreadable" in one_line(capsys, "spoc-train")
    assert train_main([*args, "--debug"]) == EXIT_BAD_INPUT
    assert "Traceback" in capsys.readouterr().err


def test_option_errors_still_print_the_usage(dataset, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    with pytest.raises(SystemExit) as exit_:
        train_main(["fit", "--config", TRAIN_CONFIG])  # no --data.root
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "data.root" in err and "Traceback" not in err


def test_build_cli_raises_the_input_error_for_its_callers(tmp_path, monkeypatch):
    """spoc-dagger builds the training CLI as a library and handles the error itself."""
    monkeypatch.setattr("sys.argv", ["spoc-dagger"])
    with pytest.raises(DatasetMismatchError, match="not a directory"):
        build_cli(["--config", TRAIN_CONFIG, "--data.root", str(tmp_path / "nope")], run=False)


def test_shards_that_give_nothing_stop_training_in_one_line_from_a_loader_worker(root):
    for shard in (root / "train").glob("*.tar"):
        shard.write_bytes(b"\xab" * 4096)
    dm = datamodule(root, max_missing_fraction=1.0, num_workers=1)
    with pytest.raises(UnreadableShardsError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(dm.train_dataloader())
    message = str(err.value)
    assert message.startswith("rank 0 worker 0: 200 bad samples or empty shards in a row")
    assert "\n" not in message and "spoc-datagen verify" in message
