"""SDXL-Turbo in the model layer: the presets, loading, generation, the float16 VAE, TAESDXL."""

import json
import time

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

import serve_app.model.presets as presets
from serve_app.batching import GenerationSpec
from serve_app.model import (
    DecoderSet,
    SDTurboGenerator,
    build_decoders,
    load_pipeline,
    load_tiny_decoder,
    resolve_model,
    resolve_tiny_decoder,
)
from serve_app.model.decoders import LatentDecoder
from serve_app.model.resolved import model_family
from serve_app.model.sources import TINY_DECODER_XL


@pytest.fixture(scope="module")
def xl_pipe(tiny_xl_model_dir, cache_dir):
    return load_pipeline(resolved=resolve_model("tiny-xl", None, cache_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def xl_generator(xl_pipe):
    return SDTurboGenerator(xl_pipe)


def pixels(image):
    return np.asarray(image, dtype=np.float64) / 255.0


# --- the presets ------------------------------------------------------------------------------
def test_tiny_xl_is_a_saved_sdxl_pipeline_with_two_text_encoders(tiny_xl_model_dir):
    index = json.loads((tiny_xl_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert index["tokenizer_2"] == ["transformers", "CLIPTokenizer"]
    assert index["scheduler"] == ["diffusers", "EulerAncestralDiscreteScheduler"]
    assert index["force_zeros_for_empty_prompt"] is True
    unet = json.loads((tiny_xl_model_dir / "unet" / "config.json").read_text())
    # Pooled embedding (text_encoder_2's projection) + six time ids: the "text_time" embedding.
    text_2 = json.loads((tiny_xl_model_dir / "text_encoder_2" / "config.json").read_text())
    text_1 = json.loads((tiny_xl_model_dir / "text_encoder" / "config.json").read_text())
    assert unet["addition_embed_type"] == "text_time"
    assert unet["projection_class_embeddings_input_dim"] == text_2["projection_dim"] + 6 * unet["addition_time_embed_dim"]
    assert unet["cross_attention_dim"] == text_1["hidden_size"] + text_2["hidden_size"]
    vae = json.loads((tiny_xl_model_dir / "vae" / "config.json").read_text())
    assert vae["scaling_factor"] == 0.13025 and vae["force_upcast"] is True
    scheduler = json.loads((tiny_xl_model_dir / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["timestep_spacing"] == "trailing"
    # The two tokenizers pad as the published ones do.
    pads = [CLIPTokenizer.from_pretrained(str(tiny_xl_model_dir), subfolder=f).pad_token for f in ("tokenizer", "tokenizer_2")]
    assert pads == ["<|endoftext|>", "!"]
    assert model_family(tiny_xl_model_dir) == "sdxl"


def test_sdxl_turbo_random_has_the_published_parameter_counts():
    # Built on the meta device: the architecture without 14 GB of float32 weights. The counts are
    # those of the published SDXL(-Turbo) components (UNet 2.57G, CLIP ViT-L text 123M, OpenCLIP
    # ViT-bigG text 695M, VAE 83.7M).
    with torch.device("meta"):
        unet = UNet2DConditionModel(**presets._XL_FULL_UNET)
        text = CLIPTextModel(CLIPTextConfig(**presets._XL_FULL_TEXT))
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**presets._XL_FULL_TEXT_2))
        vae = AutoencoderKL(**presets._XL_FULL_VAE)
    counts = [sum(p.numel() for p in module.parameters()) for module in (unet, text, text_2, vae)]
    assert counts == [2_567_463_684, 123_060_480, 694_659_840, 83_653_863]
    assert "sdxl-turbo-random" in presets.PRESETS and "tiny-xl" in presets.PRESETS


def test_the_xl_preset_loads_back_as_an_sdxl_pipeline_marked_random(xl_pipe, cache_dir):
    resolved = resolve_model("tiny-xl", None, cache_dir)
    assert resolved.is_random and resolved.model_id == "preset:tiny-xl" and resolved.family == "sdxl"
    assert resolve_model("tiny", None, cache_dir).family == "sd"
    assert isinstance(xl_pipe, StableDiffusionXLPipeline)


# --- generation -------------------------------------------------------------------------------
def test_sdxl_batch_is_seeded_per_request_and_batch_invariant(xl_generator):
    target = GenerationSpec(prompt="a red bicycle", seed=99, width=128, height=128)
    alone = xl_generator.generate([target])[0]
    others = [GenerationSpec(prompt=f"other {i}", seed=i, width=128, height=128) for i in range(2)]
    batched = xl_generator.generate([others[0], target, others[1]])
    assert alone.image.size == (128, 128) and [g.batch_size for g in batched] == [3, 3, 3]
    assert np.abs(pixels(alone.image) - pixels(batched[1].image)).mean() <= 2 / 255
    assert np.abs(pixels(batched[0].image) - pixels(batched[1].image)).mean() > 2 / 255


def test_sdxl_steps_guidance_and_negative_prompts_in_one_call(xl_generator):
    specs = [
        GenerationSpec(prompt=p, seed=i, width=96, height=64, num_inference_steps=2, guidance_scale=2.0, negative_prompt="blur")
        for i, p in enumerate(("a", "b"))
    ]
    results = xl_generator.generate(specs)
    assert [r.image.size for r in results] == [(96, 64), (96, 64)] and [r.batch_size for r in results] == [2, 2]


def test_one_call_never_mixes_models(xl_generator):
    specs = [GenerationSpec(prompt="a", seed=1, model="tiny-xl"), GenerationSpec(prompt="a", seed=1, model="tiny")]
    with pytest.raises(ValueError, match="one group"):
        xl_generator.generate(specs)


def test_sdxl_latents_are_decoded_like_the_pipelines_own_decode(xl_pipe):
    # The service stops the pipeline at latents and decodes itself: same pixels as diffusers' SDXL path.
    kwargs = dict(prompt=["a cat"], num_inference_steps=1, guidance_scale=0.0, width=64, height=64)
    with torch.inference_mode():
        latents = xl_pipe(**kwargs, generator=[torch.Generator().manual_seed(5)], output_type="latent").images
        reference = xl_pipe(**kwargs, generator=[torch.Generator().manual_seed(5)], output_type="pt").images
        ours = DecoderSet.full_only(xl_pipe).decode("full", latents)
    assert torch.allclose(ours, reference, atol=1e-5)


# --- the float16 VAE ----------------------------------------------------------------------------
def _overflowing_sdxl_vae() -> AutoencoderKL:
    """SDXL's full-size VAE whose first decoder layer makes activations past float16's 65,504.

    The published SDXL VAE overflows float16 inside its decoder (madebyollin/sdxl-vae-fp16-fix
    documents it); random weights do not, so the first convolution is scaled until its outputs
    overflow in float16 while staying ordinary float32 numbers (the group norm after it
    normalises them away).
    """
    torch.manual_seed(0)
    vae = AutoencoderKL(**presets._XL_FULL_VAE).eval()
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(1e5)
    return vae.to(torch.float16)


def test_the_full_size_sdxl_vae_decodes_without_nan_in_float16():
    latents = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0)).to(torch.float16)
    vae = _overflowing_sdxl_vae()
    # 1. Without the fix (SD's rule: decode in the pipeline's precision) the images are NaN/Inf,
    #    so this VAE exercises the overflow.
    started = time.perf_counter()
    broken = LatentDecoder("full", vae, sdxl=False)(latents)
    float16_s = time.perf_counter() - started
    assert vae.dtype == torch.float16 and not torch.isfinite(broken).all()
    # 2. SDXL's rule: a force_upcast VAE decodes in float32, the images come back finite, in
    #    the latents' precision, in [0, 1].
    decoder = LatentDecoder("full", vae, sdxl=True)
    started = time.perf_counter()
    images = decoder(latents)
    float32_s = time.perf_counter() - started
    assert decoder.upcast and vae.dtype == torch.float32
    assert images.dtype == torch.float16 and torch.isfinite(images).all()
    assert 0 <= images.min() and images.max() <= 1 and images.shape == (1, 3, 16, 16)
    print(f"16x16 decode on CPU: float16 {float16_s:.2f} s, upcast float32 {float32_s:.2f} s")


def test_sd_vaes_and_bfloat16_stay_in_their_precision(tiny_model_dir, cache_dir):
    sd = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cpu", dtype="float16")
    # SD-Turbo's VAE config carries force_upcast too, but diffusers' SD pipeline never upcasts it.
    assert sd.vae.config.force_upcast and not LatentDecoder("full", sd.vae, sdxl=False).upcast
    assert sd.vae.dtype == torch.float16
    xl_vae = AutoencoderKL(**presets._XL_TINY_VAE).to(torch.bfloat16)
    assert not LatentDecoder("full", xl_vae, sdxl=True).upcast and xl_vae.dtype == torch.bfloat16


# --- TAESDXL ----------------------------------------------------------------------------------
def test_taesdxl_preset_decodes_sdxl_latents_and_says_what_it_is(xl_pipe, cache_dir):
    resolved = resolve_tiny_decoder("taesdxl-random", "", "/unused", cache_dir)
    assert resolved.is_random and resolved.source_id == "preset:taesdxl-random"
    taesd = resolve_tiny_decoder("taesd-random", "", "/unused", cache_dir)
    tiny = load_tiny_decoder(resolved, "cpu", torch.float32)
    other = load_tiny_decoder(taesd, "cpu", torch.float32)
    # Two presets, two different random decoders of the same architecture.
    assert not torch.equal(tiny.decoder.layers[0].weight, other.decoder.layers[0].weight)
    generator = SDTurboGenerator(xl_pipe, decoders=build_decoders(xl_pipe, ("full", "tiny"), tiny))
    full, small = (
        generator.generate([GenerationSpec(prompt="a", seed=1, width=64, height=64, decoder=name)])[0]
        for name in ("full", "tiny")
    )
    assert (full.decoder, small.decoder) == ("full", "tiny") and small.image.size == (64, 64)


def test_a_hub_taesdxl_is_fetched_at_its_pinned_revision(cache_dir, monkeypatch):
    from serve_app.model import ModelLoadError
    from serve_app.model.sources import PINNED_REVISIONS

    # Offline, the fetch fails, and the error says which commit it asked for: the pin, never a branch.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=f"at revision '{PINNED_REVISIONS[TINY_DECODER_XL]}'"):
        resolve_tiny_decoder(TINY_DECODER_XL, "", "/unused", cache_dir)
