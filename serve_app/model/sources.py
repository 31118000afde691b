"""Where weights come from: one resolver of "source -> local directory" for the model, TAESD and
the safety checker.

A source is one of
  1. an offline preset (random weights of the published architecture, built once into the cache
     and loaded back through ``from_pretrained`` like any other directory);
  2. ``model:<folder>``, a folder of the model's own directory (e.g. /opt/ml/model/vae_tiny);
  3. a local directory (a path: starts with ``.``, ``/`` or ``~``, or exists);
  4. a Hugging Face Hub id, fetched at a pinned revision (only the files loading needs).

Each kind (``SourceRules``) says which presets it has, which files it fetches and whether a Hub id
without a revision is allowed; each caller then checks the directory holds what it loads. Any
failure raises the kind's error with what was tried and a hint: real weights that were asked for
are never replaced by random ones.

Free of torch, diffusers and of every module outside this package (the settings import the pins
below), so the values resolved here cross the Ray seam as plain data (``resolved.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Where presets are built (the ``cache_dir`` setting's default).
DEFAULT_CACHE_DIR = str(Path.home() / ".cache" / "sd-turbo-serve")

# The published weights this service was built against, each pinned to a Hub commit so a
# deployment never picks up changed weights silently. The one list: the settings' defaults and
# every resolver read it.
DEFAULT_MODEL = "stabilityai/sd-turbo"
DEFAULT_TINY_DECODER = "madebyollin/taesd"
SAFETY_CHECKER_HUB_ID = "CompVis/stable-diffusion-safety-checker"
# SDXL-Turbo and its tiny decoder (TAESDXL): the second model family's published weights.
SDXL_TURBO_MODEL = "stabilityai/sdxl-turbo"
TINY_DECODER_XL = "madebyollin/taesdxl"
PINNED_REVISIONS: Mapping[str, str] = {
    DEFAULT_MODEL: "b261bac6fd2cf515557d5d0707481eafa0485ec2",
    # The revision public projects pin for config.json + diffusion_pytorch_model.safetensors.
    DEFAULT_TINY_DECODER: "614f76814bbe30edbe2e627ace1c2234c81a2c0e",
    # Seen as this repository's snapshot in several projects' Hugging Face caches and URLs.
    SAFETY_CHECKER_HUB_ID: "cb41f3a270d63d454d385fc2e4f571c487c253c5",
    # Seen as this repository's snapshot (models--stabilityai--sdxl-turbo/snapshots/<sha>) in
    # several public projects' Hugging Face cache paths that load it with variant="fp16", and
    # pinned as SDXL-Turbo's revision (beside this file's SD-Turbo pin) in others.
    SDXL_TURBO_MODEL: "71153311d3dbb46851df1931d3ca6e939de83304",
    # Pinned by several public projects for diffusion_pytorch_model.safetensors (e.g. as
    # hf://madebyollin/taesdxl@<sha>/diffusion_pytorch_model.safetensors), and seen as the
    # repository's snapshot in a Hugging Face cache path loaded with AutoencoderTiny.from_pretrained.
    TINY_DECODER_XL: "b20258aaef75ef61e659c1e0f14f251cf0ad153e",
}
MODEL_FOLDER_PREFIX = "model:"


class ModelLoadError(RuntimeError):
    """A configured source could not be found or loaded; the message says what was tried."""


@dataclass(frozen=True)
class LocalSource:
    """A source turned into a local directory."""

    local_dir: Path
    source_id: str  # what users asked for: hub id, path, "model:<folder>" or "preset:<name>"
    revision: str | None
    is_random: bool  # a preset: never report its output as the real weights'


@dataclass(frozen=True)
class SourceRules:
    """How one kind of source (the model, TAESD, the safety checker) is resolved."""

    what: str  # named in every error: "model", "tiny_decoder", "safety checker"
    error: type[ModelLoadError]
    hint: str  # what to do instead, appended to every error
    # name -> build(cache_dir) -> the preset's directory (built once).
    presets: Mapping[str, Callable[[str], Path]] = field(default_factory=dict)
    # Allow-pattern sets for the Hub download, tried in order until ``weights`` matches a file.
    hub_patterns: Sequence[Sequence[str]] = ()
    hub_ignore_patterns: Sequence[str] | None = None
    weights: str | None = None  # glob of the weight files the first pattern set must bring
    # A Hub id other than a pinned one must name its revision (a moving branch is never used).
    require_revision: bool = True
    model_folders: bool = False  # accepts "model:<folder>"


def resolve_source(
    source: str, revision: str | None, rules: SourceRules, cache_dir: str, model_dir: str | None = None
) -> LocalSource:
    """``source`` as a local directory, building or fetching it as needed (see the module doc)."""
    # 1. An offline preset: random weights, built once into the cache.
    if source in rules.presets:
        return LocalSource(rules.presets[source](cache_dir), f"preset:{source}", None, True)
    # 2. A folder of the model directory.
    if rules.model_folders and source.startswith(MODEL_FOLDER_PREFIX):
        folder = source[len(MODEL_FOLDER_PREFIX) :].strip("/")
        if not folder or Path(folder).is_absolute() or ".." in Path(folder).parts or model_dir is None:
            raise rules.error(f"{rules.what} {source!r}: name a folder inside the model directory. {rules.hint}")
        return LocalSource(Path(model_dir) / folder, source, None, False)
    # 3. A local directory.
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) or path.exists():
        return LocalSource(path, str(path), None, False)
    # 4. A Hub id at a pinned revision.
    return LocalSource(fetch_from_hub(source, revision, rules), source, revision or PINNED_REVISIONS.get(source), False)


def fetch_from_hub(repo_id: str, revision: str | None, rules: SourceRules) -> Path:
    """The snapshot of ``repo_id`` at ``revision`` (the pinned one when empty) in the Hugging Face cache."""
    if not revision:
        revision = PINNED_REVISIONS.get(repo_id)
        if revision is None and rules.require_revision:
            raise rules.error(
                f"{rules.what} {repo_id!r} is a Hub id without a pinned revision: set "
                f"SDTURBO_{rules.what.upper().replace(' ', '_')}_REVISION to the commit sha to load "
                "(a moving branch is never used)."
            )
    from huggingface_hub import snapshot_download

    try:
        local_dir = None
        for patterns in rules.hub_patterns or (None,):
            local_dir = snapshot_download(
                repo_id=repo_id,
                revision=revision,
                allow_patterns=list(patterns) if patterns is not None else None,
                ignore_patterns=list(rules.hub_ignore_patterns) if rules.hub_ignore_patterns else None,
            )
            if rules.weights is None or any(Path(local_dir).glob(rules.weights)):
                break
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear start-up error
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        raise rules.error(
            f"Could not fetch {rules.what} {repo_id!r} at revision {revision!r} from the Hugging Face Hub "
            f"(HF_HUB_OFFLINE={'1' if offline else '0'}, cache {os.environ.get('HF_HOME', '~/.cache/huggingface')}): "
            f"{type(exc).__name__}: {exc}. {rules.hint}"
        ) from exc
    return Path(local_dir)
