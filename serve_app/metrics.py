"""Prometheus metrics of the service, through Ray Serve's metrics API, and the same events as
CloudWatch EMF records (``serve_app.emf``) when the service knows its SageMaker endpoint.

Ray exports the Prometheus metrics with its own (request counts, latencies, replica health) on
each node's metrics port (the container entrypoint fixes it at SDTURBO_METRICS_PORT, default 9090).
Only the Ray layer (``serve_app.model_replica``, ``serve_app.ingress``) imports this module.
"""

from __future__ import annotations

import collections
from typing import Any

from ray.serve.metrics import Counter, Gauge, Histogram

from serve_app.batching import PipelineRun
from serve_app.device_loop import CallRecord
from serve_app.emf import EmfWriter

_MS_BOUNDARIES = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]
# Finer at the low end: an idle replica's batching delay is meant to be about 0.
_DELAY_BOUNDARIES = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]


class IngressMetrics:
    def __init__(self, emf: EmfWriter | None = None) -> None:
        self.emf = emf
        self.cache_hits = Counter("sdturbo_cache_hits", description="Requests answered from the image cache.")
        self.cache_misses = Counter("sdturbo_cache_misses", description="Requests that needed the model.")
        self.rejections = Counter(
            "sdturbo_rejections",
            description="Requests refused, by error type (overloaded, rate_limited, validation_error, ...).",
            tag_keys=("error_type",),
        )

    def cache_hit(self) -> None:
        self.cache_hits.inc()
        if self.emf:
            self.emf.emit({"CacheHits": 1})

    def cache_miss(self) -> None:
        self.cache_misses.inc()
        if self.emf:
            self.emf.emit({"CacheMisses": 1})

    def rejected(self, error_type: str) -> None:
        self.rejections.inc(tags={"error_type": error_type})
        if self.emf:
            self.emf.emit({"Rejections": 1}, error_type=error_type)


class ModelMetrics:
    def __init__(self, emf: EmfWriter | None = None) -> None:
        self.emf = emf
        # One observation per real pipeline call (a batch split after an out-of-memory error
        # counts as its parts): the batch-size distribution the device actually ran.
        self.batch_size = Histogram(
            "sdturbo_batch_size",
            description="Images per pipeline call.",
            boundaries=[1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64],
        )
        self.queue_ms = Histogram("sdturbo_queue_ms", description="Wait before the pipeline call, ms.", boundaries=_MS_BOUNDARIES)
        self.batching_delay_ms = Histogram(
            "sdturbo_batching_delay_ms",
            description="From a request reaching the model replica to its pipeline call starting, ms "
            "(about 0 on an idle replica; the wait for the running call under load).",
            boundaries=_DELAY_BOUNDARIES,
        )
        self.inference_ms = Histogram(
            "sdturbo_inference_ms", description="Pipeline call duration, ms.", boundaries=_MS_BOUNDARIES
        )
        self.encode_ms = Histogram("sdturbo_encode_ms", description="Image encoding, ms.", boundaries=_MS_BOUNDARIES)
        self.pipeline_calls = Counter(
            "sdturbo_pipeline_calls",
            description="Pipeline calls by outcome: completed, cancelled (every request gone), failed.",
            tag_keys=("outcome",),
        )
        self.abandoned_requests = Counter(
            "sdturbo_abandoned_requests",
            description="Requests whose caller gave up, by stage: queued (never generated) or "
            "running (their call stopped at the next denoising step).",
            tag_keys=("stage",),
        )
        self.queue_depth = Gauge("sdturbo_queue_depth", description="Requests held by this model replica.")
        self.gpu_memory_bytes = Gauge("sdturbo_gpu_memory_allocated_bytes", description="torch.cuda.memory_allocated.")
        self.gpu_memory_peak_bytes = Gauge("sdturbo_gpu_memory_peak_bytes", description="torch.cuda.max_memory_allocated.")
        self.gpu_utilization = Gauge("sdturbo_gpu_utilization_percent", description="GPU utilisation (NVML).")
        self.safety_refusals = Counter(
            "sdturbo_safety_refusals", description="Images withheld because the image safety checker flagged them."
        )
        # The same figures as plain counts, for the replica's stats() (tests and operators).
        self.tally: dict[str, Any] = {
            "batch_sizes": collections.Counter(),
            "calls": collections.Counter(),
            "abandoned": collections.Counter(),
            "recent_batching_delays_ms": collections.deque(maxlen=256),
        }

    def pipeline_call(self, record: CallRecord) -> None:
        """One device-loop call ended (``serve_app.device_loop.DeviceLoop``'s ``on_call``): its
        outcome, and each of its requests' wait from reaching the loop to the call starting."""
        self.pipeline_calls.inc(tags={"outcome": record.outcome})
        self.tally["calls"][record.outcome] += 1
        for wait_ms in record.waits_ms:
            self.batching_delay(wait_ms)

    def pipeline_run(self, run: PipelineRun) -> None:
        """One pipeline run, as the generator reports it (``SDTurboGenerator``'s ``on_pipeline_run``)."""
        self.batch_size.observe(run.batch_size)
        self.inference_ms.observe(run.inference_ms)
        self.tally["batch_sizes"][run.batch_size] += 1
        if self.emf:
            self.emf.emit({"BatchSize": run.batch_size})

    def abandoned(self, stage: str, count: int) -> None:
        self.abandoned_requests.inc(count, tags={"stage": stage})
        self.tally["abandoned"][stage] += count

    def batching_delay(self, delay_ms: float) -> None:
        self.batching_delay_ms.observe(delay_ms)
        self.tally["recent_batching_delays_ms"].append(round(delay_ms, 3))

    def snapshot(self) -> dict[str, Any]:
        return {name: (list(value) if isinstance(value, collections.deque) else dict(value)) for name, value in self.tally.items()}

    def image_done(self, queue_ms: float, inference_ms: float, encode_ms: float) -> None:
        """One request's image generated and encoded."""
        self.queue_ms.observe(queue_ms)
        self.encode_ms.observe(encode_ms)
        if self.emf:
            self.emf.emit({"QueueMs": queue_ms, "InferenceMs": inference_ms, "EncodeMs": encode_ms, "Images": 1})

    def safety_refused(self) -> None:
        self.safety_refusals.inc()
        if self.emf:
            self.emf.emit({"SafetyRefusals": 1})
