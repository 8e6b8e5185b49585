"""An exponential moving average of the trainable weights (Polyak averaging), for evaluation.

Fine-tuning on a small, noisy training set makes the holdout score swing from one evaluation to
the next; the averaged weights sit in a flatter spot and swing less. The average is what the
holdout scores, what early stopping selects and what is exported; the optimiser keeps stepping
the raw weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The average of ``model``'s trainable parameters. Its decay ramps up as
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early weights fade fast."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in; call after every optimiser step."""
        self.updates += 1
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own weights after."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, own)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": [t.cpu() for t in self.shadow], "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for mine, saved in zip(self.shadow, state["shadow"], strict=True):
                mine.copy_(saved)
        self.updates = int(state["updates"])
