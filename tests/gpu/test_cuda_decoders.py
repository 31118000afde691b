"""GPU correctness of the two decoders (full VAE, TAESD) and of the compiled decoder (CUDA graphs).

Skipped where there is no GPU (CI). Run on a GPU machine with `pytest tests/gpu -s`; the figures
it prints are recorded in docs/benchmarks.md with the device and date.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from serve_app.batching import GenerationSpec  # noqa: E402
from serve_app.model import (  # noqa: E402
    DecoderSet,
    SDTurboGenerator,
    build_decoders,
    load_pipeline,
    load_tiny_decoder,
    resolve_model,
    resolve_tiny_decoder,
)
from serve_app.model.decoders import CompiledDecoder  # noqa: E402


def pixels(image):
    return np.asarray(image, dtype=np.float64) / 255.0


def fp16_generator(cache_dir, preset):
    pipe = load_pipeline(resolved=resolve_model(preset, None, cache_dir), device="cuda", dtype="float16")
    tiny = load_tiny_decoder(resolve_tiny_decoder("taesd-random", "", "/unused", cache_dir), pipe.device, pipe.unet.dtype)
    return SDTurboGenerator(pipe, decoders=build_decoders(pipe, ("full", "tiny"), tiny))


@pytest.fixture(scope="module")
def both_fp16(cache_dir, tiny_model_dir):
    return fp16_generator(cache_dir, "tiny")


@pytest.mark.parametrize("decoder", ["full", "tiny"])
def test_each_decoder_in_half_precision_is_deterministic_and_batch_independent(both_fp16, decoder):
    assert both_fp16.decoders.decoders["tiny"].vae.dtype == torch.float16
    target = GenerationSpec(prompt="a red bicycle", seed=42, decoder=decoder)
    first = both_fp16.generate([target])[0]
    assert first.decoder == decoder and first.image.size == (512, 512)
    assert both_fp16.generate([target])[0].image.tobytes() == first.image.tobytes()
    others = [GenerationSpec(prompt=f"other {i}", seed=i, decoder=decoder) for i in range(7)]
    batched = both_fp16.generate(others[:3] + [target] + others[3:])
    diff = np.abs(pixels(first.image) - pixels(batched[3].image)).mean()
    print(f"\n[gpu] fp16 tiny preset, {decoder} decoder: mean |alone - batched(8)| = {diff * 255:.3f}/255")
    assert diff <= 2 / 255
    assert np.abs(pixels(batched[0].image) - pixels(batched[3].image)).mean() > 2 / 255


@pytest.mark.parametrize("mode", ["reduce-overhead", "default"])
def test_compiled_decoders_on_cuda_match_eager_without_compiling_per_request(both_fp16, mode):
    from torch._dynamo.utils import counters

    pipe = both_fp16.pipe
    compiled = DecoderSet({
        name: CompiledDecoder(dec, mode, (1, 2, 4, 8), ((512, 512),), pipe.vae_scale_factor)
        for name, dec in both_fp16.decoders.decoders.items()
    })
    started = time.perf_counter()
    reports = {name: dec.compile(4, pipe.unet.dtype, pipe.device) for name, dec in compiled.decoders.items()}
    print(f"\n[gpu] compiled both decoders ({mode}, buckets 1,2,4,8 at 512x512) in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{n} {r.seconds:.1f} s" for n, r in reports.items()))
    graphs = counters["stats"]["unique_graphs"]
    generator = SDTurboGenerator(pipe, decoders=compiled)
    for name in ("full", "tiny"):
        specs = [GenerationSpec(prompt=f"p{i}", seed=i, decoder=name) for i in range(11)]  # buckets 8 + 4 (3 padded)
        got, want = generator.generate(specs), both_fp16.generate(specs)
        diffs = [np.abs(pixels(a.image) - pixels(b.image)).mean() for a, b in zip(got, want, strict=True)]
        print(f"[gpu] {mode} {name}: max mean |compiled - eager| over 11 images = {max(diffs) * 255:.3f}/255")
        assert max(diffs) <= 2 / 255
        assert generator.generate(specs[:1])[0].image.tobytes() == generator.generate(specs[:1])[0].image.tobytes()
    assert counters["stats"]["unique_graphs"] == graphs, "a request compiled a new graph"


def test_full_size_decoders_speed_and_memory(cache_dir):
    """Full-size SD-Turbo architecture, fp16, 512x512: one call per decoder at batch 16."""
    generator = fp16_generator(cache_dir, "sd-turbo-random")
    params = {n: sum(p.numel() for p in d.vae.decoder.parameters()) for n, d in generator.decoders.decoders.items()}
    assert 4.0e7 < params["full"] < 6.0e7 and 1.0e6 < params["tiny"] < 1.5e6, params
    for name in ("full", "tiny"):
        specs = [GenerationSpec(prompt="a photo of a cat", seed=i, decoder=name) for i in range(16)]
        generator.generate(specs)  # first call at this size: cuDNN autotune
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        results = generator.generate(specs)
        elapsed = time.perf_counter() - started
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        print(f"\n[gpu] sd-turbo-random fp16 512x512 batch 16, {name} decoder ({params[name] / 1e6:.2f}M params): "
              f"{elapsed * 1000:.1f} ms, {16 / elapsed:.1f} img/s, peak {peak_gib:.2f} GiB")
        assert [r.decoder for r in results] == [name] * 16 and results[0].image.size == (512, 512)
