"""Request and response models of the HTTP API (/predict and /invocations).

Pure pydantic: no Ray, no torch. The limits here are the public contract and appear in the
OpenAPI schema at /docs; limits that depend on the loaded model (the prompt's token count)
are checked by the serving layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from serve_app.batching import DECODER_NAMES, DEFAULT_DECODER

MAX_SEED = 2**32 - 1
MAX_GUIDANCE_SCALE = 10.0


@dataclass(frozen=True)
class SizeStepLimits:
    """The image sizes and step counts one model family accepts (GET /models publishes them)."""

    default_side: int
    min_side: int
    max_side: int
    side_multiple: int
    default_steps: int
    max_steps: int

    def loosest(self, other: SizeStepLimits) -> SizeStepLimits:
        """Bounds that accept what either accepts (the published schema's, over served models)."""
        if (self.side_multiple, self.default_side, self.default_steps) != (
            other.side_multiple, other.default_side, other.default_steps
        ):
            raise ValueError("families with different size multiples or defaults have no one schema")
        return SizeStepLimits(
            self.default_side, min(self.min_side, other.min_side), max(self.max_side, other.max_side),
            self.side_multiple, self.default_steps, max(self.max_steps, other.max_steps),
        )


# Each model family's limits, the one place they are set: the per-request check
# (serve_app/serving.py), GET /models and the published schema's bounds all read them.
FAMILY_LIMITS: dict[str, SizeStepLimits] = {
    # SD-Turbo is SD 2.1 distilled at 512x512. Its UNet is convolutional and runs at any multiple
    # of 8, but well past its training size it repeats subjects (two heads, tiled scenes): 768
    # (SD 2.1's own largest training size) is the cap. 64 is the smallest side whose latent (8x8)
    # survives the UNet's three downsamplings. Adversarial diffusion distillation trains it for
    # 1 to 4 steps; more add time, not quality.
    "sd": SizeStepLimits(default_side=512, min_side=64, max_side=768, side_multiple=8, default_steps=1, max_steps=4),
    # SDXL-Turbo is also distilled at 512x512 (its model card recommends that size), but from
    # SDXL, whose UNet is trained at 1024x1024: it keeps coherent images up to 1024. Its UNet
    # downsamples twice, so 64 is no constraint. The same 1 to 4 steps.
    "sdxl": SizeStepLimits(default_side=512, min_side=64, max_side=1024, side_multiple=8, default_steps=1, max_steps=4),
}


def loosest_limits(families: Iterable[str]) -> SizeStepLimits:
    """The bounds a schema publishes for servers of these families: the loosest of theirs."""
    limits = [FAMILY_LIMITS[family] for family in families]
    if not limits:
        raise ValueError("no model families given")
    loosest = limits[0]
    for other in limits[1:]:
        loosest = loosest.loosest(other)
    return loosest


# The schema of GenerateRequest itself (no server's own): the loosest over every family.
ALL_FAMILIES_LIMITS = loosest_limits(FAMILY_LIMITS)
MIN_SIDE, MAX_SIDE = ALL_FAMILIES_LIMITS.min_side, ALL_FAMILIES_LIMITS.max_side
MAX_STEPS = ALL_FAMILIES_LIMITS.max_steps
# A cheap bound before tokenising: far above what fits in CLIP's 77 tokens.
MAX_PROMPT_CHARS = 2000

OutputFormat = Literal["jpeg", "png", "webp"]
# A served model's name (the `models` setting): what a request's `model` field says.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Every decoder name (serve_app/batching.py lists them); a server's own schema lists only the
# decoders it loaded (``request_model_for``).
DecoderName = Literal[DECODER_NAMES]  # type: ignore[valid-type]


def _whole_number(value: object) -> object:
    # JSON Schema counts 3.0 as an integer; anything else that is not an int stays refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


IMAGE_MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


# Characters a prompt must not contain: control (Cc) and format (Cf) characters, private-use (Co)
# code points and unpaired surrogates (Cs, see below), except tab, newline and carriage return.
# They are never part of a real prompt and can corrupt logs and downstream tools. Listed once, here, as a regular-expression character
# class: it is both the published schema's `pattern` (so a prompt the schema allows is never
# refused for its characters) and what the server checks. The Cf ranges cover Unicode 15.1
# (tests/serve_app/test_protocol.py checks them against this Python's Unicode data).
# BMP characters as \uXXXX escapes (the same in Python's and ECMAScript's regular expressions)...
_FORBIDDEN_BMP = (
    r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"  # Cc
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"  # Cf
    r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    r"\ue000-\uf8ff"  # Co
)
# ...and the rest as the characters themselves: ECMAScript has no \U escape.
_FORBIDDEN_ASTRAL = [
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),  # Cf
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
    (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD),  # Co
]
_FORBIDDEN_CHARS = _FORBIDDEN_BMP + "".join(f"{chr(low)}-{chr(high)}" for low, high in _FORBIDDEN_ASTRAL)
# Unpaired surrogates (Cs), which JSON's \uD800 escapes can smuggle in, are not in the pattern:
# a JSON Schema string is Unicode text (RFC 7493), which holds none, and schema tools cannot even
# compile a pattern that names them. pydantic refuses them as no valid string.
# White space as str.strip() sees it (less the forbidden characters above): a prompt of only
# these is blank.
_BLANK_CHARS = r"\t\n\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Disjoint classes one after the other: matching takes time linear in the length.
TEXT_PATTERN = f"^[^{_FORBIDDEN_CHARS}]*$"
PROMPT_PATTERN = f"^[{_BLANK_CHARS}]*[^{_FORBIDDEN_CHARS}{_BLANK_CHARS}][^{_FORBIDDEN_CHARS}]*$"
_FORBIDDEN = re.compile(f"[{_FORBIDDEN_CHARS}]")
_TEXT = re.compile(TEXT_PATTERN)
_PROMPT = re.compile(PROMPT_PATTERN)


