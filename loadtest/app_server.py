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
    p.add_argument("args", nargs="*", help="build_app key=value arguments, as for `serve run`")
    ns = p.parse_args(argv)
    app_args = {}
    for kv in ns.args:
        k, sep, v = kv.partition("=")
        if not sep:
            p.error(f"expected key=value, got {kv!r}")
        app_args[k] = v

    from serve_app import launch
    from serve_app.settings import Settings

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
    launch.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
