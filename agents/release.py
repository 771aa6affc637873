"""Released policies: a folder that holds a trained policy as it was published, loaded without
unpickling code, beside the settings it was measured with (the format: docs/models.md).

    weights.pt      the policy's state dict, a plain dict of tensors (torch.save), read with
                    torch.load(weights_only=True): no pickled code runs
    policy.json     the checkpoint's record (agents.checkpoint.policy_record: config,
                    vocabularies, resolution, training houses, dataset) and the weights' sha256
    deploy.json     the act-time settings its evaluation was measured with (DeploySettings)
    detector.json   the colour detector, when deploy.json names it
    model_card.md   what it is, its data, recipe, training time, evaluation and limits

:func:`write_release` writes one from a policy (under a temporary name, then renamed);
:func:`load_release` rebuilds the policy and its :class:`agents.checkpoint.PolicyInfo`, and
:func:`load_any` takes a release folder or a ``spoc-train`` checkpoint. Every problem with a
release is one :class:`common.errors.InputError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from agents.checkpoint import PolicyInfo, load_policy
from agents.policy import make_policy
from common.errors import InputError
from common.files import json_bytes, sha256_file, temp_path, write_atomic

FORMAT = "spoc-release/1"
"""The ``format`` field of policy.json and deploy.json; a reader refuses any other."""
WEIGHTS = "weights.pt"
POLICY = "policy.json"
DEPLOY = "deploy.json"
DETECTOR = "detector.json"
CARD = "model_card.md"
MAX_MB = 20.0
"""The largest release :func:`write_release` writes by default, in MB (10^6 bytes)."""
EXPORT_HINT = "export it again with `spoc-eval export` (docs/models.md)"


@dataclass(frozen=True)
class DeploySettings:
    """The act-time settings of a release: the ``spoc-eval run`` options of the same names
    that its evaluation was measured with, which a run of the release takes by default."""

    end_threshold: float | None = None
    """Take ``end`` only at this probability or more (None: argmax)."""
    end_threshold_by_task: dict[str, float] | None = None
    """A threshold per task in place of ``end_threshold`` (None: none)."""
    sample: bool = False
    """Draw actions from the softmax instead of argmax."""
    detector: str | None = None
    """The detector's file name in the release folder (None: the simulator's box, for a
    policy that takes one)."""

    def to_json(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data, where: str) -> DeploySettings:
        """The settings of a deploy.json's content (InputError naming ``where`` and the field)."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: not a JSON object; {EXPORT_HINT}")
        check_format(data, where)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"format"})
        if unknown:
            raise InputError(f"{where}: field {unknown[0]!r} is unknown to this version, so the "
                             "release cannot run as it was measured; upgrade spoc-pipeline")
        threshold = data.get("end_threshold")
        if threshold is not None and not _is_number(threshold):
            raise InputError(f"{where}: field 'end_threshold' is {threshold!r}; give a number "
                             f"or null, or {EXPORT_HINT}")
        by_task = data.get("end_threshold_by_task")
        if by_task is not None and not (isinstance(by_task, dict) and all(
                isinstance(k, str) and _is_number(v) for k, v in by_task.items())):
            raise InputError(f"{where}: field 'end_threshold_by_task' is {by_task!r}; give "
                             f"{{task: threshold}} or null, or {EXPORT_HINT}")
        sample = data.get("sample", False)
        if not isinstance(sample, bool):
            raise InputError(f"{where}: field 'sample' is {sample!r}; give true or false")
        detector = data.get("detector")
        if detector is not None and (not isinstance(detector, str) or not detector
                                     or Path(detector).name != detector):
            raise InputError(f"{where}: field 'detector' is {detector!r}; give the file name of "
                             "a detector inside the release folder, or null")
        return cls(None if threshold is None else float(threshold),
                   None if by_task is None else {k: float(v) for k, v in by_task.items()},
                   sample, detector)


@dataclass(frozen=True)
class Release:
    """A release folder as read: its policy record, its settings and its files."""

    root: Path
    info: PolicyInfo
    deploy: DeploySettings
    weights_sha256: str

    @property
    def detector_path(self) -> Path | None:
        """The detector file deploy.json names, or None."""
        return None if self.deploy.detector is None else self.root / self.deploy.detector


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_format(data: dict, where: str) -> None:
    """InputError unless ``data['format']`` is :data:`FORMAT`."""
    if data.get("format") != FORMAT:
        raise InputError(f"{where}: field 'format' is {data.get('format')!r}, this version reads "
                         f"{FORMAT!r}; {EXPORT_HINT}")


