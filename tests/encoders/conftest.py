"""Encoder tests run torch on one thread: the test machine's cores are shared, and oversubscribed
intra-op threads make tiny models hundreds of times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
