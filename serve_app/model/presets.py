"""Offline presets: random-weight pipelines with the SD-Turbo and SDXL-Turbo architectures.

Model weights cannot be downloaded everywhere this project runs (CI, air-gapped boxes), so two
presets are built locally and written with ``save_pretrained``; the server then loads them back
through exactly the same ``from_pretrained`` path as the published weights.

* ``tiny``: the SD-Turbo component types (CLIP text encoder, UNet2DConditionModel with linear
  projections, AutoencoderKL with an 8x downsampling VAE, Euler-ancestral scheduler with trailing
  timesteps) at toy widths, so a 512x512 image takes a fraction of a second on a CPU.
* ``sd-turbo-random``: the published SD 2.1 / sd-turbo component configurations at full size
  (UNet ~866M parameters, OpenCLIP ViT-H text encoder ~340M, VAE ~84M), for honest speed and
  memory figures. Random weights: the images are noise.

* ``tiny-xl``: the SDXL-Turbo component types (two text encoders: a CLIPTextModel and a
  CLIPTextModelWithProjection whose pooled embedding, with the added time ids, conditions the
  UNet's ``text_time`` embedding; a three-level UNet; a VAE with SDXL's scaling factor) at toy
  widths.
* ``sdxl-turbo-random``: the published SDXL-Turbo component configurations at full size (UNet
  ~2.6G parameters, CLIP ViT-L + OpenCLIP ViT-bigG text encoders, VAE ~84M). Random weights.

All use the real CLIP byte-pair vocabulary (vendored from open_clip, MIT licence, see
``assets/``), so prompt token counts and the 77-token limit are those of the real model.

Two decoder presets sit beside them: ``taesd-random`` and ``taesdxl-random``, random-weight
``AutoencoderTiny`` decoders with TAESD's published configuration (madebyollin/taesd's and
madebyollin/taesdxl's config.json are the same architecture, ~1.2M decoder parameters, trained
for different latents), for tests and benchmarks of the tiny-decoder tier of each model family.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerAncestralDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from serve_app.model.resolving import PRESETS, TINY_DECODER_PRESETS, ensure_preset
from serve_app.model.sources import DEFAULT_CACHE_DIR

_BPE_FILE = Path(__file__).with_name("assets") / "clip_bpe_simple_vocab_16e6.txt.gz"

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

# --- SDXL-Turbo -------------------------------------------------------------------------------
# The configuration files of the published model, https://huggingface.co/stabilityai/sdxl-turbo
# (unet/config.json, vae/config.json, text_encoder/config.json, text_encoder_2/config.json,
# scheduler/scheduler_config.json, tokenizer*/): SDXL 1.0's architecture, as diffusers' SDXL
# Turbo page says ("SDXL Turbo uses the exact same architecture as SDXL"; the values below are
# those of stabilityai/stable-diffusion-xl-base-1.0's config files), with sample sizes for its
# 512x512 training size (UNet 64, VAE 512: only default sizes, not weights) and the Euler
# ancestral scheduler with trailing timesteps that SDXL-Turbo is sampled with.
_XL_SCHEDULER_CONFIG = dict(_SCHEDULER_CONFIG)
_XL_FULL_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    # The two text encoders' penultimate hidden states side by side: 768 + 1280.
    cross_attention_dim=2048,
    use_linear_projection=True,
    # "text_time": the pooled text embedding (1280) and six added time ids (original size, crop
    # corner, target size) embedded at 256 each: 1280 + 6 * 256 = 2816.
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    norm_num_groups=32,
    norm_eps=1e-5,
    flip_sin_to_cos=True,
    freq_shift=0,
    act_fn="silu",
)
# SDXL's VAE: SD's architecture, another scaling factor, and ``force_upcast``: its published
# weights overflow float16 while decoding (serve_app/model/decoders.py decodes it in float32).
_XL_FULL_VAE = dict(_FULL_VAE, sample_size=512, scaling_factor=0.13025, force_upcast=True)
# text_encoder: OpenAI CLIP ViT-L/14's text tower.
_XL_FULL_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_attention_heads=12,
    num_hidden_layers=12,
    projection_dim=768,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)
# text_encoder_2: OpenCLIP ViT-bigG/14's text tower, with its projection (the pooled embedding).
_XL_FULL_TEXT_2 = dict(
    vocab_size=49408,
    hidden_size=1280,
    intermediate_size=5120,
    num_attention_heads=20,
    num_hidden_layers=32,
    projection_dim=1280,
    max_position_embeddings=77,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
)
# Toy widths with the same wiring: 32 + 32 = 64 cross-attention channels, 32 + 6 * 8 = 80.
_XL_TINY_UNET = dict(
    _XL_FULL_UNET,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    transformer_layers_per_block=(1, 2),
    attention_head_dim=(2, 4),
    cross_attention_dim=64,
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=80,
    norm_num_groups=8,
)
_XL_TINY_VAE = dict(_TINY_VAE, scaling_factor=0.13025, force_upcast=True)
_XL_TINY_TEXT = dict(_TINY_TEXT)
_XL_TINY_TEXT_2 = dict(_TINY_TEXT, hidden_act="gelu")

_XL_ARCHITECTURES = {
    "tiny-xl": (_XL_TINY_UNET, _XL_TINY_VAE, _XL_TINY_TEXT, _XL_TINY_TEXT_2),
    "sdxl-turbo-random": (_XL_FULL_UNET, _XL_FULL_VAE, _XL_FULL_TEXT, _XL_FULL_TEXT_2),
}


# madebyollin/taesd's config.json (TAESD for SD 1.x/2.x latents): the tiny-decoder preset.
# madebyollin/taesdxl's (TAESDXL, for SDXL latents) is the same architecture.
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


def write_clip_tokenizer(directory: Path, pad_token: str = "!") -> None:
    """Write CLIP's tokenizer (tokenizer.json and its config) from the vendored BPE table.

    Same construction as OpenAI's ``SimpleTokenizer``: 256 byte symbols, their end-of-word forms,
    48,894 merges and the two special tokens: 49,408 ids, identical to the published vocabulary.
    ``pad_token``: "!" for SD 2.x and SDXL's second tokenizer, "<|endoftext|>" for SDXL's first.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(_BPE_FILE).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    # The padding token is the model's; the rest are CLIP's defaults.
    tokenizer = CLIPTokenizer(
        vocab={token: index for index, token in enumerate(vocab)},
        merges=[tuple(m.split()) for m in merges],
        pad_token=pad_token,
        model_max_length=77,
    )
    tokenizer.save_pretrained(str(directory))


