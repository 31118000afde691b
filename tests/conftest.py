"""Shared fixtures: a tiny preset built once per test session; the live app's Ray head (tests/live_app.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadtest.ports import free_port  # noqa: F401 - the tests import it from here

# Under CI a wholly skipped area (browser, Terraform, checkov, image, live app) fails the run.
from tests.area_guard import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish  # noqa: F401
from tests.run_order import long_files_first

# Tests never reach the Hugging Face Hub; a test that means to try it says so.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_collection_modifyitems(config, items):
    # The long files first, for the xdist workers (tests/run_order.py says why).
    items[:] = long_files_first(items)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    # SDTURBO_TEST_CACHE_DIR: presets built beforehand (the GPU run builds the full-size one once per machine).
    return os.environ.get("SDTURBO_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("sdturbo-cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(cache_dir) -> Path:
    from serve_app.model import ensure_preset

    return ensure_preset("tiny", cache_dir)


@pytest.fixture(scope="session")
def tiny_xl_model_dir(cache_dir) -> Path:
    """The `tiny-xl` preset: SDXL-Turbo's architecture at toy widths, random weights."""
    from serve_app.model import ensure_preset

    return ensure_preset("tiny-xl", cache_dir)


@pytest.fixture(scope="session", autouse=True)
def shared_ray_head():
    """The live app's Ray head (tests/live_app.py), shut down once the session is over."""
    from tests.live_app import SHARED_HEAD

    yield SHARED_HEAD
    SHARED_HEAD.stop()


@pytest.fixture(scope="session")
def safety_preset_dir(cache_dir) -> Path:
    """The `random` safety-checker preset: the published CLIP ViT-L/14 architecture, random weights."""
    from serve_app.model.resolving import ensure_safety_preset

    return ensure_safety_preset(cache_dir)
