"""The navigation policy: a plain ``nn.Module`` (no Lightning), trained by
:mod:`training.module` and run by evaluation.

Frames -> CNN encoder -> per-frame feature; goal embedding; previous-action embedding;
LSTM; linear head over the action vocabulary.

* ``forward(batch)`` runs whole chunks for training (teacher forcing: the previous action at
  step t is the action executed at t-1, the blocked token where that was a ``move_ahead``
  that did not move, or the start token at an episode's first step).
* ``reset(batch_size)`` / ``act(obs)`` run step by step for batched rollouts, carrying the
  LSTM state and feeding back the policy's own previous action.

Both paths share the same weights and give the same logits for the same inputs.
:func:`agents.checkpoint.load_policy` rebuilds a policy from a training checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from itertools import repeat
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.frames import resize_frames
from common.errors import InputError
from sim.detect import BOX_FEATURES
from sim.lattice import MOVE_AHEAD


@dataclass
class PolicyConfig:
    """Architecture of the LSTM policy. Vocabulary sizes and resolution come from the dataset."""

    name: str = "lstm"
    """Policy family; see ``POLICIES``."""
    image_size: tuple[int, int] = (112, 192)
    """Training resolution (H, W); rollout frames are resized to it like the loader does.
    ``PolicyModule`` sets it from ``data.image_size``."""
    channels: tuple[int, ...] = (32, 64, 128, 128)
    """Output channels of the strided conv blocks of the frame encoder."""
    groups: int = 8
    """GroupNorm groups in each conv block."""
    pool_size: tuple[int, int] = (3, 4)
    """Spatial grid (h, w) the last feature map is pooled to before flattening."""
    feature_dim: int = 256
    """Per-frame visual feature size."""
    goal_dim: int = 64
    """Goal embedding size."""
    action_dim: int = 32
    """Previous-action embedding size."""
    hidden_dim: int = 256
    """LSTM hidden size."""
    num_layers: int = 1
    """LSTM layers."""
    goal_film: bool = False
    """Condition the frame encoder on the goal (FiLM, Perez et al. 2018): each conv block's
    output is scaled and shifted per channel by a linear map of the goal embedding (identity
    at initialisation), so the CNN can look for the target rather than summarise the frame
    the same way for every goal."""
    blocked_input: bool = True
    """Tell the policy when its last ``move_ahead`` was blocked (a previous-action token of
    its own): a blocked move leaves the frame unchanged, so the image alone cannot say so."""
    target_box: bool = False
    """Give the LSTM the simulator's box of the target in each frame (:mod:`sim.detect`:
    seen, corners, size), embedded by a small MLP: SPOC's "GT detection" input, which measures
    what navigation reaches once the target is seen. ``PolicyModule`` sets it from
    ``data.target_box``; rollouts pass ``obs["target_box"]``."""
    box_dim: int = 32
    """Box embedding size (with ``target_box``)."""
    room_anchors: dict[str, str] = field(default_factory=dict)
    """With ``target_box``, the object type whose box each RoomNav room type gets
    (:func:`datagen.tasks.box_target`); none by default. ``PolicyModule`` sets it from
    ``data.room_anchors``; rollouts box the same types."""
    aux_heads: bool = False
    """Two auxiliary heads for training (``forward_aux``; acting never uses them): whether
    the target is in view, a logit from each frame's (goal-conditioned) feature and the goal
    embedding, and the log metres to the goal from the LSTM state. ``PolicyModule`` turns
    them on when an auxiliary loss weight is set."""
    room_types: int = 0
    """An auxiliary head for training (``forward_aux``; acting never uses it) over this many
    room types: which type of room the agent stands in, from the LSTM state (0: none).
    ``PolicyModule`` sets it when ``model.aux_room_weight`` is set."""
    encoder_batch: int = 0
    """Run the frame encoder on at most this many frames per call (0: all in one call). The
    outputs are the same (GroupNorm works per frame); only the speed changes. On a CPU a
    convolution's cost per frame grows with the frames in one call, so a few dozen at a time
    train ~2x faster there (``scripts/bench/bench_train.py``); leave it at 0 on a GPU."""
    num_actions: int = 4
    """Size of the action vocabulary (``PolicyModule`` sets it from info.json)."""
    num_goals: int = 20
    """Size of the goal vocabulary (``PolicyModule`` sets it from info.json)."""

    def __post_init__(self):
        self.image_size = tuple(int(v) for v in self.image_size)
        self.channels = tuple(int(v) for v in self.channels)
        self.pool_size = tuple(int(v) for v in self.pool_size)
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise InputError(f"policy.image_size: {self.image_size} must be (H, W), each >= 8")
        if self.encoder_batch < 0:
            raise InputError(f"policy.encoder_batch: {self.encoder_batch} must be >= 0 "
                             "(0: every frame in one call)")
        if any(c % self.groups for c in self.channels):
            raise InputError(f"policy.channels: {self.channels} must be multiples of "
                             f"policy.groups={self.groups}")


def conv_block(c_in: int, c_out: int, kernel: int, groups: int) -> nn.Sequential:
    """A stride-2 convolution, GroupNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False),
        nn.GroupNorm(groups, c_out),
        nn.ReLU(inplace=True),
    )


