"""Serving logic: from a validated request to an encoded image and its metadata.

Independent of HTTP and of Ray: the model is reached through an async callable, so this is
tested with a fake one and runs unchanged inside the Ray ingress deployment.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, Protocol

from serve_app.batching import GenerationResult, GenerationSpec
from serve_app.cache import ByteBudgetLRUCache
from serve_app.errors import InvalidField, RequestTimeout
from serve_app.logs import ACCESS_LOGGER, log_event, prompt_hash
from serve_app.protocol import MAX_SEED, GenerateRequest, GenerateResponse, ModelInfo, Timings
from serve_app.settings import Settings

logger = logging.getLogger(ACCESS_LOGGER)

# generate(spec, output_format, quality, submitted_at_unix_s) -> GenerationResult
GenerateFn = Callable[[GenerationSpec, str, int, float], Awaitable[GenerationResult]]


class TokenCounter(Protocol):
    max_prompt_tokens: int

    def count(self, text: str) -> int: ...


@dataclass
class ImageOutcome:
    """What the transport needs to answer: the image bytes and the JSON metadata."""

    image: bytes
    response: GenerateResponse


class ImageService:
    def __init__(
        self,
        settings: Settings,
        model_info: ModelInfo,
        token_counter: TokenCounter,
        generate: GenerateFn,
    ):
        self.settings = settings
        self.model_info = model_info
        self.token_counter = token_counter
        self._generate = generate
        self.cache: ByteBudgetLRUCache[GenerationResult] = ByteBudgetLRUCache(settings.cache_max_bytes)

    def check_prompt_length(self, request: GenerateRequest) -> None:
        limit = self.token_counter.max_prompt_tokens
        for field in ("prompt", "negative_prompt"):
            text = getattr(request, field)
            if text is None:
                continue
            tokens = self.token_counter.count(text)
            if tokens > limit:
                raise InvalidField(
                    f"{field} is {tokens} tokens long; the text encoder accepts at most {limit}. "
                    "Shorten it (it is never truncated silently).",
                    field=field,
                )

    async def generate(self, request: GenerateRequest, request_id: str, client: str = "-") -> ImageOutcome:
        started = time.perf_counter()
        # 1. Model-dependent validation (the schema already checked everything else).
        self.check_prompt_length(request)
        # 2. Fill in defaults: the seed is drawn here so the response can report it.
        seeded = request.seed is not None
        spec = GenerationSpec(
            prompt=request.prompt,
            seed=request.seed if seeded else random.randint(0, MAX_SEED),
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            width=request.width,
            height=request.height,
            negative_prompt=request.negative_prompt,
        )
        output_format = request.output_format or self.settings.default_output_format
        quality = request.quality or self.settings.default_quality
        # 3. A seeded request may already have been made.
        cache_key = (spec, output_format, quality)
        result = self.cache.get(cache_key) if seeded and self.settings.cache_max_bytes else None
        cached = result is not None
        # 4. Otherwise ask the model, within the request's time budget.
        if result is None:
            try:
                result = await asyncio.wait_for(
                    self._generate(spec, output_format, quality, time.time()),
                    timeout=self.settings.request_timeout_s,
                )
            except asyncio.TimeoutError:
                raise RequestTimeout(
                    f"no image within {self.settings.request_timeout_s:g} s; the request was cancelled",
                    retry_after_s=1,
                ) from None
            if seeded and self.settings.cache_max_bytes:
                self.cache.put(cache_key, result, len(result.image))
        total_ms = (time.perf_counter() - started) * 1000.0
        # 5. Cached answers report no queue/inference/encode time of their own.
        timings = Timings(
            queue=0.0 if cached else round(result.queue_ms, 2),
            inference=0.0 if cached else round(result.inference_ms, 2),
            encode=0.0 if cached else round(result.encode_ms, 2),
            total=round(total_ms, 2),
        )
        response = GenerateResponse(
            image="",
            format=output_format,
            seed=spec.seed,
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.num_inference_steps,
            guidance_scale=spec.guidance_scale,
            model=self.model_info,
            batch_size=result.batch_size,
            cached=cached,
            timings_ms=timings,
            request_id=request_id,
        )
        log_event(
            logger,
            "generated",
            request_id=request_id,
            client=client,
            prompt_sha256=prompt_hash(spec.prompt),
            seed=spec.seed,
            size=f"{spec.width}x{spec.height}",
            steps=spec.num_inference_steps,
            format=output_format,
            batch_size=result.batch_size,
            cached=cached,
            bytes=len(result.image),
            timings_ms=timings.model_dump(),
        )
        return ImageOutcome(image=result.image, response=response)


def response_with_image(outcome: ImageOutcome) -> dict:
    """The JSON body: metadata plus the image as base64."""
    body = outcome.response.model_dump()
    body["image"] = base64.b64encode(outcome.image).decode("ascii")
    return body


def new_request_id(supplied: Optional[str]) -> str:
    """Use the caller's id when it is a sane token, else a fresh one."""
    if supplied and len(supplied) <= 128 and supplied.isascii() and supplied.isprintable() and " " not in supplied:
        return supplied
    import uuid

    return uuid.uuid4().hex
