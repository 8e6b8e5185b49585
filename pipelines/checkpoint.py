"""Checkpoints for ``--resume``: model, optimizer, loop state and best holdout weights.

Written atomically (temporary file, then rename) at every holdout evaluation. A checkpoint
records the config it was made with; resuming under a different config raises CheckpointError.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipelines.errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


class Checkpointer:
    """Saves to and loads from one directory."""

    def __init__(self, directory: str | Path, fingerprint: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    @property
    def file(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    def save(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        state: dict[str, Any],
        best: dict[str, torch.Tensor] | None,
    ) -> None:
        """Write the checkpoint (blocking, a few hundred MB at most for MiniLM-sized models)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "fingerprint": self.fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state,
            "best": best,
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.file.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.file)
        logger.debug("checkpoint written at step %s", state.get("step"))

    def load(self) -> dict[str, Any]:
        """The saved payload. Raises CheckpointError when absent or made for another config."""
        if not self.file.is_file():
            raise CheckpointError(str(self.file), "not found; start without --resume")
        try:
            payload: dict[str, Any] = torch.load(self.file, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            raise CheckpointError(str(self.file), f"unreadable ({exc})") from exc
        saved = payload.get("fingerprint", {})
        changed = sorted(
            k for k in set(saved) | set(self.fingerprint) if saved.get(k) != self.fingerprint.get(k)
        )
        if changed:
            raise CheckpointError(str(self.file), f"written with a different config ({changed})")
        return payload

    def remove(self) -> None:
        self.file.unlink(missing_ok=True)
        if self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()