def _check_text(value: str, pattern: re.Pattern) -> str:
    # The published pattern decides; the message names the first offending character.
    if pattern.match(value) is None:
        found = _FORBIDDEN.search(value)
        if found is None:
            raise ValueError("must not be blank")
        raise ValueError(f"must not contain control characters (found U+{ord(found.group()):04X})")
    return value


_DECODER_DOC = (
    "Which VAE decoder turns the latents into the image: 'full' (the model's VAE, best detail) or "
    "'tiny' (TAESD: much faster, slightly softer); this server's schema lists the ones it loaded. "
    f"Absent: the server's default ({DEFAULT_DECODER} when loaded)."
)


_STEPS_DOC = (
    "Denoising steps. Absent: the model's default (GET /models: default_steps); at most the model's "
    "max_steps (a larger count for a model that allows fewer is a 422 naming this field)."
)
_SIDE_DOC = (
    "Image {side} in pixels, a multiple of 8. Absent: the model's default (GET /models: default_{side}); "
    "within the model's min_side..max_side (outside them, for the model asked for, a 422 naming this field)."
)


def _steps_type(limits: SizeStepLimits) -> object:
    # An optional integer: a JSON integer, or a number with no fractional part (never a string or
    # a bool); its bounds go inside the union and before the validator (see ``seed``).
    return Annotated[int, Field(ge=1, le=limits.max_steps), BeforeValidator(_whole_number)] | None


def _side_type(limits: SizeStepLimits) -> object:
    return Annotated[
        int, Field(ge=limits.min_side, le=limits.max_side, multiple_of=limits.side_multiple), BeforeValidator(_whole_number)
    ] | None


_MODEL_DOC = (
    "Which served model makes the image (GET /models lists them, with their limits); this server's "
    "schema lists the ones it serves. Absent: the server's default model (the first it serves)."
)


