"""GPU correctness: half precision, channels-last, torch.compile and memory on a real CUDA device.

Skipped where there is no GPU (CI). Run on a GPU machine with `pytest tests/gpu -s`; the figures
it prints (peak memory, timings) are recorded in docs/benchmarks.md with the device and date.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from serve_app.batching import GenerationSpec  # noqa: E402
from serve_app.model import SDTurboGenerator, configure_pipeline, load_pipeline, resolve_model  # noqa: E402


def pixels(image):
    return np.asarray(image, dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def tiny_fp16(cache_dir, tiny_model_dir):
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cuda", dtype="float16")
    configure_pipeline(pipe, channels_last=True)
    return SDTurboGenerator(pipe)


def test_half_precision_on_cuda_is_deterministic_per_seed_and_batch_independent(tiny_fp16):
    assert tiny_fp16.pipe.unet.dtype == torch.float16 and tiny_fp16.device.type == "cuda"
    target = GenerationSpec(prompt="a red bicycle", seed=42)
    first = tiny_fp16.generate([target])[0]
    again = tiny_fp16.generate([target])[0]
    assert first.image.tobytes() == again.image.tobytes()
    batch = [GenerationSpec(prompt=f"other {i}", seed=i) for i in range(7)]
    batched = tiny_fp16.generate(batch[:3] + [target] + batch[3:])
    diff = np.abs(pixels(first.image) - pixels(batched[3].image)).mean()
    print(f"\n[gpu] fp16 tiny: mean |alone - batched(8)| = {diff * 255:.3f}/255")
    assert diff <= 2 / 255
    assert np.isfinite(pixels(batched[0].image)).all()


def test_full_size_architecture_fp16_memory_and_speed(cache_dir):
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    pipe = load_pipeline(resolved=resolve_model("sd-turbo-random", None, cache_dir), device="cuda", dtype="float16")
    configure_pipeline(pipe, channels_last=True)
    load_s = time.perf_counter() - started
    params = sum(p.numel() for p in pipe.unet.parameters())
    assert 8.0e8 < params < 9.5e8, params  # SD 2.1 UNet: ~866M parameters
    generator = SDTurboGenerator(pipe)
    generator.warmup(batch_sizes=(1, 4))
    weights_gib = torch.cuda.memory_allocated() / 2**30
    for batch_size in (1, 4, 8, 16):
        torch.cuda.reset_peak_memory_stats()
        specs = [GenerationSpec(prompt="a photo of a cat", seed=i) for i in range(batch_size)]
        generator.generate(specs)  # first call at this size: cuDNN autotune
        torch.cuda.synchronize()
        started = time.perf_counter()
        results = generator.generate(specs)
        elapsed = time.perf_counter() - started
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        print(
            f"\n[gpu] sd-turbo-random fp16 512x512 1 step, batch {batch_size}: {elapsed * 1000:.1f} ms, "
            f"{batch_size / elapsed:.1f} img/s, peak {peak_gib:.2f} GiB (weights {weights_gib:.2f} GiB, load {load_s:.1f} s)"
        )
        assert len(results) == batch_size and results[0].image.size == (512, 512)
        assert peak_gib < 20


# CUDA graphs only: the mode the GPU run decides on; 'default' is the CPU suite's (test_buckets.py),
# and each mode costs plan b's gputests_compiled phase its compile time.
@pytest.mark.parametrize("mode", ["reduce-overhead"])
def test_torch_compile_of_the_bucketed_unet_gives_the_same_images(cache_dir, tiny_model_dir, mode):
    from torch._dynamo.utils import counters

    from serve_app.model import compile_unet

    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cuda", dtype="float16")
    specs = [GenerationSpec(prompt=f"compile me {i}", seed=3 + i) for i in range(3)]
    eager = SDTurboGenerator(pipe).generate(specs)
    configure_pipeline(pipe, channels_last=True, compile_mode=mode, buckets=(1, 2), sizes=((512, 512),))
    report = compile_unet(pipe)
    graphs = counters["stats"]["unique_graphs"]
    # 3 images: bucket 2, then 1 (the largest bucket splits the call).
    compiled = SDTurboGenerator(pipe).generate(specs)
    diff = max(np.abs(pixels(a.image) - pixels(b.image)).mean() for a, b in zip(eager, compiled, strict=True))
    print(f"\n[gpu] UNet compiled ({mode}, buckets 1,2) in {report.seconds:.1f} s: "
          f"max mean |eager - compiled| = {diff * 255:.3f}/255")
    assert diff <= 2 / 255
    assert counters["stats"]["unique_graphs"] == graphs, "a request compiled a new graph"
