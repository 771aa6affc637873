"""Tiny episode datasets for the training tests, written by the real datagen pipeline."""

from __future__ import annotations

import tarfile
from pathlib import Path

from datagen.config import DatagenConfig
from datagen.constants import OBJECTNAV_TARGETS
from datagen.dataset import open_dataset
from datagen.episodes import HouseFile
from datagen.shards import write_shard
from datagen.tasks import TaskConfig
from sim.camera import CameraConfig

HOUSE = str(Path(__file__).resolve().parent / "fixtures" / "house_3703.json")


def write_dataset(root: str | Path, shards: dict[str, tuple[int, int]] | None = None,
                  size: tuple[int, int] = (32, 48), houses: str = HOUSE,
                  action_noise: dict[str, float] | None = None, frames: str = "video") -> Path:
    """Expert episodes in ``houses`` as ``root/info.json`` + ``root/{split}/shard-*.tar``.

    ``shards``: split -> (number of shards, episodes per shard); default 2x3 train, 1x3 val.
    Each split draws its episodes from its own seed; ``action_noise``: split -> noise;
    ``frames``: ``video`` or ``none`` (a pose-only dataset).
    """
    root = Path(root)
    shards = shards or {"train": (2, 3), "val": (1, 3)}
    house_file = HouseFile.scan(houses)
    for seed, (split, (num_shards, per_shard)) in enumerate(shards.items()):
        cfg = DatagenConfig(houses=houses, split=split, num_shards=num_shards,
                            episodes_per_shard=per_shard, episodes_per_house=per_shard,
                            seed=seed, camera=CameraConfig(height=size[0], width=size[1]),
                            action_noise=(action_noise or {}).get(split, 0.0), frames=frames,
                            tasks=TaskConfig(min_pixels=3 if size[0] < 100 else 50))
        open_dataset(cfg, house_file, root)
        for k in range(num_shards):
            write_shard(cfg, k, root, house_file)
    return root


def truncate_file(path: str | Path, fraction: float = 0.5) -> None:
    """Cut a file to ``fraction`` of its size (a shard a crashed copy left behind)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def corrupt_video(path: str | Path) -> None:
    """Zero 1.8 kB inside the first mp4 of a shard (the tar stays readable)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"ftyp")
    data[start + 200:start + 2000] = bytes(1800)
    path.write_bytes(bytes(data))


def palette_detector(targets=OBJECTNAV_TARGETS):
    """A colour detector centred on the renderer's palette colour of each target type."""
    from agents.detector import ColourDetector
    from sim.scene import chromaticity, type_color

    return ColourDetector(centre={t: tuple(chromaticity(type_color(t))) for t in targets},
                          radius={t: 0.06 for t in targets}, min_pixels={t: 1 for t in targets})


def overwrite_middle(path: str | Path, size: int = 4096) -> int:
    """Overwrite ``size`` bytes of a shard from the header of its middle member (one after
    the first): Python's ``tarfile`` takes the damaged header for the end of the archive and
    raises nothing. Returns the samples whose members all lie before it."""
    path = Path(path)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    middle = members[len(members) // 2]
    key = middle.name.split(".")[0]
    before = {m.name.split(".")[0] for m in members[:len(members) // 2]} - {key}
    data = bytearray(path.read_bytes())
    data[middle.offset:middle.offset + size] = b"\xab" * size
    path.write_bytes(bytes(data))
    return len(before)
