"""Training: shard reader, policy, LightningModule and the spoc-train CLI (tiny and fast)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from training_helpers import HOUSE, corrupt_video, truncate_file, write_dataset

from agents.checkpoint import load_policy
from agents.frames import resize_frames
from agents.policy import PolicyConfig, make_policy
from datagen.episodes import HouseFile
from datagen.shards import iter_episodes
from datagen.video import decode_frames
from sim.camera import CameraConfig
from sim.detect import target_box, target_table
from sim.env import EmbeddedEnv
from sim.house import house_content_hash, load_houses
from sim.interface import Pose
from sim.lattice import AgentConfig
from training.cli import build_cli
from training.data.augment import shift_box, shift_replicate
from training.data.chunks import chunk_starts, episode_chunks
from training.data.datamodule import ShardDataModule
from training.data.houses import PoseRenderer
from training.data.info import DatasetMismatchError, load_info, shard_urls, split_urls
from training.data.streams import EpisodeChunkStream
from training.module import PolicyModule, class_weights, load_policy_weights, lr_factor

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny.yaml")
TINY_POLICY = PolicyConfig(image_size=(32, 48), channels=(8, 16), groups=4, pool_size=(2, 3),
                           feature_dim=16, goal_dim=4, action_dim=4, hidden_dim=16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("shards"))


def tiny_datamodule(root: Path, **kwargs) -> ShardDataModule:
    args = dict(seq_len=8, image_size=(32, 48), batch_size=4, batches_per_epoch=3,
                num_workers=0, augment=False)
    return ShardDataModule(str(root), **{**args, **kwargs})


def read_metrics(run: Path) -> list[dict]:
    rows = []
    for path in sorted((run / "logs").glob("version_*/metrics.csv")):
        with open(path) as f:
            rows += list(csv.DictReader(f))
    return rows


def train_losses(run: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in read_metrics(run) if r["train/loss"]}


def cli_fit(dataset: Path, run: Path, epochs: int, *extra: str) -> None:
    """``spoc-train fit`` on the tiny config into ``run`` for ``epochs`` epochs."""
    build_cli(["fit", "--config", CONFIG, "--data.root", str(dataset),
               "--trainer.default_root_dir", str(run), "--trainer.max_epochs", str(epochs),
               "--trainer.enable_progress_bar", "false", *extra])


# ---------------------------------------------------------------------------------- policy


def test_resize_keeps_aspect_ratio():
    frames = torch.randint(0, 256, (2, 3, 224, 384), dtype=torch.uint8)
    assert resize_frames(frames, (112, 192)).shape == (2, 3, 112, 192)
    assert resize_frames(frames, (64, 64)).shape == (2, 3, 64, 64)  # cover, then centre-crop
    assert resize_frames(frames, (224, 384)) is frames


def film_policy(seed: int = 0):
    """A tiny goal-FiLM policy with its (zero-initialised) FiLM layers randomised."""
    torch.manual_seed(seed)
    policy = make_policy(replace(TINY_POLICY, goal_film=True)).eval()
    for layer in policy.encoder.film:
        torch.nn.init.normal_(layer.weight, std=0.5)
    return policy


@pytest.mark.parametrize("goal_film,target_box", [(False, False), (True, False), (True, True)],
                         ids=["plain", "goal-film", "goal-film+box"])
def test_forward_equals_step_by_step_act(goal_film, target_box):
    torch.manual_seed(0)
    policy = film_policy() if goal_film else make_policy(TINY_POLICY).eval()
    if target_box:
        policy = make_policy(replace(policy.cfg, target_box=True)).eval()
    b, t = 3, 7
    rgb = torch.randint(0, 256, (b, t, 64, 96, 3), dtype=torch.uint8)  # sim resolution
    boxes = torch.rand(b, t, 6) if target_box else None
    goals = torch.tensor([0, 5, 19])
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    first[1, 4] = True  # row 1 starts a new episode at step 4
    collided = torch.zeros(b, t, dtype=torch.bool)  # the previous move was blocked
    collided[0, 2] = collided[2, 5] = collided[1, 4] = True  # (ignored where an episode starts)
    policy.reset(b)
    step_logits, taken = [], []
    for i in range(t):
        obs = {"rgb": rgb[:, i], "goal": goals, "first": first[:, i],
               "collided": collided[:, i]}
        if target_box:
            obs["target_box"] = boxes[:, i]
        action, logits = policy.act(obs, return_logits=True)
        step_logits.append(logits)
        taken.append(action)
    step_logits = torch.stack(step_logits, 1)  # (B, T, A)
    taken = torch.stack(taken, 1)  # (B, T)

    def teacher_forced(rows, start, stop):
        prev = torch.cat([torch.full((len(rows), 1), 4), taken[rows, start:stop - 1]], 1)
        prev[:, 1:][collided[rows, start + 1:stop]] = 5  # the blocked token
        batch = {"frames": rgb[rows, start:stop].permute(0, 1, 4, 2, 3), "goals": goals[rows],
                 "prev_actions": prev}
        if target_box:
            batch["target_box"] = boxes[rows, start:stop]
        with torch.no_grad():
            return policy(batch)

    torch.testing.assert_close(teacher_forced([0, 2], 0, t), step_logits[[0, 2]], atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(teacher_forced([1], 0, 4), step_logits[[1], :4], atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(teacher_forced([1], 4, t), step_logits[[1], 4:], atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize("goal_film,target_box", [(False, False), (True, True)],
                         ids=["plain", "goal-film+box"])
def test_encoding_only_the_unpadded_steps_changes_no_unpadded_output(goal_film, target_box):
    torch.manual_seed(0)
    policy = film_policy() if goal_film else make_policy(TINY_POLICY).eval()
    if target_box:
        policy = make_policy(replace(policy.cfg, target_box=True)).eval()
    lengths = [5, 2, 7]  # chunks of 5, 2 and 7 steps padded to 7
    b, l = len(lengths), max(lengths)
    mask = torch.arange(l)[None] < torch.tensor(lengths)[:, None]  # (B, L)
    frames = torch.randint(0, 256, (b, l, 3, 32, 48), dtype=torch.uint8)
    frames[~mask] = 0
    batch = {"frames": frames, "goals": torch.tensor([0, 5, 19]),
             "prev_actions": torch.randint(0, 4, (b, l)), "target_box": torch.rand(b, l, 6)}
    seen = []
    policy.encoder.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    with torch.no_grad():
        padded = policy(batch)
        packed = policy({**batch, "steps": mask.flatten().nonzero()[:, 0]})
    assert seen == [b * l, sum(lengths)]  # the padding's frames are never encoded
    torch.testing.assert_close(packed[mask], padded[mask], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("goal_film", [False, True])
def test_encoder_batch_splits_the_frames_and_changes_no_output_or_gradient(goal_film):
    torch.manual_seed(0)
    whole = film_policy() if goal_film else make_policy(TINY_POLICY)
    split = make_policy(replace(whole.cfg, encoder_batch=4))
    split.load_state_dict(whole.state_dict())
    b, l = 3, 5  # 15 frames: calls of 4, 4, 4 and 3
    batch = {"frames": torch.randint(0, 256, (b, l, 3, 32, 48), dtype=torch.uint8),
             "goals": torch.tensor([0, 5, 19]), "prev_actions": torch.randint(0, 4, (b, l))}
    seen = []
    split.encoder.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    outs = []
    for policy in (whole, split):
        out = policy(batch)
        out.square().mean().backward()
        outs.append(out.detach())
    assert seen == [15]  # one call to the module, ...
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-4)
    for (name, p_whole), p_split in zip(whole.named_parameters(), split.parameters()):
        torch.testing.assert_close(p_split.grad, p_whole.grad, atol=1e-5, rtol=1e-4, msg=name)
    calls = []
    split.encoder.convs[0].register_forward_hook(lambda m, args, out: calls.append(len(out)))
    with torch.no_grad():
        split(batch)
    assert calls == [4, 4, 4, 3]  # ... and at most encoder_batch frames through the convs
    with pytest.raises(ValueError, match="encoder_batch"):
        replace(TINY_POLICY, encoder_batch=-1)


def test_goal_film_conditions_the_frame_features_on_the_goal():
    frames = torch.randint(0, 256, (2, 1, 3, 32, 48), dtype=torch.uint8).expand(2, 3, -1, -1, -1)
    policy = film_policy()
    goals = torch.tensor([0, 7])
    emb = policy.goal_embed(goals)[:, None].expand(2, 3, -1).flatten(0, 1)
    with torch.no_grad():
        feats = policy.encoder(frames.flatten(0, 1), emb).view(2, 3, -1)
        assert not torch.allclose(feats[0], feats[1])  # same frames, other goal
        torch.testing.assert_close(feats[0, 0], feats[0, 2])  # same frame, same goal
    plain = make_policy(TINY_POLICY)  # without FiLM the encoder never sees the goal
    assert plain.encoder.film is None
    fresh = make_policy(replace(TINY_POLICY, goal_film=True))  # identity at initialisation
    with torch.no_grad():
        conditioned = fresh.encoder(frames[1], fresh.goal_embed(goals[1:]).expand(3, -1))
        fresh.encoder.film = None
        torch.testing.assert_close(conditioned, fresh.encoder(frames[1]))


def test_cli_trains_a_target_box_policy_from_the_data_flag(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli_fit(dataset, tmp_path, 1, "--data.target_box", "true")
    policy, info = load_policy(tmp_path / "checkpoints" / "last.ckpt")
    assert info.config["target_box"] and policy.box_embed is not None
    spec = tiny_datamodule(dataset).spec  # no boxes in the data
    with pytest.raises(ValueError, match="add --data.target_box true"):
        PolicyModule(policy=replace(TINY_POLICY, target_box=True), dataset_spec=spec)
    assert not PolicyModule(policy=TINY_POLICY, dataset_spec=spec).policy.cfg.target_box
    with pytest.raises(ValueError, match="takes the target's box and this run's does not"):
        cli_fit(dataset, tmp_path, 2, "--ckpt_path", "last")  # a resume without the data flag
    plain = tmp_path / "plain"
    cli_fit(dataset, plain, 1)
    with pytest.raises(ValueError, match="takes no target box and this run's does; set --data"):
        cli_fit(dataset, plain, 2, "--ckpt_path", "last", "--data.target_box", "true")


def test_cli_trains_and_reloads_a_goal_film_policy(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli_fit(dataset, tmp_path, 1, "--model.policy.goal_film", "true")
    policy, info = load_policy(tmp_path / "checkpoints" / "last.ckpt")
    assert info.config["goal_film"] and policy.encoder.film is not None
    assert any(layer.weight.abs().sum() > 0 for layer in policy.encoder.film)  # it was trained


def test_a_target_box_policy_reads_the_box_and_needs_it():
    torch.manual_seed(0)
    policy = make_policy(replace(TINY_POLICY, target_box=True)).eval()
    frames = torch.randint(0, 256, (2, 3, 3, 32, 48), dtype=torch.uint8)
    batch = {"frames": frames, "goals": torch.tensor([1, 1]),
             "prev_actions": torch.full((2, 3), 4), "target_box": torch.zeros(2, 3, 6)}
    with torch.no_grad():
        unseen = policy(batch)
        batch["target_box"][:, :, :] = torch.tensor([1, 0.4, 0.5, 0.6, 0.7, 0.1])
        assert not torch.allclose(unseen, policy(batch))
        with pytest.raises(ValueError, match="data.target_box true"):
            policy({k: v for k, v in batch.items() if k != "target_box"})


def test_act_is_the_argmax_and_feeds_it_back():
    policy = make_policy(TINY_POLICY)
    policy.reset(2)
    obs = {"rgb": np.zeros((2, 32, 48, 3), np.uint8), "goal": torch.tensor([1, 2]),
           "first": torch.tensor([True, True])}
    greedy, logits = policy.act(obs, return_logits=True)
    assert greedy.dtype == torch.long and greedy.tolist() == logits.argmax(-1).tolist()
    assert policy._prev_action.tolist() == greedy.tolist()
    policy.executed([3, 0])  # overruled: the next step sees what was executed
    assert policy._prev_action.tolist() == [3, 0]


def test_class_weights():
    assert class_weights([1, 1], "none") is None
    w = class_weights([10, 30, 0], "inverse_freq")
    assert w[2] == 0 and float(w[0]) == pytest.approx(3 * float(w[1]))


SPEC = {"actions": ["move_ahead", "rotate_left", "rotate_right", "end"], "goals": ["a", "b"],
        "image_size": [32, 48], "train_action_counts": [50, 10, 5, 2]}


def random_batch(mask: list[list[int]], **labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """A seeded batch of TINY_POLICY's shape (B, L) = the mask's, goals [0, 1, 0], plus
    ``labels``."""
    gen = torch.Generator().manual_seed(0)
    b, l = len(mask), len(mask[0])
    return {"frames": torch.randint(0, 256, (b, l, 3, 32, 48), dtype=torch.uint8, generator=gen),
            "actions": torch.randint(0, 4, (b, l), generator=gen),
            "prev_actions": torch.randint(0, 5, (b, l), generator=gen),
            "goals": torch.tensor([0, 1, 0]), "mask": torch.tensor(mask).bool(), **labels}


@pytest.mark.parametrize("weighting", ["none", "inverse_freq"])
def test_masked_loss_and_counts_are_those_of_the_unpadded_steps(weighting):
    module = PolicyModule(policy=TINY_POLICY, class_weighting=weighting, dataset_spec=SPEC)
    batch = random_batch([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    loss, pred, target, mask, aux = module._predict(batch)
    assert aux == {}
    logits = module.policy(batch).float()
    m = batch["mask"]
    ref = torch.nn.functional.cross_entropy(logits[m], batch["actions"][m],
                                            weight=module.loss_weights)
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)
    counts = module._action_counts(pred, target, mask)
    t, p = batch["actions"][m], logits[m].argmax(-1)
    assert counts[1].tolist() == torch.bincount(t, minlength=4).tolist()
    assert counts[0].tolist() == torch.bincount(t[p == t], minlength=4).tolist()


# ---------------------------------------------------------------------------------- data


@pytest.mark.parametrize("offset", [-3, 0, 2, 20])
def test_shift_replicates_edges(offset):
    x = torch.randint(0, 256, (2, 3, 7, 9), dtype=torch.uint8)
    for dim in (-2, -1):
        index = (torch.arange(x.shape[dim]) + offset).clamp(0, x.shape[dim] - 1)
        assert torch.equal(shift_replicate(x, offset, dim), x.index_select(dim, index))


@pytest.mark.parametrize("rows,cols", [((2, 4), (3, 6)), ((0, 3), (0, 2)), ((5, 7), (7, 9)),
                                       ((0, 7), (8, 9)), ((6, 7), (4, 5)), ((3, 4), (1, 2))])
def test_a_shifted_box_is_the_box_of_the_shifted_ids(rows, cols):
    """shift_box moves a box as shift_replicate moves the frame: the box of the shifted
    instance ids, edges on the border kept there, a box shifted out of the frame gone."""
    ids = torch.zeros(7, 9, dtype=torch.int64)
    ids[rows[0]:rows[1], cols[0]:cols[1]] = 1
    table = np.array([False, True])
    box = torch.from_numpy(target_box(ids.numpy(), table))[None]  # (1, 6)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            moved = shift_replicate(shift_replicate(ids, dy, -2), dx, -1)
            want = torch.from_numpy(target_box(moved.numpy(), table))
            got = shift_box(box, dy, dx, 7, 9)[0]
            assert torch.allclose(got[:5], want[:5]), (dy, dx, got, want)
            assert got[5] == (box[0, 5] if want[0] else 0)


def first_sample(root: Path) -> dict[str, bytes]:
    """The members of the first episode of the first train shard, by key."""
    with tarfile.open(shard_urls(root, "train")[0]) as tar:
        members = [m for m in tar if m.isfile()]
        key = members[0].name.split(".")[0]
        return {m.name[len(key) + 1:]: tar.extractfile(m).read() for m in members
                if m.name.split(".")[0] == key}


def test_decode_frames_gives_pyav_rgb_frames(dataset):
    mp4 = first_sample(dataset)["rgb.mp4"]
    with av.open(io.BytesIO(mp4)) as container:
        ref = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert np.array_equal(decode_frames(mp4), ref)
    assert np.array_equal(decode_frames(mp4, 2, 5), ref[2:5])
    assert np.array_equal(decode_frames(mp4, 3), ref[3:])
    with pytest.raises(ValueError, match="video has"):
        decode_frames(mp4, 0, len(ref) + 1)


def test_training_chunk_is_its_window_of_the_video(dataset):
    sample, goals = first_sample(dataset), {}
    goals[json.loads(sample["meta.json"])["goal"]] = 0
    num_steps = len(np.load(io.BytesIO(sample["actions.npy"])))
    for seed in range(4):
        start = chunk_starts(num_steps, 4, np.random.default_rng(seed))[0]
        chunk = episode_chunks(sample, goals, 4, (32, 48), np.random.default_rng(seed))[0]
        video = torch.from_numpy(decode_frames(sample["rgb.mp4"])).permute(0, 3, 1, 2)
        assert torch.equal(chunk["frames"], resize_frames(video[start:start + 4], (32, 48)))


AUX_SPEC = {**SPEC, "dataset": {"info": {"tasks": {"objectnav": {"min_pixels": 5}}}}}


def test_auxiliary_losses_are_those_of_the_labelled_steps():
    module = PolicyModule(policy=TINY_POLICY, aux_visible_weight=0.5, aux_distance_weight=2.0,
                          dataset_spec=AUX_SPEC)
    batch = random_batch(
        [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]],
        # -1: no label (RoomNav pixels, padding, episodes written without labels)
        target_pixels=torch.tensor([[0, 4, 5, 90], [-1, -1, -1, -1], [7, 0, 3, -1]]),
        goal_dist=torch.tensor([[3.0, 2.5, 2.0, 0.0], [1.0, 0.0, -1, -1], [-1, -1, -1, -1.0]]))
    loss, _, _, _, aux = module._predict(batch)
    heads = module.policy.forward_aux(batch)
    logits, visible, dist = heads["logits"], heads["visible"], heads["distance"]
    assert "room" not in heads
    torch.testing.assert_close(logits, module.policy(batch))  # the heads change no logits
    seen = batch["mask"] & (batch["target_pixels"] >= 0)  # 7 steps
    ref_v = torch.nn.functional.binary_cross_entropy_with_logits(
        visible[seen], (batch["target_pixels"][seen] >= 5).float())
    has = batch["mask"] & (batch["goal_dist"] >= 0)  # 6 steps
    ref_d = torch.nn.functional.smooth_l1_loss(dist[has], torch.log1p(batch["goal_dist"][has]))
    assert float(aux["visible"]) == pytest.approx(float(ref_v), rel=1e-5)
    assert float(aux["distance"]) == pytest.approx(float(ref_d), rel=1e-5)
    total = module._objective(loss, aux)
    assert float(total) == pytest.approx(float(loss + 0.5 * ref_v + 2.0 * ref_d), rel=1e-5)
    only = PolicyModule(policy=TINY_POLICY, aux_distance_weight=2.0,
                        dataset_spec=SPEC)
    only.policy.load_state_dict(module.policy.state_dict())
    loss_d, _, _, _, aux_d = only._predict(batch)
    assert set(aux_d) == {"distance"}  # no in-view loss without its weight (nor min_pixels)
    assert float(only._objective(loss_d, aux_d)) == pytest.approx(float(loss + 2.0 * ref_d),
                                                                  rel=1e-5)
    with pytest.raises(ValueError, match="no auxiliary heads"):
        make_policy(TINY_POLICY).forward_aux(batch)
    with pytest.raises(ValueError, match="tasks.objectnav.min_pixels"):
        PolicyModule(policy=TINY_POLICY, aux_visible_weight=1.0,
                     dataset_spec=SPEC)


def test_batches_carry_the_auxiliary_labels_and_minus_one_without_them(dataset):
    sample = first_sample(dataset)
    meta = json.loads(sample["meta.json"])
    dist = np.load(io.BytesIO(sample["goal_dist.npy"]))
    pixels = np.load(io.BytesIO(sample["target_pixels.npy"]))
    chunk = episode_chunks(sample, {meta["goal"]: 0}, 500, (32, 48), None)[0]
    assert np.array_equal(chunk["goal_dist"].numpy(), dist)
    assert np.array_equal(chunk["target_pixels"].numpy(), pixels)
    bare = {k: v for k, v in sample.items() if k not in ("goal_dist.npy", "target_pixels.npy")}
    chunk = episode_chunks(bare, {meta["goal"]: 0}, 500, (32, 48), None)[0]
    assert (chunk["goal_dist"] == -1).all() and (chunk["target_pixels"] == -1).all()
    batch = next(iter(tiny_datamodule(dataset).train_dataloader()))
    assert batch["goal_dist"].dtype == torch.float32 and batch["target_pixels"].dtype == torch.long
    assert batch["goal_dist"].shape == batch["target_pixels"].shape == batch["mask"].shape
    assert (batch["goal_dist"][~batch["mask"]] == -1).all()
    assert (batch["goal_dist"][batch["mask"]] >= 0).all()


def test_cli_trains_the_auxiliary_heads_and_acting_ignores_them(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli_fit(dataset, tmp_path, 1, "--model.aux_visible_weight", "1.0",
            "--model.aux_distance_weight", "0.5")
    rows = read_metrics(tmp_path)
    assert any(r.get("train/aux_visible") for r in rows)
    assert any(r.get("val/aux_distance") for r in rows)
    policy, info = load_policy(tmp_path / "checkpoints" / "last.ckpt")
    assert info.config["aux_heads"] and policy.visible_head.weight.abs().sum() > 0
    with pytest.raises(ValueError, match="has auxiliary heads and this run's has none"):
        # a resume that drops the auxiliary weights
        cli_fit(dataset, tmp_path, 2, "--ckpt_path", "last")
    policy.reset(1)
    obs = {"rgb": np.zeros((1, 32, 48, 3), np.uint8), "goal": [0], "first": [True]}
    assert policy.act(obs).shape == (1,)


ROOM_SPEC = {**SPEC, "room_types": ["Bathroom", "Bedroom", "Kitchen"]}


def test_room_loss_is_the_cross_entropy_of_the_labelled_steps():
    """--model.aux_room_weight: the cross-entropy of the room-type head (from the LSTM state)
    over the unpadded steps with a room label, and its accuracy; refused without labels."""
    module = PolicyModule(policy=TINY_POLICY, aux_room_weight=0.5, dataset_spec=ROOM_SPEC)
    rooms = torch.tensor([[0, 0, 2, 1], [1, -1, 0, 0], [2, 2, 2, -1]])  # -1: outside any room
    batch = random_batch([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], room_type=rooms)
    loss, _, _, _, aux = module._predict(batch)
    heads = module.policy.forward_aux(batch)
    assert set(heads) == {"logits", "room"} and heads["room"].shape == (3, 4, 3)
    torch.testing.assert_close(heads["logits"], module.policy(batch))
    known = batch["mask"] & (rooms >= 0)  # 7 steps
    ref = torch.nn.functional.cross_entropy(heads["room"][known], rooms[known])
    acc = (heads["room"][known].argmax(-1) == rooms[known]).float().mean()
    assert float(aux["room"]) == pytest.approx(float(ref), rel=1e-5)
    assert float(aux["room_acc"]) == pytest.approx(float(acc))
    assert float(module._objective(loss, aux)) == pytest.approx(float(loss + 0.5 * ref),
                                                                rel=1e-5)
    with pytest.raises(ValueError, match="--data.room_labels true"):
        PolicyModule(policy=TINY_POLICY, aux_room_weight=1.0, dataset_spec=SPEC)


def test_room_labels_are_the_room_types_at_the_stored_poses(dataset):
    """--data.room_labels true: each step's label is the type of the room whose floor holds
    the stored pose (the embedded scene's rooms), -1 for padding; every RoomNav episode ends
    in a room of its target's type; the rest of the batch is the plain one's."""
    from sim.scene import build_scene

    dm = tiny_datamodule(dataset, room_labels=True)
    types = dm.spec["room_types"]
    assert types == [g.split("/")[1] for g in dm.goals if g.startswith("roomnav/")]
    assert tiny_datamodule(dataset).spec["room_types"] == []
    labelled, plain = list(dm.val_dataloader()), list(tiny_datamodule(dataset).val_dataloader())
    for a, b in zip(labelled, plain):
        assert set(a) - set(b) == {"room_type"} and all(torch.equal(a[k], b[k]) for k in b)
        assert (a["room_type"][~a["mask"]] == -1).all()
    info = load_info(dataset)
    house = HouseFile.scan(info["splits"]["val"]["houses"]["path"]).read([0])[0].house
    scene = build_scene(house)
    want, ends = [], 0
    for url in shard_urls(dataset, "val"):
        for sample in iter_episodes(Path(url)):
            meta = sample["meta.json"]
            want += [types.index(scene.room_at(x, z).room_type) for x, z, _ in meta["poses"]]
            if meta["task"] == "roomnav":
                assert want[-1] == types.index(meta["target"])
                ends += 1
    got = torch.cat([b["room_type"][b["mask"]] for b in labelled])
    assert got.tolist() == want and len(set(want)) > 1
    train = next(iter(tiny_datamodule(dataset, room_labels=True, augment=True).train_dataloader()))
    assert (train["room_type"][train["mask"]] >= 0).all()


def test_init_checkpoint_starts_from_a_policy_and_adds_the_room_head(dataset, tmp_path,
                                                                     monkeypatch):
    """--model.init_checkpoint: the run starts from the checkpoint's policy (the same logits),
    with a fresh room-type head; it trains, logs the room loss and accuracy, and its checkpoint
    refuses a resume without the head; another architecture or a junk file is one line."""
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli_fit(dataset, tmp_path / "base", 1)
    ckpt = tmp_path / "base" / "checkpoints" / "last.ckpt"
    base, info = load_policy(ckpt)
    dm = tiny_datamodule(dataset, room_labels=True)
    cfg = PolicyConfig(**{k: v for k, v in info.config.items() if k != "room_types"})
    module = PolicyModule(policy=cfg, aux_room_weight=1.0, init_checkpoint=str(ckpt),
                          dataset_spec=dm.spec)
    batch = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(module.policy.eval()(batch), base(batch))
    assert module.policy.room_head.weight.shape == (len(dm.spec["room_types"]), cfg.hidden_dim)
    assert load_policy_weights(module.policy, str(ckpt)) == ["room_head.weight", "room_head.bias"]
    other = replace(cfg, hidden_dim=cfg.hidden_dim + 8)
    with pytest.raises(ValueError, match=r"model.init_checkpoint .*lstm\.weight_ih_l0 is"):
        PolicyModule(policy=other, init_checkpoint=str(ckpt), dataset_spec=dm.spec)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="model.init_checkpoint .*unreadable"):
        PolicyModule(policy=cfg, init_checkpoint=str(junk), dataset_spec=dm.spec)
    run = tmp_path / "room"
    cli_fit(dataset, run, 1, "--model.init_checkpoint", str(ckpt), "--model.aux_room_weight",
            "1.0", "--data.room_labels", "true")
    rows = read_metrics(run)
    assert any(r.get("train/aux_room") for r in rows)
    assert any(r.get("val/aux_room_acc") for r in rows)
    policy, info = load_policy(run / "checkpoints" / "last.ckpt")
    assert info.config["room_types"] == len(dm.spec["room_types"]) and info.trained_steps == 5
    with pytest.raises(ValueError, match="has a room-type head and this run's has none"):
        cli_fit(dataset, run, 2, "--ckpt_path", "last")


def test_batches_have_contract_shapes(dataset):
    dm = tiny_datamodule(dataset)
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    batch = batches[0]
    assert batch["frames"].shape == (4, 8, 3, 32, 48) and batch["frames"].dtype == torch.uint8
    assert batch["actions"].shape == batch["prev_actions"].shape == batch["mask"].shape == (4, 8)
    assert batch["goals"].shape == (4,)
    steps = batch["steps"]  # the unpadded steps, flat
    assert len(steps) == batch["mask"].sum() and batch["mask"].flatten()[steps].all()
    # teacher forcing: prev_actions[t] is actions[t-1] inside a chunk
    mask = batch["mask"][:, 1:]
    assert torch.equal(batch["prev_actions"][:, 1:][mask], batch["actions"][:, :-1][mask])
    assert dm.spec["train_house_ids"] == ["house_3703.json:0"]
    assert sum(dm.spec["train_action_counts"]) == sum(
        s["steps"] for s in dm.info["splits"]["train"]["shards"].values())


def test_validation_reads_every_step_once(dataset):
    dm = tiny_datamodule(dataset)
    steps = sum(s["steps"] for s in dm.info["splits"]["val"]["shards"].values())
    batches = list(dm.val_dataloader())
    assert sum(int(b["mask"].sum()) for b in batches) == steps
    starts = sum(int((b["prev_actions"] == 4).sum()) for b in batches)
    assert starts == dm.info["splits"]["val"]["shards"]["shard-000000.tar"]["episodes"]


def test_rendered_frames_are_the_simulators_at_the_stored_poses(dataset):
    """--data.frames rendered: every step's frame is the embedded env's at the stored pose
    (what evaluation sees), the rest of the batch is the decoded one's, and the H.264 frames
    differ from it by compression only."""
    dm = tiny_datamodule(dataset, frames="rendered", image_size=(24, 36))
    rendered = list(dm.val_dataloader())
    decoded = list(tiny_datamodule(dataset, image_size=(24, 36)).val_dataloader())
    for a, b in zip(rendered, decoded):
        assert all(torch.equal(a[k], b[k]) for k in a if k != "frames")
    env = EmbeddedEnv(CameraConfig(**dm.info["camera"]), AgentConfig(**dm.info["agent"]))
    house = HouseFile.scan(dm.info["splits"]["val"]["houses"]["path"]).read([0])[0].house
    frames = torch.cat([b["frames"][b["mask"]] for b in rendered])  # (steps, 3, H, W)
    want = []
    for url in shard_urls(dataset, "val"):
        for sample in iter_episodes(Path(url)):
            for x, z, yaw in sample["meta.json"]["poses"]:
                want.append(torch.from_numpy(env.reset(house, Pose(x, z, yaw)).rgb))
    assert torch.equal(frames, resize_frames(torch.stack(want).permute(0, 3, 1, 2), (24, 36)))
    compressed = torch.cat([b["frames"][b["mask"]] for b in decoded]).float()
    assert 0 < (compressed - frames.float()).abs().mean() < 8
    with pytest.raises(ValueError, match="data.frames: 'png' is not one of decoded, rendered"):
        tiny_datamodule(dataset, frames="png")


def test_target_boxes_are_the_targets_in_the_frames_at_the_stored_poses(dataset):
    """--data.target_box true: every step's box is the one the embedded env's instance ids give
    at the stored pose (what a rollout passes), zeros for RoomNav; the rest of the batch is the
    plain one's; every ObjectNav episode ends with its target in view."""
    boxed = list(tiny_datamodule(dataset, target_box=True).val_dataloader())
    plain = list(tiny_datamodule(dataset).val_dataloader())
    for a, b in zip(boxed, plain):
        assert set(a) - set(b) == {"target_box"} and all(torch.equal(a[k], b[k]) for k in b)
        assert not a["target_box"][~a["mask"]].any()  # padding
    info = load_info(dataset)
    env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
    house = HouseFile.scan(info["splits"]["val"]["houses"]["path"]).read([0])[0].house
    scene, _ = env.load(house)
    want, last_seen = [], []
    for url in shard_urls(dataset, "val"):
        for sample in iter_episodes(Path(url)):
            meta = sample["meta.json"]
            objectnav = meta["task"] == "objectnav"
            table = target_table(scene.boxes.object_type, meta["target"] if objectnav else None)
            for x, z, yaw in meta["poses"]:
                want.append(target_box(env.reset(house, Pose(x, z, yaw)).ids, table))
            if objectnav:
                last_seen.append(want[-1][0])
            else:
                assert not np.any(want[-len(meta["poses"]):])
    boxes = torch.cat([b["target_box"][b["mask"]] for b in boxed])  # (steps, 6)
    assert torch.equal(boxes, torch.from_numpy(np.stack(want)))
    assert last_seen and all(seen == 1 for seen in last_seen)


def test_stored_target_boxes_are_the_rendered_ones_and_a_sample_without_them_is_rendered(
        dataset):
    """Datagen stores each step's target box (target_box.npy): exactly the box the loader
    renders at the stored pose, present where the target has pixels; a sample without it (a
    DAgger round's, or one from before it) has its boxes rendered, and the chunks are equal."""
    info = load_info(dataset)
    poses = PoseRenderer(info, PoseRenderer.house_files(info, ["train"]))
    raw: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shard_urls(dataset, "train")[0]) as tar:
        for member in (m for m in tar if m.isfile()):
            key, _, ext = member.name.partition(".")
            raw.setdefault(key, {})[ext] = tar.extractfile(member).read()
    rendered = []

    def boxes(meta, start, stop):
        rendered.append(meta["episode_id"])
        return poses.boxes(meta, "train", start, stop)

    seen = 0
    for sample in raw.values():
        meta = json.loads(sample["meta.json"])
        stored = np.load(io.BytesIO(sample["target_box.npy"]))
        pixels = np.load(io.BytesIO(sample["target_pixels.npy"]))
        assert stored.dtype == np.float32 and stored.shape == (meta["num_steps"], 6)
        assert np.array_equal(stored, poses.boxes(meta, "train"))
        assert np.array_equal(stored[:, 0] == 1, pixels > 0)
        seen += int((pixels > 0).sum())
        goal = {meta["goal"]: 0}
        own = episode_chunks(sample, goal, 500, (32, 48), None, boxes=boxes)[0]
        assert not rendered  # the stored boxes are read, nothing rendered
        bare = {k: v for k, v in sample.items() if k != "target_box.npy"}
        again = episode_chunks(bare, goal, 500, (32, 48), None, boxes=boxes)[0]
        assert rendered == [meta["episode_id"]] and torch.equal(own["target_box"],
                                                                again["target_box"])
        rendered.clear()
    assert seen > 0


