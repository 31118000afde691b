"""Everything that touches torch and diffusers lives in this package; the rest of the service
sees plain Python objects (GenerationSpec in, PIL images out).

Importing the package loads neither: each name below is imported from its module on first use
(PEP 562), so the processes that serve no model can use the torch-free modules without the
~450 MB that torch and diffusers cost: the ingress replica (``resolved``: the resolved model,
``tokens``: the prompt token counter) and the process that starts the service (``sources``: where
weights come from, ``resolving``: each weights setting turned into a checked local directory,
``directory``: the checks).

The package depends on no module of the service outside it except the plain data types of
``serve_app.batching``: the replica passes settings in as plain values.
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
    "ModelLoadError": "sources",
    "LocalSource": "sources",
    "SourceRules": "sources",
    "resolve_source": "sources",
    "configure_pipeline": "loading",
    "compile_unet": "loading",
    "load_for_serving": "loading",
    "ServingPipeline": "loading",
    "ARTIFACTS_FOLDER": "compile_cache",
    "artifacts_folder": "compile_cache",
    "compile_key": "compile_cache",
    "load_compile_artifacts": "compile_cache",
    "save_compile_artifacts": "compile_cache",
    "load_pipeline": "loading",
    "pin_execution_device": "loading",
    "resolve_model": "resolving",
    "select_device": "loading",
    "select_dtype": "loading",
    "PRESETS": "resolving",
    "build_pipeline": "presets",
    "ensure_preset": "resolving",
    "ResolvedModel": "resolved",
    "PromptTokenCounter": "tokens",
    "ResolvedDecoder": "resolved",
    "DecoderSet": "decoders",
    "build_decoders": "decoders",
    "configure_compile_cache": "decoders",
    "prepare_decoders": "decoders",
    "load_tiny_decoder": "decoders",
    "resolve_tiny_decoder": "resolving",
    "ImageSafetyChecker": "safety",
    "ResolvedSafetyChecker": "resolved",
    "SafetyCheckerLoadError": "resolving",
    "parse_seed_list": "resolving",
    "resolve_safety_checker": "resolving",
}

__all__ = [
    "ARTIFACTS_FOLDER",
    "DecoderSet",
    "GeneratedImage",
    "GenerationOutOfMemory",
    "LocalSource",
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
    "ServingPipeline",
    "SourceRules",
    "artifacts_folder",
    "build_decoders",
    "build_pipeline",
    "check_pipeline_directory",
    "compile_key",
    "compile_unet",
    "configure_compile_cache",
    "configure_pipeline",
    "ensure_preset",
    "load_compile_artifacts",
    "load_for_serving",
    "load_pipeline",
    "load_tiny_decoder",
    "prepare_decoders",
    "parse_seed_list",
    "pin_execution_device",
    "resolve_model",
    "resolve_safety_checker",
    "resolve_source",
    "resolve_tiny_decoder",
    "save_compile_artifacts",
    "select_device",
    "select_dtype",
]

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from serve_app.model.compile_cache import (
        ARTIFACTS_FOLDER,
        artifacts_folder,
        compile_key,
        load_compile_artifacts,
        save_compile_artifacts,
    )
    from serve_app.model.decoders import (
        DecoderSet,
        build_decoders,
        configure_compile_cache,
        load_tiny_decoder,
        prepare_decoders,
    )
    from serve_app.model.directory import ModelDirectoryError, check_pipeline_directory
    from serve_app.model.generator import GeneratedImage, GenerationOutOfMemory, SDTurboGenerator
    from serve_app.model.loading import (
        ServingPipeline,
        compile_unet,
        configure_pipeline,
        load_for_serving,
        load_pipeline,
        pin_execution_device,
        select_device,
        select_dtype,
    )
    from serve_app.model.presets import build_pipeline
    from serve_app.model.resolved import ResolvedDecoder, ResolvedModel, ResolvedSafetyChecker
    from serve_app.model.resolving import (
        PRESETS,
        SafetyCheckerLoadError,
        ensure_preset,
        parse_seed_list,
        resolve_model,
        resolve_safety_checker,
        resolve_tiny_decoder,
    )
    from serve_app.model.safety import ImageSafetyChecker
    from serve_app.model.sources import LocalSource, ModelLoadError, SourceRules, resolve_source
    from serve_app.model.tokens import PromptTokenCounter


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
