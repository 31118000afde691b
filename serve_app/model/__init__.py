"""Everything that touches torch and diffusers lives in this package; the rest of the service
sees plain Python objects (GenerationSpec in, PIL images out)."""

from serve_app.model.generator import GeneratedImage, GenerationOutOfMemory, SDTurboGenerator
from serve_app.model.loading import (
    ModelLoadError,
    ResolvedModel,
    configure_pipeline,
    load_pipeline,
    resolve_model,
    select_device,
    select_dtype,
)
from serve_app.model.presets import PRESETS, build_pipeline, ensure_preset
from serve_app.model.tokens import PromptTokenCounter

__all__ = [
    "PRESETS",
    "GeneratedImage",
    "GenerationOutOfMemory",
    "ModelLoadError",
    "PromptTokenCounter",
    "ResolvedModel",
    "SDTurboGenerator",
    "build_pipeline",
    "configure_pipeline",
    "ensure_preset",
    "load_pipeline",
    "resolve_model",
    "select_device",
    "select_dtype",
]