ANCHORS = {"LivingRoom": "Television", "Kitchen": "Fridge"}
"""RoomNav anchors the fixture's two-room houses hold (--data.room_anchors)."""


def test_room_anchors_give_roomnav_goals_the_box_of_their_rooms_anchor(dataset):
    """--data.room_anchors: a RoomNav step's box is the one the embedded env's ids give for its
    room type's anchor at the stored pose (the shard's stored zeros are not read); ObjectNav
    steps keep the target's box; a raw sample's chunks are the same rendered boxes."""
    from datagen.tasks import box_target

    anchored = list(tiny_datamodule(dataset, target_box=True, room_anchors=ANCHORS)
                    .val_dataloader())
    boxed = list(tiny_datamodule(dataset, target_box=True).val_dataloader())
    goals = load_info(dataset)["goals"]
    for a, b in zip(anchored, boxed):
        assert all(torch.equal(a[k], b[k]) for k in b if k != "target_box")
        objectnav = torch.tensor([goals[g].startswith("objectnav/") for g in a["goals"]])
        assert torch.equal(a["target_box"][objectnav], b["target_box"][objectnav])
    info = load_info(dataset)
    env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
    house = HouseFile.scan(info["splits"]["val"]["houses"]["path"]).read([0])[0].house
    scene, _ = env.load(house)
    poses = PoseRenderer(info, PoseRenderer.house_files(info, ["val"]))
    want, roomnav_seen = [], 0
    for url in shard_urls(dataset, "val"):
        for sample in iter_episodes(Path(url)):
            meta = sample["meta.json"]
            table = target_table(scene.boxes.object_type,
                                 box_target(meta["task"], meta["target"], ANCHORS))
            own = [target_box(env.reset(house, Pose(x, z, yaw)).ids, table)
                   for x, z, yaw in meta["poses"]]
            want += own
            if meta["task"] == "roomnav":
                roomnav_seen += sum(box[0] for box in own)
    boxes = torch.cat([b["target_box"][b["mask"]] for b in anchored])  # (steps, 6)
    assert torch.equal(boxes, torch.from_numpy(np.stack(want))) and roomnav_seen > 0
    with tarfile.open(shard_urls(dataset, "val")[0]) as tar:
        raw: dict[str, dict[str, bytes]] = {}
        for member in (m for m in tar if m.isfile()):
            key, _, ext = member.name.partition(".")
            raw.setdefault(key, {})[ext] = tar.extractfile(member).read()
    for sample in raw.values():
        meta = json.loads(sample["meta.json"])
        chunk = episode_chunks(sample, {meta["goal"]: 0}, 500, (32, 48), None, boxes=lambda m, a, b:
                               poses.boxes(m, "val", a, b, ANCHORS), anchored=True)[0]
        rendered = poses.boxes(meta, "val", room_anchors=ANCHORS)
        assert np.array_equal(chunk["target_box"].numpy(), rendered)
        if meta["task"] == "roomnav":
            assert not np.load(io.BytesIO(sample["target_box.npy"])).any() and rendered.any()


