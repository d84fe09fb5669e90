"""Fixtures of the reliability tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if anything starts training (patched on the class: bound names elsewhere see it too)."""
    from pmrl_bench.runner.train import TrainingLoop

    def refuse(self):
        raise AssertionError("something trained although its input was refused")

    monkeypatch.setattr(TrainingLoop, "run", refuse)
