"""GPU memory estimates from the safetensors headers (serve_app/model/memory.py), before any load."""

import pytest
from diffusers import AutoencoderKL, UNet2DConditionModel

from serve_app.model.memory import (
    BASE_ACTIVATION_BYTES,
    PER_IMAGE_ACTIVATION_BYTES,
    component_parameters,
    estimate_model_memory,
)


def test_parameter_counts_come_from_the_headers_and_match_the_loaded_modules(tiny_xl_model_dir):
    counts = component_parameters(tiny_xl_model_dir)
    assert set(counts) == {"unet", "vae", "text_encoder", "text_encoder_2"}
    unet = UNet2DConditionModel.from_pretrained(str(tiny_xl_model_dir), subfolder="unet")
    vae = AutoencoderKL.from_pretrained(str(tiny_xl_model_dir), subfolder="vae")
    assert counts["unet"] == sum(p.numel() for p in unet.parameters())
    assert counts["vae"] == sum(p.numel() for p in vae.parameters())


def test_sdxl_in_half_precision_counts_its_vae_in_float32_and_a_full_batch(tiny_xl_model_dir, tiny_model_dir):
    counts = component_parameters(tiny_xl_model_dir)
    xl = estimate_model_memory(tiny_xl_model_dir, "tiny-xl", "sdxl", 2, max_batch_size=8)
    assert xl.weights_bytes == 2 * sum(counts.values()) + 2 * counts["vae"]
    assert xl.activation_bytes == BASE_ACTIVATION_BYTES + 7 * 2 * PER_IMAGE_ACTIVATION_BYTES
    sd = estimate_model_memory(tiny_model_dir, "tiny", "sd", 2, max_batch_size=8)
    assert sd.weights_bytes == 2 * sum(component_parameters(tiny_model_dir).values())
    assert sd.activation_bytes == BASE_ACTIVATION_BYTES + 7 * PER_IMAGE_ACTIVATION_BYTES
    assert "tiny-xl: " in xl.describe() and "GiB" in xl.describe()


def test_models_that_do_not_fit_one_gpu_together_are_refused_with_the_numbers(tiny_model_dir, tiny_xl_model_dir, monkeypatch, cache_dir):
    import serve_app.ray_private
    from serve_app.app import check_gpu_memory, resolve_served_models
    from serve_app.cluster import DoesNotFit
    from serve_app.settings import Settings

    settings = Settings.load({"models": "tiny,tiny-xl", "cache_dir": cache_dir}, environ={})
    served = resolve_served_models(settings, "cuda")
    monkeypatch.setattr(serve_app.ray_private, "gpu_memory_bytes", lambda: 16 * 2**30)
    check_gpu_memory(settings, served)  # about 2 x 4.6 GiB of activations: fits 16 GiB
    monkeypatch.setattr(serve_app.ray_private, "gpu_memory_bytes", lambda: 8 * 2**30)
    with pytest.raises(DoesNotFit, match=r"need about 1\d\.\d GiB of GPU memory together \(tiny: .*; tiny-xl: .*\); each GPU has 8\.0 GiB"):
        check_gpu_memory(settings, served)
