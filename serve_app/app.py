"""The Ray Serve application builder: ``serve run serve_app.app:build_app key=value ...``.

Reads the settings, sizes both deployments to the Ray cluster (refusing, before anything starts,
a replica count that cannot fit: ``serve_app.cluster``), turns the model setting into a local
directory *before* any replica starts (so a missing model fails fast with a clear message, and
weights are fetched once, not once per replica), and wires ingress to model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from ray.serve import Application

from serve_app.cluster import ClusterResources, DeploymentSizes, current_resources, size_deployments
from serve_app.ingress import Ingress
from serve_app.logs import configure_logging, log_event
from serve_app.model.resolved import ResolvedModel
from serve_app.model_replica import SDTurboModel
from serve_app.settings import Settings

logger = logging.getLogger("sd_turbo.app")

# Two of Ray Serve's own latency settings (from its RAY_SERVE_THROUGHPUT_OPTIMIZED bundle), set
# for both deployments' replicas: user code runs on the replica's main event loop, and a
# deployment handle's router on that loop too, instead of one extra thread each. That saves
# thread hand-overs on every request's path: 4.5 ms of a lone request's p50 on the 2-core CI
# machine (three A/B pairs, docs/benchmarks.md). Safe here because neither deployment blocks
# its event loop: the pipeline runs on the device loop's thread, encoding on a pool, and
# serve.status() in a worker thread. An operator's own value in the environment wins.
REPLICA_SERVE_ENV_DEFAULTS = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}


def replica_runtime_env() -> dict[str, Any]:
    return {"env_vars": {name: os.environ.get(name, default) for name, default in REPLICA_SERVE_ENV_DEFAULTS.items()}}


def model_deployment_options(settings: Settings, sizes: DeploymentSizes) -> dict[str, Any]:
    """Replica count and resources of the model deployment."""
    return {
        "num_replicas": sizes.model_replicas,
        # One GPU per replica pins each replica to its own device (CUDA_VISIBLE_DEVICES).
        "ray_actor_options": {
            "num_gpus": sizes.model_gpus,
            "num_cpus": sizes.model_cpus,
            "runtime_env": replica_runtime_env(),
        },
        # Room for a full batch to run while the next one forms.
        "max_ongoing_requests": settings.effective_max_ongoing_requests,
        # The bounded queue: beyond it callers get 503 at once instead of waiting forever.
        "max_queued_requests": settings.max_queued_requests,
        "graceful_shutdown_timeout_s": 20,
        "graceful_shutdown_wait_loop_s": 1,
        "health_check_period_s": 5,
        "health_check_timeout_s": 30,
        # A replica that cannot load its model fails the deployment after a few tries
        # (and the container exits) instead of retrying forever.
        "max_constructor_retry_count": 3,
    }


def build_app(args: Mapping[str, Any] | None = None) -> Application:
    """The ``serve run`` builder: ``args`` are the key=value pairs, over the environment."""
    return build_app_from_settings(Settings.load(args or {}))


def resolve_sources(settings: Settings) -> ResolvedModel:
    """The model, TAESD (when a loaded decoder) and the safety checker (when on) as local
    directories, fetched or built once with the same fail-fast rules (serve_app/model/sources.py)."""
    from serve_app.model import resolve_model, resolve_safety_checker, resolve_tiny_decoder, select_device, select_dtype

    device = select_device(settings.device)
    half = select_dtype(settings.dtype, device).itemsize == 2
    resolved = resolve_model(settings.model, settings.model_revision, settings.cache_dir, half)
    tiny = None
    if "tiny" in settings.loaded_decoders:
        tiny = resolve_tiny_decoder(
            settings.tiny_decoder, settings.tiny_decoder_revision, resolved.local_dir, settings.cache_dir
        )
    safety = resolve_safety_checker(
        settings.safety_checker,
        settings.safety_checker_revision,
        settings.cache_dir,
        resolved.local_dir,
        settings.fault_injection_unsafe_seeds,
    )
    return dataclasses.replace(resolved, tiny_decoder=tiny, safety_checker=safety)


def build_app_from_settings(settings: Settings, resources: ClusterResources | None = None) -> Application:
    """The application for ``settings`` on a Ray cluster with ``resources`` (default: the
    connected cluster's, or before Ray starts, those of the local head it will start).

    Raises DoesNotFit (before any model is fetched) when the replicas cannot fit.
    """
    configure_logging(settings.log_level)
    # 1. Size both deployments to the cluster, or refuse now with what was asked and what exists.
    resources = resources or current_resources()
    sizes = size_deployments(settings, resources)
    # 2. Resolve every source once, here, before any replica starts.
    resolved = resolve_sources(settings)
    options = model_deployment_options(settings, sizes)
    log_event(
        logger,
        "app_built",
        **resolved.log_fields(),
        local_dir=resolved.local_dir,
        cluster={"cpus": resources.cpus, "gpus": resources.gpus},
        deployment=options,
        ingress_cpus=sizes.ingress_cpus,
    )
    # 3. Wire ingress to model. One object crosses the Ray seam: both replicas get every source
    #    as it was resolved here (the model replica alone loads the safety checker).
    model = SDTurboModel.options(**options).bind(settings, resolved)
    return Ingress.options(
        num_replicas=sizes.ingress_replicas,
        # The ingress only parses, validates and awaits: it holds many requests cheaply.
        max_ongoing_requests=1000,
        ray_actor_options={"num_cpus": sizes.ingress_cpus, "runtime_env": replica_runtime_env()},
    ).bind(model, settings, resolved)