def test_room_anchors_are_checked_and_travel_with_the_checkpoint(dataset, tmp_path,
                                                                 monkeypatch):
    """The anchors need the box input, room types of the dataset and known object types (one
    line naming the field); the policy's config and checkpoint carry them."""
    for kwargs, match in (({}, "add --data.target_box true"),
                          ({"target_box": True, "room_anchors": {"Garage": "Car"}},
                           r"data.room_anchors.Garage: not a RoomNav target"),
                          ({"target_box": True, "room_anchors": {"Kitchen": "Fridgee"}},
                           r"data.room_anchors.Kitchen: 'Fridgee' is not an object type")):
        kwargs = {"room_anchors": ANCHORS, **kwargs}
        with pytest.raises(ValueError, match=match):
            tiny_datamodule(dataset, **kwargs)
    assert tiny_datamodule(dataset, target_box=True).spec["room_anchors"] == {}
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli_fit(dataset, tmp_path, 1, "--data.target_box", "true", "--data.room_anchors",
            json.dumps(ANCHORS))
    _, info = load_policy(tmp_path / "checkpoints" / "last.ckpt")
    assert info.config["room_anchors"] == ANCHORS and info.config["target_box"]
    with pytest.raises(ValueError, match="boxes RoomNav anchors .* and this run's none"):
        cli_fit(dataset, tmp_path, 2, "--ckpt_path", "last", "--data.target_box", "true")
    cli_fit(dataset, tmp_path, 2, "--ckpt_path", "last", "--data.target_box", "true",
            "--data.room_anchors", json.dumps(ANCHORS))  # the same anchors resume


