"""``spoc-detector``: fit the colour detector of the target types on training frames, and score
it against the simulator's boxes.

    spoc-detector fit --data DATASET_DIR --split train --out runs/detector.json
    spoc-detector score --data DATASET_DIR --split val --detector runs/detector.json
    spoc-detector fit ... --types '[Fridge]'     # also a RoomNav anchor type (--data.room_anchors)

A policy trained with the simulator's box of its target (``--data.target_box true``) needs the
box at deployment too; ``spoc-eval run --detector FILE`` gives it this detector's box instead,
computed from the RGB frame alone (:class:`agents.detector.ColourDetector`). The frames are rendered
again at the shards' stored poses (what evaluation sees), with their instance ids for the
labels; the fit sees only the split it is given, so fit on a training split and score on
``val``. Bad input (a dataset, split, detector or ``--out`` that cannot be used, a value out
of range) is one line and exit status 2; ``--debug`` adds its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agents.detector import ColourDetector
from common.cli import config_commands, entry_point, parse_config_command, progress_bar
from common.errors import InputError
from common.files import check_out_file, json_bytes, write_atomic
from datagen.constants import INFO_FILE, KEY_META
from datagen.shards import iter_episodes
from datagen.tasks import box_target
from eval.inputs import read_colour_detector
from sim.detect import target_box, target_table
from training.data.houses import PoseRenderer, check_object_type, check_room_anchors
from training.data.info import DatasetMismatchError, load_info, shard_urls, split_urls
from training.detector.fit import fit_colour_detector
from training.pretrain.data import label_vocab

SEEN_PIXELS = 50
"""The score also reports recall on frames showing at least this many target pixels."""


@dataclass
class FitConfig:
    """Fit the colour detector on the frames of a dataset's split."""

    data: str = "data/dataset"
    """Dataset directory written by `spoc-datagen episodes` (video or pose-only: the frames
    are rendered from the house files it holds)."""
    split: str = "train"
    """Split to fit on: a training split, never the one it is scored on."""
    episodes: int = 2000
    """Episodes read (the split's first, in shard order): many houses, many assets."""
    stride: int = 12
    """Every stride-th frame of an episode is used."""
    types: list[str] = field(default_factory=list)
    """More object types fitted beside the dataset's ObjectNav targets: the RoomNav anchors of
    a policy trained with ``--data.room_anchors`` (e.g. ``[Fridge]``). Each type is fitted on
    its own pixels alone, so the targets' fit is the same with or without them."""
    out: str = "runs/detector.json"
    """Where the detector is written (JSON)."""
    progress: bool = True
    """Show a progress bar (episodes, per pass over the frames) on stderr when it is a
    terminal."""

    def __post_init__(self):
        check_counts(self)


@dataclass
class ScoreConfig:
    """Score a detector's boxes of each ObjectNav episode's target against the simulator's."""

    data: str = "data/dataset"
    """Dataset directory written by `spoc-datagen episodes`."""
    split: str = "val"
    """Split to score on."""
    detector: str = "runs/detector.json"
    """A detector written by `spoc-detector fit`."""
    episodes: int = 200
    """Episodes read (the split's first, in shard order; ObjectNav ones are scored)."""
    stride: int = 1
    """Every stride-th frame of an episode is scored."""
    room_anchors: dict[str, str] = field(default_factory=dict)
    """Also score RoomNav episodes, on the box of their room type's anchor (as a policy
    trained with ``--data.room_anchors`` gets it)."""
    out: str | None = None
    """Also write the scores here (JSON)."""

    def __post_init__(self):
        check_counts(self)


def check_counts(cfg: FitConfig | ScoreConfig) -> None:
    """InputError unless ``episodes`` and ``stride`` are at least 1."""
    for name in ("episodes", "stride"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name} {getattr(cfg, name)} must be at least 1")


def open_split(root: str, split: str) -> tuple[dict, PoseRenderer]:
    """(info.json, a renderer of the split's houses), or DatasetMismatchError naming what is
    missing."""
    info = load_info(root, option="--data")
    split_urls(root, [split])  # a split without shards: its one-line error
    houses = PoseRenderer.house_files(info, [split], Path(root) / INFO_FILE)
    return info, PoseRenderer(info, houses)


def split_episodes(root: str, split: str, episodes: int) -> Iterator[dict]:
    """The ``meta.json`` of the split's first ``episodes`` episodes."""
    n = 0
    for url in shard_urls(root, split):
        for sample in iter_episodes(Path(url)):
            if n == episodes:
                return
            n += 1
            yield sample[KEY_META]


