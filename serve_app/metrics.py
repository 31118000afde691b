"""Prometheus metrics of the service, through Ray Serve's metrics API, and the same events as
CloudWatch EMF records (``serve_app.emf``) when the service knows its SageMaker endpoint.

Ray exports the Prometheus metrics with its own (request counts, latencies, replica health) on
each node's metrics port (the container entrypoint fixes it at SDTURBO_METRICS_PORT, default 9090).
Only the Ray layer (``serve_app.deployments``) imports this module.
"""

from __future__ import annotations

from ray.serve.metrics import Counter, Gauge, Histogram

from serve_app.emf import EmfWriter

_MS_BOUNDARIES = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]


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
        self.batch_size = Histogram(
            "sdturbo_batch_size", description="Images per pipeline call.", boundaries=[1, 2, 4, 8, 12, 16, 24, 32]
        )
        self.queue_ms = Histogram("sdturbo_queue_ms", description="Wait before the pipeline call, ms.", boundaries=_MS_BOUNDARIES)
        self.inference_ms = Histogram(
            "sdturbo_inference_ms", description="Pipeline call duration, ms.", boundaries=_MS_BOUNDARIES
        )
        self.encode_ms = Histogram("sdturbo_encode_ms", description="Image encoding, ms.", boundaries=_MS_BOUNDARIES)
        self.queue_depth = Gauge("sdturbo_queue_depth", description="Requests held by this model replica.")
        self.gpu_memory_bytes = Gauge("sdturbo_gpu_memory_allocated_bytes", description="torch.cuda.memory_allocated.")
        self.gpu_memory_peak_bytes = Gauge("sdturbo_gpu_memory_peak_bytes", description="torch.cuda.max_memory_allocated.")
        self.gpu_utilization = Gauge("sdturbo_gpu_utilization_percent", description="GPU utilisation (NVML).")
        self.safety_refusals = Counter(
            "sdturbo_safety_refusals", description="Images withheld because the image safety checker flagged them."
        )

    def pipeline_call(self, batch_size: int, inference_ms: float) -> None:
        """One pipeline call (a batch, or one part of a batch split after running out of memory)."""
        self.batch_size.observe(batch_size)
        self.inference_ms.observe(inference_ms)
        if self.emf:
            self.emf.emit({"BatchSize": batch_size})

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
