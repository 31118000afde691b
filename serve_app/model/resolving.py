"""Each weights setting (the model, TAESD, the safety checker) turned into a checked local directory.

The app's builder (``serve_app.app``) resolves every source once, in the process that starts the
service (the container's entrypoint, ``serve run``, a test), before any replica starts: a wrong
path, a missing pin or an incomplete download ends the start in one line instead of failing each
replica's constructor. That process serves nothing, so nothing here imports torch, diffusers or
transformers (3.4 CPU-seconds and about 320 MB of the entrypoint's memory, on the 2-core development
machine, docs/container.md): a directory is checked from its files alone
(``serve_app.model.directory``), and an offline preset's builder (``serve_app.model.presets``,
``serve_app.model.safety``) is imported only when that preset is not built yet.

Every source goes through ``serve_app.model.sources.resolve_source`` with its own rules; none is
ever replaced by random weights when real ones were asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from serve_app.model.directory import ModelDirectoryError, check_pipeline_directory, unreadable_reason
from serve_app.model.resolved import (
    SD_PRESETS,
    SDXL_PRESETS,
    ResolvedDecoder,
    ResolvedModel,
    ResolvedSafetyChecker,
    model_family,
)
from serve_app.model.sources import (
    DEFAULT_TINY_DECODER,
    PINNED_REVISIONS,
    SAFETY_CHECKER_HUB_ID,
    TINY_DECODER_XL,  # TAESDXL, the tiny decoder of SDXL latents (pinned there)
    LocalSource,
    ModelLoadError,
    SourceRules,
    resolve_source,
)

# --- Offline presets: random weights of the published architectures, built once ----------------

PRESETS = (*SD_PRESETS, *SDXL_PRESETS)
TINY_DECODER_PRESET = "taesd-random"
TINY_DECODER_XL_PRESET = "taesdxl-random"
TINY_DECODER_PRESETS = (TINY_DECODER_PRESET, TINY_DECODER_XL_PRESET)
# Bumped whenever a preset's architecture (serve_app/model/presets.py, the checker's in
# serve_app/model/safety.py) changes, so stale builds are rebuilt, not reused.
PRESET_FORMAT_VERSION = "1"
SAFETY_PRESET_FORMAT_VERSION = "1"


def ensure_preset(name: str, cache_dir: str | os.PathLike) -> Path:
    """The directory of the built model or TAESD preset ``name``, built first if needed."""

    def write(directory: Path) -> None:
        from serve_app.model.presets import save_preset  # torch and diffusers: only to build

        save_preset(name, directory)

    marker = "config.json" if name in TINY_DECODER_PRESETS else "model_index.json"
    return build_once(Path(cache_dir) / "presets" / f"{name}-v{PRESET_FORMAT_VERSION}", marker, write)


def ensure_safety_preset(cache_dir: str | os.PathLike) -> Path:
    """The directory of the built ``random`` safety-checker preset (checker and preprocessor)."""

    def write(directory: Path) -> None:
        from serve_app.model.safety import save_random_safety_checker  # torch and transformers: only to build

        save_random_safety_checker(directory)

    target = Path(cache_dir) / "presets" / f"safety-checker-{RANDOM_PRESET}-v{SAFETY_PRESET_FORMAT_VERSION}"
    return build_once(target, "config.json", write)


def build_once(target: Path, marker: str, write: Callable[[Path], None]) -> Path:
    """Return ``target``, first running ``write(directory)`` unless ``target/marker`` exists.

    Built into a temporary sibling and renamed into place, so a crash mid-build never leaves
    a half-written directory that would later load as a broken model.
    """
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same build first; theirs is as good as ours.
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --- The model ----------------------------------------------------------------------------------

_OFFLINE_HINT = (
    "To try the service without the real weights, use the offline preset: "
    "SDTURBO_MODEL=tiny (or `serve run serve_app.app:build_app model=tiny`); it has random "
    "weights and makes noise images. To use real weights offline, point SDTURBO_MODEL at a local "
    "diffusers directory (e.g. one saved with save_pretrained, or SageMaker's /opt/ml/model)."
)


def weights_dtype(dtype: str, device: str) -> str:
    """The replicas' weights dtype for the ``dtype`` setting on a ``device`` ('cpu' or 'cuda'): the
    one set, or for 'auto' float16 on a GPU and float32 on a CPU. The loader loads in it
    (``loading.select_dtype``); a 16-bit one makes ``resolve_model`` fetch the half-precision files."""
    if dtype == "auto":
        # Half precision halves memory and uses tensor cores; CPUs run float32 fastest.
        return "float16" if device == "cuda" else "float32"
    return dtype


def resolve_model(model: str, revision: str | None, cache_dir: str, half_precision: bool = False) -> ResolvedModel:
    """Turn the ``model`` setting into a local diffusers directory (``sources.resolve_source``).

    Never substitutes random weights for real ones: any failure raises ModelLoadError.
    """
    weights = "*/*.fp16.safetensors" if half_precision else "*/*.safetensors"
    rules = SourceRules(
        what="model",
        error=ModelLoadError,
        hint=_OFFLINE_HINT,
        presets={name: functools.partial(ensure_preset, name) for name in PRESETS},
        # Only what the pipeline loads: configs, tokenizer files and one precision's weights.
        hub_patterns=[["model_index.json", "*/*.json", "*/*.txt", weights]],
        hub_ignore_patterns=None if half_precision else ["*.fp16.safetensors"],
        # The model setting's default is the pinned commit; any other revision is the operator's.
        require_revision=False,
    )
    found = resolve_source(model, revision, rules, cache_dir)
    unreadable = unreadable_reason(found.local_dir)
    if unreadable is None and not (found.local_dir / "model_index.json").is_file():
        raise ModelLoadError(
            f"Model directory {str(found.local_dir)!r} has no model_index.json: it is not a diffusers "
            f"pipeline directory (exists: {found.local_dir.exists()}). {_OFFLINE_HINT}"
        )
    # Unreadable, incomplete, truncated or of another architecture: one line now, not a replica
    # failing to load it three times over.
    try:
        check_pipeline_directory(found.local_dir)
    except ModelDirectoryError as exc:
        raise ModelLoadError(f"Model directory {str(found.local_dir)!r} cannot be served: {exc}") from None
    try:
        family = model_family(found.local_dir)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Found {model!r} at {found.local_dir} but {exc}") from exc
    return ResolvedModel(str(found.local_dir.resolve()), found.source_id, found.revision, found.is_random, family=family)


# --- TAESD, the tiny decoder ----------------------------------------------------------------------

# The files of a diffusers AutoencoderTiny repository that loading needs.
_TINY_DECODER_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]

# A model family's counterpart of each TAESD source that belongs to one family.
_FAMILY_TINY_DECODERS = {
    "sd": {TINY_DECODER_XL: DEFAULT_TINY_DECODER, TINY_DECODER_XL_PRESET: TINY_DECODER_PRESET},
    "sdxl": {DEFAULT_TINY_DECODER: TINY_DECODER_XL, TINY_DECODER_PRESET: TINY_DECODER_XL_PRESET},
}

_TINY_HINT = (
    "To run without TAESD, set SDTURBO_DECODERS=full. To try the tiny decoder offline, use the "
    "random-weight preset SDTURBO_TINY_DECODER=taesd-random (taesdxl-random for SDXL models; their "
    "images are noise), or point "
    "SDTURBO_TINY_DECODER at a local AutoencoderTiny directory (config.json + "
    "diffusion_pytorch_model.safetensors) or at model:<subfolder> of the model directory."
)


def tiny_decoder_for_family(source: str, family: str) -> str:
    """The tiny decoder source for a model of ``family`` ('sd' or 'sdxl'): TAESD and its preset
    for SD-Turbo, TAESDXL and its preset for SDXL-Turbo. A source that names the other family's
    decoder is swapped for this family's; any other (a directory, another Hub id) is kept."""
    return _FAMILY_TINY_DECODERS[family].get(source, source)


