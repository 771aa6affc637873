"""The inputs of an evaluation, checked before any work: checkpoints and release folders (and
an ensemble's members), detectors, explorers, datasets, held-out house files (by split, id
and content), output paths and the simulator backend. Each problem is one
:class:`eval.config.EvalInputError` naming the option, the file and the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agents.checkpoint import PolicyInfo, load_policy
from agents.detector import ColourDetector
from agents.explorer import Explorer
from agents.release import Release, is_release, load_release, read_release
from common.errors import InputError
from common.files import sha256_file
from datagen.constants import DATASET_VERSION
from datagen.dataset import DatasetError, read_info, split_house_file
from datagen.episodes import HouseFile
from eval.config import EvalInputError
from sim.env import make_env
from sim.house import file_content_hashes
from sim.house_check import HouseError
from sim.lattice import ACTIONS

TRAINING_SPLIT = "train"
"""A dataset's training splits are ``train`` and those named ``train-*`` (``train-noise``)."""


@dataclass
class TrainingHouses:
    """The houses an evaluation must not use: their ids and their content hashes
    (:func:`sim.house.house_content_hash`), and whose training houses they are."""

    ids: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)
    source: str = "the checkpoint's training houses"


def dataset_info(root: str) -> dict:
    """The info.json of a spoc-datagen dataset directory (EvalInputError if unusable)."""
    try:
        return read_info(Path(root))
    except DatasetError as e:  # its message starts with the directory
        raise EvalInputError(f"--dataset {e}") from None
    except (OSError, ValueError) as e:
        raise EvalInputError(f"--dataset {root}: {e}") from None


def checkpoint_info(path: str, option: str = "--checkpoint", releases: bool = False
                    ) -> PolicyInfo:
    """The PolicyInfo of a checkpoint (or, with ``releases``, a release folder), checked
    against this simulator (EvalInputError, naming ``option``, if not)."""
    return checkpoint_policy(path, option, releases)[1]


def checkpoint_policy(path: str, option: str = "--checkpoint", releases: bool = False):
    """(the policy, its PolicyInfo) of a spoc-train checkpoint or, with ``releases``, a release
    folder (:mod:`agents.release`: its weights read without unpickling code), checked against
    this simulator (EvalInputError, naming ``option``, if not)."""
    if releases and is_release(path):
        try:
            policy, info = load_release(path)
        except InputError as e:  # its message starts with the release's file
            raise EvalInputError(f"{option} {e}") from None
    elif not Path(path).is_file():
        raise EvalInputError(f"{option} {path}: no such file"
                             + (" (a spoc-train checkpoint, or a release folder)" if releases
                                else ""))
    else:
        try:
            policy, info = load_policy(path)
        except Exception as e:  # noqa: BLE001 - any failure means "not a usable checkpoint"
            msg = " ".join(str(e).split())[:300]
            raise EvalInputError(f"{option} {path}: not a spoc-train policy checkpoint of this "
                                 f"version ({type(e).__name__}: {msg}); retrain or pick another "
                                 "file") from None
    version = info.dataset.get("info", {}).get("version")
    if version != DATASET_VERSION:
        raise EvalInputError(f"{option} {path}: trained on dataset version {version!r}, "
                             f"this evaluation needs {DATASET_VERSION!r}; regenerate and retrain")
    if list(info.actions) != list(ACTIONS):
        raise EvalInputError(f"{option} {path}: action vocabulary {list(info.actions)} "
                             f"differs from the simulator's {list(ACTIONS)}")
    return policy, info


def release_of(path: str, option: str = "--checkpoint") -> Release | None:
    """The release folder ``path`` as read (its record and deploy.json, checked; not its
    weights), or None when ``path`` is a checkpoint file (EvalInputError naming ``option``)."""
    if not is_release(path):
        return None
    try:
        return read_release(path)
    except InputError as e:
        raise EvalInputError(f"{option} {e}") from None


