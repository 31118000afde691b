"""Start the service: the one module that sets Ray's environment, calls ``ray.init`` and starts Serve.

The container entrypoint, ``loadtest.app_server`` and the tests' live app all start the service
through these functions, so that tests and benchmarks run it exactly as the image does
(``serve run`` starts its own Ray and is the one exception). In order:

  1. ``prepare_ray_environment``: before Ray starts (its processes read these when they start
     and inherit this process's environment), and before ``serve_app.app`` is imported;
  2. ``start_ray``: a local Ray head of the given size;
  3. ``start_serve``: Serve's HTTP listener (Ray's proxy, or the ingress replica itself);
  4. ``deploy``: the application, waiting for it to run or not;
  5. ``shutdown``: Serve's orderly teardown, then Ray.

Ray is imported inside the functions: importing this module must not start or import Ray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from serve_app import direct_ingress
from serve_app.emf import RAY_LOG_FORWARDING_ENV
from serve_app.startup import ray_slow_startup_env

# Ray's raylet starts every worker, both replicas included, at nice 15, below every process at 0:
# on a busy host the model replica's pipeline thread (which launches the GPU kernels) then waits
# behind the driver relaying the replicas' logs, Ray's log monitor and agents, and a co-located
# load generator. At 0 the replicas share the CPU fairly with them (A/B at 1 client on the 2-core
# CPU: docs/benchmarks.md). The raylet reads it when it starts. No usage report leaves the machine.
RAY_HEAD_ENV_DEFAULTS = {"RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class RayHead:
    """The local Ray head to start; ``None`` leaves a value to Ray's own detection."""

    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory: int | None = None
    # Short paths only: Ray's socket paths must stay under 108 bytes.
    temp_dir: str | None = None
    # Prometheus text format: Ray's own metrics and the app's sdturbo_* ones.
    metrics_export_port: int | None = None
    # Whether the replicas' output is relayed to this process's stdout/stderr.
    log_to_driver: bool = True


def prepare_ray_environment(
    host: str,
    port: int,
    *,
    direct_ingress_enabled: bool,
    startup_deadline_s: float,
    **http_extra: Any,
) -> dict[str, Any]:
    """Set Ray's environment for a local head (values already set win, except direct ingress's,
    which follow ``direct_ingress_enabled``); returns ``serve.start``'s ``http_options``."""
    # 1. The replicas' log lines reach this process whole (no Ray prefix) and every one of them
    #    (no cross-replica dedup): CloudWatch EMF records are one JSON document per line.
    for name, value in {**RAY_LOG_FORWARDING_ENV, **RAY_HEAD_ENV_DEFAULTS}.items():
        os.environ.setdefault(name, value)
    # 2. Serve explains a slow replica well before the start-up deadline.
    os.environ.update(ray_slow_startup_env(startup_deadline_s, os.environ))
    # 3. The ingress replica serves the public port itself, or Ray's proxy does.
    return direct_ingress.prepare(host, port, direct_ingress_enabled, **http_extra)


def start_ray(head: RayHead) -> None:
    """Start a local Ray head (after ``prepare_ray_environment``)."""
    import ray

    options: dict[str, Any] = {
        "num_cpus": head.num_cpus,
        "num_gpus": head.num_gpus,
        "object_store_memory": head.object_store_memory,
        "include_dashboard": False,
        "log_to_driver": head.log_to_driver,
    }
    if head.temp_dir is not None:
        options["_temp_dir"] = head.temp_dir
    if head.metrics_export_port is not None:
        options["_metrics_export_port"] = head.metrics_export_port
    ray.init(**options)


def start_serve(http_options: dict[str, Any]) -> None:
    from ray import serve

    serve.start(http_options=http_options)


def deploy(app: Any, app_name: str, *, wait_for_running: bool = True, route_prefix: str = "/") -> None:
    """Deploy ``app`` under ``app_name`` at ``route_prefix`` (``/``; another prefix lets several
    applications share Ray's proxy, as ``loadtest.model_mix_benchmark`` does); a new app under
    the same name replaces it.

    Without ``wait_for_running`` it returns once Serve has the application, so that the caller
    can watch its own deadline (``serve.run`` would wait forever for an unschedulable replica).
    """
    from ray import serve

    serve.run_many(
        [serve.RunTarget(app, name=app_name, route_prefix=route_prefix)], wait_for_applications_running=wait_for_running
    )


def shutdown() -> None:
    """Serve's orderly teardown (it logs how each replica stopped), then Ray."""
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
