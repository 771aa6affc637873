"""Encoder pretraining on the simulator's labels: labels, stream, module, CLI, and the hand-over
of the encoder to behaviour cloning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from training_helpers import write_dataset

from agents.frames import resize_frames, resize_labels
from agents.policy import PolicyConfig, conv_grid, conv_stack
from datagen.constants import KEY_META, KEY_RGB
from datagen.shards import iter_episodes
from datagen.video import decode_frames
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.house_check import HouseError
from sim.interface import Pose
from sim.lattice import AgentConfig
from training.cli import build_cli
from training.data.datamodule import ShardDataModule
from training.data.houses import HouseLines
from training.data.info import load_info, shard_urls, split_urls
from training.module import PolicyModule
from training.pretrain.data import (
    EpisodeLabeler,
    LabelledFrameDataModule,
    LabelledFrameStream,
    cell_pixels,
    label_vocab,
    pixel_counts,
)
from training.pretrain.encoder import load_encoder
from training.pretrain.metrics import (
    AP_MIN_PIXELS,
    SIZE_EDGES,
    average_precision,
    bucket_names,
    cell_targets,
    detection_counts,
    detection_table,
    false_positive_causes,
    object_loss,
    score_histogram,
    size_recall_counts,
)
from training.pretrain.module import EncoderPretrainModule, confusion_report

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "pretrain" / "cpu.yaml")
TRAIN_CONFIG = str(ROOT / "configs" / "train" / "tiny.yaml")
TINY = ("--model.policy.channels", "[8, 16, 16]", "--model.policy.groups", "4",
        "--data.image_size", "[32, 48]", "--data.batch_size", "8",
        "--data.batches_per_epoch", "3", "--data.num_workers", "0",
        "--data.shuffle_buffer", "16", "--trainer.log_every_n_steps", "1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("shards"), size=(48, 64))


def info_of(root: Path) -> dict:
    return load_info(root)  # house paths resolved against the dataset root


def labeler_for(root: Path) -> EpisodeLabeler:
    info = info_of(root)
    houses = {s: HouseLines(e["houses"]["path"], e["houses"]["sha256"])
              for s, e in info["splits"].items()}
    return EpisodeLabeler(info, houses)


def episodes(root: Path, split: str) -> list[tuple[dict, np.ndarray]]:
    """(meta, decoded frames) of every episode of a split, in shard order."""
    out = []
    for url in shard_urls(root, split):
        for sample in iter_episodes(Path(url)):
            out.append((sample[KEY_META], decode_frames(sample[KEY_RGB])))
    return out


def test_labels_are_the_rendered_object_types_and_the_agents_room(dataset):
    """Every frame's object-type map counts exactly the pixels an independent env sees of each
    target type, and the room is the env's current room."""
    info = info_of(dataset)
    objects, rooms = label_vocab(info)
    labeler = labeler_for(dataset)
    env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
    house = labeler.houses["train"].house(0)
    seen_types, seen_rooms = set(), set()
    for meta, _ in episodes(dataset, "train")[:3]:
        maps, room_index = labeler(meta, "train")
        assert maps.shape == (len(meta["poses"]), 48, 64)
        pixels = pixel_counts(torch.from_numpy(maps), len(objects))
        for t, (x, z, yaw) in enumerate(meta["poses"]):
            env.reset(house, Pose(x, z, yaw))
            counts = {}
            for obj in env.visible_objects().values():
                counts[obj.object_type] = counts.get(obj.object_type, 0) + obj.pixels
            for k, name in enumerate(objects):
                assert int((maps[t] == k + 1).sum()) == counts.get(name, 0), (t, name)
                assert int(pixels[t, k]) == counts.get(name, 0), (t, name)
            room = env.current_room()
            assert room_index[t] == (rooms.index(room[1]) if room and room[1] in rooms else -1)
            seen_types |= {objects[k - 1] for k in np.unique(maps[t]) if k}
            seen_rooms.add(int(room_index[t]))
    assert seen_types and len(seen_rooms) > 1  # the check saw objects and rooms


