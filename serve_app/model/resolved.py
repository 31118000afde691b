"""What the ``model`` setting resolved to: a plain value that crosses the Ray seam.

Kept free of torch and diffusers (like ``tokens``) so the ingress replica can receive it and
read the model's tokenizer without loading either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The diffusers pipeline classes the service runs, by model family.
PIPELINE_CLASSES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
# The offline presets (serve_app/model/presets.py builds them), by family.
SD_PRESETS = ("tiny", "sd-turbo-random")
SDXL_PRESETS = ("tiny-xl", "sdxl-turbo-random")


def model_family(model_dir: str | Path) -> str:
    """'sd' or 'sdxl': the family of the diffusers pipeline directory ``model_dir``, from its
    model_index.json (read without torch); ValueError for any other pipeline class."""
    class_name = json.loads((Path(model_dir) / "model_index.json").read_text()).get("_class_name")
    for family, name in PIPELINE_CLASSES.items():
        if class_name == name:
            return family
    raise ValueError(
        f"{model_dir}: model_index.json describes a {class_name!r}; this service runs "
        f"{' or '.join(PIPELINE_CLASSES.values())}"
    )


@dataclass(frozen=True)
class ResolvedDecoder:
    """The tiny decoder's (TAESD's) source turned into a local AutoencoderTiny directory."""

    local_dir: str
    source_id: str  # what users asked for: hub id, path, "model:<subfolder>" or "preset:taesd-random"
    revision: str | None
    is_random: bool  # True for the preset: never report its images as TAESD's

    def info(self) -> dict[str, object]:
        """The response's ``model.tiny_decoder``."""
        return {"id": self.source_id, "revision": self.revision, "random_weights": self.is_random}


@dataclass(frozen=True)
class ResolvedSafetyChecker:
    """A safety-checker source turned into local directories (picklable: sent to replicas)."""

    checker_dir: str  # config.json + weights
    preprocessor_dir: str  # preprocessor_config.json
    source: str  # what was asked for: hub id, path, "model", or "preset:random"
    revision: str | None
    is_random: bool
    # Testing only: images of these seeds are reported unsafe (fault_injection_unsafe_seeds).
    forced_unsafe_seeds: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ResolvedModel:
    """A model source turned into a local diffusers directory."""

    local_dir: str
    model_id: str  # what users asked for: hub id, path, or "preset:<name>"
    revision: str | None
    is_random: bool  # True for presets: never report their images as the real model's
    # TAESD, when the ``decoders`` setting loads it (resolved beside the model, before replicas start).
    tiny_decoder: ResolvedDecoder | None = None
    # The image safety checker, when the ``safety_checker`` setting turns it on (only the model
    # replica loads it). With the two above: everything resolved crosses the Ray seam in this one object.
    safety_checker: ResolvedSafetyChecker | None = None
    # The name requests use for it (the ``models`` setting: "tiny", "sdxl-turbo", ...).
    name: str = "default"
    # 'sd' (SD-Turbo's architecture) or 'sdxl' (SDXL-Turbo's), from the directory's model_index.json.
    family: str = "sd"

    def log_fields(self) -> dict[str, object]:
        """What log lines say about the model: random weights are never logged as the real model."""
        fields: dict[str, object] = {
            "model_name": self.name,
            "model": self.model_id,
            "revision": self.revision,
            "random_weights": self.is_random,
        }
        if self.tiny_decoder is not None:
            fields["tiny_decoder"] = self.tiny_decoder.info()
        if self.safety_checker is not None:
            fields["safety_checker"] = self.safety_checker.source
        return fields

    @property
    def variant(self) -> str | None:
        """'fp16' when the directory only holds half-precision weight files."""
        unet = Path(self.local_dir) / "unet"
        if any(unet.glob("*.fp16.safetensors")) and not any(
            p for p in unet.glob("*.safetensors") if ".fp16." not in p.name
        ):
            return "fp16"
        return None
