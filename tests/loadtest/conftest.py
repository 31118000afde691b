"""Fixtures for the load-test tool's tests; helpers live in loadtest_helpers.py."""
from __future__ import annotations

import os

import pytest

from loadtest_helpers import run_tool


@pytest.fixture
def tool():
    return run_tool


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> str:
    """Preset cache for the servers these tests start: the caller's, or a fresh one."""
    return os.environ.get("SDTURBO_CACHE_DIR") or str(tmp_path_factory.mktemp("sdturbo-cache"))
