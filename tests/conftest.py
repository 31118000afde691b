"""Shared fixtures: a tiny preset built once per test session, and a Ray Serve app on loopback."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from loadtest.ports import free_port

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


@pytest.fixture(scope="session")
def tiny_xl_model_dir(cache_dir) -> Path:
    """The `tiny-xl` preset: SDXL-Turbo's architecture at toy widths, random weights."""
    from serve_app.model import ensure_preset

    return ensure_preset("tiny-xl", cache_dir)


@contextlib.contextmanager
def running_serve_app(overrides: dict, cache_dir: str, metrics_port: int | None = None, num_cpus: int = 4, num_gpus: int = 0):
    """Start Ray, Serve on a free loopback port and the app with ``overrides``; yield its URL.

    ``num_gpus`` declares GPUs to Ray (it accepts them on a CPU-only machine): placement is then
    real, and replicas that find no CUDA run on CPU.
    """
    import httpx
    import ray
    from ray import serve

    from serve_app import direct_ingress
    from serve_app.app import build_app, prepare_ray_head_environment
    from serve_app.settings import Settings

    port = free_port()
    # As the container does: the ingress replica serves the port itself unless the overrides say not.
    enabled = Settings.load({"model": "tiny", **overrides}, environ={}).direct_ingress
    http_options = direct_ingress.prepare("127.0.0.1", port, enabled)
    init_options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "include_dashboard": False, "log_to_driver": False}
    if metrics_port:
        init_options["_metrics_export_port"] = metrics_port
    prepare_ray_head_environment()  # as the container does: replicas at nice 0
    ray.init(**init_options)
    try:
        serve.start(http_options=http_options)
        serve.run(build_app({"model": "tiny", "cache_dir": cache_dir, **overrides}), name="sd-turbo", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(url + "/ping").status_code != 200:
            assert time.monotonic() < deadline, "/ping never turned 200"
            time.sleep(0.2)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def safety_preset_dir(cache_dir) -> Path:
    """The `random` safety-checker preset: the published CLIP ViT-L/14 architecture, random weights."""
    from serve_app.model.safety import ensure_safety_preset

    return ensure_safety_preset(cache_dir)
