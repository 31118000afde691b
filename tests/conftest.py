"""Shared fixtures: a tiny preset built once per test session, and a Ray Serve app on loopback."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Tests never reach the Hugging Face Hub; a test that means to try it says so.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("sdturbo-cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(cache_dir) -> Path:
    from serve_app.model import ensure_preset

    return ensure_preset("tiny", cache_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
