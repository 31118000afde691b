"""The decoders: TAESD loading, the two decoders in the generator, compilation (TAESD's sources: test_resolving.py)."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from serve_app.batching import GenerationSpec
from serve_app.model import (
    DecoderSet,
    ModelLoadError,
    SDTurboGenerator,
    build_decoders,
    load_pipeline,
    load_tiny_decoder,
    resolve_model,
    resolve_tiny_decoder,
)
from serve_app.model.decoders import CompiledDecoder, LatentDecoder
from serve_app.model.presets import TAESD_CONFIG


@pytest.fixture(scope="module")
def taesd_preset(cache_dir):
    return resolve_tiny_decoder("taesd-random", "", "/unused", cache_dir)


@pytest.fixture(scope="module")
def both(tiny_model_dir, cache_dir, taesd_preset):
    """A generator with the full VAE and TAESD loaded side by side."""
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cpu", dtype="float32")
    tiny = load_tiny_decoder(taesd_preset, "cpu", torch.float32)
    return SDTurboGenerator(pipe, decoders=build_decoders(pipe, ("full", "tiny"), tiny))


def pixels(image):
    return np.asarray(image, dtype=np.float64) / 255.0


# --- loading TAESD ----------------------------------------------------------------
def test_preset_is_taesd_architecture_with_random_weights_and_marked_so(taesd_preset):
    assert taesd_preset.is_random and taesd_preset.source_id == "preset:taesd-random"
    config = json.loads(open(os.path.join(taesd_preset.local_dir, "config.json")).read())
    assert config["_class_name"] == "AutoencoderTiny"
    assert {k: config[k] for k in TAESD_CONFIG} == {k: list(v) if isinstance(v, tuple) else v for k, v in TAESD_CONFIG.items()}
    decoder = load_tiny_decoder(taesd_preset, "cpu", torch.float32)
    # TAESD's decoder: ~1.2M parameters (the full SD VAE decoder has ~49M).
    assert sum(p.numel() for p in decoder.decoder.parameters()) == 1_222_531


def test_model_subfolder_and_local_directory_resolve_to_the_same_weights(taesd_preset, tmp_path, cache_dir):
    model_dir = tmp_path / "opt-ml-model"
    shutil.copytree(taesd_preset.local_dir, model_dir / "vae_tiny")
    from_model = resolve_tiny_decoder("model:vae_tiny", "", str(model_dir), cache_dir)
    assert from_model.local_dir == str((model_dir / "vae_tiny").resolve())
    assert from_model.source_id == "model:vae_tiny" and not from_model.is_random and from_model.revision is None
    local = resolve_tiny_decoder(str(model_dir / "vae_tiny"), "ignored", "/unused", cache_dir)
    assert local.local_dir == from_model.local_dir and not local.is_random
    assert isinstance(load_tiny_decoder(from_model, "cpu", torch.float32).decoder, torch.nn.Module)


def test_a_checkpoint_missing_weights_is_an_error_not_a_partly_random_decoder(taesd_preset, tmp_path, cache_dir):
    copy = tmp_path / "partial"
    shutil.copytree(taesd_preset.local_dir, copy)
    weights = copy / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    del state["decoder.layers.0.bias"]
    save_file(state, weights)
    with pytest.raises(ModelLoadError, match="missing_keys.*decoder.layers.0.bias"):
        load_tiny_decoder(resolve_tiny_decoder(str(copy), "", "/unused", cache_dir), "cpu", torch.float32)
    weights.write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="could not load it as an AutoencoderTiny"):
        load_tiny_decoder(resolve_tiny_decoder(str(copy), "", "/unused", cache_dir), "cpu", torch.float32)


# --- the two decoders in the generator ------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["full", "tiny"])
def test_each_decoder_makes_images_of_the_requested_size_and_reports_itself(both, decoder):
    results = both.generate([GenerationSpec(prompt="a", seed=1, width=96, height=128, decoder=decoder)])
    assert results[0].image.size == (96, 128) and results[0].image.mode == "RGB"
    assert results[0].decoder == decoder


@pytest.mark.parametrize("decoder", ["full", "tiny"])
def test_seeded_images_are_reproducible_and_batch_invariant_with_each_decoder(both, decoder):
    target = GenerationSpec(prompt="a red bicycle", seed=99, width=128, height=128, decoder=decoder)
    alone = both.generate([target])[0]
    assert both.generate([target])[0].image.tobytes() == alone.image.tobytes()
    others = [GenerationSpec(prompt=f"other {i}", seed=i, width=128, height=128, decoder=decoder) for i in range(3)]
    batched = both.generate([others[0], target, *others[1:]])
    assert [g.batch_size for g in batched] == [4] * 4
    assert np.abs(pixels(alone.image) - pixels(batched[1].image)).mean() <= 2 / 255
    assert np.abs(pixels(batched[0].image) - pixels(batched[1].image)).mean() > 2 / 255


def test_the_two_decoders_make_different_images_from_the_same_latents(both):
    # One pipeline call per decoder (the device loop never mixes decoders in a call).
    full, tiny = (
        both.generate([GenerationSpec(prompt="x", seed=5, width=64, height=64, decoder=name)])[0]
        for name in ("full", "tiny")
    )
    assert (full.decoder, tiny.decoder) == ("full", "tiny")
    assert full.batch_size == tiny.batch_size == 1
    assert np.abs(pixels(full.image) - pixels(tiny.image)).mean() > 2 / 255


def test_a_decoder_that_is_not_loaded_is_an_error_naming_the_loaded_ones(tiny_model_dir, cache_dir):
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cpu", dtype="float32")
    decoders = DecoderSet.full_only(pipe)
    assert decoders.names == ("full",) and decoders.default == "full"
    with pytest.raises(ValueError, match="'tiny' is not loaded .loaded: full"):
        SDTurboGenerator(pipe, decoders=decoders).generate([GenerationSpec(prompt="x", seed=1, width=64, height=64, decoder="tiny")])


def test_tiny_instead_of_full_replaces_the_pipelines_vae(tiny_model_dir, cache_dir, taesd_preset):
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cpu", dtype="float32")
    tiny = load_tiny_decoder(taesd_preset, "cpu", torch.float32)
    decoders = build_decoders(pipe, ("tiny",), tiny)
    assert decoders.names == ("tiny",) and decoders.default == "tiny" and pipe.vae is tiny
    generator = SDTurboGenerator(pipe, decoders=decoders)
    assert generator.generate([GenerationSpec(prompt="x", seed=1, width=64, height=64, decoder="tiny")])[0].decoder == "tiny"
    with pytest.raises(ValueError, match="tiny decoder was asked for but not loaded"):
        build_decoders(pipe, ("full", "tiny"), None)


# --- compilation ----------------------------------------------------------------------------------
def unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def compiled_set(generator, buckets, backend, names=("full", "tiny")):
    pipe = generator.pipe
    eager = generator.decoders.decoders
    return DecoderSet(
        {
            name: CompiledDecoder(eager[name], "default", buckets, ((64, 64),), pipe.vae_scale_factor, backend=backend)
            for name in names
        }
    )


@pytest.mark.timeout(600)
def test_compiled_decoders_pad_to_buckets_match_eager_and_never_compile_in_the_request_path(both):
    # Dynamo capture and guards without inductor's code generation: the bucket, padding, routing and
    # stance logic is the same as with inductor, at a fraction of the compile time on a CPU.
    decoders = compiled_set(both, (1, 2), "eager")
    reports = {name: dec.compile(4, torch.float32, both.pipe.device) for name, dec in decoders.decoders.items()}
    assert set(reports["full"].per_shape_s) == set(reports["tiny"].per_shape_s) == {"1x64x64", "2x64x64"}
    graphs_after_warmup = unique_graphs()
    generator = SDTurboGenerator(both.pipe, decoders=decoders)
    for name in ("full", "tiny"):
        # Batch 3 runs as bucket 2 + bucket 1 (split by the largest bucket); batch 1 as bucket 1.
        specs = [GenerationSpec(prompt=f"p{i}", seed=i, width=64, height=64, decoder=name) for i in range(3)]
        compiled_images = generator.generate(specs)
        eager_images = both.generate(specs)
        assert [g.image.size for g in compiled_images] == [(64, 64)] * 3
        for c, e in zip(compiled_images, eager_images, strict=True):
            assert np.abs(pixels(c.image) - pixels(e.image)).mean() <= 2 / 255
        alone = generator.generate(specs[1:2])[0]
        assert np.abs(pixels(alone.image) - pixels(compiled_images[1].image)).mean() <= 2 / 255
        # A size nobody compiled for decodes eagerly.
        other = generator.generate([GenerationSpec(prompt="q", seed=1, width=96, height=64, decoder=name)])[0]
        assert other.image.size == (96, 64)
    # Padded batches of 1 to 3 and an uncompiled size: not one new graph after warm-up.
    assert unique_graphs() == graphs_after_warmup, "a request compiled a new graph"


# The real backend (inductor) compiling a decoder into the configured compile_cache_dir, and the
# compiled decoder against the eager one: tests/serve_app/model/test_compile_cache.py, whose build
# of the compile artifacts is that compilation (one compile of TAESD in the suite, not two).


def test_decoder_output_is_the_pipelines_own_postprocessing(both):
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    vae = both.pipe.vae
    with torch.inference_mode():
        reference = both.pipe.image_processor.postprocess(
            vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0], output_type="pt"
        )
        ours = LatentDecoder("full", vae)(latents)
    # Exactly what the pipeline's own "pt" output was (what the safety checker and the uint8
    # quantisation received before the decoders existed).
    assert ours.dtype == torch.float32 and tuple(ours.shape) == (2, 3, 64, 64)
    assert torch.equal(ours, reference)
