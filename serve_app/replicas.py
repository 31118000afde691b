"""The Ray Serve layer: the only module that talks to Ray.

``SDTurboModel`` (one per GPU) loads and warms the pipeline in its constructor, so a replica
only counts as running once it can serve, and coalesces concurrent calls with ``@serve.batch``.
``Ingress`` serves the HTTP app from ``serve_app.http`` and forwards to the model through a
deployment handle, turning Ray's failures into the service's errors.

Everything imported at module level is free of torch and diffusers (from the model package only
``resolved`` and ``tokens``): the ingress process only parses, validates and awaits. The model
replica imports the rest of ``serve_app.model`` in its own methods.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestCancelledError

from serve_app import direct_ingress
from serve_app.batching import GenerationJob, GenerationResult, GenerationSpec, PipelineCallCancelled
from serve_app.device_loop import CallRecord, DeviceLoop, DeviceRequest
from serve_app.emf import EmfWriter
from serve_app.encoding import encode_image
from serve_app.errors import ImageBlocked, InsufficientMemory, ModelUnavailable, NotReady, Overloaded, ServiceError
from serve_app.guardrails import RateLimiter
from serve_app.health import PipelineHealth
from serve_app.http import create_http_app
from serve_app.inflight import CountOpenRequests, InflightRequests
from serve_app.logs import configure_logging, log_event
from serve_app.metrics import IngressMetrics, ModelMetrics
from serve_app.model.resolved import ResolvedModel
from serve_app.model.tokens import PromptTokenCounter
from serve_app.protocol import ModelInfo
from serve_app.serving import ImageService
from serve_app.settings import DEFAULT_BATCH_WAIT_TIMEOUT_S, DEFAULT_MAX_BATCH_SIZE, Settings
from serve_app.startup import StartupWatch
from serve_app.storage import S3ImageStore

logger = logging.getLogger("sd_turbo.replicas")

MODEL_DEPLOYMENT = "SDTurboModel"
INGRESS_DEPLOYMENT = "Ingress"
# How often the ingress refreshes its view of the model deployment's health.
READINESS_POLL_S = 0.5
# Retry-After for a full queue: a batch completes in well under a second on a GPU.
OVERLOAD_RETRY_AFTER_S = 1


@serve.deployment(name=MODEL_DEPLOYMENT)
class SDTurboModel:
    async def __init__(self, settings: Settings, resolved: ResolvedModel):
        # Load in a worker thread: a synchronous constructor blocks the replica's user-code
        # event loop, so Serve could not stop a replica that is still loading (Ctrl+C on
        # `serve run`, a start-up deadline) before its 20 s grace period ran out (issue 16).
        await asyncio.to_thread(self._load, settings, resolved)

    def _load(self, settings: Settings, resolved: ResolvedModel) -> None:
        from serve_app.model import (
            ImageSafetyChecker,
            SDTurboGenerator,
            configure_pipeline,
            load_pipeline,
            prepare_decoders,
        )

        configure_logging(settings.log_level)
        self.settings = settings
        started = time.perf_counter()
        time.sleep(settings.fault_injection_load_stall_s)  # testing only; 0 by default
        # 1. Load once, here, never in the request path.
        pipe = load_pipeline(device=settings.device, dtype=settings.dtype, resolved=resolved)
        configure_pipeline(
            pipe,
            channels_last=settings.channels_last,
            compile_unet=settings.compile,
            attention_slicing=settings.attention_slicing,
            vae_slicing=settings.vae_slicing,
            vae_tiling=settings.vae_tiling,
        )
        # VAE decoders: the full VAE and/or TAESD (resolved.tiny_decoder), compiled here when
        # compile_decoder says so, never in the request path.
        decoders = prepare_decoders(pipe, resolved.tiny_decoder, **settings.decoder_options)
        self.metrics = ModelMetrics(emf=EmfWriter.from_settings(settings))
        self.generator = SDTurboGenerator(
            pipe,
            simulate_oom_above=settings.fault_injection_oom_above,
            # The image safety checker (None when off), beside the pipeline.
            safety_checker=(
                ImageSafetyChecker.load(resolved.safety_checker, pipe.device, pipe.unet.dtype)
                if resolved.safety_checker
                else None
            ),
            decoders=decoders,
            # Batch size and inference time of every pipeline run, reported by the generator itself.
            on_pipeline_run=self.metrics.pipeline_run,
        )
        # A call running twice as long as any request may wait serves nobody: the device is stuck.
        self.health = PipelineHealth(stall_after_s=2 * settings.request_timeout_s)
        self._held = 0  # requests in this replica: waiting for a batch, in one, or encoding
        # 2. Batch formation follows the device (serve_app/device_loop.py), the one owner of
        #    batching: Ray's batcher only hands requests over, the loop runs whatever waits when
        #    the device frees up, up to max_batch_size. The decorator's values are only defaults
        #    (it is evaluated when the class is defined, before any settings exist); the
        #    settings set both here.
        self.device_loop = DeviceLoop(
            self._run_on_device,
            settings.max_batch_size,
            on_call=self._call_ended,
            on_abandoned=self.metrics.abandoned,
        )
        self._generate_batch.set_max_batch_size(settings.max_batch_size)
        self._generate_batch.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)
        # 3. Warm up before Serve marks the replica running (and /ping turns 200).
        warmup_ms = 0.0
        if settings.warmup:
            warmup_ms = self.generator.warmup(batch_sizes=settings.warmup_batch_sizes)
        # Encoding runs beside the next batch's inference, never on the event loop.
        self._encode_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="encode")
        log_event(
            logger,
            "model_ready",
            **resolved.log_fields(),
            device=str(pipe.device),
            dtype=str(pipe.unet.dtype),
            decoders=list(decoders.names),
            decoder_compile_s={name: round(r.seconds, 1) for name, r in decoders.compile_reports.items()},
            load_ms=round((time.perf_counter() - started) * 1000.0 - warmup_ms, 1),
            warmup_ms=round(warmup_ms, 1),
        )

    async def generate(self, job: GenerationJob) -> GenerationResult:
        """One request: wait for its pipeline call, then encode its image."""
        self._held += 1
        self.metrics.queue_depth.set(self._held)
        request = self.device_loop.prepare(job.spec)
        try:
            try:
                await self._generate_batch(request)
                generated = await request.future
            except asyncio.CancelledError:
                # The caller gave up (Ray cancels this task): the device loop drops the request,
                # or stops its call at the next step if nobody else waits for it.
                request.future.cancel()
                raise
            if generated.flagged:  # withheld: this request fails, the rest of its batch does not
                self.metrics.safety_refused()
                raise ImageBlocked()
            loop = asyncio.get_running_loop()
            encode_started = time.perf_counter()
            data = await loop.run_in_executor(
                self._encode_pool, encode_image, generated.image, job.output_format, job.quality
            )
        finally:
            self._held -= 1
            self.metrics.queue_depth.set(self._held)
        result = GenerationResult(
            image=data,
            format=job.output_format,
            batch_size=generated.batch_size,
            # From the ingress handing the request over to its pipeline call starting.
            queue_ms=max(0.0, (generated.started_at - job.submitted_at) * 1000.0),
            inference_ms=generated.inference_ms,
            encode_ms=(time.perf_counter() - encode_started) * 1000.0,
            decoder=generated.decoder,
        )
        self.metrics.image_done(result.queue_ms, result.inference_ms, result.encode_ms)
        return result

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S)
    async def _generate_batch(self, requests: list[DeviceRequest]) -> list[None]:
        # Hand over and return at once: Ray's one-batch-at-a-time semaphore is then never held
        # by a running call, so requests never queue behind it in small timer-cut batches
        # (issue 11); the device loop merges everything that waits into the next call.
        self.device_loop.enqueue(requests)
        return [None] * len(requests)

    def _run_on_device(self, specs: list[GenerationSpec], should_stop) -> list:
        """One device-loop call, on its worker thread."""
        from serve_app.model import GenerationOutOfMemory

        self.health.call_started()
        try:
            images = self.generator.generate(specs, should_stop)
        except GenerationOutOfMemory as exc:
            self.health.call_ended()  # this request's size, not the device, is the problem
            raise InsufficientMemory(str(exc)) from None
        except PipelineCallCancelled:
            self.health.call_ended()  # its callers gave up: it stopped early, as asked
            raise
        except Exception as exc:
            self.health.call_failed(exc)
            raise
        self.health.call_succeeded()
        return images

    def _call_ended(self, record: CallRecord) -> None:
        self.metrics.pipeline_call(record)
        self._record_gpu()

    def _record_gpu(self) -> None:
        stats = self.generator.device_stats()
        if "memory_allocated_bytes" in stats:
            self.metrics.gpu_memory_bytes.set(stats["memory_allocated_bytes"])
            self.metrics.gpu_memory_peak_bytes.set(stats["memory_peak_bytes"])
        if "utilization_percent" in stats:
            self.metrics.gpu_utilization.set(stats["utilization_percent"])

    async def stats(self) -> dict:
        """Counters for operators and tests (reached through a deployment handle)."""
        import ray

        return {
            "held": self._held,
            "oom_splits": self.generator.oom_splits,
            "actor_name": ray.get_runtime_context().get_actor_name(),
            "device_busy": self.device_loop.busy,
            "waiting_for_device": self.device_loop.waiting,
            **self.metrics.snapshot(),
            # Placement: the GPU Ray assigned this replica, and where the pipeline actually runs.
            "gpu_ids": ray.get_gpu_ids(),
            # The thread Serve runs this code on: its actor loop's, or its own user-code thread (serve_app/app.py).
            "user_code_thread": threading.current_thread().name,
            # The CPU priority Ray started this replica at (serve_app/app.py: RAY_HEAD_ENV_DEFAULTS).
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": str(self.generator.device),
        }

    def check_health(self) -> None:
        # Ray calls this periodically; raising marks the replica unhealthy and replaces it.
        self.health.check()


@serve.deployment(name=INGRESS_DEPLOYMENT)
@serve.ingress()
class Ingress:
    def __init__(self, model, settings: Settings, resolved: ResolvedModel):
        configure_logging(settings.log_level)
        if direct_ingress.is_enabled():
            # Serve starts this replica's own HTTP server after the constructor returns.
            direct_ingress.share_port_with_responder()
        self.settings = settings
        self.model = model
        self.model_info = ModelInfo(
            id=resolved.model_id,
            revision=resolved.revision,
            random_weights=resolved.is_random,
            tiny_decoder=resolved.tiny_decoder.info() if resolved.tiny_decoder else None,
        )
        self.metrics = IngressMetrics(emf=EmfWriter.from_settings(settings))
        store = None
        if settings.s3_output_bucket:
            store = S3ImageStore(
                settings.s3_output_bucket,
                settings.s3_output_prefix,
                settings.s3_presign_expiry_s,
                endpoint_url=settings.s3_endpoint_url or None,
            )
        self.service = ImageService(
            settings,
            self.model_info,
            PromptTokenCounter(resolved.local_dir),
            self._call_model,
            store=store,
            metrics=self.metrics,
        )
        self.rate_limiter = (
            RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
            if settings.rate_limit_per_minute
            else None
        )
        self._ready = False
        self._readiness_task: asyncio.Task | None = None
        # Requests waiting on the model: drained on SIGTERM, aborted at the stop deadline (issue 10).
        self.inflight_requests = InflightRequests()
        # `serve run` names the application "default"; the container names it from the settings.
        self.app_name = serve.get_replica_context().app_name
        # Whatever runs the app (`serve run`, a Serve config), the reason it is not running by
        # the start-up deadline is logged; the container entrypoint also exits on it (issue 16).
        self._startup_watch = StartupWatch(self.app_name, settings.startup_deadline_s)
        try:
            self._readiness_task = asyncio.get_running_loop().create_task(self._poll_readiness())
        except RuntimeError:  # no loop yet: started by the first /ping instead
            pass

    def __serve_build_asgi_app__(self):
        app = create_http_app(
            lambda: self.service,
            self._is_ready,
            max_body_bytes=self.settings.max_body_bytes,
            model_info=lambda: self.model_info,
            admit=self._admit,
            on_rejected=self.metrics.rejected,
            playground=self.settings.playground,
        )
        app.add_middleware(CountOpenRequests, inflight=self.inflight_requests)
        return app

    # --- graceful shutdown -------------------------------------------------------------------
    def _admit(self, request) -> None:
        if self.inflight_requests.draining:
            raise NotReady("the server is shutting down; retry on another instance", retry_after_s=1)
        if self.rate_limiter is not None:
            self.rate_limiter.acquire(request.client.host if request.client else "-")

    async def process_stats(self) -> dict:
        """This replica's process: what it has loaded and what it costs (operators and tests)."""
        import ray

        return {
            "pid": os.getpid(),
            "actor_name": ray.get_runtime_context().get_actor_name(),
            "rss_bytes": _rss_bytes(),
            "torch_loaded": "torch" in sys.modules,
            "diffusers_loaded": "diffusers" in sys.modules,
            "user_code_thread": threading.current_thread().name,
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            # Whether this replica serves the HTTP port itself (Ray started with direct ingress).
            "direct_ingress": direct_ingress.is_enabled(),
        }

    async def drain(self) -> int:
        """Stop taking new work (/ping turns 503); returns the requests still in flight."""
        return self.inflight_requests.drain()

    async def inflight(self) -> int:
        return self.inflight_requests.open

    async def abort_inflight(self, reason: str) -> int:
        """Answer every request still in flight with a 503 ``shutting_down`` error, now."""
        return self.inflight_requests.abort(reason)

    # --- readiness -------------------------------------------------------------------------
    def _is_ready(self) -> bool:
        if self._readiness_task is None:
            self._readiness_task = asyncio.get_running_loop().create_task(self._poll_readiness())
        return self._ready and not self.inflight_requests.draining

    async def _poll_readiness(self) -> None:
        """Track whether the model deployment has a running replica, from the controller.

        /ping reads the cached answer, so it never waits behind image generation; asking the
        controller (not the model replica) also keeps health probes out of the model's queue.
        """
        while True:
            try:
                self._ready = await asyncio.to_thread(_model_deployment_healthy, self.app_name)
                if not self._startup_watch.settled:
                    # While starting, the full status too: the start-up watch says what is stuck.
                    status = await asyncio.to_thread(serve.status)
                    self._startup_watch.observe(status.applications.get(self.app_name))
            except Exception:  # noqa: BLE001 - a failed poll means "not known ready"
                logger.exception("readiness poll failed")
                self._ready = False
            await asyncio.sleep(READINESS_POLL_S)

    # --- the model call --------------------------------------------------------------------
    async def _call_model(self, job: GenerationJob) -> GenerationResult:
        return await self.inflight_requests.run(self._await_model(job))

    async def _await_model(self, job: GenerationJob) -> GenerationResult:
        response = self.model.generate.remote(job)
        try:
            return await response
        except asyncio.CancelledError:
            # The caller timed out or went away: drop the work instead of finishing it unseen.
            response.cancel()
            raise
        except ServiceError:
            raise
        except BackPressureError:
            raise Overloaded(
                "the model queue is full; retry shortly", retry_after_s=OVERLOAD_RETRY_AFTER_S
            ) from None
        except RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, ServiceError):
                raise cause from None
            logger.exception("model call failed")
            raise ModelUnavailable(
                "the model replica failed while generating this image; it was not completed",
                retry_after_s=1,
            ) from None
        except (ActorDiedError, ActorUnavailableError, DeploymentUnavailableError, RequestCancelledError):
            logger.exception("model replica unavailable")
            raise ModelUnavailable(
                "the model replica holding this request stopped; it was not completed", retry_after_s=2
            ) from None


def _model_deployment_healthy(app_name: str) -> bool:
    """Whether ``app_name``'s model deployment is HEALTHY, from the controller's status of that
    one application (a small protobuf: about 2 ms on the 2-core CI machine).

    ``serve.status()`` is public but rebuilds every deployment's full configuration on each call,
    cloudpickling its request router class: about 26 ms per call, mostly holding the GIL (mean of
    20 calls on the 2-core CI machine, 2026-11-25).
    Polled twice a second by the ingress, that stalled the event loop serving /ping and every
    request (issue 11). The per-application call is a method of Serve's private controller
    client: Ray is pinned (container/requirements.lock), and the live-app tests exercise it.
    """
    from ray.serve.context import _get_global_client

    overview = _get_global_client().get_serve_status(app_name)
    return any(d.name == MODEL_DEPLOYMENT and d.status == "HEALTHY" for d in overview.deployment_statuses)


def _rss_bytes() -> int:
    """Resident set size of this process (Linux), 0 where /proc is not available."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
