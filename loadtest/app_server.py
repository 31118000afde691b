"""Start the Ray Serve app (serve_app.app:build_app) on a chosen loopback port, in this process.

``python -m loadtest.app_server --port 18000 model=tiny max_batch_size=16``

Equivalent to ``serve run serve_app.app:build_app key=value ...`` but with the HTTP host and
port chosen by the caller (the benchmark and the tests pick free ports), and, as in the
container, the ingress replica serving that port itself (``direct_ingress``; ``serve run``
goes through Ray's proxy).  Runs until SIGTERM
or SIGINT, then shuts Serve and the local Ray instance it started down.  Never imports locust.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.app_server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs the local Ray instance may schedule (default: all)")
    p.add_argument("--stats-out", help="on stopping, write each model replica's stats() (device memory included) here as JSON")
    p.add_argument("args", nargs="*", help="build_app key=value arguments, as for `serve run`")
    ns = p.parse_args(argv)
    from serve_app import launch
    from serve_app.settings import Settings, setting_arguments

    try:
        app_args = setting_arguments(ns.args)
    except ValueError as exc:
        p.error(str(exc))

    settings = Settings.load(app_args)
    # 1. Before Ray is imported and started, as in the container (serve_app/launch.py): among
    #    others, the ingress replica serves the port itself.
    http_options = launch.prepare_ray_environment(
        ns.host, ns.port, direct_ingress_enabled=settings.direct_ingress, startup_deadline_s=settings.startup_deadline_s
    )
    # 2. Ray, Serve and the app, waiting for it to run.
    from serve_app.app import build_app

    launch.start_ray(launch.RayHead(num_cpus=ns.num_cpus))
    launch.start_serve(http_options)
    launch.deploy(build_app(app_args), settings.app_name)
    print(f"app_server: serving on http://{ns.host}:{ns.port}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    if ns.stats_out:
        write_replica_stats(ns.stats_out, settings.app_name)
    launch.shutdown()
    return 0


def write_replica_stats(path: str, app_name: str, timeout_s: float = 20.0) -> None:
    """Each running model replica's ``stats()``, keyed by its actor name (calls are routed to the replicas
    in turn, so a few per replica reach them all)."""
    import json

    from ray import serve

    from serve_app.model_replica import MODEL_DEPLOYMENT

    doc: dict = {"replicas": {}}
    try:
        states = serve.status().applications[app_name].deployments[MODEL_DEPLOYMENT].replica_states
        running = int(states.get("RUNNING", 0))
        handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name=app_name)
        for _ in range(4 * max(running, 1)):
            stats = handle.stats.remote().result(timeout_s=timeout_s)
            doc["replicas"][stats["actor_name"]] = stats
            if len(doc["replicas"]) >= running:
                break
    except Exception as exc:  # noqa: BLE001 - the figures are a report, never a reason to fail stopping
        doc["error"] = f"{type(exc).__name__}: {exc}"
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main())
