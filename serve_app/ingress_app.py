"""The ingress's HTTP app wired from plain values: settings, the resolved model and a model call.

No Ray here: ``serve_app.ingress`` (the Ray deployment) calls ``build_ingress_app`` with a model
call that goes through a deployment handle, tests call it with a fake one. Everything the HTTP
app needs (the service, readiness, admission, refusal metrics) is made here, so nothing points
back into the Ray actor: the actor only records what its readiness poll learns in
``IngressApp.readiness`` (serve_app/liveness.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import FastAPI, Request

from serve_app.batching import GenerationJob, GenerationResult
from serve_app.errors import NotReady
from serve_app.guardrails import RateLimiter
from serve_app.http import create_http_app
from serve_app.inflight import CountOpenRequests, InflightRequests
from serve_app.liveness import Readiness
from serve_app.model.resolved import ResolvedModel
from serve_app.protocol import ModelInfo
from serve_app.serving import GenerateFn, ImageService, ServedModel, TokenCounter
from serve_app.settings import Settings
from serve_app.storage import S3ImageStore

# How old the readiness poll's last answer may be before /ping stops trusting it (a question
# that hangs on a dead component): inside the 10 s in which /ping must turn 503, well above a
# slow answer on a loaded machine. And when a refused caller should ask again.
READINESS_STALE_S = 6.0
NOT_READY_RETRY_AFTER_S = 2


class IngressMetrics(Protocol):
    """What the ingress counts (``serve_app.metrics.IngressMetrics`` in the deployment)."""

    def cache_hit(self) -> None: ...

    def cache_miss(self) -> None: ...

    def rejected(self, error_type: str) -> None: ...


class NoIngressMetrics:
    def cache_hit(self) -> None:
        pass

    def cache_miss(self) -> None:
        pass

    def rejected(self, error_type: str) -> None:
        pass


@dataclass
class IngressApp:
    """The ASGI app and the state its owner reads and drives (drain, abort, readiness)."""

    app: FastAPI
    service: ImageService
    inflight: InflightRequests
    # Whether a model replica runs, as the owner's readiness poll last learned it (and how long ago).
    readiness: Readiness = field(default_factory=lambda: Readiness(stale_after_s=READINESS_STALE_S))
    rate_limiter: RateLimiter | None = field(default=None, repr=False)

    def is_ready(self) -> bool:
        return self.readiness.verdict().ready and not self.inflight.draining

    def admit(self, request: Request) -> None:
        """Before any work: refuse while draining or while no model replica runs, then the
        per-client rate limit."""
        if self.inflight.draining:
            raise NotReady("the server is shutting down; retry on another instance", retry_after_s=1)
        verdict = self.readiness.verdict()
        if not verdict.ready:
            # Waiting for a replica that is not there would only end in a 504 much later.
            raise NotReady(
                f"this instance cannot make an image now ({verdict.reason}); retry shortly",
                retry_after_s=NOT_READY_RETRY_AFTER_S,
            )
        if self.rate_limiter is not None:
            self.rate_limiter.acquire(request.client.host if request.client else "-")


def model_info(resolved: ResolvedModel) -> ModelInfo:
    """What every response says about the model (random weights are never reported as real)."""
    return ModelInfo(
        name=resolved.name,
        id=resolved.model_id,
        revision=resolved.revision,
        random_weights=resolved.is_random,
        tiny_decoder=resolved.tiny_decoder.info() if resolved.tiny_decoder else None,
    )


def build_ingress_app(
    settings: Settings,
    resolved: ResolvedModel | Sequence[ResolvedModel],
    model_call: GenerateFn,
    *,
    token_counter: TokenCounter | None = None,
    metrics: IngressMetrics | None = None,
    store_factory: Callable[[Settings], S3ImageStore | None] | None = None,
) -> IngressApp:
    """The ingress's app: ``model_call(job)`` reaches the model ``job.spec.model`` names; the rest
    comes from ``settings``. ``resolved``: the served model, or the served models, default first."""
    served = [resolved] if isinstance(resolved, ResolvedModel) else list(resolved)
    default = served[0]
    metrics = metrics or NoIngressMetrics()
    # 1. Requests waiting on the model are tracked, so a stop drains them and then aborts the rest.
    inflight = InflightRequests()

    async def call_model(job: GenerationJob) -> GenerationResult:
        return await inflight.run(model_call(job))

    # 2. The serving logic: validation against the model's tokenizer, cache, S3 delivery.
    from serve_app.model.tokens import PromptTokenCounter

    def counter(model: ResolvedModel) -> TokenCounter:
        return token_counter or PromptTokenCounter(model.local_dir)

    store = (store_factory or s3_store)(settings)
    service = ImageService(
        settings,
        model_info(default),
        counter(default),
        call_model,
        store=store,
        metrics=metrics,
        other_models=[ServedModel(model_info(model), counter(model), model.family) for model in served[1:]],
        family=default.family,
    )
    rate_limiter = (
        RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst) if settings.rate_limit_per_minute else None
    )
    ingress = IngressApp(app=None, service=service, inflight=inflight, rate_limiter=rate_limiter)  # type: ignore[arg-type]
    # 3. The HTTP transport around it; every open request is counted for the drain.
    ingress.app = create_http_app(
        service,
        ingress.is_ready,
        max_body_bytes=settings.max_body_bytes,
        admit=ingress.admit,
        on_rejected=metrics.rejected,
        playground=settings.playground,
    )
    ingress.app.add_middleware(CountOpenRequests, inflight=inflight)
    return ingress


def s3_store(settings: Settings) -> S3ImageStore | None:
    if not settings.s3_output_bucket:
        return None
    return S3ImageStore(
        settings.s3_output_bucket,
        settings.s3_output_prefix,
        settings.s3_presign_expiry_s,
        endpoint_url=settings.s3_endpoint_url or None,
    )