def test_cell_pixels_counts_each_class_in_each_cell():
    maps = torch.zeros(1, 12, 16, dtype=torch.uint8)
    maps[0, 0, 0] = 2  # one pixel of class 2 in the top-left cell
    maps[0, 8:, 12:] = 1  # class 1 fills the bottom-right cell (4 x 4)
    maps[0, 5, 7] = 1  # and one pixel of the cell at row 1, column 1
    cells = cell_pixels(maps, (12, 16), (3, 4), num_classes=2)
    assert cells.shape == (1, 2, 3, 4) and cells.dtype == torch.int32
    want = torch.zeros(2, 3, 4, dtype=torch.int32)
    want[1, 0, 0], want[0, 2, 3], want[0, 1, 1] = 1, 16, 1
    assert torch.equal(cells[0], want)
    # resized like the frames (here a plain 2x downscale), the cells stay where they were
    big = maps.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(cell_pixels(big, (12, 16), (3, 4), num_classes=2), cells)


@pytest.mark.parametrize("shape,size,grid", [((5, 48, 64), (24, 32), (3, 4)),
                                             ((4, 50, 70), (45, 77), (5, 7))],
                         ids=["divisible", "overlapping-windows"])
def test_cell_pixels_is_adaptive_pooling_of_each_class(shape, size, grid):
    """Present where max pooling of the class's mask says so; the count is average pooling
    times the window's area (windows overlap when the grid does not divide the size)."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 20, shape, dtype=torch.uint8, generator=gen)
    maps[maps > 6] = 0
    small = resize_labels(maps, size)
    onehot = (small[:, None] == torch.arange(1, 7, dtype=torch.uint8)[None, :, None, None])
    cells = cell_pixels(maps, size, grid, num_classes=6)
    assert torch.equal(cells > 0, F.adaptive_max_pool2d(onehot.float(), grid) > 0)
    rows = [(i * size[0] // grid[0], -(-(i + 1) * size[0] // grid[0])) for i in range(grid[0])]
    cols = [(j * size[1] // grid[1], -(-(j + 1) * size[1] // grid[1])) for j in range(grid[1])]
    area = torch.tensor([[(r1 - r0) * (c1 - c0) for c0, c1 in cols] for r0, r1 in rows])
    counts = (F.adaptive_avg_pool2d(onehot.float(), grid) * area).round()
    assert torch.equal(cells.float(), counts)


@pytest.mark.parametrize("size", [(32, 48), (84, 144), (45, 77)])
def test_conv_grid_is_the_conv_stacks_output(size):
    cfg = PolicyConfig(image_size=size, channels=(8, 8, 8, 8), groups=4)
    assert conv_stack(cfg)(torch.zeros(1, 3, *size)).shape[-2:] == conv_grid(cfg)


def test_validation_stream_is_every_frame_once_with_its_labels(dataset):
    info = info_of(dataset)
    stream = LabelledFrameStream(split_urls(dataset, ["val"]), info,
                                 train=False, image_size=(24, 32), grid=(3, 4), batch_size=5)
    batches = list(stream)
    frames = torch.cat([b["frames"] for b in batches])
    cells = torch.cat([b["objects"] for b in batches])
    pixels = torch.cat([b["pixels"] for b in batches])
    labeler = labeler_for(dataset)
    num_objects = len(label_vocab(info)[0])
    want_frames, want_cells, want_pixels = [], [], []
    for meta, rgb in episodes(dataset, "val"):
        want_frames.append(resize_frames(torch.from_numpy(rgb).permute(0, 3, 1, 2), (24, 32)))
        maps, _ = labeler(meta, "val")
        want_cells.append(cell_pixels(torch.from_numpy(maps), (24, 32), (3, 4), num_objects))
        want_pixels.append(torch.from_numpy((maps[:, None] == np.arange(
            1, num_objects + 1)[None, :, None, None]).sum((2, 3))))
    assert torch.equal(frames, torch.cat(want_frames))
    assert torch.equal(cells, torch.cat(want_cells))
    assert torch.equal(pixels.long(), torch.cat(want_pixels).long())
    assert cells.sum() > 0
    # a type in some cell at the training resolution shows in the rendered frame
    assert (pixels[cells.flatten(2).any(2)] > 0).all()


def test_rendered_frames_come_with_the_same_labels(dataset):
    """--data.frames rendered: the frames are the renderer's at the stored poses (one pass
    with the ids), the labels those of the decoded stream."""
    info = info_of(dataset)
    labeler = labeler_for(dataset)
    meta, decoded = episodes(dataset, "val")[0]
    rgb, maps, rooms = labeler.render(meta, "val")
    want_maps, want_rooms = labeler(meta, "val")
    assert np.array_equal(maps, want_maps) and np.array_equal(rooms, want_rooms)
    x, z, yaw = meta["poses"][-1]
    assert np.array_equal(rgb[-1], labeler.env.renderer.render_rgb(x, z, yaw))
    assert 0 < np.abs(rgb.astype(float) - decoded).mean() < 8  # H.264 is all that differs

    def batches(frames):
        return list(LabelledFrameStream(split_urls(dataset, ["val"]), info,
                                        train=False, image_size=(24, 32), grid=(3, 4),
                                        batch_size=5, frames=frames))

    rendered, plain = batches("rendered"), batches("decoded")
    assert all(torch.equal(a[k], b[k]) for a, b in zip(rendered, plain) for k in a
               if k != "frames")
    assert torch.equal(rendered[0]["frames"][0],
                       resize_frames(torch.from_numpy(rgb[:1]).permute(0, 3, 1, 2), (24, 32))[0])


def test_training_stream_is_a_function_of_seed_epoch_and_rank(dataset):
    def first(seed=0, epoch=0, rank=0):
        stream = LabelledFrameStream(split_urls(dataset, ["train"]),
                                     info_of(dataset), train=True, image_size=(24, 32),
                                     grid=(3, 4), batch_size=6, batches_per_epoch=2,
                                     shuffle_buffer=8, jitter=0.2, seed=seed, rank=rank,
                                     world_size=2)
        stream.epoch = epoch
        return list(stream)

    a, b = first(), first()
    assert len(a) == 2 and all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    assert not torch.equal(a[0]["frames"], first(epoch=1)[0]["frames"])
    assert not torch.equal(a[0]["frames"], first(seed=1)[0]["frames"])
    assert not torch.equal(a[0]["frames"], first(rank=1)[0]["frames"])  # DDP ranks differ


def test_pretraining_fits_the_labels_of_a_few_frames(dataset):
    """The object and room losses fall on a fixed batch: the labels are learnable from the
    pixels."""
    torch.manual_seed(0)
    info = info_of(dataset)
    objects, rooms = label_vocab(info)
    spec = {"objects": objects, "rooms": rooms, "image_size": [32, 48]}
    module = EncoderPretrainModule(PolicyConfig(channels=(16, 16, 32), groups=4),
                                   dataset_spec=spec)
    stream = LabelledFrameStream(split_urls(dataset, ["val"]), info,
                                 train=False, image_size=(32, 48), grid=module.grid,
                                 batch_size=32)
    batch = next(iter(stream))
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    with torch.no_grad():
        first = {k: float(v) for k, v in module._losses(batch).items() if "loss" in k}
    for _ in range(60):
        loss = module._losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = module._losses(batch)
    assert float(last["object_loss"]) < 0.3 * first["object_loss"]
    assert float(last["room_loss"]) < 0.3 * first["room_loss"]


def pretrain(dataset: Path, run: Path, *extra: str) -> Path:
    build_cli(["fit", "--config", CONFIG, "--data.root", str(dataset),
               "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1",
               "--trainer.enable_progress_bar", "false", *TINY, *extra],
              model_class=EncoderPretrainModule, datamodule_class=LabelledFrameDataModule)
    return run / "checkpoints" / "last.ckpt"


def test_cli_pretrains_and_behaviour_cloning_starts_from_the_encoder(dataset, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-pretrain"])
    ckpt = pretrain(dataset, tmp_path / "pre")
    metrics = (tmp_path / "pre" / "logs" / "version_0" / "metrics.csv").read_text()
    for name in ("train/object_loss", "val/object_recall", "val/frame_recall", "val/room_acc",
                 "val/frame_recall_px", "val/frame_map"):
        assert name in metrics
    report = json.loads((tmp_path / "pre" / "logs" / "version_0" /
                         "val_detection.json").read_text())
    assert report["step"] == 3 and len(report["types"]) == 16
    for row in report["types"].values():
        by_size = row["frame_recall_by_pixels"]
        assert [b["pixels"] for b in by_size] == bucket_names()
        # every frame where a cell shows the type shows some of its pixels
        assert sum(b["frames"] for b in by_size) >= row["frame"]["actual"]
        ap = row[f"frame_ap_{AP_MIN_PIXELS}px"]
        # the frames showing >= AP_MIN_PIXELS of it
        big = sum(b["frames"] for b in by_size[SIZE_EDGES.index(AP_MIN_PIXELS):])
        assert ap["positives"] == big and (ap["ap"] is None) == (big == 0)

    dm = ShardDataModule(str(dataset), image_size=(32, 48), num_workers=0)
    cfg = PolicyConfig(channels=(8, 16, 16), groups=4, pool_size=(2, 3), goal_film=True)
    module = PolicyModule(cfg, encoder_init=str(ckpt), dataset_spec=dm.spec)
    saved = load_encoder(ckpt, module.policy.cfg)
    for name, value in module.policy.encoder.convs.state_dict().items():
        assert torch.equal(value, saved[name]), name
    assert all((p == 0).all() for p in module.policy.encoder.film.parameters())
    fresh = PolicyModule(cfg, dataset_spec=dm.spec)
    assert not torch.equal(fresh.policy.encoder.convs[0][0].weight,
                           module.policy.encoder.convs[0][0].weight)

    monkeypatch.setattr("sys.argv", ["spoc-train"])
    build_cli(["fit", "--config", TRAIN_CONFIG, "--data.root", str(dataset),
               "--trainer.default_root_dir", str(tmp_path / "bc"), "--trainer.max_epochs", "1",
               "--trainer.enable_progress_bar", "false", "--model.encoder_init", str(ckpt)])
    assert (tmp_path / "bc" / "checkpoints" / "last.ckpt").is_file()


def test_encoder_init_refuses_another_encoder_in_one_line(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-pretrain"])
    ckpt = pretrain(dataset, tmp_path / "pre", "--model.object_min_pixels", "2")
    dm = ShardDataModule(str(dataset), image_size=(32, 48), num_workers=0)
    mismatch = r"policy.channels=\[8, 16, 16\], this run has \[8, 16, 32\]"
    with pytest.raises(ValueError, match=mismatch):
        PolicyModule(PolicyConfig(channels=(8, 16, 32), groups=4), encoder_init=str(ckpt),
                     dataset_spec=dm.spec)
    with pytest.raises(ValueError, match="not found"):
        PolicyModule(PolicyConfig(channels=(8, 16, 16), groups=4),
                     encoder_init=str(tmp_path / "nope.ckpt"), dataset_spec=dm.spec)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="not a `spoc-pretrain` checkpoint"):
        PolicyModule(PolicyConfig(channels=(8, 16, 16), groups=4), encoder_init=str(other),
                     dataset_spec=dm.spec)


def test_another_or_a_missing_house_file_is_named(dataset, tmp_path):
    entry = info_of(dataset)["splits"]["train"]["houses"]
    with pytest.raises(HouseError, match="sha256 .* is not the 000000000000"):
        HouseLines(entry["path"], "0" * 64)
    with pytest.raises(HouseError, match="not found"):
        HouseLines(str(tmp_path / "gone.jsonl.gz"), entry["sha256"])


def test_shipped_pretrain_config_builds(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-pretrain"])
    cli = build_cli(["--config", CONFIG, "--data.root", str(dataset),
                     "--trainer.default_root_dir", str(tmp_path)], run=False,
                    model_class=EncoderPretrainModule, datamodule_class=LabelledFrameDataModule)
    assert cli.model.grid == (6, 9) and len(cli.model.spec["objects"]) == 16


def test_detection_counts_per_cell_and_per_frame():
    pred = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    actual = torch.zeros_like(pred)
    actual[0, 0, 0, 0] = actual[0, 0, 1, 1] = True  # frame 0: class 0 in two cells
    pred[0, 0, 1, 1] = pred[0, 0, 1, 0] = True  # one of them hit, one false cell
    pred[1, 1, 0, 0] = True  # frame 1: a false class-1 detection
    counts = detection_counts(pred, actual)
    assert counts[0].tolist() == [[1, 2, 2], [0, 1, 0]]  # cells: hits, predicted, actual
    assert counts[1].tolist() == [[1, 1, 1], [0, 1, 0]]  # frames


def test_size_recall_counts_buckets_frames_by_the_types_pixels():
    edges = (1, 10, 100)
    pixels = torch.tensor([[0, 5], [9, 10], [99, 100], [500, 1], [3, 0]])
    pred = torch.tensor([[True, True], [False, True], [True, False], [True, True],
                         [False, False]])
    counts = size_recall_counts(pred, pixels, edges)
    assert counts.shape == (2, 3, 2)
    # class 0: 9 and 3 px (1-9: one of two predicted), 99 (10-99: hit), 500 (100+: hit)
    assert counts[0].tolist() == [[0, 2], [1, 1], [1, 1]]
    # class 1: 5 and 1 px (both hit), 10 (hit), 100 (missed); the 0-px frames count nowhere
    assert counts[1].tolist() == [[2, 2], [1, 1], [0, 1]]
    assert bucket_names(edges) == ["1-9", "10-99", "100+"]


def test_detection_table_names_each_types_rates():
    counts = torch.tensor([[[1, 2, 4], [0, 0, 0]], [[1, 1, 2], [0, 3, 0]]])  # (2, K=2, 3)
    sizes = torch.zeros(2, 5, 2, dtype=torch.long)
    sizes[0, 2] = torch.tensor([1, 2])
    scores = torch.zeros(2, 2, 480, dtype=torch.long)
    scores[0, 0, 10], scores[0, 1, 400] = 3, 1  # Apple: 3 frames without it, 1 with, above
    table = detection_table(["Apple", "Bed"], counts, sizes, scores)
    assert table["Apple"]["cell"] == {"precision": 0.5, "recall": 0.25, "hits": 1,
                                      "predicted": 2, "actual": 4}
    assert table["Apple"]["frame"]["recall"] == 0.5
    by_size = table["Apple"]["frame_recall_by_pixels"]
    assert by_size[2] == {"pixels": "50-199", "recall": 0.5, "frames": 2}
    assert by_size[0] == {"pixels": "1-11", "recall": None, "frames": 0}
    assert table["Apple"]["frame_ap_50px"] == {"ap": 1.0, "positives": 1, "negatives": 3,
                                               "base_rate": 0.25}
    assert table["Bed"]["frame_ap_50px"]["ap"] is None
    assert table["Bed"]["frame"] == {"precision": 0.0, "recall": None, "hits": 0,
                                     "predicted": 3, "actual": 0}


def exact_average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def test_average_precision_from_the_histogram_is_the_exact_one_without_ties():
    """Scores a bin or more apart rank as exactly as sorted scores; frames with 1-49 pixels of
    the type are left out of it."""
    rng = np.random.default_rng(0)
    n = 300
    scores = rng.permutation(np.arange(n))[:, None] * 0.05 - 7.49 + np.zeros((1, 2))  # (N, 2)
    pixels = np.zeros((n, 2), dtype=np.int64)
    pixels[rng.random(n) < 0.2, 0] = 80  # class 0: 20% positives, scores unrelated
    pixels[:, 1] = np.where(scores[:, 1] > 2.0, 500, 0)  # class 1: the top scores, perfect
    pixels[rng.random(n) < 0.1, 1] = 30  # ... and some frames with too few pixels to count
    hist = score_histogram(torch.tensor(scores, dtype=torch.float32), torch.tensor(pixels))
    assert hist.shape == (2, 2, 480)
    assert hist[1].sum() == (pixels[:, 1] != 30).sum()  # the 30-px frames are left out
    keep = pixels[:, 0] != 30
    want = exact_average_precision(scores[keep, 0], pixels[keep, 0] >= 50)
    assert average_precision(hist[0]) == pytest.approx(want, abs=1e-9)
    assert average_precision(hist[1]) == 1.0
    assert average_precision(torch.zeros(2, 480, dtype=torch.long)) is None
    # scores out of range clamp to the end bins
    ends = score_histogram(torch.tensor([[-50.0], [50.0]]), torch.tensor([[0], [60]]))
    assert ends[0, 0, 0] == 1 and ends[0, 1, -1] == 1


def test_focal_object_loss_is_cross_entropy_at_gamma_zero_and_spares_easy_cells():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 2, 2, generator=gen) * 3
    target = (torch.rand(4, 3, 2, 2, generator=gen) < 0.2).float()
    w = torch.tensor(5.0)
    plain = F.binary_cross_entropy_with_logits(logits, target, pos_weight=w)
    assert torch.allclose(object_loss(logits, target, w), plain)
    assert torch.allclose(object_loss(logits, target, w, gamma=1e-9), plain)
    easy, hard = torch.tensor([6.0]), torch.tensor([-6.0])  # a positive cell, right / wrong
    one = torch.ones(1)
    for g in (1.0, 2.0):  # the easy term shrinks far more than the hard one
        assert object_loss(easy, one, w, g) < 0.01 * object_loss(easy, one, w)
        assert object_loss(hard, one, w, g) > 0.99 * object_loss(hard, one, w)
    with pytest.raises(ValueError, match="model.focal_gamma: -1.0 must be >= 0"):
        EncoderPretrainModule(focal_gamma=-1.0, dataset_spec={"objects": ["Apple"], "rooms": [],
                                                              "image_size": [32, 48]})


def test_cells_with_a_few_pixels_of_a_type_are_left_out_of_the_object_loss():
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 9, (4, 3, 2, 2), generator=gen).int()
    pixels[pixels < 4] = 0  # cells with 0 or 4-8 pixels ...
    pixels[0, 0, 0, 0], pixels[1, 2, 1, 1] = 1, 3  # ... and two with a few
    logits = torch.randn(4, 3, 2, 2, generator=gen) * 3
    w = torch.tensor(5.0)
    # from one pixel (the default): every cell counts, positive wherever the type shows
    target, mask = cell_targets(pixels, 1)
    assert mask is None and torch.equal(target, (pixels > 0).float())
    # from 4: the two cells with 1 and 3 pixels are neither positive nor negative
    target, mask = cell_targets(pixels, 4)
    assert torch.equal(target, (pixels >= 4).float())
    assert (~mask).sum() == 2 and not mask[0, 0, 0, 0] and not mask[1, 2, 1, 1]
    loss = object_loss(logits, target, w, mask=mask)
    kept = F.binary_cross_entropy_with_logits(logits[mask], target[mask], pos_weight=w)
    assert torch.allclose(loss, kept)
    moved = logits.clone()
    moved[~mask] += 10.0  # what the encoder says about the left-out cells does not matter
    assert torch.equal(object_loss(moved, target, w, mask=mask), loss)
    assert torch.allclose(object_loss(logits, target, w, mask=torch.ones_like(mask)),
                          object_loss(logits, target, w))
    with pytest.raises(ValueError, match="model.object_min_pixels: 0 must be >= 1"):
        EncoderPretrainModule(object_min_pixels=0, dataset_spec={
            "objects": ["Apple"], "rooms": [], "image_size": [32, 48]})


def test_false_positives_are_counted_by_what_their_best_cell_shows():
    maps = torch.zeros(2, 4, 4, dtype=torch.uint8)  # 2 x 2 cells of 2 x 2 pixels
    maps[0, :2, 2:] = 5  # frame 0, top-right cell: type 5 ...
    maps[0, 0, 2] = 7  # ... and one pixel of type 7
    logits = torch.full((2, 2, 2, 2), -1.0)
    logits[0, 0, 0, 1] = 2.0  # class 0 fires at the top-right cell of frame 0
    logits[0, 0, 1, 1] = 1.0  # (a weaker cell is not the one counted)
    logits[1, 0, 1, 0] = 3.0  # frame 1: class 0 at an empty cell
    logits[1, 1, 0, 0] = 4.0  # class 1 fires where it is present: no false positive
    absent = torch.tensor([[True, True], [True, False]])
    out = false_positive_causes(logits, maps, absent, num_types=8)
    assert out.shape == (2, 9)
    assert out[0].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0]  # type 5 once, nothing once
    assert out[1].sum() == 0


def test_confusion_report_names_what_each_target_is_taken_for(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["spoc-pretrain"])
    ckpt = pretrain(dataset, tmp_path / "pre")
    report = confusion_report(ckpt, dataset, "val", top=2)
    assert report["frames"] == sum(len(m["poses"]) for m, _ in episodes(dataset, "val"))
    assert list(report["types"]) == label_vocab(info_of(dataset))[0]
    assert any(row["false_positive_frames"] for row in report["types"].values())
    for target, row in report["types"].items():
        shares = [c["share"] for c in row["taken_for"]]
        assert len(shares) <= 2 and sum(shares) <= 1.0 + 1e-9
        assert all(c["type"] != target for c in row["taken_for"])  # absent by definition