def test_fit_timer_times_the_batches_after_its_start(dataset, tmp_path, monkeypatch, capsys):
    """scripts/bench/fit_timer.py, given to spoc-train as a callback, times the batches after its
    start and writes one JSON row."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts" / "bench"))
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    out = tmp_path / "timing.json"
    cli_fit(dataset, tmp_path, 2, "--trainer.callbacks+=fit_timer.FitTimer",
            "--trainer.callbacks.init_args.start", "1",
            "--trainer.callbacks.init_args.out", str(out))
    row = json.loads(out.read_text())
    assert row["from_step"] == 1 and row["timed_batches"] == 9  # to step 10: 2 epochs of 5
    assert row["seconds"] > 0 and row["batches_per_s"] > 0
    assert json.dumps(row) in capsys.readouterr().out


def test_an_augmented_chunks_box_moves_with_its_frames(dataset):
    """The training shift moves the target's box with the frames (shift_box at the offset the
    frames were shifted by), for every seed; the box is otherwise the unshifted chunk's."""
    sample = first_sample(dataset)
    meta = json.loads(sample["meta.json"])
    goal = {meta["goal"]: 0}
    shifted = 0
    for seed in range(12):
        plain, moved = (episode_chunks(sample, goal, 8, (32, 48), np.random.default_rng(seed),
                                       shift=shift, boxes=lambda *a: None)[0]
                        for shift in (0, 2))
        offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(
            shift_replicate(shift_replicate(plain["frames"], dy, -2), dx, -1), moved["frames"])]
        assert offsets
        want = [shift_box(plain["target_box"], dy, dx, 32, 48) for dy, dx in offsets]
        assert any(torch.equal(moved["target_box"], w) for w in want)
        shifted += offsets != [(0, 0)] and plain["target_box"][:, 0].any()
    assert shifted  # some seeds moved a seen box


