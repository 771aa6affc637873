"""Reference policies evaluated through the same harness as a trained checkpoint.

They follow the policy contract of :mod:`training.policy` (``reset(batch_size)``,
``act(obs) -> LongTensor (B,)``) and read the extra keys the harness puts in every ``obs``:

- ``"seed"``: LongTensor (B,), the seed of each slot's current episode;
- ``"collided"``: BoolTensor (B,), True when the slot's previous action was a blocked move;
- ``"expert"``: LongTensor (B,), the oracle's expert action at each slot's current state,
  present only for policies with ``uses_expert = True``.

Baselines:

- ``oracle``: the shortest-path expert's action (privileged). It must score 100% success and
  SPL 1.0; anything less is a bug in the harness, the oracle or the success test.
- ``random``: uniform over the whole action vocabulary, ``end`` included (the usual random
  agent of Anderson et al. 2018 and ProcTHOR), seeded per episode so that results do not
  depend on batching or on the number of workers.
- ``forward``: ``move_ahead`` until a move is blocked, then ``end`` (it never turns). It
  succeeds only where running straight ahead into an obstacle happens to stop at a goal.
- ``mapper``: the classical modular agent of :mod:`eval.mapper` (an occupancy map from depth
  and odometry, frontier exploration, the colour detector; no learning). It reads
  ``obs["depth"]`` (``uses_depth = True``), which the harness adds for such policies.
"""

from __future__ import annotations

import numpy as np
import torch

from sim.lattice import END, MOVE_AHEAD


class OraclePolicy:
    """The shortest-path expert: returns ``obs["expert"]``."""

    uses_expert = True

    def reset(self, batch_size: int) -> None:
        pass

    def act(self, obs: dict) -> torch.Tensor:
        return obs["expert"].long().clone()  # (B,)


class RandomPolicy:
    """Uniform actions; slot ``b`` draws from a generator seeded by ``(seed, episode seed)``."""

    uses_expert = False

    def __init__(self, num_actions: int, seed: int = 0):
        self.num_actions, self.seed = num_actions, seed
        self._rngs: list[np.random.Generator | None] = []

    def reset(self, batch_size: int) -> None:
        self._rngs = [None] * batch_size

    def act(self, obs: dict) -> torch.Tensor:
        first, seeds = obs["first"].tolist(), obs["seed"].tolist()
        actions = []
        for b, (is_first, episode_seed) in enumerate(zip(first, seeds)):
            if is_first or self._rngs[b] is None:
                self._rngs[b] = np.random.default_rng([self.seed, int(episode_seed)])
            actions.append(int(self._rngs[b].integers(self.num_actions)))
        return torch.tensor(actions, dtype=torch.long)  # (B,)


class ForwardPolicy:
    """``move_ahead`` until blocked, then ``end``."""

    uses_expert = False

    def reset(self, batch_size: int) -> None:
        pass

    def act(self, obs: dict) -> torch.Tensor:
        collided = obs["collided"].bool()  # (B,)
        return torch.where(collided, END, MOVE_AHEAD).long()  # (B,)


BASELINES = ("oracle", "random", "forward", "mapper")


def make_baseline(name: str, num_actions: int, seed: int = 0, settings=None):
    """A baseline policy by name: ``oracle``, ``random``, ``forward`` or ``mapper`` (the map
    agent of :mod:`eval.mapper`, built from the rollout ``settings``: camera, agent, tasks,
    goals, detector and its ``MapperConfig``)."""

    def mapper():
        from eval.mapper import MapperConfig, MapPolicy

        if settings is None or settings.detector is None:
            raise ValueError("the mapper baseline needs rollout settings with a detector")
        return MapPolicy(settings.camera, settings.agent, settings.tasks, settings.goals,
                         settings.detector, settings.mapper or MapperConfig())

    factories = {
        "oracle": OraclePolicy,
        "random": lambda: RandomPolicy(num_actions, seed),
        "forward": ForwardPolicy,
        "mapper": mapper,
    }
    if name not in factories:
        raise ValueError(f"--policy {name!r} is unknown; use one of {', '.join(BASELINES)}")
    return factories[name]()


def write_untrained_checkpoint(path, policy_config: dict, dataset_info: dict,
                               train_house_ids: list[str] = (), seed: int = 0):
    """Save a freshly initialised policy the way ``spoc-train`` saves a trained one, so it
    loads with ``training.policy.load_policy`` (no Lightning needed). It is the untrained
    reference of the harness tests and the workload of ``scripts/bench_eval.py``.

    ``dataset_info``: the training dataset's info.json content (``actions``, ``goals``,
    ``camera``, ``agent``, ``version``, ...).
    """
    from training.policy import CHECKPOINT_KEY, make_policy, policy_record

    torch.manual_seed(seed)
    cfg = {**policy_config, "num_actions": len(dataset_info["actions"]),
           "num_goals": len(dataset_info["goals"])}
    policy = make_policy(cfg)
    spec = {"actions": dataset_info["actions"], "goals": dataset_info["goals"],
            "train_house_ids": list(train_house_ids),
            "dataset": {"root": "<untrained>", "info": dataset_info}}
    torch.save({"state_dict": {f"policy.{k}": v for k, v in policy.state_dict().items()},
                CHECKPOINT_KEY: policy_record(policy, spec), "global_step": 0}, str(path))
    return path
