"""Policy checkpoints: what a ``spoc-train`` checkpoint holds besides the weights, and loading
a policy from one without Lightning.

A checkpoint carries a plain-dict record under :data:`CHECKPOINT_KEY` (policy config, action
and goal vocabularies, resolution, training houses, the dataset's info.json), written by
:class:`training.module.PolicyModule`, so that :func:`load_policy` needs the path alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from agents.policy import LSTMPolicy, make_policy

CHECKPOINT_KEY = "spoc_policy"
"""Key of the plain-dict policy record inside a training checkpoint."""



@dataclass
class PolicyInfo:
    """What a checkpoint says about the data its policy was trained on."""

    config: dict
    """The ``PolicyConfig`` fields."""
    actions: list[str]
    """Action vocabulary; logits index into it."""
    goals: list[str]
    """Goal vocabulary ("task/target"); ``obs["goal"]`` indexes into it."""
    image_size: tuple[int, int]
    """Training resolution (H, W)."""
    train_house_ids: list[str] = field(default_factory=list)
    """Houses of the training split: evaluation must not use them."""
    train_house_hashes: list[str] = field(default_factory=list)
    """:func:`sim.house.house_content_hash` of every house in the training splits' house
    files (empty in checkpoints written before it): evaluation refuses a house with one of
    them, whatever its id or metadata say."""
    dataset: dict = field(default_factory=dict)
    """The training dataset's info.json content and root path (``root``)."""
    trained_steps: int | None = None
    """Optimizer steps the checkpoint was trained for (Lightning's ``global_step``)."""

    def goal_index(self, task: str, target: str) -> int:
        """Index of ``task/target`` in the goal vocabulary."""
        goal = f"{task}/{target}"
        if goal not in self.goals:
            raise KeyError(f"goal {goal!r} is not in the policy's goal vocabulary")
        return self.goals.index(goal)


def policy_record(policy: LSTMPolicy, spec: dict) -> dict:
    """The plain-dict record a checkpoint stores so ``load_policy`` needs nothing else."""
    return {
        "config": asdict(policy.cfg),
        "actions": list(spec["actions"]),
        "goals": list(spec["goals"]),
        "image_size": list(policy.cfg.image_size),
        "train_house_ids": list(spec.get("train_house_ids", [])),
        "train_house_hashes": list(spec.get("train_house_hashes", [])),
        "dataset": dict(spec.get("dataset", {})),
    }


def policy_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The policy's state dict inside a training checkpoint (its ``policy.`` entries)."""
    return {k.removeprefix("policy."): v for k, v in ckpt["state_dict"].items()
            if k.startswith("policy.")}


def load_policy(ckpt_path: str | Path, map_location: str | torch.device = "cpu"
                ) -> tuple[nn.Module, PolicyInfo]:
    """Rebuild the policy of a training checkpoint (no Lightning needed); returns it in eval mode.

    The checkpoint is a trusted file written by ``spoc-train`` (it is unpickled in full).
    """
    ckpt = torch.load(str(ckpt_path), map_location=map_location, weights_only=False)
    if CHECKPOINT_KEY not in ckpt:
        raise ValueError(f"{ckpt_path}: no '{CHECKPOINT_KEY}' record; it was not written by "
                         "spoc-train (training.module.PolicyModule)")
    record = ckpt[CHECKPOINT_KEY]
    record["config"].setdefault("blocked_input", False)  # checkpoints from before the options
    record["config"].setdefault("goal_film", False)
    record["config"].setdefault("aux_heads", False)
    record["config"].setdefault("room_types", 0)
    record["config"].setdefault("room_anchors", {})
    policy = make_policy(record["config"])
    policy.load_state_dict(policy_state(ckpt))
    info = PolicyInfo(config=record["config"], actions=record["actions"], goals=record["goals"],
                      image_size=tuple(record["image_size"]),
                      train_house_ids=record["train_house_ids"],
                      train_house_hashes=list(record.get("train_house_hashes", [])),
                      dataset=record["dataset"],
                      trained_steps=ckpt.get("global_step"))
    return policy.eval(), info


def write_untrained_checkpoint(path, policy_config: dict, dataset_info: dict,
                               train_house_ids: list[str] = (), seed: int = 0,
                               train_house_hashes: list[str] = ()):
    """Save a freshly initialised policy the way ``spoc-train`` saves a trained one, so it
    loads with ``agents.checkpoint.load_policy`` (no Lightning needed). It is the untrained
    reference of the harness tests and the workload of ``scripts/bench/bench_eval.py``.

    ``dataset_info``: the training dataset's info.json content (``actions``, ``goals``,
    ``camera``, ``agent``, ``version``, ...). ``train_house_ids`` and ``train_house_hashes``
    (:func:`sim.house.house_content_hash`) stand for the houses it was "trained" on.
    """
    torch.manual_seed(seed)
    cfg = {**policy_config, "num_actions": len(dataset_info["actions"]),
           "num_goals": len(dataset_info["goals"])}
    policy = make_policy(cfg)
    spec = {"actions": dataset_info["actions"], "goals": dataset_info["goals"],
            "train_house_ids": list(train_house_ids),
            "train_house_hashes": list(train_house_hashes),
            "dataset": {"root": "<untrained>", "info": dataset_info}}
    torch.save({"state_dict": {f"policy.{k}": v for k, v in policy.state_dict().items()},
                CHECKPOINT_KEY: policy_record(policy, spec), "global_step": 0}, str(path))
    return path