def test_training_stream_is_a_function_of_seed_and_epoch(dataset):
    def first_batch(epoch, seed=0):
        stream = EpisodeChunkStream(split_urls(dataset, ["train"]), dm.info, train=True,
                                    seq_len=8, image_size=(32, 48), batch_size=4,
                                    batches_per_epoch=1, seed=seed, jitter=0.2, shift=2)
        stream.epoch = epoch
        return next(iter(stream))

    dm = tiny_datamodule(dataset)
    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["frames"], c["frames"])


@pytest.mark.parametrize("seq_len", [8, 64])  # 64: every chunk padded
def test_colour_jitter_deferred_to_the_device_gives_the_same_batches(dataset, seq_len):
    def batches(defer_colour):
        return list(EpisodeChunkStream(split_urls(dataset, ["train"]), dm.info, train=True,
                                       seq_len=seq_len, image_size=(32, 48), batch_size=4,
                                       batches_per_epoch=3, jitter=0.2, shift=2,
                                       defer_colour=defer_colour))

    dm = tiny_datamodule(dataset)
    module = PolicyModule(policy=TINY_POLICY, dataset_spec=dm.spec)
    for here, deferred in zip(batches(False), batches(True), strict=True):
        assert "colour" not in here and deferred["colour"].shape == (4, 2, 3)
        assert not torch.equal(here["frames"], deferred["frames"])  # not jittered yet
        if seq_len == 64:
            assert not here["mask"].all()
        on_device = module.on_after_batch_transfer(deferred, 0)
        assert on_device.keys() == here.keys()
        assert all(torch.equal(here[k], on_device[k]) for k in here)


