"""The Ray Serve application builder: ``serve run serve_app.app:build_app key=value ...``.

Reads the settings, turns the model setting into a local directory *before* any replica starts
(so a missing model fails fast with a clear message, and weights are fetched once, not once per
replica), sizes the model deployment to the machine's GPUs, and wires ingress to model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ray.serve import Application

from serve_app.deployments import Ingress, SDTurboModel
from serve_app.logs import configure_logging, log_event
from serve_app.settings import Settings

logger = logging.getLogger("sd_turbo.app")


def model_deployment_options(settings: Settings, gpu_count: int) -> dict[str, Any]:
    """Replica count and resources of the model deployment."""
    use_gpu = gpu_count > 0 and settings.device != "cpu"
    if settings.num_replicas == "auto":
        replicas = gpu_count if use_gpu else 1
    else:
        replicas = int(settings.num_replicas)
    return {
        "num_replicas": replicas,
        # One GPU per replica pins each replica to its own device (CUDA_VISIBLE_DEVICES).
        "ray_actor_options": {"num_gpus": 1 if use_gpu else 0, "num_cpus": 1},
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


def build_app_from_settings(settings: Settings) -> Application:
    from serve_app.model import cuda_device_count, resolve_model, resolve_tiny_decoder, select_device, select_dtype

    configure_logging(settings.log_level)
    device = select_device(settings.device)
    half = select_dtype(settings.dtype, device).itemsize == 2
    resolved = resolve_model(settings.model, settings.model_revision, settings.cache_dir, half)
    model_info = {"id": resolved.model_id, "revision": resolved.revision}
    # TAESD, when loaded, is fetched (or found) here too, once, with the same fail-fast rules.
    tiny = None
    if "tiny" in settings.loaded_decoders:
        tiny = resolve_tiny_decoder(
            settings.tiny_decoder, settings.tiny_decoder_revision, resolved.local_dir, settings.cache_dir
        )
        model_info["tiny_decoder"] = {"id": tiny.source_id, "revision": tiny.revision}
    options = model_deployment_options(settings, cuda_device_count())
    log_event(logger, "app_built", model=model_info, local_dir=resolved.local_dir, deployment=options)
    model = SDTurboModel.options(**options).bind(settings, resolved.local_dir, resolved.model_id, tiny)
    return Ingress.options(
        num_replicas=settings.ingress_replicas,
        # The ingress only parses, validates and awaits: it holds many requests cheaply.
        max_ongoing_requests=1000,
        ray_actor_options={"num_cpus": 0.5},
    ).bind(model, settings, resolved.local_dir, model_info)