def rendered_frames(renderer: PoseRenderer, meta: dict, split: str, stride: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """(rgb (H, W, 3) uint8, instance ids (H, W), the house's object types) at every
    ``stride``-th stored pose of an episode."""
    scene, _ = renderer.load(meta, split)
    for x, z, yaw in meta["poses"][::stride]:
        frame = renderer.env.renderer.render(x, z, yaw)
        yield frame.rgb, frame.ids, scene.boxes.object_type


@dataclass
class FitFrames:
    """The fit's labelled frames, (rgb, type map, instance ids) as
    :func:`training.detector.fit.fit_colour_detector` reads them, rendered again each time they are
    iterated: the fit reads them twice, and holding them would take 0.13 MB per 112x192 frame
    (the default 2,000 episodes at stride 12: ~5,000 frames, ~0.7 GB)."""

    cfg: FitConfig
    renderer: PoseRenderer
    targets: list[str]
    passes: int = 0
    """Times the frames were iterated (the progress bar's label)."""

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        index = {t: k + 1 for k, t in enumerate(self.targets)}
        self.passes += 1
        with progress_bar(self.cfg.episodes, f"fit, pass {self.passes}", "ep",
                          self.cfg.progress) as bar:
            for meta in split_episodes(self.cfg.data, self.cfg.split, self.cfg.episodes):
                for rgb, ids, types in rendered_frames(self.renderer, meta, self.cfg.split,
                                                       self.cfg.stride):
                    lut = np.array([0] + [index.get(t, 0) for t in types], dtype=np.uint8)
                    type_map = lut[ids]  # instance ids tell the targets' assets' colours apart
                    instances = np.where(type_map > 0, ids, 0).astype(np.uint16)  # < 65,536
                    yield rgb, type_map, instances
                bar.update(1)


def fit(cfg: FitConfig) -> ColourDetector:
    """Fit a detector of the dataset's ObjectNav targets on ``cfg.split`` and write it."""
    check_out_file(cfg.out)
    info, renderer = open_split(cfg.data, cfg.split)
    targets, _ = label_vocab(info)
    extra = [check_object_type(t, "types") for t in dict.fromkeys(cfg.types)]
    targets = targets + [t for t in extra if t not in targets]
    fitted_on = {"data": str(cfg.data), "split": cfg.split, "episodes": cfg.episodes,
                 "stride": cfg.stride, **({"types": list(cfg.types)} if cfg.types else {})}
    detector = fit_colour_detector(FitFrames(cfg, renderer, targets), targets, fitted_on)
    if not detector.centre:
        raise DatasetMismatchError(f"{cfg.data}/{cfg.split}: no target type is in view in the "
                                   f"{detector.fitted_on['frames']} frames read; raise "
                                   "--episodes or lower --stride")
    detector.save(cfg.out)
    return detector


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two box features' boxes (x0, y0, x1, y1 at 1:5)."""
    x0, y0 = max(a[1], b[1]), max(a[2], b[2])
    x1, y1 = min(a[3], b[3]), min(a[4], b[4])
    inter = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    union = (a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter
    return float(inter / union) if union > 0 else 0.0


def score(cfg: ScoreConfig) -> dict:
    """Per target type and overall: of the frames showing the target, how many the detector
    sees (recall; also at >= :data:`SEEN_PIXELS` pixels), how many of its detections show
    it (precision), and the mean IoU of its boxes with the simulator's where both see it."""
    if cfg.out is not None:
        check_out_file(cfg.out)
    detector = read_colour_detector(cfg.detector)
    info, renderer = open_split(cfg.data, cfg.split)
    anchors = check_room_anchors(cfg.room_anchors, info["goals"], "room_anchors")
    frame_pixels = info["camera"]["height"] * info["camera"]["width"]
    counts: dict[str, np.ndarray] = {}  # type -> [shown, shown big, said, hit, hit big, iou sum]
    for meta in split_episodes(cfg.data, cfg.split, cfg.episodes):
        target = box_target(meta["task"], meta["target"], anchors)
        if target is None:
            continue
        row = counts.setdefault(target, np.zeros(6))
        for rgb, ids, types in rendered_frames(renderer, meta, cfg.split, cfg.stride):
            truth = target_box(ids, target_table(types, target))
            said = detector.box(rgb, target)
            big = round(float(truth[5]) ** 2 * frame_pixels) >= SEEN_PIXELS
            hit = bool(truth[0] and said[0])
            row += (truth[0], truth[0] and big, said[0], hit, hit and big,
                    box_iou(truth, said) if hit else 0.0)
    total = sum(counts.values(), np.zeros(6))
    return {"detector": cfg.detector, "data": cfg.data, "split": cfg.split,
            "episodes": cfg.episodes, "stride": cfg.stride,
            "all": score_row(total),
            "per_type": {t: score_row(v) for t, v in sorted(counts.items())}}


def score_row(row: np.ndarray) -> dict:
    shown, shown_big, said, hit, hit_big, iou = row
    return {"frames_shown": int(shown), "recall": round(hit / max(shown, 1), 4),
            f"recall_{SEEN_PIXELS}px": round(hit_big / max(shown_big, 1), 4),
            "precision": round(hit / max(said, 1), 4), "iou": round(iou / max(hit, 1), 4)}


def build_parser():
    return config_commands("spoc-detector", __doc__,
                           {"fit": FitConfig, "score": ScoreConfig})


def main(argv: list[str] | None = None) -> int:
    """``spoc-detector``: bad input is one line and exit status 2
    (:func:`common.cli.entry_point`)."""
    return entry_point("spoc-detector", run, argv)


def run(argv: list[str]) -> None:
    command, values = parse_config_command(build_parser(), argv)
    if command == "fit":
        detector = fit(FitConfig(**values))
        f1 = detector.fitted_on["frame_f1"]
        colours = [len(c) for c in detector.centre.values()]
        print(f"{len(detector.centre)} types fitted on {detector.fitted_on['frames']} "
              f"frames ({min(colours)}-{max(colours)} colours per type, frame F1 "
              f"{min(f1.values()):.2f}-{max(f1.values()):.2f}) -> {values['out']}")
        return
    result = score(ScoreConfig(**values))
    if values["out"]:
        write_atomic(Path(values["out"]), json_bytes(result))
    print(f"{'type':14s} {'shown':>7s} {'recall':>7s} {'>=50px':>7s} {'prec':>6s} {'iou':>6s}")
    for name, row in [*result["per_type"].items(), ("all", result["all"])]:
        print(f"{name:14s} {row['frames_shown']:7d} {row['recall']:7.3f} "
              f"{row[f'recall_{SEEN_PIXELS}px']:7.3f} {row['precision']:6.3f} {row['iou']:6.3f}")


if __name__ == "__main__":
    sys.exit(main())
