"""Reliability tests run tiny sweeps in-process and in child processes on shared CPUs: one torch thread each
keeps them from contending with each other and with the rest of the machine (results do not depend on it)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
