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
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.app_server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs the local Ray instance may schedule (default: all)")
    p.add_argument("args", nargs="*", help="build_app key=value arguments, as for `serve run`")
    ns = p.parse_args(argv)
    app_args = {}
    for kv in ns.args:
        k, sep, v = kv.partition("=")
        if not sep:
            p.error(f"expected key=value, got {kv!r}")
        app_args[k] = v

    from serve_app import direct_ingress
    from serve_app.settings import Settings

    settings = Settings.load(app_args)
    # Before Ray is imported and started: the ingress replica serves the port itself, as in the container.
    http_options = direct_ingress.prepare(ns.host, ns.port, settings.direct_ingress)

    import ray
    from ray import serve

    from serve_app.app import build_app, prepare_ray_head_environment

    prepare_ray_head_environment()  # replicas at nice 0, as in the container
    ray.init(num_cpus=ns.num_cpus, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("SDTURBO_")}})
    serve.start(http_options=http_options)
    serve.run(build_app(app_args), name=settings.app_name, route_prefix="/", blocking=False)
    print(f"app_server: serving on http://{ns.host}:{ns.port}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    try:
        serve.shutdown()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
