"""Request and response models of the HTTP API (/predict and /invocations).

Pure pydantic: no Ray, no torch. The limits here are the public contract and appear in the
OpenAPI schema at /docs; limits that depend on the loaded model (the prompt's token count)
are checked by the serving layer.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE, DEFAULT_SIDE = 64, 1024, 512
MAX_STEPS = 4
MAX_GUIDANCE_SCALE = 10.0
# A cheap bound before tokenising: far above what fits in CLIP's 77 tokens.
MAX_PROMPT_CHARS = 2000

OutputFormat = Literal["jpeg", "png", "webp"]
DecoderName = Literal["full", "tiny"]
IMAGE_MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def _check_text(value: str) -> str:
    # Control characters (other than ordinary whitespace) are never part of a real prompt and
    # can corrupt logs and downstream tools.
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co") and char not in "\n\t\r":
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


class GenerateRequest(BaseModel):
    """One image to generate."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"prompt": "a lighthouse on a cliff at sunset, oil painting", "seed": 42}]
    })

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What to draw. At most the text encoder's token limit (75 tokens for SD-Turbo); "
        "longer prompts are rejected, never truncated.",
    )
    negative_prompt: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="What to avoid. Used only when guidance_scale > 1.",
    )
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Random seed; drawn at random when absent."
    )
    num_inference_steps: int = Field(default=1, ge=1, le=MAX_STEPS)
    guidance_scale: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_GUIDANCE_SCALE,
        allow_inf_nan=False,
        description="Classifier-free guidance; SD-Turbo is trained for 0.0.",
    )
    width: int = Field(default=DEFAULT_SIDE, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(default=DEFAULT_SIDE, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    output_format: OutputFormat | None = Field(
        default=None, description="Image format; the server's default (jpeg) when absent."
    )
    quality: int | None = Field(
        default=None, ge=1, le=100, description="JPEG/WebP quality; ignored for PNG."
    )
    delivery: Literal["inline", "s3"] = Field(
        default="inline",
        description="'inline': the image in the response (base64). 's3': written to the server's "
        "S3 bucket; the response carries a presigned URL instead.",
    )

    decoder: DecoderName | None = Field(
        default=None,
        description="Which VAE decoder turns the latents into the image: 'full' (the model's VAE, "
        "best detail) or 'tiny' (TAESD: much faster, slightly softer). Absent: the server's default "
        "(full when loaded). A decoder the server has not loaded is a 422.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return _check_text(value)

    @field_validator("negative_prompt")
    @classmethod
    def _negative_prompt_text(cls, value: str | None) -> str | None:
        return None if value is None else _check_text(value)


class DecoderSource(BaseModel):
    id: str = Field(description="Where TAESD came from: Hub id, path, model:<folder> or preset:taesd-random.")
    revision: str | None


class ModelInfo(BaseModel):
    id: str
    revision: str | None
    tiny_decoder: DecoderSource | None = Field(default=None, description="The tiny decoder, when loaded.")


class Timings(BaseModel):
    queue: float = Field(description="Waiting for a batch to start, ms.")
    inference: float = Field(description="The pipeline call that made the image, ms.")
    encode: float = Field(description="Image encoding, ms.")
    total: float = Field(description="From request arrival to response, ms.")


class GenerateResponse(BaseModel):
    image: str | None = Field(description="The encoded image, base64; null when delivered to S3.")
    image_url: str | None = Field(default=None, description="Presigned URL of the image in S3.")
    s3_uri: str | None = Field(default=None, description="Where the image was written in S3.")
    format: OutputFormat
    seed: int
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    model: ModelInfo
    decoder: DecoderName = Field(description="The VAE decoder that made this image.")
    batch_size: int = Field(description="How many images the pipeline call that made this one held.")
    cached: bool
    timings_ms: Timings
    request_id: str


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable error kind, e.g. 'validation_error'.")
    message: str
    field: str | None = Field(default=None, description="The offending request field, if any.")


class ErrorResponse(BaseModel):
    error: ErrorDetail
    request_id: str


class PingResponse(BaseModel):
    status: Literal["ready", "loading"]
    model: ModelInfo
