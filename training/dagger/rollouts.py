"""DAgger's rollouts: the beta-mixture of expert and policy on training houses, every visited
state labelled by the oracle (:func:`mixed_rollouts`), and the BC arm's fresh expert episodes
(:func:`expert_episodes`)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from datagen.episodes import Episode, episode_labels, render_frames
from datagen.oracle import ExpertPath
from eval.episode import EpisodeRun, HouseContexts, RolloutSettings
from eval.metrics import EpisodeResult
from eval.rollout import action_rng, batch_obs, lockstep, policy_actions, wants_boxes
from eval.slots import EpisodeSlot
from sim.lattice import END


def round_seed(seed: int, round_: int, stream: int = 0) -> int:
    """A 32-bit seed for one round's episode set (``stream`` 1: the BC arm's)."""
    return int(np.random.SeedSequence([seed, round_, stream]).generate_state(1)[0])


def coin_rng(seed: int, round_: int, slot: int) -> np.random.Generator:
    """The beta coins of one episode (independent of batching)."""
    return np.random.default_rng([seed, round_, slot])


@dataclass
class LabelledEpisode:
    """An episode ready for a shard: its meta source, T states/labels, T frames, success."""

    episode: Episode
    """``path.states``: visited states; ``path.actions``: labels; ``path.metres``: shortest."""
    frames: np.ndarray | None
    """(T, H, W, 3) uint8: what the agent saw at each stored state (None where the episode
    goes to a pose-only dataset and nothing rendered them)."""
    success: bool
    executed: list[int] = field(default_factory=list)
    """The actions actually taken, stored as ``executed.npy``: the loader feeds them as the
    previous-action input, as the policy sees its own executed actions at rollout."""
    labels: tuple[np.ndarray, ...] | None = None
    """The per-step labels of :func:`datagen.episodes.episode_labels` at the stored states
    (goal distance, target pixels, target box), as expert samples carry them."""


class Trace:
    """What one mixed rollout visits: states, frames and the oracle's labels there."""

    def __init__(self, run: EpisodeRun, coins: np.random.Generator):
        self.run, self.coins = run, coins
        self.states: list[tuple[int, int, int]] = []
        self.frames: list[np.ndarray] = []
        self.labels: list[int] = []
        self.executed: list[int] = []

    def choose(self, proposed: int, beta: float) -> int:
        """Record the current state and its label; the action to execute (expert w.p. beta)."""
        label = self.run.expert_action()
        self.states.append(self.run.state)
        self.frames.append(self.run.rgb)
        self.labels.append(label)
        action = label if self.coins.random() < beta else proposed
        self.executed.append(action)
        return action

    def finish(self, round_: int, index: int, success: bool) -> LabelledEpisode:
        ep, ctx = self.run.episode, self.run.ctx
        path = ExpertPath(list(self.states), list(self.labels), ep.path.metres)
        out = Episode(f"dagger-{round_}_{index:06d}", ep.house_id, ep.house_index, ep.task,
                      ep.target, ep.seed, path, ep.shortest_steps, source=f"dagger-{round_}",
                      poses=[ctx.pose(s) for s in self.states])
        return LabelledEpisode(out, np.stack(self.frames), bool(success), list(self.executed),
                               episode_labels(ctx, out))


def _feed_back(policy, executed: list[int]) -> None:
    """Make the policy's previous-action input the action that was executed (expert or own):
    ``LSTMPolicy.act`` records its own proposal, which the coin may have overruled."""
    if hasattr(policy, "executed"):
        policy.executed(executed)


def mixed_rollouts(policy, houses: dict, slots: list[EpisodeSlot], settings: RolloutSettings,
                   beta: float, round_: int, seed: int, sample: bool = False,
                   end_threshold: float | None = None,
                   end_threshold_by_task: dict[str, float] | None = None
                   ) -> tuple[list[LabelledEpisode], Counter]:
    """Roll out the beta-mixture on ``slots`` (in lockstep batches); every visited state is
    labelled by the oracle. Returns the episodes in slot order and the skipped slots' reasons.
    The policy's box comes from ``settings.detector`` when it has one."""
    traces: dict[int, Trace] = {}
    done: dict[int, LabelledEpisode] = {}
    skipped: Counter = Counter()

    def started(run: EpisodeRun) -> None:
        if sample:
            run.rng = action_rng(seed, run.slot.index, round_)
        traces[run.slot.index] = Trace(run, coin_rng(seed, round_, run.slot.index))

    def act(runs: list[EpisodeRun | None]) -> list[int]:
        obs = batch_obs(runs, settings.camera, expert=False, boxes=wants_boxes(policy))
        proposed = policy_actions(policy, obs, runs, end_threshold, end_threshold_by_task)
        executed = [traces[r.slot.index].choose(int(p), beta) if r else END
                    for r, p in zip(runs, proposed)]
        _feed_back(policy, executed)
        return executed

    def finished(run: EpisodeRun, result: EpisodeResult) -> None:
        index = run.slot.index
        done[index] = traces.pop(index).finish(round_, index, result.success)

    policy.reset(settings.envs_per_worker)
    lockstep(houses, slots, settings, act, finished,
             lambda slot, reason: skipped.update([reason]), started)
    return [done[k] for k in sorted(done)], skipped


def expert_episodes(houses: dict, slots: list[EpisodeSlot], settings: RolloutSettings,
                    round_: int, labels: int, frames: bool = True) -> list[LabelledEpisode]:
    """Fresh expert episodes (the BC arm), in slot order, until they hold ``labels`` labels;
    their frames rendered unless ``frames`` is False (a pose-only dataset's)."""
    contexts, out, total = HouseContexts(houses, settings), [], 0
    for slot in slots:
        if total >= labels:
            break
        ep = contexts.sample(slot)
        if isinstance(ep, str) or ep.goal not in settings.goals:
            continue
        ep = dataclasses.replace(ep, episode_id=f"bc-{round_}_{slot.index:06d}")
        ctx = contexts.get(slot.house)
        out.append(LabelledEpisode(ep, render_frames(ctx, ep.path.states) if frames else None,
                                   True, list(ep.path.actions), episode_labels(ctx, ep)))
        total += len(ep.path.actions)
    return out