def is_release(path: str | Path) -> bool:
    """Whether ``path`` names a release (a folder) rather than a checkpoint file."""
    return Path(path).is_dir()


def read_json(path: Path):
    """A JSON file's content (InputError naming the file if it is missing or not JSON)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; a release folder holds {WEIGHTS}, {POLICY} "
                         f"and {DEPLOY}; {EXPORT_HINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not readable JSON ({' '.join(str(e).split())}); "
                         f"{EXPORT_HINT}") from None


# ---------------------------------------------------------------------------------- reading


RECORD_FIELDS = {"config": dict, "actions": list, "goals": list, "image_size": list,
                 "train_house_ids": list, "train_house_hashes": list, "dataset": dict}
"""policy.json's fields from the checkpoint's record and the JSON type of each."""


def policy_info(data, where: str) -> tuple[PolicyInfo, str]:
    """(the PolicyInfo, the weights' sha256) of a policy.json's content (InputError naming
    ``where`` and the field)."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a JSON object; {EXPORT_HINT}")
    check_format(data, where)
    for name, kind in RECORD_FIELDS.items():
        if not isinstance(data.get(name), kind):
            raise InputError(f"{where}: field {name!r} is missing or not a JSON "
                             f"{'object' if kind is dict else 'list'}; {EXPORT_HINT}")
    for name in ("actions", "goals", "train_house_ids", "train_house_hashes"):
        if not all(isinstance(v, str) for v in data[name]):
            raise InputError(f"{where}: field {name!r} must be a list of strings; {EXPORT_HINT}")
    if not isinstance(data["dataset"].get("info", {}), dict):
        raise InputError(f"{where}: field 'dataset.info' is not a JSON object; {EXPORT_HINT}")
    if not isinstance(data["config"].get("room_anchors", {}), dict):
        raise InputError(f"{where}: field 'config.room_anchors' is not a JSON object "
                         f"(room type -> object type); {EXPORT_HINT}")
    size = data["image_size"]
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise InputError(f"{where}: field 'image_size' is {size}; give [H, W]")
    steps = data.get("trained_steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)):
        raise InputError(f"{where}: field 'trained_steps' is {steps!r}; give an integer or null")
    sha = data.get("weights_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise InputError(f"{where}: field 'weights_sha256' is missing or not a sha256; "
                         f"{EXPORT_HINT}")
    info = PolicyInfo(config=data["config"], actions=data["actions"], goals=data["goals"],
                      image_size=tuple(size), train_house_ids=data["train_house_ids"],
                      train_house_hashes=data["train_house_hashes"], dataset=data["dataset"],
                      trained_steps=steps)
    return info, sha


def read_release(root: str | Path) -> Release:
    """The record and settings of a release folder, checked (not its weights:
    :func:`load_release` reads them)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a release folder; {EXPORT_HINT}")
    info, sha = policy_info(read_json(root / POLICY), str(root / POLICY))
    deploy = DeploySettings.from_json(read_json(root / DEPLOY), str(root / DEPLOY))
    if deploy.detector is not None and not (root / deploy.detector).is_file():
        raise InputError(f"{root / DEPLOY}: field 'detector' names {deploy.detector}, which is "
                         f"not in {root}; {EXPORT_HINT}")
    return Release(root, info, deploy, sha)


def read_weights(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, read without unpickling code (``weights_only=True``), after
    checking its sha256 (InputError naming the file and what is wrong)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file; {EXPORT_HINT}")
    if sha256_file(path) != sha256:
        raise InputError(f"{path}: its sha256 differs from {POLICY}'s field 'weights_sha256' "
                         f"(a damaged file, or one from another export); {EXPORT_HINT}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever torch says, the file cannot be used
        reason = " ".join(str(e).split())[:200]
        raise InputError(f"{path}: not a plain dict of tensors that loads without unpickling "
                         f"code ({type(e).__name__}: {reason}); {EXPORT_HINT}") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a dict of tensors; "
                         f"{EXPORT_HINT}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(f"{path}: entry {key!r} is a {type(value).__name__}, not a named "
                             f"tensor; {EXPORT_HINT}")
    return state


def check_weights(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                  where: str) -> None:
    """InputError naming the first tensor of ``state`` that is missing, extra, or of another
    shape or dtype than the policy's (``expected``: its state dict)."""
    for key, want in expected.items():
        if key not in state:
            raise InputError(f"{where}: tensor {key!r} is missing ({POLICY}'s config has it); "
                             f"{EXPORT_HINT}")
        got = state[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise InputError(f"{where}: tensor {key!r} is {got.dtype} {tuple(got.shape)}, "
                             f"{POLICY}'s config gives {want.dtype} {tuple(want.shape)}: the "
                             f"weights and {POLICY} are of different policies; {EXPORT_HINT}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise InputError(f"{where}: tensor {extra[0]!r} is not in the policy {POLICY}'s config "
                         f"builds; {EXPORT_HINT}")


def build_policy(info: PolicyInfo, where: str) -> nn.Module:
    """The untrained policy of a record's config (InputError naming ``where`` if it is bad)."""
    try:
        return make_policy(info.config)
    except (InputError, TypeError, ValueError) as e:
        raise InputError(f"{where}: field 'config' builds no policy "
                         f"({' '.join(str(e).split())}); {EXPORT_HINT}") from None


def load_release(root: str | Path, map_location: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, PolicyInfo]:
    """The policy of a release folder (in eval mode) and its PolicyInfo; its weights are read
    with ``torch.load(weights_only=True)``, never unpickled in full."""
    release = read_release(root)
    policy = build_policy(release.info, str(release.root / POLICY))
    state = read_weights(release.root / WEIGHTS, release.weights_sha256)
    check_weights(state, policy.state_dict(), str(release.root / WEIGHTS))
    policy.load_state_dict(state)
    return policy.to(map_location).eval(), release.info


def load_any(path: str | Path, map_location: str | torch.device = "cpu"
             ) -> tuple[nn.Module, PolicyInfo]:
    """The policy and PolicyInfo of a release folder (:func:`load_release`) or of a
    ``spoc-train`` checkpoint file (:func:`agents.checkpoint.load_policy`, a trusted file)."""
    if is_release(path):
        return load_release(path, map_location)
    return load_policy(path, map_location)


# ---------------------------------------------------------------------------------- writing


def policy_json(info: PolicyInfo, weights_sha256: str) -> dict:
    """policy.json's content: the checkpoint's record, its training steps and the weights'
    sha256."""
    return {"format": FORMAT, "config": info.config, "actions": list(info.actions),
            "goals": list(info.goals), "image_size": list(info.image_size),
            "train_house_ids": list(info.train_house_ids),
            "train_house_hashes": list(info.train_house_hashes),
            "dataset": info.dataset, "trained_steps": info.trained_steps,
            "weights_sha256": weights_sha256}


def folder_bytes(root: Path) -> int:
    """The bytes of the files in ``root`` (not below it)."""
    return sum(p.stat().st_size for p in root.iterdir() if p.is_file())


def write_release(out: str | Path, policy: nn.Module, info: PolicyInfo,
                  deploy: DeploySettings, card: str, detector: str | Path | None = None,
                  force: bool = False, max_mb: float = MAX_MB) -> Path:
    """Write a release folder ``out`` of ``policy`` (its state dict) and ``info``, with
    ``deploy``'s settings, the detector file ``detector`` (copied as deploy.detector) and the
    model card text ``card``. It is written under a temporary name, read back with
    :func:`load_release`, checked against ``max_mb`` and then renamed: ``out`` is the old
    folder or the whole new one, never part of one. An existing ``out`` is replaced only with
    ``force``. Returns ``out``."""
    out = Path(out)
    if out.exists() and not force:
        raise InputError(f"--out {out}: already exists; give --force true to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a folder name")
    if (detector is None) != (deploy.detector is None):
        raise ValueError("give the detector file with deploy.detector, or neither")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().clone().contiguous() for k, v in policy.state_dict().items()}
        torch.save(state, str(tmp / WEIGHTS))
        record = policy_json(info, sha256_file(tmp / WEIGHTS))  # in the checkpoint's order
        write_atomic(tmp / POLICY, (json.dumps(record, indent=2) + "\n").encode())
        write_atomic(tmp / DEPLOY, json_bytes(deploy.to_json()))
        if detector is not None:
            shutil.copyfile(detector, tmp / deploy.detector)
        write_atomic(tmp / CARD, card.encode())
        size = folder_bytes(tmp)
        if size > max_mb * 1e6:
            raise InputError(f"--out {out}: the release would be {size / 1e6:.1f} MB, over "
                             f"--max_mb {max_mb:g}; a release is for a policy one downloads in "
                             "seconds, so raise --max_mb only knowingly")
        loaded, _ = load_release(tmp)
        for key, value in loaded.state_dict().items():
            if not torch.equal(value, state[key]):
                raise RuntimeError(f"{WEIGHTS}: tensor {key!r} did not read back as written")
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _replace_folder(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    if not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f"{temp_path(out).name}-old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