def conv_stack(cfg: PolicyConfig) -> nn.Sequential:
    """The frame encoder's conv blocks: (N, 3, H, W) normalised frames -> (N, C, *conv_grid)."""
    blocks, c_in = [], 3
    for i, c_out in enumerate(cfg.channels):
        blocks.append(conv_block(c_in, c_out, 5 if i == 0 else 3, cfg.groups))
        c_in = c_out
    return nn.Sequential(*blocks)


def conv_grid(cfg: PolicyConfig) -> tuple[int, int]:
    """(h, w) of :func:`conv_stack`'s output at ``cfg.image_size``: each stride-2 block (odd
    kernel, padding kernel // 2) halves a side, rounding up."""
    h, w = cfg.image_size
    for _ in cfg.channels:
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def normalise_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float32, centred and scaled as the encoder expects."""
    return frames.float().div_(255.0).sub_(0.5).div_(0.25)


class FrameEncoder(nn.Module):
    """uint8 frames (N, 3, H, W) -> features (N, D): strided convs (optionally FiLM-conditioned
    on a goal embedding), pooling to a grid, linear."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.convs = conv_stack(cfg)
        c_in = cfg.channels[-1]
        self.film = None
        if cfg.goal_film:
            self.film = nn.ModuleList(nn.Linear(cfg.goal_dim, 2 * c) for c in cfg.channels)
            for layer in self.film:  # identity at initialisation
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.reduce = nn.Conv2d(c_in, 32, 1)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pool_size)
        grid = cfg.pool_size[0] * cfg.pool_size[1]
        self.proj = nn.Sequential(nn.Linear(32 * grid, cfg.feature_dim), nn.ReLU(inplace=True))
        self.batch = cfg.encoder_batch

    def forward(self, frames: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        """frames (N, 3, H, W) uint8, goal (N, G) embeddings (needed with FiLM) -> (N, D),
        ``encoder_batch`` frames per call at most."""
        if not self.batch or len(frames) <= self.batch:
            return self._encode(frames, goal)
        goals = goal.split(self.batch) if goal is not None else repeat(None)
        return torch.cat([self._encode(f, g) for f, g in zip(frames.split(self.batch), goals)])

    def _encode(self, frames: torch.Tensor, goal: torch.Tensor | None) -> torch.Tensor:
        x = normalise_frames(frames)  # (N, 3, H, W)
        if self.film is None:
            x = self.convs(x)
        else:
            for block, film in zip(self.convs, self.film):
                scale, shift = film(goal)[:, :, None, None].chunk(2, dim=1)  # (N, C, 1, 1) each
                x = block(x) * (1 + scale) + shift
        x = self.pool(self.reduce(x))  # (N, 32, ph, pw)
        return self.proj(x.flatten(1))  # (N, D)


def previous_action_tokens(num_actions: int) -> tuple[int, int]:
    """Previous-action inputs beyond the action ids: (episode start, blocked ``move_ahead``).

    The blocked token marks a ``move_ahead`` that left the agent in place (the env's
    ``collided`` at rollout; the loader derives it from the stored poses).
    """
    return num_actions, num_actions + 1


class LSTMPolicy(nn.Module):
    """CNN + goal and previous-action embeddings + LSTM + linear action head."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.start_token, self.blocked_token = previous_action_tokens(cfg.num_actions)
        self.encoder = FrameEncoder(cfg)
        self.goal_embed = nn.Embedding(cfg.num_goals, cfg.goal_dim)
        self.action_embed = nn.Embedding(cfg.num_actions + 1 + cfg.blocked_input,
                                         cfg.action_dim)
        self.box_embed = None
        if cfg.target_box:
            self.box_embed = nn.Sequential(nn.Linear(BOX_FEATURES, 64), nn.ReLU(inplace=True),
                                           nn.Linear(64, cfg.box_dim), nn.ReLU(inplace=True))
        inputs = cfg.feature_dim + cfg.goal_dim + cfg.action_dim
        self.lstm = nn.LSTM(inputs + cfg.box_dim * cfg.target_box, cfg.hidden_dim,
                            num_layers=cfg.num_layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden_dim, cfg.num_actions)
        if cfg.aux_heads:
            self.visible_head = nn.Linear(cfg.feature_dim + cfg.goal_dim, 1)
            self.distance_head = nn.Linear(cfg.hidden_dim, 1)
        if cfg.room_types:
            self.room_head = nn.Linear(cfg.hidden_dim, cfg.room_types)
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None
        self._prev_action: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _inputs(self, frames: torch.Tensor, goals: torch.Tensor, prev_actions: torch.Tensor,
                boxes: torch.Tensor | None = None, steps: torch.Tensor | None = None
                ) -> torch.Tensor:
        """frames (B, L, 3, H, W) uint8, goals (B,), prev_actions (B, L), boxes (B, L, 6) (with
        ``target_box``) -> LSTM input (B, L, I): the frame feature (D), goal embedding (G),
        previous-action embedding and box embedding, concatenated.

        ``steps`` (N,), the flat indices of the unpadded steps, encodes only those frames (the
        others' features are zero): the same outputs at every unpadded step, since padding
        only follows a chunk's steps and GroupNorm works per frame."""
        b, l = frames.shape[:2]
        goal = self.goal_embed(goals)[:, None].expand(b, l, -1)  # (B, L, G)
        frames, film = frames.flatten(0, 1), goal.flatten(0, 1)  # (B*L, ...)
        if steps is not None:
            frames, film = frames.index_select(0, steps), film.index_select(0, steps)  # (N, ...)
        frames = resize_frames(frames, self.cfg.image_size)
        feats = self.encoder(frames, film if self.cfg.goal_film else None)  # (N or B*L, D)
        if steps is not None:
            feats = feats.new_zeros(b * l, feats.shape[-1]).index_copy(0, steps, feats)
        feats = feats.view(b, l, -1)  # (B, L, D)
        if not self.cfg.blocked_input:  # a blocked move is just the move it was
            prev_actions = prev_actions.masked_fill(prev_actions == self.blocked_token,
                                                    MOVE_AHEAD)
        prev = self.action_embed(prev_actions)  # (B, L, A')
        if self.box_embed is None:
            return torch.cat([feats, goal, prev], dim=-1)
        if boxes is None:
            raise ValueError("this policy takes the target's box (policy.target_box): the batch "
                             "needs target_box (data.target_box true; rollouts pass it)")
        return torch.cat([feats, goal, prev, self.box_embed(boxes.float())], dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, L, num_actions) for a batch of chunks.

        ``batch``: ``frames`` (B, L, 3, H, W) uint8, ``prev_actions`` (B, L) long (start token
        = num_actions at an episode's first step, num_actions + 1 after a blocked move),
        ``goals`` (B,) long, and with ``target_box`` ``target_box`` (B, L, 6) float; optional
        ``steps`` (N,) long, the unpadded steps, the only frames then encoded. Each chunk
        starts from a zero LSTM state (truncated BPTT).
        """
        return self.head(self._run(batch)[1])  # (B, L, A)

    def _run(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM inputs (B, L, I) and outputs (B, L, hidden) of a batch of chunks."""
        x = self._inputs(batch["frames"], batch["goals"], batch["prev_actions"],
                         batch.get("target_box"), batch.get("steps"))  # (B, L, I)
        return x, self.lstm(x)[0]

    def forward_aux(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``forward``'s ``logits`` (B, L, A) and the auxiliary heads' outputs the policy has:
        with ``aux_heads`` the target-in-view logit ``visible`` (B, L) and the predicted log(1 +
        metres to the goal) ``distance`` (B, L); with ``room_types`` the room-type logits
        ``room`` (B, L, room_types)."""
        if not (self.cfg.aux_heads or self.cfg.room_types):
            raise ValueError("policy.aux_heads and policy.room_types are off: this policy has "
                             "no auxiliary heads")
        x, out = self._run(batch)
        heads = {"logits": self.head(out)}
        if self.cfg.aux_heads:
            seen = x[..., :self.cfg.feature_dim + self.cfg.goal_dim]  # (B, L, D + G)
            heads["visible"] = self.visible_head(seen)[..., 0]  # (B, L)
            heads["distance"] = self.distance_head(out)[..., 0]  # (B, L)
        if self.cfg.room_types:
            heads["room"] = self.room_head(out)  # (B, L, room_types)
        return heads

    def reset(self, batch_size: int) -> None:
        """Start ``batch_size`` fresh episodes: zero LSTM state, start token as previous action."""
        shape = (self.cfg.num_layers, batch_size, self.cfg.hidden_dim)
        zeros = torch.zeros(shape, device=self.device)
        self._state = (zeros, zeros.clone())
        self._prev_action = torch.full((batch_size,), self.start_token, dtype=torch.long,
                                       device=self.device)

    @torch.no_grad()
    def step(self, obs: dict[str, Any]) -> torch.Tensor:
        """One step for every environment; returns logits (B, num_actions).

        ``obs``: ``rgb`` uint8 (B, H, W, 3) at simulator resolution (tensor or ndarray),
        ``goal`` long (B,), ``first`` bool (B,) (True where an episode starts: that row's state
        and previous action are reset), optionally ``collided`` bool (B,) (True where the
        previous action was a blocked ``move_ahead``), and with ``target_box`` ``target_box``
        float (B, 6) (:func:`sim.detect.target_box`); ``forget`` bool (B,) clears those rows'
        state but keeps their previous action (a memory probe). Does not record an action:
        ``act`` calls this and feeds its action back as the next previous action.
        """
        rgb = torch.as_tensor(np.asarray(obs["rgb"]) if not torch.is_tensor(obs["rgb"])
                              else obs["rgb"], device=self.device)
        b = rgb.shape[0]
        if self._state is None or self._state[0].shape[1] != b:
            self.reset(b)
        first = torch.as_tensor(obs.get("first", torch.zeros(b, dtype=torch.bool)),
                                dtype=torch.bool, device=self.device)
        keep = ~first
        if "forget" in obs:  # a memory probe (spoc-eval --memory_steps): the state only
            keep &= ~torch.as_tensor(obs["forget"], dtype=torch.bool, device=self.device)
        keep = keep.float()[None, :, None]  # (1, B, 1)
        self._state = (self._state[0] * keep, self._state[1] * keep)
        prev = torch.where(first, self.start_token, self._prev_action)
        if "collided" in obs:
            collided = torch.as_tensor(obs["collided"], dtype=torch.bool, device=self.device)
            prev = torch.where(collided & ~first, self.blocked_token, prev)
        self._prev_action = prev
        frames = rgb.permute(0, 3, 1, 2)[:, None]  # (B, 1, 3, H, W)
        goals = torch.as_tensor(obs["goal"], dtype=torch.long, device=self.device)
        boxes = obs.get("target_box")
        if boxes is not None:
            boxes = torch.as_tensor(np.asarray(boxes) if not torch.is_tensor(boxes) else boxes,
                                    device=self.device)[:, None]  # (B, 1, 6)
        x = self._inputs(frames, goals, self._prev_action[:, None], boxes)  # (B, 1, I)
        out, self._state = self.lstm(x, self._state)  # (B, 1, hidden)
        return self.head(out[:, 0])  # (B, A)

    @torch.no_grad()
    def act(self, obs: dict[str, Any], return_logits: bool = False
            ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Greedy actions (B,) long for one step, fed back as the previous actions of the next
        step (``executed`` overrides them; ``eval.rollout.policy_actions`` samples). With
        ``return_logits``, returns ``(actions, logits (B, A))``.
        """
        logits = self.step(obs)  # (B, A)
        action = logits.argmax(-1)
        self._prev_action = action
        return (action, logits) if return_logits else action

    def executed(self, actions: torch.Tensor | list[int]) -> None:
        """Tell the policy which actions (B,) were really executed this step, when something
        else (DAgger's expert mixing) overrode its own: they become the previous actions."""
        self._prev_action = torch.as_tensor(actions, dtype=torch.long, device=self.device)


POLICIES: dict[str, type[nn.Module]] = {"lstm": LSTMPolicy}
"""Policy families by ``PolicyConfig.name``."""


def make_policy(cfg: PolicyConfig | dict) -> nn.Module:
    """Build a policy from its config (a ``PolicyConfig`` or a plain dict of its fields)."""
    if isinstance(cfg, dict):
        known = {f.name for f in fields(PolicyConfig)}
        cfg = PolicyConfig(**{k: v for k, v in cfg.items() if k in known})
    if cfg.name not in POLICIES:
        raise InputError(f"policy.name: {cfg.name!r} is unknown; use one of {sorted(POLICIES)}")
    return POLICIES[cfg.name](cfg)
