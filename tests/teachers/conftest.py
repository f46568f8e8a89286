"""One torch thread for these tests: tiny molecules gain nothing from more, and on a shared
CPU oversubscribed threads slow teacher evaluations by an order of magnitude."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