def resolve_tiny_decoder(source: str, revision: str, model_dir: str, cache_dir: str) -> ResolvedDecoder:
    """Turn the ``tiny_decoder`` setting into a local AutoencoderTiny directory
    (``sources.resolve_source``: the preset, ``model:<folder>``, a path or a pinned Hub id).

    Never substitutes random weights for real ones: any failure raises ModelLoadError.
    """
    rules = SourceRules(
        what="tiny_decoder",
        error=ModelLoadError,
        hint=_TINY_HINT,
        presets={name: functools.partial(ensure_preset, name) for name in TINY_DECODER_PRESETS},
        hub_patterns=[_TINY_DECODER_FILES],
        model_folders=True,
    )
    found = resolve_source(source, revision, rules, cache_dir, model_dir)
    return ResolvedDecoder(_checked_tiny_dir(found.local_dir, source), found.source_id, found.revision, found.is_random)


def _checked_tiny_dir(path: Path, source: str) -> str:
    """``path`` if it holds an AutoencoderTiny (by its config), else a ModelLoadError saying why."""
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(
            f"tiny_decoder {source!r}: {str(path)!r} has no config.json (exists: {path.exists()}). {_TINY_HINT}"
        )
    try:
        class_name = json.loads(config.read_text()).get("_class_name")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"tiny_decoder {source!r}: cannot read {config}: {exc}. {_TINY_HINT}") from exc
    if class_name != "AutoencoderTiny":
        raise ModelLoadError(
            f"tiny_decoder {source!r}: {config} describes a {class_name!r}, not an AutoencoderTiny "
            f"(TAESD). {_TINY_HINT}"
        )
    return str(path.resolve())


