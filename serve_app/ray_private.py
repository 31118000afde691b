"""The Ray Serve internals this service calls, in one place. Ray is pinned
(container/requirements.lock); the live-app tests exercise each of these, so an upgrade that
changes one fails there, not in production.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


def deployment_healthy(app_name: str, deployment: str) -> bool:
    """Whether ``app_name``'s ``deployment`` is HEALTHY, from the controller's status of that one
    application (a small protobuf: about 2 ms on the 2-core CI machine).

    Needs: ``ray.serve.context._get_global_client().get_serve_status(app_name)``, a method of
    Serve's private controller client. Why not the public API: ``serve.status()`` rebuilds every
    deployment's full configuration on each call, cloudpickling its request router class: about
    26 ms per call, mostly holding the GIL (mean of 20 calls on the 2-core CI machine,
    2026-11-25). Polled twice a second by the ingress, that stalled the event loop serving /ping
    and every request (issue 11).
    """
    from ray.serve.context import _get_global_client

    overview = _get_global_client().get_serve_status(app_name)
    return any(d.name == deployment and d.status == "HEALTHY" for d in overview.deployment_statuses)


def deployments_healthy(app_name: str, deployments: list[str]) -> bool:
    """Whether every one of ``app_name``'s ``deployments`` is HEALTHY: one status call, as
    ``deployment_healthy`` (the served models' deployments, polled by the ingress)."""
    from ray.serve.context import _get_global_client

    overview = _get_global_client().get_serve_status(app_name)
    healthy = {d.name for d in overview.deployment_statuses if d.status == "HEALTHY"}
    return set(deployments) <= healthy


def gpu_memory_bytes() -> int | None:
    """The smallest total memory of this machine's visible GPUs, or None without NVML.

    Needs: Ray's vendored NVML binding, ``ray._private.thirdparty.pynvml`` (the one Ray's own GPU
    detection uses). Why not torch: the app builder would then create a CUDA context (hundreds of
    MiB on GPU 0) in a process that never runs a model.
    """
    try:
        from ray._private.thirdparty import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no NVML: unknown
        return None
    try:
        from ray._private import accelerators

        visible = accelerators.get_accelerator_manager_for_resource("GPU").get_current_process_visible_accelerator_ids()
        count = pynvml.nvmlDeviceGetCount()
        indices = [int(i) for i in visible if str(i).isdigit()] if visible is not None else list(range(count))
        sizes = [pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total for i in indices if i < count]
        return min(sizes) if sizes else None
    finally:
        pynvml.nvmlShutdown()


def local_head_cpus_and_gpus() -> tuple[float, int]:
    """The CPUs and GPUs a Ray head started on this machine gets (serve_app/cluster.py sizes the
    deployments with them before Ray starts).

    Needs: ``ray._private.utils.get_num_cpus`` (the cgroup quota, else the machine's count) and
    the GPU accelerator manager of ``ray._private.accelerators`` (what NVML sees, limited by
    CUDA_VISIBLE_DEVICES). Why not the public API: ``ray.cluster_resources()`` answers only once
    Ray runs, and sizing must refuse a replica count that cannot fit before anything starts.
    This is the computation ``ray.init()`` does for a local head (``ResourceAndLabelSpec.resolve``).
    """
    from ray._private import accelerators
    from ray._private.utils import get_num_cpus

    gpu_manager = accelerators.get_accelerator_manager_for_resource("GPU")
    gpus = gpu_manager.get_current_node_num_accelerators()
    visible = gpu_manager.get_current_process_visible_accelerator_ids()
    if visible is not None:
        gpus = min(gpus, len(visible))
    return float(get_num_cpus()), int(gpus)


def bind_direct_ingress_with_reuseport() -> None:
    """Make this replica's direct-ingress HTTP server bind with SO_REUSEPORT (serve_app/direct_ingress.py).

    Needs: ``ray.serve._private.replica.start_asgi_http_server``, wrapped to pass
    ``enable_so_reuseport=True``. Why not the public API: Ray 2.60 calls it with
    ``enable_so_reuseport=False`` and offers no option; the container's port responder hands the
    port over only to a listener of its SO_REUSEPORT group. If the function changes, this fails
    loudly instead of leaving the port to a bind that cannot succeed.
    """
    from ray.serve._private import replica as ray_replica

    start = ray_replica.start_asgi_http_server
    if getattr(start, "shares_port", False):
        return
    if "enable_so_reuseport" not in inspect.signature(start).parameters:
        raise RuntimeError(
            "Ray Serve's direct-ingress server no longer takes enable_so_reuseport: "
            "serve_app/ray_private.py needs updating for this Ray version"
        )

    @functools.wraps(start)
    async def start_with_reuseport(*args: Any, **kwargs: Any):
        kwargs["enable_so_reuseport"] = True
        return await start(*args, **kwargs)

    start_with_reuseport.shares_port = True  # type: ignore[attr-defined]
    ray_replica.start_asgi_http_server = start_with_reuseport


def local_head_processes() -> dict[str, Any]:
    """The raylet and the GCS server of the Ray head this process started: name -> Popen.

    Needs: ``ray._private.worker._global_node.all_processes`` (the node ``ray.init`` started,
    with the ``subprocess.Popen`` of each of its processes). Why not the public API: Ray offers
    no way to learn that its own raylet or GCS has died other than calls that hang or fail late;
    the container entrypoint watches these two processes, its own children, to end the
    container within seconds of either dying.
    """
    from ray._private import worker

    names = {"raylet": "raylet", "gcs_server": "GCS server"}
    return {names[kind]: info.process for kind in names for info in worker._global_node.all_processes.get(kind, [])}


def serve_controller_state() -> tuple[str, int] | None:
    """(state, pid) of Serve's controller actor as the GCS knows it: ALIVE, RESTARTING, DEAD...

    Needs: the controller's actor id from ``ray.serve.context._get_global_client()._controller``
    and ``ray._private.state.actors``, the GCS's actor table. Why not the public API:
    ``ray.util.state`` goes through the dashboard, which the service does not start.
    """
    import ray
    from ray.serve.context import _get_global_client

    actor_id = _get_global_client()._controller._actor_id.hex()
    entry = ray._private.state.actors(actor_id=actor_id)
    return (entry.get("State", "?"), entry.get("Pid", 0)) if entry else None


def model_replicas_running(app_name: str, deployments: list[str]) -> tuple[bool, str]:
    """(whether every one of ``app_name``'s ``deployments`` has at least one running replica, why not).

    The cheap per-application status first (``deployments_healthy``); only when one is not
    HEALTHY (a replica restarting, one of several gone) the public ``serve.status()``, whose
    replica counts say whether one still runs: it costs about 26 ms, paid only then.
    """
    from ray import serve

    if deployments_healthy(app_name, deployments):
        return True, ""
    app = serve.status().applications.get(app_name)
    for deployment in deployments:
        found = app.deployments.get(deployment) if app is not None else None
        if found is None:
            return False, f"the {deployment} deployment is not deployed"
        states = {getattr(state, "value", state): count for state, count in found.replica_states.items()}
        if states.get("RUNNING", 0) == 0:
            status = getattr(found.status, "value", found.status)
            return False, f"no model replica is running ({deployment} is {status}; replicas: {states or 'none'})"
    return True, ""
