"""The live app for integration tests: started through serve_app/launch.py, exactly as the image
starts it, on one Ray head that as many test modules in a row share as want the same head.

Starting a Ray head costs tens of seconds on the 2-core CI machine; deploying an application on a
running one costs only its replicas' start. So a module asks for its settings
(``running_serve_app``), and gets a fresh application, deployed on the running head when that
head is the one it needs (same CPUs, GPUs, metrics port, direct ingress), or on a new one
otherwise. The application is deleted when the module is done, so the next one starts clean.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx

from loadtest.ports import free_port

APP_NAME = "sd-turbo"


class SharedHead:
    """The one Ray head (and Serve) of this test process, restarted only when a module needs another."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.url: str | None = None

    def ensure(self, head: Any, direct_ingress_enabled: bool) -> str:
        """A running head ``head`` with Serve on a loopback port; returns the app's base URL."""
        from serve_app import launch

        key = (head, direct_ingress_enabled)
        if key == self.key:
            return self.url
        self.stop()
        port = free_port()
        http_options = launch.prepare_ray_environment(
            "127.0.0.1", port, direct_ingress_enabled=direct_ingress_enabled, startup_deadline_s=840
        )
        launch.start_ray(head)
        try:
            launch.start_serve(http_options)
        except BaseException:
            launch.shutdown()
            raise
        self.key, self.url = key, f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self.key is None:
            return
        from serve_app import launch

        self.key = self.url = None
        launch.shutdown()


SHARED_HEAD = SharedHead()


@contextlib.contextmanager
def running_serve_app(
    overrides: dict, cache_dir: str, metrics_port: int | None = None, num_cpus: int = 4, num_gpus: int = 0
) -> Iterator[str]:
    """The app with ``overrides`` (over ``model=tiny``) on the shared head; yields its URL.

    ``num_gpus`` declares GPUs to Ray (it accepts them on a CPU-only machine): placement is then
    real, and replicas that find no CUDA run on CPU. ``metrics_port`` exports Ray's Prometheus
    metrics there: a module that reads them gets a head of its own, so that no other module's
    replicas add to what it counts.
    """
    from ray import serve

    from serve_app import launch
    from serve_app.app import build_app
    from serve_app.settings import Settings

    # 1. The head this module needs: direct ingress (as in the container) unless the overrides say not.
    args = {"cache_dir": cache_dir, **overrides}
    if "models" not in overrides:  # one model: the tiny preset unless the overrides say otherwise
        args.setdefault("model", "tiny")
    enabled = Settings.load(args, environ={}).direct_ingress
    head = launch.RayHead(num_cpus=num_cpus, num_gpus=num_gpus, metrics_export_port=metrics_port, log_to_driver=False)
    url = SHARED_HEAD.ensure(head, enabled)
    # 2. A fresh application, sized to that head, waited for until it runs and answers /ping.
    launch.deploy(build_app(args), APP_NAME)
    try:
        deadline = time.monotonic() + 60
        while httpx.get(url + "/ping").status_code != 200:
            assert time.monotonic() < deadline, "/ping never turned 200"
            time.sleep(0.2)
        yield url
    finally:
        # 3. Gone before the next module deploys its own (Serve waits for its replicas to stop).
        serve.delete(APP_NAME)


def post(url: str, payload: dict, timeout: float = 120) -> httpx.Response:
    """POST ``payload`` to the live app's /predict."""
    return httpx.post(url + "/predict", json=payload, timeout=timeout)
