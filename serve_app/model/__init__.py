"""Everything that touches torch and diffusers lives in this package; the rest of the service
sees plain Python objects (GenerationSpec in, PIL images out)."""

from serve_app.model.decoders import (
    DecoderSet,
    ResolvedDecoder,
    build_decoders,
    configure_compile_cache,
    decoders_for_settings,
    load_tiny_decoder,
    resolve_tiny_decoder,
)
from serve_app.model.generator import GeneratedImage, GenerationOutOfMemory, SDTurboGenerator
from serve_app.model.loading import (
    ModelLoadError,
    ResolvedModel,
    configure_pipeline,
    cuda_device_count,
    load_pipeline,
    resolve_model,
    select_device,
    select_dtype,
)
from serve_app.model.presets import PRESETS, build_pipeline, ensure_preset
from serve_app.model.tokens import PromptTokenCounter

__all__ = [
    "PRESETS",
    "DecoderSet",
    "GeneratedImage",
    "GenerationOutOfMemory",
    "ModelLoadError",
    "PromptTokenCounter",
    "ResolvedDecoder",
    "ResolvedModel",
    "SDTurboGenerator",
    "build_decoders",
    "build_pipeline",
    "configure_compile_cache",
    "configure_pipeline",
    "cuda_device_count",
    "decoders_for_settings",
    "ensure_preset",
    "load_pipeline",
    "load_tiny_decoder",
    "resolve_model",
    "resolve_tiny_decoder",
    "select_device",
    "select_dtype",
]
