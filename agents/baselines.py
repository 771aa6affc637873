"""Reference policies evaluated through the same harness as a trained checkpoint.

They follow the policy contract of :mod:`agents.policy` (``reset(batch_size)``,
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
The map agent (:mod:`agents.map_agent`, ``--policy mapper``) is the fourth reference: it
reads ``obs["depth"]`` (``uses_depth = True``), which the harness adds for such policies, and
is built from the rollout settings by :func:`eval.rollout.map_agent`.
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


BASELINES = ("oracle", "random", "forward")


def make_baseline(name: str, num_actions: int, seed: int = 0):
    """A baseline policy by name: ``oracle``, ``random`` or ``forward``."""
    factories = {
        "oracle": OraclePolicy,
        "random": lambda: RandomPolicy(num_actions, seed),
        "forward": ForwardPolicy,
    }
    if name not in factories:
        raise ValueError(f"--policy {name!r} is unknown; use one of {', '.join(BASELINES)}")
    return factories[name]()
