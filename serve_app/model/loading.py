"""Loading and configuring the SD-Turbo or SDXL-Turbo pipeline.

Every model source ends in the same ``<pipeline class>.from_pretrained(<local dir>)`` call, the
class named by the directory's model_index.json (``StableDiffusionPipeline`` or
``StableDiffusionXLPipeline``): ``serve_app.model.resolving`` turns a hub id (pinned revision, only
the files the pipeline needs), a preset (built into this service's cache) or a local directory
(including SageMaker's /opt/ml/model) into that directory, without torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from serve_app.model.buckets import CompiledUNet, CompileReport, installed_unet
from serve_app.model.compile_cache import (
    ArtifactsLoad,
    CompileKey,
    artifacts_folder,
    compile_key,
    load_compile_artifacts,
)
from serve_app.model.decoders import DecoderSet, configure_compile_cache, prepare_decoders
from serve_app.model.resolved import ResolvedModel, model_family
from serve_app.model.resolving import resolve_model, weights_dtype
from serve_app.model.sources import DEFAULT_CACHE_DIR, ModelLoadError

__all__ = [
    "ModelLoadError",
    "ServingPipeline",
    "compile_unet",
    "configure_pipeline",
    "load_for_serving",
    "load_pipeline",
    "pin_execution_device",
]

logger = logging.getLogger(__name__)

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
_COMPONENT_DIRS = ("unet", "vae", "text_encoder")
_PIPELINE_CLASSES = {"sd": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline}
# What each class is told beyond the weights: SD's safety-checker slots stay empty (the service
# runs its own checker, serve_app/model/safety.py); SDXL's watermarker only marks decoded images,
# which the pipeline never makes here (it returns latents).
_PIPELINE_KWARGS = {
    "sd": dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False),
    "sdxl": dict(add_watermarker=False),
}


def select_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device=cuda was requested but no CUDA device is visible to this process")
    return device


def select_dtype(dtype: str, device: str) -> torch.dtype:
    return _DTYPES[weights_dtype(dtype, device)]


def load_pipeline(
    model: str = "tiny",
    revision: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    cache_dir: str | None = None,
    resolved: ResolvedModel | None = None,
) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """Load a pipeline onto ``device`` in ``dtype``, with nothing else configured.

    This is the plain loader the naive baseline uses too; ``configure_pipeline`` adds the
    serving optimisations.
    """
    device = select_device(device)
    torch_dtype = select_dtype(dtype, device)
    if resolved is None:
        resolved = resolve_model(model, revision, cache_dir or DEFAULT_CACHE_DIR, torch_dtype == torch.float16)
    try:
        family = model_family(resolved.local_dir)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Found {resolved.model_id!r} at {resolved.local_dir} but {exc}") from exc
    pipeline_class = _PIPELINE_CLASSES[family]
    try:
        pipe = pipeline_class.from_pretrained(
            resolved.local_dir,
            dtype=torch_dtype,
            variant=resolved.variant,
            local_files_only=True,
            **_PIPELINE_KWARGS[family],
        )
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"Found {resolved.model_id!r} at {resolved.local_dir} but could not load it as a "
            f"{pipeline_class.__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def pin_execution_device(pipe: StableDiffusionPipeline) -> StableDiffusionPipeline:
    """Fix ``pipe._execution_device`` to where the pipeline is now, instead of diffusers'
    per-call search for it.

    Every ``pipe(...)`` reads ``_execution_device``, which walks every module of every component
    looking for offload hooks (``hasattr`` on each, an AttributeError raised and caught per
    module). Measured on the 2-vCPU development machine (AMD EPYC, 2026-12-04): 2.8 ms per read
    for the tiny preset (432 modules, about 7% of its 128x128 call) and 8.5 ms for the full-size
    SD-Turbo architecture (1,235 modules), all of it on the host before the first kernel is
    queued. The service never offloads or moves a loaded pipeline, so the answer cannot change.
    ``pipe`` keeps its class name and stays a ``StableDiffusionPipeline``; pinning twice is a no-op.
    """
    base = type(pipe)
    if getattr(base, "_pinned_execution_device", False):
        return pipe
    if any(hasattr(module, "_hf_hook") for module in pipe.components.values()):
        raise ValueError("the pipeline has accelerate offload hooks: its execution device changes per call")
    device = pipe._execution_device  # diffusers' own answer, once
    pipe.__class__ = type(
        base.__name__,
        (base,),
        {
            "__module__": base.__module__,
            "__doc__": base.__doc__,
            "_pinned_execution_device": True,
            "_execution_device": property(lambda self: device, doc="Pinned by serve_app.model.loading."),
        },
    )
    return pipe


def configure_pipeline(
    pipe: StableDiffusionPipeline,
    *,
    channels_last: bool = False,
    compile_mode: str = "off",
    buckets: Sequence[int] = (1,),
    sizes: Sequence[tuple[int, int]] = ((512, 512),),
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
) -> StableDiffusionPipeline:
    """Apply the serving optimisations that the settings switch on.

    A ``compile_mode`` other than 'off' installs the bucketed UNet (``serve_app/model/buckets.py``);
    its graphs are compiled by ``compile_unet`` at warm-up, after the compile cache is configured.
    """
    on_cuda = pipe.device.type == "cuda"
    # 0. Per-call host time: where the pipeline runs is decided once, not searched for per call.
    pin_execution_device(pipe)
    # 1. Memory layout: channels-last convolutions are faster on tensor cores; on CPU it is
    #    left alone (no measured gain there).
    if channels_last and on_cuda:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    # 2. Memory savers, off by default: each trades speed for peak memory.
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    # 3. Compilation: the UNet sees only bucket sizes (padded), compiled by compile_unet.
    if compile_mode != "off":
        CompiledUNet.install(pipe, compile_mode, buckets, sizes)
    return pipe


def compile_unet(pipe: StableDiffusionPipeline) -> CompileReport | None:
    """Compile the bucketed UNet ``configure_pipeline`` installed for every bucket x size (None when
    the UNet is not compiled); logged with its cost."""
    compiled = installed_unet(pipe)
    if compiled is None:
        return None
    report = compiled.compile(pipe)
    logger.info(
        "compiled the UNet (mode %s) for batches %s at sizes %s in %.1f s (cache %s): %s",
        report.mode, report.buckets, report.sizes, report.seconds, report.cache_dir,
        {shape: round(seconds, 2) for shape, seconds in report.per_shape_s.items()},
    )
    return report


@dataclass
class ServingPipeline:
    """A pipeline as a model replica serves it: configured, its decoders built, everything that
    is compiled compiled."""

    pipe: StableDiffusionPipeline | StableDiffusionXLPipeline
    decoders: DecoderSet
    unet_report: CompileReport | None
    compile_key: CompileKey | None  # None when nothing is compiled
    artifacts: ArtifactsLoad | None  # what the compile artifacts shipped with the model gave


def load_for_serving(
    resolved: ResolvedModel,
    *,
    device: str,
    dtype: str,
    pipeline_options: Mapping[str, Any],
    decoder_options: Mapping[str, Any],
    compile_artifacts: str = "off",
) -> ServingPipeline:
    """What a model replica does before its warm-up generations, also run by the compile-artifact
    build (``serve_app/build_compile_cache.py``) and ``loadtest.compile_start``, so that all three
    compile the same graphs under the same key.

    ``pipeline_options`` are ``configure_pipeline``'s keywords, ``decoder_options``
    ``prepare_decoders``' and ``compile_artifacts`` the setting of that name ('auto', 'off' or a folder).
    """
    # 1. Load once, never in the request path.
    pipe = load_pipeline(device=device, dtype=dtype, resolved=resolved)
    # 2. The serving optimisations; a compiled UNet is installed here and compiled in step 5.
    configure_pipeline(pipe, **pipeline_options)
    # 3. The compile cache, before anything compiles: inductor's directory, then the artifacts
    #    shipped with the model written into it (compile_cache.py), for this replica's key only.
    key = artifacts = None
    unet_mode = pipeline_options.get("compile_mode", "off")
    if unet_mode != "off" or decoder_options["compile_mode"] != "off":
        configure_compile_cache(decoder_options.get("compile_cache_dir", ""))
        names = tuple(decoder_options["names"])
        key = compile_key(
            pipe,
            unet_mode=unet_mode,
            decoder_mode=decoder_options["compile_mode"],
            decoders=names,
            buckets=decoder_options["buckets"],
            sizes=decoder_options["sizes"],
            tiny_dir=resolved.tiny_decoder.local_dir if resolved.tiny_decoder and "tiny" in names else None,
        )
        artifacts = load_compile_artifacts(artifacts_folder(compile_artifacts, resolved.local_dir), key)
    # 4. The decoders (full VAE and/or TAESD), compiled per bucket x size when compile_decoder says so.
    decoders = prepare_decoders(pipe, resolved.tiny_decoder, **decoder_options)
    # 5. The UNet per bucket x size (after the cache is in place: step 3).
    unet_report = compile_unet(pipe)
    return ServingPipeline(pipe, decoders, unet_report, key, artifacts)