class GenerateRequest(BaseModel):
    """One image to generate."""

    # Strict: a JSON value of another type is refused, never converted (false is not 0.0, "3"
    # is not 3), so the published schema's types are the whole contract.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"prompt": "a lighthouse on a cliff at sunset, oil painting", "seed": 42}]
    })

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What to draw: some text, no control characters. At most the text encoder's token "
        "limit (75 tokens for SD-Turbo); longer prompts are rejected, never truncated.",
        json_schema_extra={"pattern": PROMPT_PATTERN},
    )
    negative_prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS, json_schema_extra={"pattern": TEXT_PATTERN})] | None = (
        Field(default=None, description="What to avoid, no control characters. Used only when guidance_scale > 1.")
    )
    # Bounds of optional integers go inside the union and before the validator: else pydantic
    # publishes them under names JSON Schema does not know ("ge", "le": no bound at all).
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), BeforeValidator(_whole_number)] | None = Field(
        default=None, description="Random seed; drawn at random when absent."
    )
    num_inference_steps: _steps_type(ALL_FAMILIES_LIMITS) = Field(  # type: ignore[valid-type]
        default=None, description=_STEPS_DOC
    )
    guidance_scale: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_GUIDANCE_SCALE,
        allow_inf_nan=False,
        description="Classifier-free guidance; SD-Turbo is trained for 0.0.",
    )
    width: _side_type(ALL_FAMILIES_LIMITS) = Field(default=None, description=_SIDE_DOC.format(side="width"))  # type: ignore[valid-type]
    height: _side_type(ALL_FAMILIES_LIMITS) = Field(default=None, description=_SIDE_DOC.format(side="height"))  # type: ignore[valid-type]
    output_format: OutputFormat | None = Field(
        default=None, description="Image format; the server's default (jpeg) when absent."
    )
    quality: Annotated[int, Field(ge=1, le=100), BeforeValidator(_whole_number)] | None = Field(
        default=None, description="JPEG/WebP quality; ignored for PNG."
    )
    delivery: Literal["inline", "s3"] = Field(
        default="inline",
        description="'inline': the image in the response (base64). 's3': written to the server's "
        "S3 bucket; the response carries a presigned URL instead.",
    )

    decoder: DecoderName | None = Field(
        default=None,
        description=_DECODER_DOC,
    )
    model: Annotated[str, Field(max_length=64, pattern=MODEL_NAME_PATTERN)] | None = Field(
        default=None, description=_MODEL_DOC
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        return _check_text(value, _PROMPT)

    @field_validator("negative_prompt")
    @classmethod
    def _negative_prompt_text(cls, value: str | None) -> str | None:
        return None if value is None else _check_text(value, _TEXT)


# The validation error of a decoder this server did not load; its message is complete as it is.
DECODER_NOT_LOADED = "decoder_not_loaded"
MODEL_NOT_SERVED = "model_not_served"


def request_model_for(
    loaded_decoders: tuple[str, ...],
    served_models: tuple[str, ...] | None = None,
    served_families: Iterable[str] | None = None,
) -> type[GenerateRequest]:
    """``GenerateRequest`` as one server publishes it: ``decoder`` accepts only ``loaded_decoders``,
    ``model`` only ``served_models`` (when given), and sizes and steps the loosest limits of the
    ``served_families`` (when given; each request is then checked against its own model's), so
    the served OpenAPI document never offers what that server would refuse for every model."""
    families = tuple(served_families) if served_families is not None else tuple(FAMILY_LIMITS)
    limits = loosest_limits(families)
    if set(loaded_decoders) == set(DECODER_NAMES) and served_models is None and limits == ALL_FAMILIES_LIMITS:
        return GenerateRequest
    unknown = set(loaded_decoders) - set(DECODER_NAMES)
    if unknown or not loaded_decoders:
        raise ValueError(f"unknown decoders {sorted(unknown)}; known: {DECODER_NAMES}")
    fields: dict = {}
    if served_models is not None:
        fields["model"] = _served_model_field(served_models)
    if limits != ALL_FAMILIES_LIMITS:
        fields["num_inference_steps"] = (_steps_type(limits), Field(default=None, description=_STEPS_DOC))
        for side in ("width", "height"):
            fields[side] = (_side_type(limits), Field(default=None, description=_SIDE_DOC.format(side=side)))
    if set(loaded_decoders) != set(DECODER_NAMES):
        fields["decoder"] = _loaded_decoder_field(loaded_decoders)
    return create_model(
        "GenerateRequest",
        __base__=GenerateRequest,
        __module__=__name__,
        __doc__=GenerateRequest.__doc__,
        **fields,
    )


def _served_model_field(served_models: tuple[str, ...]) -> tuple:
    if not served_models or len(set(served_models)) != len(served_models):
        raise ValueError(f"served models must be distinct names, got {served_models}")
    served = Literal[tuple(served_models)]  # type: ignore[valid-type]

    def not_served(value: object) -> object:
        # The schema's enum refuses it either way; this says why, and what is served.
        if isinstance(value, str) and value not in served_models:
            raise PydanticCustomError(
                MODEL_NOT_SERVED,
                f"model {value!r} is not served here (served: {', '.join(served_models)}; SDTURBO_MODELS chooses)",
            )
        return value

    return (Annotated[served | None, BeforeValidator(not_served)], Field(default=None, description=_MODEL_DOC))


def _loaded_decoder_field(loaded_decoders: tuple[str, ...]) -> tuple:
    loaded = Literal[tuple(loaded_decoders)]  # type: ignore[valid-type]

    def known_but_not_loaded(value: object) -> object:
        # The schema's enum refuses it either way; this says why, and what would load it.
        if isinstance(value, str) and value in DECODER_NAMES and value not in loaded_decoders:
            message = (
                f"decoder {value!r} is not loaded on this server (loaded: {', '.join(loaded_decoders)}; "
                "SDTURBO_DECODERS chooses)"
            )
            raise PydanticCustomError(DECODER_NOT_LOADED, message)
        return value

    return (Annotated[loaded | None, BeforeValidator(known_but_not_loaded)], Field(default=None, description=_DECODER_DOC))


class DecoderSource(BaseModel):
    id: str = Field(description="Where TAESD came from: Hub id, path, model:<folder> or preset:taesd-random.")
    revision: str | None
    random_weights: bool = Field(description="True for the offline preset taesd-random: its images are noise.")


class ModelInfo(BaseModel):
    """Which model made the image."""

    name: str = Field(default="default", description="The served model's name: what a request's `model` field says.")
    id: str
    revision: str | None
    random_weights: bool = Field(
        description="True for the offline presets: the weights are random and the images noise, "
        "never the real model's output.",
    )
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


class ModelLimits(BaseModel):
    """What one served model accepts and assumes (GET /models)."""

    name: str
    default: bool = Field(description="True for the model a request without `model` gets.")
    family: Literal["sd-turbo", "sdxl-turbo"] = Field(
        description="The architecture: SD-Turbo (SD 2.1, one text encoder) or SDXL-Turbo (two text encoders)."
    )
    model: ModelInfo
    max_prompt_tokens: int = Field(description="Longest prompt (and negative prompt) in tokens; longer is refused.")
    default_width: int
    default_height: int
    min_side: int
    max_side: int
    side_multiple: int = Field(description="Width and height must be multiples of this.")
    default_steps: int
    max_steps: int
    default_guidance_scale: float
    decoders: list[DecoderName] = Field(description="The VAE decoders loaded for this model, the default first.")


class ModelsResponse(BaseModel):
    models: list[ModelLimits] = Field(description="The served models, the default first.")