# --- The safety checker -------------------------------------------------------------------------

# The published checker and its pinned commit: serve_app.model.sources lists every pin.
SAFETY_CHECKER_REVISION = PINNED_REVISIONS[SAFETY_CHECKER_HUB_ID]
# `safety_checker` values that are not a Hub id or a path.
RANDOM_PRESET = "random"  # offline preset: published architecture, random weights
FROM_MODEL = "model"  # the model directory's safety_checker/ and feature_extractor/ subfolders


class SafetyCheckerLoadError(ModelLoadError):
    """The configured safety checker could not be found or loaded; start-up fails with this."""


_SAFETY_HINT = (
    f"Set SDTURBO_SAFETY_CHECKER={SAFETY_CHECKER_HUB_ID} for the published checker, point it at a local "
    "copy, or leave it empty to run without one."
)
_CHECKER_CONFIGS = ["config.json", "preprocessor_config.json"]
_SAFETY_RULES = SourceRules(
    what="safety_checker",
    error=SafetyCheckerLoadError,
    hint=_SAFETY_HINT,
    presets={RANDOM_PRESET: ensure_safety_preset},
    # safetensors when the revision has them; the pickle-free loader of transformers reads
    # pytorch_model.bin otherwise (weights only).
    hub_patterns=[[*_CHECKER_CONFIGS, "*.safetensors"], [*_CHECKER_CONFIGS, "pytorch_model.bin"]],
    weights="*.safetensors",
)


def resolve_safety_checker(
    source: str, revision: str, cache_dir: str, model_dir: str | None = None, forced_unsafe_seeds: str = ""
) -> ResolvedSafetyChecker | None:
    """Turn the ``safety_checker`` setting into local directories; None when it is off.

    Never substitutes random weights for real ones: any failure raises SafetyCheckerLoadError.
    ``forced_unsafe_seeds`` is the testing-only ``fault_injection_unsafe_seeds`` setting.
    """
    source = source.strip()
    try:
        forced = parse_seed_list(forced_unsafe_seeds)
    except ValueError as exc:
        raise SafetyCheckerLoadError(f"fault_injection_unsafe_seeds: {exc}") from None
    # 1. Off.
    if not source:
        if forced:
            raise SafetyCheckerLoadError("fault_injection_unsafe_seeds needs a safety_checker to inject into")
        return None
    # 2. The model directory's own checker (a pipeline saved with its safety_checker/) is the
    #    model directory itself; every other source goes through the one resolver.
    if source == FROM_MODEL:
        if model_dir is None:
            raise SafetyCheckerLoadError("safety_checker='model' needs the model's directory")
        found = LocalSource(Path(model_dir), FROM_MODEL, None, False)
    else:
        found = resolve_source(source, revision, _SAFETY_RULES, cache_dir, model_dir)
    resolved = _local_checker(found.local_dir, source)
    return dataclasses.replace(
        resolved, source=found.source_id, revision=found.revision, is_random=found.is_random, forced_unsafe_seeds=forced
    )


def _local_checker(path: Path, source: str) -> ResolvedSafetyChecker:
    """A checker directory (config.json + preprocessor_config.json) or a pipeline directory
    (safety_checker/ + feature_extractor/)."""
    if (path / "config.json").is_file():
        checker, preprocessor = path, path
    else:
        checker, preprocessor = path / "safety_checker", path / "feature_extractor"
    missing = [
        str(p) for p in (checker / "config.json", preprocessor / "preprocessor_config.json") if not p.is_file()
    ]
    if missing:
        raise SafetyCheckerLoadError(
            f"Safety checker {source!r}: {str(path)!r} is neither a checker directory (config.json and "
            f"preprocessor_config.json) nor a pipeline directory with safety_checker/ and "
            f"feature_extractor/; missing {missing} (exists: {path.exists()}). {_SAFETY_HINT}"
        )
    return ResolvedSafetyChecker(str(checker.resolve()), str(preprocessor.resolve()), source, None, False)


def parse_seed_list(text: str) -> frozenset[int]:
    """'1, 2,3' -> {1, 2, 3}; a clear error for anything that is not a list of integers."""
    try:
        return frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integer seeds, got {text!r}") from None
