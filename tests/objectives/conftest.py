"""The objectives' tests run on tiny tensors, where torch's intra-op threads only add overhead: on a loaded
2-core machine their spin-waiting made a 5×6 InfoNCE step ~400 ms instead of ~1 ms. One thread here, restored after."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
