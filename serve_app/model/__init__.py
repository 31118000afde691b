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
from serve_app.model.safety import (
    ImageSafetyChecker,
    ResolvedSafetyChecker,
    SafetyCheckerLoadError,
    parse_seed_list,
    resolve_safety_checker,
)
from serve_app.model.tokens import PromptTokenCounter

__all__ = [
    "PRESETS",
    "GeneratedImage",
    "GenerationOutOfMemory",
    "ImageSafetyChecker",
    "ModelLoadError",
    "PromptTokenCounter",
    "ResolvedModel",
    "ResolvedSafetyChecker",
    "SDTurboGenerator",
    "SafetyCheckerLoadError",
    "build_pipeline",
    "configure_pipeline",
    "ensure_preset",
    "load_pipeline",
    "parse_seed_list",
    "resolve_model",
    "resolve_safety_checker",
    "select_device",
    "select_dtype",
]
