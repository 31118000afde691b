"""Serving logic: from a validated request to an encoded image and its metadata.

Independent of HTTP and of Ray: the model is reached through an async callable, so this is
tested with a fake one and runs unchanged inside the Ray ingress deployment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from serve_app.batching import GenerationJob, GenerationResult, GenerationSpec
from serve_app.cache import ByteBudgetLRUCache
from serve_app.errors import InvalidField, RequestTimeout, ResponseTooLarge
from serve_app.guardrails import PromptBlocklist
from serve_app.logs import ACCESS_LOGGER, log_event, prompt_hash
from serve_app.protocol import (
    FAMILY_LIMITS,
    IMAGE_MEDIA_TYPES,
    MAX_SEED,
    GenerateRequest,
    GenerateResponse,
    ModelInfo,
    ModelLimits,
    SizeStepLimits,
    Timings,
)
from serve_app.settings import Settings
from serve_app.storage import S3ImageStore

logger = logging.getLogger(ACCESS_LOGGER)

# generate(job) -> GenerationResult: the model call (a deployment handle in the ingress, a fake in tests).
GenerateFn = Callable[[GenerationJob], Awaitable[GenerationResult]]


class TokenCounter(Protocol):
    max_prompt_tokens: int

    def count(self, text: str) -> int: ...


class ServiceMetrics(Protocol):
    def cache_hit(self) -> None: ...

    def cache_miss(self) -> None: ...


class NoMetrics:
    def cache_hit(self) -> None:
        pass

    def cache_miss(self) -> None:
        pass


@dataclass
class ServedModel:
    """One model behind the endpoint: what responses say about it, its tokenizer(s), its family."""

    info: ModelInfo
    token_counter: TokenCounter
    family: str = "sd"  # "sd" (SD-Turbo) or "sdxl" (SDXL-Turbo)
    decoders: tuple[str, ...] = field(default=())  # empty: the settings' loaded decoders

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def limits(self) -> SizeStepLimits:
        """The sizes and steps this model accepts: its family's (serve_app/protocol.py)."""
        return FAMILY_LIMITS[self.family]

    @property
    def family_label(self) -> str:
        return "sdxl-turbo" if self.family == "sdxl" else "sd-turbo"


@dataclass
class ImageOutcome:
    """What the transport needs to answer: the image bytes and the JSON metadata.

    ``response.image`` is left empty here: the transport sends the bytes its own way (base64 in
    JSON, or raw), or none when the image went to S3 and ``response.image_url`` says where.
    """

    image: bytes
    response: GenerateResponse


