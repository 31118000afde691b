"""The plain data types of generation, shared by the ingress, the device loop and the model package.

A diffusers pipeline call takes one size, one step count and one guidance scale for the whole
batch, while prompts, negative prompts and seeds may differ per image; the latents of one call
are decoded by one decoder ("full" VAE or "tiny" TAESD): ``GenerationSpec.group_key`` says which
requests can share a call. Only the device loop (``serve_app/device_loop.py``) forms calls.
Pure Python: no Ray, no torch, so it is tested directly and crosses the Ray seam as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

# The VAE decoders a replica can load (serve_app/model/decoders.py), and the one a request that
# names none gets when it is loaded. The one list: the API's schema, the settings' choices and
# the model package read these.
DECODER_NAMES = ("full", "tiny")
DEFAULT_DECODER = "full"


@dataclass(frozen=True)
class GenerationSpec:
    """Everything the model needs to make one image (already validated, seed already drawn)."""

    prompt: str
    seed: int
    num_inference_steps: int = 1
    guidance_scale: float = 0.0
    width: int = 512
    height: int = 512
    negative_prompt: str | None = None
    decoder: str = DEFAULT_DECODER  # which VAE decoder turns the latents into pixels: one of DECODER_NAMES
    # The served model's name (the `models` setting); None: the server's one model. A model
    # replica serves one model and refuses a spec for another, so a call never mixes models.
    model: str | None = None

    @property
    def uses_guidance(self) -> bool:
        # diffusers applies classifier-free guidance (and so the negative prompt) only above 1.
        return self.guidance_scale > 1.0

    @property
    def group_key(self) -> tuple:
        """Requests with equal keys can share one pipeline call."""
        return (self.model, self.width, self.height, self.num_inference_steps, self.guidance_scale, self.decoder)


@dataclass(frozen=True)
class GenerationJob:
    """One request as it crosses the Ray seam to a model replica: what to draw, how to encode it,
    and when the ingress handed it over (``submitted_at``, ``time.time()``: the start of the
    response's ``timings_ms.queue``)."""

    spec: GenerationSpec
    output_format: str
    quality: int
    submitted_at: float = 0.0

    @property
    def cache_key(self) -> tuple:
        """Jobs with equal keys make byte-identical images (the seed is part of the spec)."""
        return (self.spec, self.output_format, self.quality)


@dataclass(frozen=True)
class GenerationResult:
    """One encoded image as the model replica returns it to the ingress."""

    image: bytes
    format: str
    batch_size: int
    queue_ms: float
    inference_ms: float
    encode_ms: float
    decoder: str = DEFAULT_DECODER  # the decoder that made the image (provenance, reported to the caller)


@dataclass(frozen=True)
class PipelineRun:
    """One pipeline run as the generator reports it: a device-loop call is one run, or several
    when an out-of-memory error split it."""

    batch_size: int
    inference_ms: float


class PipelineCallCancelled(Exception):
    """Raised by a pipeline call that stopped early because ``should_stop()`` turned true."""
