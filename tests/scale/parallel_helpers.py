"""An objective for the ``--jobs`` tests that can stop its worker at a known step: die by SIGKILL, or pause."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch

from pmrl_bench import hookimpl
from pmrl_bench.components import ObjectiveOutput


class StoppableAlign(torch.nn.Module):
    """Mean cosine to the first modality. At training step ``at_step`` of a run it can

    * ``die_marker``: SIGKILL its own process, once per sweep directory (the marker file says it happened);
    * ``pause_dir``: write ``pause_dir/paused-<pid>`` and sleep, so a test can signal the sweep mid-run.
    """

    def __init__(self, at_step: int = 3, die_marker: str = "", pause_dir: str = "") -> None:
        super().__init__()
        self.at_step, self.die_marker, self.pause_dir = at_step, die_marker, pause_dir
        self.steps = 0

    def forward(self, embeddings):
        if torch.is_grad_enabled():  # training steps only, not evaluation
            self.steps += 1
            if self.steps == self.at_step:
                self._stop_here()
        first, *others = embeddings.values()
        loss = sum(1 - (first * z).sum(-1).mean() for z in others)
        return ObjectiveOutput(loss=loss, terms={"align": loss.detach()})

    def _stop_here(self) -> None:
        if self.die_marker:
            try:
                fd = os.open(self.die_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # exactly one death
            except FileExistsError:
                return
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        if self.pause_dir:
            (Path(self.pause_dir) / f"paused-{os.getpid()}").write_text("paused\n")
            time.sleep(120)  # the test signals the sweep now


class StoppableObjectives:
    @hookimpl
    def register_objectives(self, register):
        register("stoppable-align", StoppableAlign)