class ImageService:
    """``model_info`` and ``token_counter``: the default model; ``other_models``: the rest of the
    served models (the ``models`` setting). ``generate`` reaches whichever a job's spec names."""

    def __init__(
        self,
        settings: Settings,
        model_info: ModelInfo,
        token_counter: TokenCounter,
        generate: GenerateFn,
        store: S3ImageStore | None = None,
        metrics: ServiceMetrics | None = None,
        other_models: Sequence[ServedModel] = (),
        family: str = "sd",
    ):
        self.settings = settings
        self.model_info = model_info
        self.token_counter = token_counter
        # The served models by name, the default first.
        self.models: dict[str, ServedModel] = {model_info.name: ServedModel(model_info, token_counter, family)}
        for model in other_models:
            if model.name in self.models:
                raise ValueError(f"two served models are named {model.name!r}")
            self.models[model.name] = model
        self._generate = generate
        self.store = store
        self.metrics = metrics or NoMetrics()
        self.blocklist = PromptBlocklist.from_setting(settings.prompt_blocklist)
        self.cache: ByteBudgetLRUCache[GenerationResult] = ByteBudgetLRUCache(settings.cache_max_bytes)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models)

    def served_model(self, request: GenerateRequest) -> ServedModel:
        """The model ``request`` names (the default when it names none); 422 naming ``model`` else."""
        name = request.model or self.model_info.name
        if name not in self.models:
            raise InvalidField(
                f"model {name!r} is not served here (served: {', '.join(self.models)}; SDTURBO_MODELS chooses)",
                field="model",
            )
        return self.models[name]

    @property
    def served_families(self) -> tuple[str, ...]:
        return tuple(model.family for model in self.models.values())

    def model_limits(self) -> list[ModelLimits]:
        """GET /models: each served model with its own defaults and limits, the default first."""
        listed = []
        for index, model in enumerate(self.models.values()):
            limits = model.limits
            listed.append(
                ModelLimits(
                    name=model.name,
                    default=index == 0,
                    family=model.family_label,
                    model=model.info,
                    max_prompt_tokens=model.token_counter.max_prompt_tokens,
                    default_width=limits.default_side,
                    default_height=limits.default_side,
                    min_side=limits.min_side,
                    max_side=limits.max_side,
                    side_multiple=limits.side_multiple,
                    default_steps=limits.default_steps,
                    max_steps=limits.max_steps,
                    default_guidance_scale=0.0,
                    decoders=list(model.decoders or self.settings.loaded_decoders),
                )
            )
        return listed

    def check_request(self, request: GenerateRequest) -> None:
        """Model- and server-dependent validation (the schema already checked the rest)."""
        self.check_size_and_steps(request)
        self.check_prompt_length(request)
        self.blocklist.check("prompt", request.prompt)
        self.blocklist.check("negative_prompt", request.negative_prompt)
        if request.decoder is not None and request.decoder not in self.settings.loaded_decoders:
            raise InvalidField(
                f"decoder {request.decoder!r} is not loaded on this server (loaded: "
                f"{', '.join(self.settings.loaded_decoders)}; SDTURBO_DECODERS chooses)",
                field="decoder",
            )
        if request.delivery == "s3" and self.store is None:
            raise InvalidField(
                "delivery 's3' is not configured on this server (SDTURBO_S3_OUTPUT_BUCKET is unset)",
                field="delivery",
            )

    def check_size_and_steps(self, request: GenerateRequest) -> None:
        # The schema's bounds are the loosest over the served models; the model asked for may
        # accept less (SD-Turbo stops at 768 pixels a side, SDXL-Turbo at 1024).
        model = self.served_model(request)
        limits = model.limits
        for side in ("width", "height"):
            value = getattr(request, side)
            if value is not None and not limits.min_side <= value <= limits.max_side:
                raise InvalidField(
                    f"{side} {value} is outside {model.name}'s limits: {model.family_label} models make "
                    f"{limits.min_side} to {limits.max_side} pixels a side (GET /models lists each model's)",
                    field=side,
                )
        steps = request.num_inference_steps
        if steps is not None and steps > limits.max_steps:
            raise InvalidField(
                f"num_inference_steps {steps} is over {model.name}'s limit: {model.family_label} models take "
                f"at most {limits.max_steps} steps (GET /models lists each model's)",
                field="num_inference_steps",
            )

    def size_and_steps(self, request: GenerateRequest, model: ServedModel) -> tuple[int, int, int]:
        """(width, height, steps): the request's, or the model's defaults where it gives none."""
        limits = model.limits
        return (
            limits.default_side if request.width is None else request.width,
            limits.default_side if request.height is None else request.height,
            limits.default_steps if request.num_inference_steps is None else request.num_inference_steps,
        )

    def check_prompt_length(self, request: GenerateRequest) -> None:
        # The model's own tokenizer(s): SDXL-Turbo's prompt must fit both of its text encoders.
        model = self.served_model(request)
        counter = model.token_counter
        limit = counter.max_prompt_tokens
        for name in ("prompt", "negative_prompt"):
            text = getattr(request, name)
            if text is None:
                continue
            tokens = counter.count(text)
            if tokens > limit:
                encoder = "text encoders accept" if model.family == "sdxl" else "text encoder accepts"
                raise InvalidField(
                    f"{name} is {tokens} tokens long; {model.name}'s {encoder} at most {limit}. "
                    "Shorten it (it is never truncated silently).",
                    field=name,
                )

    async def generate(
        self,
        request: GenerateRequest,
        request_id: str,
        client: str = "-",
        response_bytes: Callable[[int], int] | None = None,
    ) -> ImageOutcome:
        """``response_bytes``: how large the transport's answer is for an image of n bytes (by
        default the image alone); answers over ``max_response_bytes`` go to S3 or are refused."""
        started = time.perf_counter()
        # 1. Model- and server-dependent validation (the model first: its tokenizers count the prompt).
        model = self.served_model(request)
        self.check_request(request)
        # 2. Fill in defaults (the model's size and steps); the seed is drawn here so the response can report it.
        seeded = request.seed is not None
        width, height, steps = self.size_and_steps(request, model)
        spec = GenerationSpec(
            prompt=request.prompt,
            seed=request.seed if seeded else random.randint(0, MAX_SEED),
            num_inference_steps=steps,
            guidance_scale=request.guidance_scale,
            width=width,
            height=height,
            negative_prompt=request.negative_prompt,
            # The first loaded decoder (full, when it is) serves requests that name none.
            decoder=request.decoder or self.settings.loaded_decoders[0],
            model=model.name,
        )
        job = GenerationJob(
            spec,
            output_format=request.output_format or self.settings.default_output_format,
            quality=request.quality or self.settings.default_quality,
        )
        output_format = job.output_format
        # 3. A seeded request may already have been made.
        cache_key = job.cache_key
        result = self.cache.get(cache_key) if seeded and self.settings.cache_max_bytes else None
        cached = result is not None
        (self.metrics.cache_hit if cached else self.metrics.cache_miss)()
        # 4. Otherwise ask the model, within the request's time budget.
        if result is None:
            try:
                result = await asyncio.wait_for(
                    self._generate(dataclasses.replace(job, submitted_at=time.time())),
                    timeout=self.settings.request_timeout_s,
                )
            except asyncio.TimeoutError:
                raise RequestTimeout(
                    f"no image within {self.settings.request_timeout_s:g} s; the request was cancelled",
                    retry_after_s=1,
                ) from None
            if seeded and self.settings.cache_max_bytes:
                self.cache.put(cache_key, result, len(result.image))
        # 5. Delivery: S3 when asked for, or when the answer would not fit a SageMaker response.
        stored = None
        answer_bytes = len(result.image) if response_bytes is None else response_bytes(len(result.image))
        too_large = answer_bytes > self.settings.max_response_bytes
        if request.delivery == "s3" or (too_large and self.store is not None):
            stored = await self.store.put(
                request_id, result.image, IMAGE_MEDIA_TYPES[output_format], output_format, model=model.name
            )
        elif too_large:
            raise ResponseTooLarge(
                f"the {output_format} image makes a {answer_bytes}-byte response, over the "
                f"{self.settings.max_response_bytes}-byte limit; ask for jpeg/webp, a lower quality "
                "or a smaller size, or use delivery 's3' on a server with an S3 bucket configured"
            )
        total_ms = (time.perf_counter() - started) * 1000.0
        # 6. Cached answers report no queue/inference/encode time of their own.
        timings = Timings(
            queue=0.0 if cached else round(result.queue_ms, 2),
            inference=0.0 if cached else round(result.inference_ms, 2),
            encode=0.0 if cached else round(result.encode_ms, 2),
            total=round(total_ms, 2),
        )
        response = GenerateResponse(
            image=None,
            image_url=stored.url if stored else None,
            s3_uri=stored.s3_uri if stored else None,
            format=output_format,
            seed=spec.seed,
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.num_inference_steps,
            guidance_scale=spec.guidance_scale,
            model=model.info,
            decoder=result.decoder,
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
            model=model.name,
            format=output_format,
            batch_size=result.batch_size,
            decoder=result.decoder,
            cached=cached,
            bytes=len(result.image),
            delivery="s3" if stored else "inline",
            timings_ms=timings.model_dump(),
        )
        return ImageOutcome(image=result.image, response=response)
