"""Direct ingress: the ingress replica serves the public HTTP port itself, without Ray's proxy.

Through Ray's HTTP proxy a request makes one process hop more: client -> proxy -> ingress
replica -> model replica. On the 2-core development machine that hop cost 10 ms per request at
1 client (p50 41.8 ms through the proxy, 31.6 ms on the ingress replica's own port, the same
running app, 2026-11-25; docs/benchmarks.md section 3). Ray Serve 2.60 can have an ingress
replica run its own HTTP server ("direct ingress"); this module is how the project turns it on
wherever it starts Ray itself (``serve_app.launch``, for the container entrypoint,
``loadtest.app_server`` and the tests' live app). ``serve run`` starts Ray on its own and always
goes through the proxy.

What is set, and why:
  * Ray reads the feature flag and the port range from the environment when it is imported,
    in every Ray process, so they must be in ``os.environ`` before ``ray.init`` starts the
    local cluster (its processes inherit it). The range is exactly the public port, so the one
    ingress replica gets it: hence ``ingress_replicas`` must be 1 (settings refuse more).
  * Ray still starts its proxy (on the head node, on ``http_options``' port): it is moved to a
    free port of its own, which nothing in this project calls.
  * Ray holds a direct-ingress replica open for 30 s on shutdown so that a load balancer can
    deregister it, and keeps a released port out of use for a while; neither applies to one
    container behind SageMaker (the entrypoint drains requests itself), so both are 0.
  * The container's port responder (container/port_handover.py) holds the port while Ray
    starts and hands it over without a gap through a SO_REUSEPORT group; Ray's direct-ingress
    server binds without SO_REUSEPORT, so the ingress replica asks for it
    (``share_port_with_responder``) before Serve starts that server.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

FLAG = "RAY_SERVE_ENABLE_DIRECT_INGRESS"


def ray_environment(port: int) -> dict[str, str]:
    """The environment Ray must start with for the ingress replica to serve ``port`` itself."""
    return {
        FLAG: "1",
        # range(MIN, MAX) in Ray's port allocator: exactly the public port.
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
        # A restarted ingress replica must get the same (only) port back at once.
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def prepare(host: str, port: int, enabled: bool, environ: Any = None, **http_extra: Any) -> dict[str, Any]:
    """Before ``ray.init``: set Ray's environment and return ``serve.start``'s ``http_options``.

    With ``enabled`` the ingress replica will listen on ``host:port`` and Ray's proxy on a free
    port; without it Ray's proxy listens on ``host:port`` (and the flag is cleared, so a value
    left from an earlier start in this process does not apply).
    """
    environ = os.environ if environ is None else environ
    names = ray_environment(port)
    if enabled:
        environ.update(names)
        proxy_port = free_port(host)
    else:
        for name in names:
            environ.pop(name, None)
        proxy_port = port
    return {"host": host, "port": proxy_port, **http_extra}


def is_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's Ray was started with direct ingress (what Ray itself read)."""
    environ = os.environ if environ is None else environ
    return environ.get(FLAG, "0") == "1"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def share_port_with_responder() -> None:
    """In the ingress replica, before Serve starts its direct-ingress server: bind with SO_REUSEPORT.

    Ray 2.60 calls ``start_asgi_http_server(..., enable_so_reuseport=False)`` for it; the
    container's responder hands the port over only to a listener of its SO_REUSEPORT group.
    Ray is pinned (requirements lock); if the function it calls changes, this fails loudly
    instead of leaving the port to a bind that cannot succeed.
    """
    from serve_app.ray_private import bind_direct_ingress_with_reuseport

    bind_direct_ingress_with_reuseport()