def build_pipeline(name: str, seed: int = 0) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """Instantiate a preset with random weights (deterministic for a given seed)."""
    if name in _XL_ARCHITECTURES:
        return _build_xl_pipeline(name, seed)
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


def _build_xl_pipeline(name: str, seed: int) -> StableDiffusionXLPipeline:
    unet_config, vae_config, text_config, text_2_config = _XL_ARCHITECTURES[name]
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        # SDXL's two tokenizers: the same vocabulary, padded differently (as published).
        write_clip_tokenizer(Path(tmp) / "tokenizer", pad_token="<|endoftext|>")
        write_clip_tokenizer(Path(tmp) / "tokenizer_2", pad_token="!")
        tokenizer = CLIPTokenizer.from_pretrained(str(Path(tmp) / "tokenizer"))
        tokenizer_2 = CLIPTokenizer.from_pretrained(str(Path(tmp) / "tokenizer_2"))
    return StableDiffusionXLPipeline(
        vae=AutoencoderKL(**vae_config),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text_config)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text_2_config)).eval(),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=UNet2DConditionModel(**unet_config),
        scheduler=EulerAncestralDiscreteScheduler(**_XL_SCHEDULER_CONFIG),
        # sdxl-turbo's model_index.json: an empty negative prompt is zeros, as SDXL was trained.
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def build_tiny_decoder(seed: int = 0) -> AutoencoderTiny:
    """A random-weight AutoencoderTiny with TAESD's (and TAESDXL's) published architecture."""
    torch.manual_seed(seed)
    return AutoencoderTiny(**TAESD_CONFIG).eval()


def save_preset(name: str, directory: Path) -> None:
    """Build the model or TAESD preset ``name`` and write it into ``directory`` with
    ``save_pretrained`` (``serve_app.model.resolving.ensure_preset`` builds each one once)."""
    if name in TINY_DECODER_PRESETS:
        seed = TINY_DECODER_PRESETS.index(name)  # two presets, two different random decoders
        build_tiny_decoder(seed).save_pretrained(str(directory), safe_serialization=True)
    else:
        build_pipeline(name).save_pretrained(str(directory), safe_serialization=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build an offline random-weight preset.")
    parser.add_argument("name", choices=(*PRESETS, *TINY_DECODER_PRESETS))
    parser.add_argument(
        "--cache-dir", default=DEFAULT_CACHE_DIR, help=f"The service's cache_dir setting (default {DEFAULT_CACHE_DIR})."
    )
    args = parser.parse_args(argv)
    print(ensure_preset(args.name, args.cache_dir))


if __name__ == "__main__":
    main()
