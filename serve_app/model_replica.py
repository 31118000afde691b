"""The model deployment: one ``SDTurboModel`` replica per GPU (Ray touched here and in ``ingress``).

The replica loads and warms the pipeline in its constructor, so it only counts as running once
it can serve. Requests arrive as ``GenerationJob``s through Ray's ``@serve.batch`` (which only
hands them over) and wait in the device loop (``serve_app/device_loop.py``), the one place that
forms pipeline calls; each image is encoded beside the next call.

Importing this module loads neither torch nor diffusers: the replica imports the model package's
heavy modules in its own methods, so the ingress process (which imports ``serve_app.app``) never does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from serve_app.batching import GenerationJob, GenerationResult, GenerationSpec, PipelineCallCancelled
from serve_app.device_loop import CallRecord, DeviceLoop, DeviceRequest
from serve_app.emf import EmfWriter
from serve_app.encoding import encode_image, encoded_on_device
from serve_app.errors import ImageBlocked, InsufficientMemory
from serve_app.health import PipelineHealth
from serve_app.logs import configure_logging, log_event
from serve_app.metrics import ModelMetrics
from serve_app.model.resolved import ResolvedModel
from serve_app.settings import DEFAULT_BATCH_WAIT_TIMEOUT_S, DEFAULT_MAX_BATCH_SIZE, Settings

logger = logging.getLogger("sd_turbo.model_replica")

MODEL_DEPLOYMENT = "SDTurboModel"


def model_deployment_name(model: str, default: bool) -> str:
    """The default model's deployment keeps the single-model name; each other served model's is
    ``SDTurboModel-<name>``."""
    return MODEL_DEPLOYMENT if default else f"{MODEL_DEPLOYMENT}-{model}"


@serve.deployment(name=MODEL_DEPLOYMENT)
class SDTurboModel:
    async def __init__(self, settings: Settings, resolved: ResolvedModel):
        # Load in a worker thread: a synchronous constructor blocks the replica's user-code
        # event loop, so Serve could not stop a replica that is still loading (Ctrl+C on
        # `serve run`, a start-up deadline) before its 20 s grace period ran out (issue 16).
        await asyncio.to_thread(self._load, settings, resolved)

    def _load(self, settings: Settings, resolved: ResolvedModel) -> None:
        from serve_app.model import ImageSafetyChecker, SDTurboGenerator, load_for_serving

        configure_logging(settings.log_level)
        self.settings = settings
        # The one model this replica serves: a job for another is refused, so no call mixes models.
        self.model_name = resolved.name
        self._call_models: set[str | None] = set()  # the models named by the specs of its calls
        started = time.perf_counter()
        time.sleep(settings.fault_injection_load_stall_s)  # testing only; 0 by default
        # 1. Load once, here, never in the request path: the pipeline configured, the decoders (the
        #    full VAE and/or TAESD, resolved.tiny_decoder) built, and when compile or compile_decoder
        #    says so the UNet and the decoders compiled per bucket, after the compile artifacts
        #    shipped with the model were loaded (serve_app/model/compile_cache.py).
        served = load_for_serving(resolved, **settings.serving_options)
        pipe, decoders, unet_report = served.pipe, served.decoders, served.unet_report
        self.metrics = ModelMetrics(emf=EmfWriter.from_settings(settings, model=resolved.name))
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
            # JPEG at the default quality encoded on the GPU when the images are there.
            gpu_jpeg_quality=settings.default_quality if settings.gpu_jpeg else None,
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
            unet_compile_s=round(unet_report.seconds, 1) if unet_report else None,
            compile_artifacts=served.artifacts.as_dict() if served.artifacts else None,
            load_ms=round((time.perf_counter() - started) * 1000.0 - warmup_ms, 1),
            warmup_ms=round(warmup_ms, 1),
        )

    async def generate(self, job: GenerationJob) -> GenerationResult:
        """One request: wait for its pipeline call, then encode its image."""
        if job.spec.model not in (None, self.model_name):
            raise ValueError(f"the replica of model {self.model_name!r} was sent a job for {job.spec.model!r}")
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
            data = encoded_on_device(
                generated.image, generated.jpeg, generated.jpeg_quality, job.output_format, job.quality
            )
            if data is None:
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
        self._call_models.update(spec.model for spec in specs)
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
            "model": self.model_name,
            # Every model the specs of this replica's calls named: its own only (tests check it).
            "call_models": sorted(str(name) for name in self._call_models),
            "oom_splits": self.generator.oom_splits,
            "actor_name": ray.get_runtime_context().get_actor_name(),
            "device_busy": self.device_loop.busy,
            "waiting_for_device": self.device_loop.waiting,
            **self.metrics.snapshot(),
            # Placement: the GPU Ray assigned this replica, and where the pipeline actually runs.
            "gpu_ids": ray.get_gpu_ids(),
            # The thread Serve runs this code on: its actor loop's, or its own user-code thread (serve_app/app.py).
            "user_code_thread": threading.current_thread().name,
            # The CPU priority Ray started this replica at (serve_app/launch.py: RAY_HEAD_ENV_DEFAULTS).
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": str(self.generator.device),
            # Device memory now and at its peak since start-up (torch's allocator; empty on CPU).
            **self.generator.device_stats(),
        }

    def check_health(self) -> None:
        # Ray calls this periodically; raising marks the replica unhealthy and replaces it.
        self.health.check()
