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
from serve_app.model_replica import SDTurboModel, model_deployment_name
from serve_app.settings import ModelSource, Settings

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


def resolve_sources(settings: Settings, device_kind: str, served: ModelSource | None = None) -> ResolvedModel:
    """One served model (default: the first), TAESD (when a loaded decoder) and the safety checker
    (when on) as local directories, fetched or built once with the same fail-fast rules
    (serve_app/model/resolving.py), for replicas on a ``device_kind`` ('cpu' or 'cuda') device.
    Imports no torch: the process that starts the service runs no model."""
    from serve_app.model.resolving import (
        resolve_model,
        resolve_safety_checker,
        resolve_tiny_decoder,
        tiny_decoder_for_family,
    )

    served = served or settings.served_models[0]
    half = settings.half_precision(device_kind)
    resolved = resolve_model(served.source, served.revision, settings.cache_dir, half)
    tiny = None
    if "tiny" in settings.loaded_decoders:
        # Each family its own tiny decoder: TAESD for SD-Turbo's latents, TAESDXL for SDXL-Turbo's.
        # The revision setting belongs to the source as written; a swapped one has its own pin (or none).
        source = tiny_decoder_for_family(settings.tiny_decoder, resolved.family)
        revision = settings.tiny_decoder_revision if source == settings.tiny_decoder else ""
        tiny = resolve_tiny_decoder(source, revision, resolved.local_dir, settings.cache_dir)
    safety = resolve_safety_checker(
        settings.safety_checker,
        settings.safety_checker_revision,
        settings.cache_dir,
        resolved.local_dir,
        settings.fault_injection_unsafe_seeds,
    )
    return dataclasses.replace(resolved, tiny_decoder=tiny, safety_checker=safety, name=served.name)


def resolve_served_models(settings: Settings, device_kind: str) -> list[ResolvedModel]:
    """Every served model resolved (``resolve_sources``), the default first."""
    return [resolve_sources(settings, device_kind, served) for served in settings.served_models]


def build_app_from_settings(settings: Settings, resources: ClusterResources | None = None) -> Application:
    """The application for ``settings`` on a Ray cluster with ``resources`` (default: the
    connected cluster's, or before Ray starts, those of the local head it will start).

    Raises DoesNotFit (before any model is fetched) when the replicas cannot fit.
    """
    configure_logging(settings.log_level)
    # 1. Size every deployment to the cluster, or refuse now with what was asked and what exists.
    resources = resources or current_resources()
    sizes = size_deployments(settings, resources, models=len(settings.served_models))
    # 2. The device's defaults (serve_app.settings.DEVICE_DEFAULTS) for what was left unset: every
    #    deployment, the warm-up and the compile buckets then see one max_batch_size.
    device_kind = settings.device_kind(sizes.model_gpus)
    settings = settings.for_device(device_kind)
    # 3. Resolve every source once, here, before any replica starts; on a GPU, refuse models that
    #    do not fit its memory together, with the numbers, before any replica loads one.
    served = resolve_served_models(settings, device_kind)
    if sizes.model_gpus:
        check_gpu_memory(settings, served)
    options = model_deployment_options(settings, sizes)
    for resolved in served:
        log_event(
            logger,
            "app_built",
            **resolved.log_fields(),
            local_dir=resolved.local_dir,
            deployment_name=model_deployment_name(resolved.name, resolved is served[0]),
            cluster={"cpus": resources.cpus, "gpus": resources.gpus},
            deployment=options,
            ingress_cpus=sizes.ingress_cpus,
        )
    # 4. Wire ingress to the models: one model deployment per served model (its own replicas,
    #    queue and device loop, so a batch never mixes models), the default model's deployment
    #    keeping its single-model name. One object crosses the Ray seam per model: both replicas
    #    get every source as it was resolved here (the model replica alone loads the safety checker).
    models = [
        SDTurboModel.options(name=model_deployment_name(resolved.name, index == 0), **options).bind(settings, resolved)
        for index, resolved in enumerate(served)
    ]
    return Ingress.options(
        num_replicas=sizes.ingress_replicas,
        # The ingress only parses, validates and awaits: it holds many requests cheaply.
        max_ongoing_requests=1000,
        ray_actor_options={"num_cpus": sizes.ingress_cpus, "runtime_env": replica_runtime_env()},
    ).bind(models, settings, served)


def check_gpu_memory(settings: Settings, served: list[ResolvedModel]) -> None:
    """Refuse (DoesNotFit) models whose estimated GPU memory, together, exceeds one GPU's: every
    GPU holds one replica of every served model (serve_app/cluster.py)."""
    from serve_app.cluster import DoesNotFit
    from serve_app.model.memory import estimate_model_memory
    from serve_app.ray_private import gpu_memory_bytes

    total = gpu_memory_bytes()
    if total is None:
        logger.warning("GPU memory unknown (no NVML): the served models' memory was not checked before loading")
        return
    half = settings.dtype in ("auto", "float16", "bfloat16")
    estimates = [estimate_model_memory(m.local_dir, m.name, m.family, 2 if half else 4, settings.max_batch_size) for m in served]
    needed = sum(e.total_bytes for e in estimates)
    if needed > total:
        raise DoesNotFit(
            f"the served models need about {needed / 2**30:.1f} GiB of GPU memory together "
            f"({'; '.join(e.describe() for e in estimates)}); each GPU has {total / 2**30:.1f} GiB. "
            "Serve fewer models (SDTURBO_MODELS), a smaller max_batch_size, or a larger GPU."
        )