def house_split(record) -> str | None:
    """The split a house was generated for (``metadata.generator.split``), if recorded."""
    gen = record.house.get("metadata", {}).get("generator", {})
    return gen.get("split") if isinstance(gen, dict) else None


def file_split(path: Path) -> str | None:
    """The split a ``houses/{split}.jsonl.gz`` file is, when ``meta.json`` beside it lists it."""
    meta = path.parent / "meta.json"
    name = path.name.split(".")[0]
    if not meta.is_file():
        return None
    try:
        splits = json.loads(meta.read_text()).get("splits", {})
    except (OSError, ValueError):
        return None
    return name if name in splits else None


def dataset_training_houses(root: str, info: dict) -> TrainingHouses:
    """The content hashes of the houses of a dataset's training splits
    (:data:`TRAINING_SPLIT`), from each house file info.json names
    (:func:`datagen.dataset.split_house_file`: the dataset's copy) where it is at hand (the
    file whose sha256 info.json records); none when no file is."""
    hashes: set[str] = set()
    files = []
    for split, entry in sorted(info.get("splits", {}).items()):
        houses = entry.get("houses") if isinstance(entry, dict) else None
        if not (split == TRAINING_SPLIT or split.startswith(f"{TRAINING_SPLIT}-")) \
                or not isinstance(houses, dict):
            continue
        if not isinstance(houses.get("path"), str):
            continue
        path = str(split_house_file(root, houses))
        if path in files or not Path(path).is_file() \
                or sha256_file(Path(path)) != houses.get("sha256"):
            continue
        files.append(path)
        hashes.update(file_content_hashes(path).values())
    return TrainingHouses(hashes=hashes, source=f"the houses of --dataset {root}'s training "
                          f"splits ({', '.join(files)})")


def scan_houses(path: str, option: str = "--houses") -> HouseFile:
    """:meth:`datagen.episodes.HouseFile.scan` of ``path``, its HouseError said of ``option``."""
    try:
        return HouseFile.scan(path)
    except HouseError as e:
        raise EvalInputError(f"{option} {e}") from None


def load_eval_houses(path: str, train: TrainingHouses, option: str = "--houses") -> dict:
    """Position -> HouseRecord of every house in the file; refuses training houses: a file
    or a house generated for the train split, a house with a training house's content
    (whatever its id or metadata say) or, failing content hashes, its id (EvalInputError
    naming ``option``)."""
    hfile = scan_houses(path, option)
    records = hfile.read(list(range(len(hfile))))
    if file_split(Path(path)) == "train":
        raise EvalInputError(f"{option} {path}: this is the train split (meta.json); evaluate "
                             "on held-out houses, e.g. val.jsonl.gz or test.jsonl.gz")
    for pos, rec in records.items():
        if house_split(rec) == "train":
            raise EvalInputError(f"{option} {path}: house {pos} ({rec.house_id}) was generated "
                                 "for the train split; evaluate on held-out houses")
    if train.hashes:
        hashes = file_content_hashes(path)
        for pos in sorted(records):
            if hashes[hfile.lines[pos]] in train.hashes:
                raise EvalInputError(f"{option} {path}: house {pos} is one of {train.source}, "
                                     "whatever its id or metadata say; evaluate on held-out "
                                     "houses, e.g. val.jsonl.gz or test.jsonl.gz")
    seen = sorted({rec.house_id for rec in records.values()} & train.ids)
    if seen:
        raise EvalInputError(f"{option} {path}: {len(seen)} house(s) appear in the checkpoint's "
                             f"training data (e.g. {seen[0]}); evaluate on held-out houses")
    return records


