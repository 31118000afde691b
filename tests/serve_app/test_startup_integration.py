"""The start-up deadline outside the container (`serve run`, a Serve config): the ingress logs
why the application is not running, and a replica stuck in its constructor still stops at once."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def ray_logs(temp_dir: str, pattern: str) -> str:
    files = Path(temp_dir).glob(f"session_latest/logs/{pattern}")
    return "\n".join(path.read_text(errors="replace") for path in files if path.is_file())


def test_a_stalled_replica_is_explained_at_the_deadline_and_stops_without_its_grace_period(cache_dir, tiny_model_dir):
    from ray import serve

    from serve_app import launch
    from serve_app.app import build_app
    from tests.live_app import SHARED_HEAD

    # This test needs a head of its own (its temp dir holds the logs it reads): the shared one goes.
    SHARED_HEAD.stop()
    # Short: Ray's socket paths must stay under 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    # Through Ray's proxy, as `serve run` serves it.
    http_options = launch.prepare_ray_environment(
        "127.0.0.1", free_port(), direct_ingress_enabled=False, startup_deadline_s=10
    )
    launch.start_ray(launch.RayHead(num_cpus=2, log_to_driver=False, temp_dir=temp_dir))
    try:
        # 1. Deployed the way `serve run` does it (builder, then deploy), without waiting for RUNNING.
        launch.start_serve(http_options)
        app = build_app(
            {"model": "tiny", "cache_dir": cache_dir, "startup_deadline_s": "10", "fault_injection_load_stall_s": "3600"}
        )
        launch.deploy(app, "sd-turbo", wait_for_running=False)

        # 2. The ingress logs the reason once its deadline has passed.
        deadline = time.monotonic() + 120
        while "startup_deadline_passed" not in (logged := ray_logs(temp_dir, "worker-*.err")):
            assert time.monotonic() < deadline, "no startup_deadline_passed event was logged"
            time.sleep(1)
        line = next(line for line in logged.splitlines() if "startup_deadline_passed" in line)
        assert '"level": "ERROR"' in line and '"startup_deadline_s": 10.0' in line
        assert "application 'sd-turbo' is DEPLOYING" in line
        assert "deployment SDTurboModel is UPDATING (replicas: 1 STARTING)" in line
        assert serve.status().applications["sd-turbo"].status == "DEPLOYING"
    finally:
        # 3. What Ctrl+C on `serve run` does: the stalled replica is stopped, not waited for.
        launch.shutdown()
    controller = ray_logs(temp_dir, "serve/controller_*.log")
    assert "deployment='SDTurboModel', app='sd-turbo') is stopped" in controller
    assert "did not shut down after grace period" not in controller
