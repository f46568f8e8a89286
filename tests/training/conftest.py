"""One torch thread for training tests: tiny graphs run faster without thread hand-offs,
and results do not depend on how busy the machine is."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