def ensemble_info(path: str, first):
    """The PolicyInfo of an ``--ensemble`` checkpoint, checked against the ``--checkpoint``'s
    (``first``): the same goals, camera, agent and target-box input."""
    info = checkpoint_info(path, "--ensemble", releases=True)
    if list(info.goals) != list(first.goals):
        raise EvalInputError(f"--ensemble {path}: its goal vocabulary differs from "
                             "--checkpoint's; ensemble policies trained on the same goals")
    for key in ("camera", "agent"):
        mine, theirs = (i.dataset.get("info", {}).get(key) for i in (info, first))
        if mine != theirs:
            raise EvalInputError(f"--ensemble {path}: trained with {key} {mine}, --checkpoint "
                                 f"with {theirs}; ensemble policies trained with the same {key}")
    for key in ("target_box", "room_anchors"):
        if (info.config.get(key) or None) != (first.config.get(key) or None):
            raise EvalInputError(f"--ensemble {path}: {key}={info.config.get(key)} differs "
                                 f"from --checkpoint's; the members must take the same inputs")
    return info


def load_detector(path: str, info):
    """The ``--detector`` of a checkpoint trained with the target's box (EvalInputError if
    the file is no detector, the policy takes no box or the detector lacks its targets or its
    RoomNav anchors)."""
    if not info.config.get("target_box"):
        raise EvalInputError(f"--detector {path}: the checkpoint's policy takes no target box "
                             "(train it with --data.target_box true), so drop --detector")
    return read_detector(path, info.goals, info.config.get("room_anchors") or {},
                         "the policy's training data")


def read_detector(path: str, goals, room_anchors: dict, fit_on: str):
    """A ColourDetector file with a colour for every ObjectNav target in ``goals`` and every
    RoomNav anchor (``room_anchors``: room type -> a type or several; EvalInputError
    otherwise)."""
    detector = read_colour_detector(path)
    targets = {g.split("/", 1)[1] for g in goals if g.startswith("objectnav/")}
    for anchors in room_anchors.values():
        targets |= {anchors} if isinstance(anchors, str) else set(anchors)
    missing = sorted(targets - set(detector.centre))
    if missing:
        raise EvalInputError(f"--detector {path}: has no colour for {', '.join(missing)}; fit "
                             f"it on {fit_on} with `spoc-detector fit` (its --types for the "
                             "RoomNav anchors)")
    return detector


def read_colour_detector(path: str, option: str = "--detector") -> ColourDetector:
    """The colour detector saved at ``path`` (EvalInputError naming ``option`` if it is
    none)."""
    try:
        return ColourDetector.load(path)
    except ValueError as e:
        raise EvalInputError(f"{option} {e}") from None


def check_explorer(path: str, goals, detector, option: str = "--mapper.explorer") -> None:
    """EvalInputError (naming ``option``) unless ``path`` is an explorer (``spoc-explorer
    fit``) that knows every goal evaluated and whose context types ``detector`` has colours
    for."""
    explorer = read_explorer(path, option)
    missing = sorted(set(goals) - set(explorer.goals))
    if missing:
        raise EvalInputError(f"{option} {path}: field 'goals' lacks {', '.join(missing)}; fit "
                             "it on data collected with this evaluation's goals")
    missing = sorted(set(explorer.context) - set(detector.centre))
    if missing:
        raise EvalInputError(f"{option} {path}: its context types {', '.join(missing)} have no "
                             "colour in --detector; give the detector it was fitted with")


def read_explorer(path: str, option: str = "--mapper.explorer") -> Explorer:
    """The explorer saved at ``path`` (EvalInputError naming ``option`` if it is none)."""
    try:
        return Explorer.load(path)
    except ValueError as e:
        raise EvalInputError(f"{option} {e}") from None


def check_backend(settings) -> None:
    """Start and close one environment of a non-embedded backend, so that a simulator that
    cannot run here fails once, with its own message, before any work."""
    if settings.backend == "embedded":
        return
    try:
        make_env(settings.backend, camera=settings.camera, agent=settings.agent).close()
    except Exception as e:  # noqa: BLE001 - the backend's message says what to do
        raise EvalInputError(f"--backend {settings.backend}: {' '.join(str(e).split())}"
                             ) from None
