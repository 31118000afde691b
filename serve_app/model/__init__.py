"""Everything that touches torch and diffusers lives in this package; the rest of the service
sees plain Python objects (GenerationSpec in, PIL images out).

Importing the package loads neither: each name below is imported from its module on first use
(PEP 562), so the ingress replica can use the torch-free modules (``resolved``: the resolved
model, ``tokens``: the prompt token counter) without the ~450 MB that torch and diffusers cost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "GeneratedImage": "generator",
    "GenerationOutOfMemory": "generator",
    "SDTurboGenerator": "generator",
    "ModelDirectoryError": "directory",
    "check_pipeline_directory": "directory",
    "ModelLoadError": "loading",
    "configure_pipeline": "loading",
    "load_pipeline": "loading",
    "pin_execution_device": "loading",
    "resolve_model": "loading",
    "select_device": "loading",
    "select_dtype": "loading",
    "PRESETS": "presets",
    "build_pipeline": "presets",
    "ensure_preset": "presets",
    "ResolvedModel": "resolved",
    "PromptTokenCounter": "tokens",
    "ResolvedDecoder": "resolved",
    "DecoderSet": "decoders",
    "build_decoders": "decoders",
    "configure_compile_cache": "decoders",
    "decoders_for_settings": "decoders",
    "load_tiny_decoder": "decoders",
    "resolve_tiny_decoder": "decoders",
    "ImageSafetyChecker": "safety",
    "ResolvedSafetyChecker": "safety",
    "SafetyCheckerLoadError": "safety",
    "parse_seed_list": "safety",
    "resolve_safety_checker": "safety",
}

__all__ = [
    "DecoderSet",
    "GeneratedImage",
    "GenerationOutOfMemory",
    "ImageSafetyChecker",
    "ModelDirectoryError",
    "ModelLoadError",
    "PRESETS",
    "PromptTokenCounter",
    "ResolvedDecoder",
    "ResolvedModel",
    "ResolvedSafetyChecker",
    "SDTurboGenerator",
    "SafetyCheckerLoadError",
    "build_decoders",
    "build_pipeline",
    "check_pipeline_directory",
    "configure_compile_cache",
    "configure_pipeline",
    "decoders_for_settings",
    "ensure_preset",
    "load_pipeline",
    "load_tiny_decoder",
    "parse_seed_list",
    "pin_execution_device",
    "resolve_model",
    "resolve_safety_checker",
    "resolve_tiny_decoder",
    "select_device",
    "select_dtype",
]

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from serve_app.model.decoders import (
        DecoderSet,
        build_decoders,
        configure_compile_cache,
        decoders_for_settings,
        load_tiny_decoder,
        resolve_tiny_decoder,
    )
    from serve_app.model.directory import ModelDirectoryError, check_pipeline_directory
    from serve_app.model.generator import GeneratedImage, GenerationOutOfMemory, SDTurboGenerator
    from serve_app.model.loading import (
        ModelLoadError,
        configure_pipeline,
        load_pipeline,
        pin_execution_device,
        resolve_model,
        select_device,
        select_dtype,
    )
    from serve_app.model.presets import PRESETS, build_pipeline, ensure_preset
    from serve_app.model.resolved import ResolvedDecoder, ResolvedModel
    from serve_app.model.safety import (
        ImageSafetyChecker,
        ResolvedSafetyChecker,
        SafetyCheckerLoadError,
        parse_seed_list,
        resolve_safety_checker,
    )
    from serve_app.model.tokens import PromptTokenCounter


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
