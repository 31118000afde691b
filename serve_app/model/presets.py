"""Offline presets: random-weight pipelines with the SD-Turbo architecture.

Model weights cannot be downloaded everywhere this project runs (CI, air-gapped boxes), so two
presets are built locally and written with ``save_pretrained``; the server then loads them back
through exactly the same ``from_pretrained`` path as the published weights.

* ``tiny``: the SD-Turbo component types (CLIP text encoder, UNet2DConditionModel with linear
  projections, AutoencoderKL with an 8x downsampling VAE, Euler-ancestral scheduler with trailing
  timesteps) at toy widths, so a 512x512 image takes a fraction of a second on a CPU.
* ``sd-turbo-random``: the published SD 2.1 / sd-turbo component configurations at full size
  (UNet ~866M parameters, OpenCLIP ViT-H text encoder ~340M, VAE ~84M), for honest speed and
  memory figures. Random weights: the images are noise.

Both use the real CLIP byte-pair vocabulary (vendored from open_clip, MIT licence, see
``assets/``), so prompt token counts and the 77-token limit are those of the real model.

One decoder preset sits beside them: ``taesd-random``, a random-weight ``AutoencoderTiny`` with
TAESD's published configuration (madebyollin/taesd's config.json: ~1.2M decoder parameters), for
tests and benchmarks of the tiny-decoder tier.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerAncestralDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from serve_app.model.sources import DEFAULT_CACHE_DIR

PRESETS = ("tiny", "sd-turbo-random")
_BPE_FILE = Path(__file__).with_name("assets") / "clip_bpe_simple_vocab_16e6.txt.gz"
# Bumped whenever a preset's architecture changes, so stale builds are rebuilt, not reused.
PRESET_FORMAT_VERSION = "1"

# sd-turbo's scheduler/scheduler_config.json
_SCHEDULER_CONFIG = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    prediction_type="epsilon",
    steps_offset=1,
    timestep_spacing="trailing",
)

# sd-turbo's unet/config.json (SD 2.1 base architecture)
_FULL_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
    norm_num_groups=32,
    norm_eps=1e-5,
    flip_sin_to_cos=True,
    freq_shift=0,
    act_fn="silu",
)
# sd-turbo's vae/config.json
_FULL_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=768,
    scaling_factor=0.18215,
    act_fn="silu",
)
# sd-turbo's text_encoder/config.json (OpenCLIP ViT-H/14 text tower, penultimate layer)
_FULL_TEXT = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    num_attention_heads=16,
    num_hidden_layers=23,
    projection_dim=512,
    max_position_embeddings=77,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
)

_TINY_UNET = dict(
    _FULL_UNET,
    sample_size=64,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    attention_head_dim=(2, 4),
    cross_attention_dim=32,
    norm_num_groups=8,
)
# Four blocks, so the VAE downsamples 8x like the real one and latents have the real shape.
_TINY_VAE = dict(
    _FULL_VAE,
    block_out_channels=(8, 16, 16, 16),
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=512,
)
_TINY_TEXT = dict(
    _FULL_TEXT, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
    projection_dim=32,
)

_ARCHITECTURES = {
    "tiny": (_TINY_UNET, _TINY_VAE, _TINY_TEXT),
    "sd-turbo-random": (_FULL_UNET, _FULL_VAE, _FULL_TEXT),
}


# madebyollin/taesd's config.json (TAESD for SD 1.x/2.x latents): the tiny-decoder preset.
TINY_DECODER_PRESET = "taesd-random"
TAESD_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    encoder_block_out_channels=(64, 64, 64, 64),
    decoder_block_out_channels=(64, 64, 64, 64),
    act_fn="relu",
    upsample_fn="nearest",
    latent_channels=4,
    upsampling_scaling_factor=2,
    num_encoder_blocks=(1, 3, 3, 3),
    num_decoder_blocks=(3, 3, 3, 1),
    latent_magnitude=3,
    latent_shift=0.5,
    force_upcast=False,
    scaling_factor=1.0,
    shift_factor=0.0,
)


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP's reversible byte -> printable-unicode table.
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def write_clip_tokenizer(directory: Path) -> None:
    """Write CLIP's tokenizer (tokenizer.json and its config) from the vendored BPE table.

    Same construction as OpenAI's ``SimpleTokenizer``: 256 byte symbols, their end-of-word forms,
    48,894 merges and the two special tokens: 49,408 ids, identical to the published vocabulary.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(_BPE_FILE).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    # SD 2.x uses "!" as its padding token; the rest are CLIP's defaults.
    tokenizer = CLIPTokenizer(
        vocab={token: index for index, token in enumerate(vocab)},
        merges=[tuple(m.split()) for m in merges],
        pad_token="!",
        model_max_length=77,
    )
    tokenizer.save_pretrained(str(directory))


def build_pipeline(name: str, seed: int = 0) -> StableDiffusionPipeline:
    """Instantiate a preset with random weights (deterministic for a given seed)."""
    if name not in _ARCHITECTURES:
        raise ValueError(f"Unknown preset {name!r}; choose one of {PRESETS}")
    unet_config, vae_config, text_config = _ARCHITECTURES[name]
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    return StableDiffusionPipeline(
        vae=AutoencoderKL(**vae_config),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text_config)).eval(),
        tokenizer=tokenizer,
        unet=UNet2DConditionModel(**unet_config),
        scheduler=EulerAncestralDiscreteScheduler(**_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_decoder(seed: int = 0) -> AutoencoderTiny:
    """A random-weight AutoencoderTiny with TAESD's published architecture."""
    torch.manual_seed(seed)
    return AutoencoderTiny(**TAESD_CONFIG).eval()


def ensure_preset(name: str, cache_dir: str | os.PathLike) -> Path:
    """Return the directory of a built preset, building it first if needed."""
    target = Path(cache_dir) / "presets" / f"{name}-v{PRESET_FORMAT_VERSION}"
    if name == TINY_DECODER_PRESET:
        return build_once(
            target, "config.json", lambda staging: build_tiny_decoder().save_pretrained(str(staging), safe_serialization=True)
        )
    return build_once(
        target, "model_index.json", lambda staging: build_pipeline(name).save_pretrained(str(staging), safe_serialization=True)
    )


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build an offline random-weight preset.")
    parser.add_argument("name", choices=(*PRESETS, TINY_DECODER_PRESET))
    parser.add_argument(
        "--cache-dir", default=DEFAULT_CACHE_DIR, help=f"The service's cache_dir setting (default {DEFAULT_CACHE_DIR})."
    )
    args = parser.parse_args(argv)
    print(ensure_preset(args.name, args.cache_dir))


if __name__ == "__main__":
    main()