def test_the_loader_defers_the_colour_jitter_and_pins_only_for_an_accelerator(dataset):
    dm = tiny_datamodule(dataset, augment=True)
    for device, deferred in [("cpu", False), ("cuda", True)]:
        dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)),
                                     global_rank=0, world_size=1)
        assert dm._stream(train=True).defer_colour is deferred
        assert dm._stream(train=False).defer_colour is False  # validation is never jittered
        assert dm.train_dataloader().pin_memory is deferred  # pinned for the copy to a GPU


@pytest.mark.parametrize("field,value", [("version", "spoc-nav/0"),
                                         ("actions", ["move_ahead", "end"])])
def test_mismatched_info_is_refused(dataset, tmp_path, field, value):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    info = json.loads((root / "info.json").read_text())
    info[field] = value
    (root / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetMismatchError) as err:
        tiny_datamodule(root)
    message = str(err.value)
    assert "info.json" in message and f"'{field}'" in message and "\n" not in message


def test_a_split_without_shards_is_one_line_naming_the_command(dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    assert split_urls(root, ["train", "val"]) == (
        [(u, "train") for u in shard_urls(root, "train")]
        + [(u, "val") for u in shard_urls(root, "val")])
    with pytest.raises(DatasetMismatchError) as err:  # when the data module is made
        tiny_datamodule(root, train_splits=["train", "train-noise"])
    message = str(err.value)
    assert "train-noise" in message and "`spoc-datagen episodes`" in message
    assert "\n" not in message


def test_a_split_without_its_house_file_record_is_one_line_when_frames_are_rendered(
        dataset, tmp_path):
    """Rendered frames, boxes and room labels need the split's house file: a dataset whose
    info.json does not record it is refused when the data module is made, naming the file,
    the field and the options that do without it; decoded frames alone do not need it."""
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    info = json.loads((root / "info.json").read_text())
    del info["splits"]["val"]["houses"]
    (root / "info.json").write_text(json.dumps(info))
    tiny_datamodule(root)
    for options, fix in (({"frames": "rendered"}, "--data.frames decoded"),
                         ({"target_box": True}, "--data.target_box false")):
        with pytest.raises(DatasetMismatchError) as err:
            tiny_datamodule(root, **options)
        message = str(err.value)
        assert message.startswith(f"{root / 'info.json'}: splits.val.houses is missing")
        assert fix in message and "`spoc-datagen episodes`" in message and "\n" not in message


def test_corrupt_shard_and_sample_are_skipped_and_counted(tmp_path):
    """Allowed to lose any fraction, the loaders skip and count the bad samples, and count the
    episodes the truncated shards do not yield (tests/test_data_accounting.py: the limit)."""
    root = write_dataset(tmp_path / "ds", shards={"train": (2, 3), "val": (2, 2)})
    for split in ("train", "val"):
        truncate_file(root / split / "shard-000001.tar")
    corrupt_video(root / "train" / "shard-000000.tar")
    dm = tiny_datamodule(root, batches_per_epoch=6, max_missing_fraction=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = list(dm.train_dataloader())
        val = list(dm.val_dataloader())
    assert len(train) == 6
    skipped = sum(int(b["num_skipped"]) for b in train + val)
    assert skipped > 0
    assert any("skipped" in str(w.message) for w in caught)
    # the truncated train shard ends an episode short (the half-written one is skipped)
    assert sum(int(b["num_lost"]) for b in train) > 0
    assert dm.ledger.lost == {str(root / "train" / "shard-000001.tar"): 1}
    assert any("yielded 2 of the 3 episodes" in str(w.message) for w in caught)
    assert sum(int(b["mask"].sum()) for b in val) > 0


# ---------------------------------------------------------------------------------- training


def test_overfits_a_handful_of_episodes(dataset):
    import lightning.pytorch as pl

    dm = tiny_datamodule(dataset, seq_len=16, batch_size=6, batches_per_epoch=15,
                         val_split="train")  # whole episodes, all six in each batch
    torch.manual_seed(0)
    policy = replace(TINY_POLICY, feature_dim=32, hidden_dim=64)
    model = PolicyModule(policy=policy, lr=1e-2, warmup_steps=1, dataset_spec=dm.spec)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=5, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, check_val_every_n_epoch=5)
    trainer.fit(model, datamodule=dm)
    assert float(trainer.callback_metrics["val/acc"]) >= 0.98
    assert float(trainer.callback_metrics["val/acc_end"]) == 1.0
    # per-action training accuracy is counted over the epoch (the last one: nearly all right)
    assert float(trainer.callback_metrics["train/acc_move_ahead"]) >= 0.8
    assert float(trainer.callback_metrics["data/skipped_total"]) == 0


def test_cli_fit_resume_and_load_policy(dataset, tmp_path, monkeypatch):
    """spoc-train fit via the CLI; resuming from last.ckpt continues the uninterrupted curve.

    The resume does not repeat the policy's architecture: ``last`` takes it from the checkpoint.
    """
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    film = ("--model.policy.goal_film", "true")  # not configs/train/tiny.yaml's
    cli_fit(dataset, tmp_path / "straight", 3, *film)
    cli_fit(dataset, tmp_path / "resumed", 2, *film)
    cli_fit(dataset, tmp_path / "resumed", 3, "--ckpt_path", "last")
    straight, resumed = train_losses(tmp_path / "straight"), train_losses(tmp_path / "resumed")
    assert sorted(straight) == sorted(resumed) == list(range(15))
    for step in range(10, 15):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-4, abs=1e-5)

    ckpts = sorted((tmp_path / "resumed" / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in {p.name for p in ckpts}
    assert any(p.name.startswith("best") for p in ckpts)
    policy, info = load_policy(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert info.actions == ["move_ahead", "rotate_left", "rotate_right", "end"]
    assert info.image_size == (32, 48) and info.train_house_ids and info.trained_steps == 15
    assert info.train_house_hashes == sorted({house_content_hash(r.house)
                                              for r in load_houses(HOUSE)})
    assert policy.cfg.goal_film
    assert info.goal_index("roomnav", "Kitchen") == info.goals.index("roomnav/Kitchen")
    policy.reset(1)
    action = policy.act({"rgb": np.zeros((1, 64, 96, 3), np.uint8), "goal": torch.tensor([0]),
                         "first": torch.tensor([True])})
    assert action.shape == (1,)

    build_cli(["validate", "--config", CONFIG, "--data.root", str(dataset),
               "--trainer.default_root_dir", str(tmp_path / "val"),
               "--trainer.enable_progress_bar", "false",
               "--ckpt_path", str(tmp_path / "resumed" / "checkpoints" / "last.ckpt")])


def test_last_checkpoint_follows_the_run_past_the_best_epoch(dataset, tmp_path, monkeypatch):
    """With lr 0 the validation loss never improves after epoch 1; last.ckpt still moves on."""
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    run = tmp_path / "run"
    cli_fit(dataset, run, 3, "--model.lr", "0")
    ckpts = {p.name: torch.load(p, weights_only=False, map_location="cpu")["global_step"]
             for p in (run / "checkpoints").glob("*.ckpt")}
    assert ckpts == {"best-epoch=0-step=5.ckpt": 5, "last.ckpt": 15}


def test_lr_factor_warm_up_stable_decay():
    assert [lr_factor(s, 4, None, 0) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    decayed = [lr_factor(s, 4, 6, 4) for s in range(12)]
    assert decayed[:6] == [lr_factor(s, 4, None, 0) for s in range(6)]  # a branch, not a new run
    assert decayed[6:] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_cli_decay_branches_off_a_constant_rate_checkpoint(dataset, tmp_path, monkeypatch):
    """A decay resumed from a checkpoint follows its schedule from the checkpoint's step; the
    encoder's frames per call come from the command line, not the checkpoint."""
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli_fit(dataset, tmp_path / "stable", 2)
    cli_fit(dataset, tmp_path / "decayed", 4, "--ckpt_path",
            str(tmp_path / "stable/checkpoints/last.ckpt"),
            "--model.decay_start", "10", "--model.decay_steps", "8",
            "--model.policy.encoder_batch", "5")
    policy, _ = load_policy(tmp_path / "decayed/checkpoints/last.ckpt")
    assert policy.cfg.encoder_batch == policy.encoder.batch == 5  # not the checkpoint's 0
    assert load_policy(tmp_path / "stable/checkpoints/last.ckpt")[0].cfg.encoder_batch == 0
    lrs = {int(r["step"]): float(r["lr-AdamW"]) for r in read_metrics(tmp_path / "decayed")
           if r.get("lr-AdamW")}
    assert sorted(lrs) == list(range(10, 20))
    peak = 3e-3  # configs/train/tiny.yaml
    for step in range(10, 20):
        assert lrs[step] == pytest.approx(peak * max(0.0, 1 - (step - 10) / 8))
    with pytest.raises(ValueError, match="model.decay_steps"):
        from training.module import PolicyModule
        PolicyModule(decay_start=10, decay_steps=0, dataset_spec={})


def test_cli_rejects_unknown_config_values(dataset, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    with pytest.raises(SystemExit):
        build_cli(["--config", CONFIG, "--data.root", str(dataset),
                   "--model.policy.hiden_dim", "8"], run=False)
    assert "hiden_dim" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_cli(["--config", CONFIG, "--data.root", str(dataset),
                   "--model.class_weighting", "sometimes"], run=False)
    assert "sometimes" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.name for p in Path(CONFIG).parent.glob("*.yaml")))
def test_shipped_train_configs_build(name, dataset, tmp_path, monkeypatch):
    """Every configs/train/*.yaml parses and builds its policy (cpu and gpu: goal FiLM)."""
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    cli = build_cli(["--config", str(Path(CONFIG).parent / name), "--data.root",
                     str(dataset), "--trainer.default_root_dir", str(tmp_path),
                     "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                     "--trainer.num_nodes", "1", "--trainer.strategy", "auto",
                     "--trainer.precision", "32"], run=False)
    assert (cli.model.policy.encoder.film is not None) == (name in ("cpu.yaml", "gpu.yaml"))
    assert sum(p.numel() for p in cli.model.parameters()) > 0
