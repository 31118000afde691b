"""Fixtures for the load-test tool's tests; helpers live in loadtest_helpers.py."""
from __future__ import annotations

import os

import pytest

from tests.loadtest.loadtest_helpers import run_tool


@pytest.fixture
def tool():
    return run_tool


@pytest.fixture(scope="session")
def model_cache(cache_dir) -> str:
    """Preset cache for the servers these tests start: the caller's, or the session's (tests/conftest.py)."""
    return os.environ.get("SDTURBO_CACHE_DIR") or cache_dir
