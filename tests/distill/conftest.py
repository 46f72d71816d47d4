from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every distill test runs on one torch thread (the fixture is in tests/conftest.py)."""
