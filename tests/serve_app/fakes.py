"""Test doubles for the serving and HTTP layers: a token counter and a model that returns fixed bytes."""

from __future__ import annotations

from starlette.testclient import TestClient

from serve_app.batching import GenerationJob, GenerationResult
from serve_app.http import create_http_app
from serve_app.protocol import ModelInfo
from serve_app.serving import ImageService
from serve_app.settings import Settings


class WordCounter:
    """Counts whitespace-separated words as tokens."""

    def __init__(self, max_prompt_tokens: int = 75):
        self.max_prompt_tokens = max_prompt_tokens

    def count(self, text: str) -> int:
        return len(text.split())


def fixed_image_model(image: bytes, batch_size: int = 1, timings=(1.0, 1.0, 1.0), calls: list | None = None):
    """A model call that answers every request with ``image``; appends each spec to ``calls``."""

    async def generate(job: GenerationJob):
        if calls is not None:
            calls.append(job.spec)
        return GenerationResult(image, job.output_format, batch_size, *timings, decoder=job.spec.decoder)

    return generate


def make_service(generate, settings_overrides=None, token_limit: int = 75, store=None, model_id: str = "m") -> ImageService:
    settings = Settings.load(settings_overrides or {}, environ={})
    info = ModelInfo(id=model_id, revision=None, random_weights=model_id.startswith("preset:"))
    return ImageService(settings, info, WordCounter(token_limit), generate, store=store)


def make_http_client(service: ImageService, is_ready=lambda: True, max_body_bytes: int = 4096, **options) -> TestClient:
    app = create_http_app(service, is_ready, max_body_bytes=max_body_bytes, **options)
    return TestClient(app)
