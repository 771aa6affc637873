"""Several trained policies acting as one (``spoc-eval run --ensemble``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class PolicyEnsemble(nn.Module):
    """Several trained policies acting as one (a deep ensemble, Lakshminarayanan et al. 2017):
    each step's action probabilities are the mean of the members'. Every member keeps its own
    recurrent state and is fed the ensemble's executed action as its previous action, so each
    sees the episode it would see acting alone. ``step``, ``act``, ``executed`` and ``reset``
    are ``LSTMPolicy``'s; ``step`` returns the log of the mean probabilities."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one policy")
        first = members[0].cfg
        for i, m in enumerate(members[1:], 1):
            for name in ("num_actions", "num_goals", "target_box"):
                if getattr(m.cfg, name) != getattr(first, name):
                    raise ValueError(f"ensemble member {i}: policy.{name}="
                                     f"{getattr(m.cfg, name)} differs from member 0's "
                                     f"{getattr(first, name)}; ensemble policies trained on "
                                     "the same goals, actions and inputs")
        self.members = nn.ModuleList(members)
        self.cfg = first
        """Member 0's config: the members agree on what ``step`` takes and gives."""

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def reset(self, batch_size: int) -> None:
        for m in self.members:
            m.reset(batch_size)

    @torch.no_grad()
    def step(self, obs: dict[str, Any]) -> torch.Tensor:
        """log of the members' mean action probabilities (B, num_actions)."""
        logp = torch.stack([m.step(obs).float().log_softmax(-1) for m in self.members])
        return logp.logsumexp(0) - float(np.log(len(self.members)))  # (B, A)

    @torch.no_grad()
    def act(self, obs: dict[str, Any], return_logits: bool = False
            ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.step(obs)
        action = logits.argmax(-1)
        self.executed(action)
        return (action, logits) if return_logits else action

    def executed(self, actions: torch.Tensor | list[int]) -> None:
        for m in self.members:
            m.executed(actions)
