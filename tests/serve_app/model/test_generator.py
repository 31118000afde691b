import numpy as np
import pytest
import torch

from serve_app.batching import GenerationSpec, PipelineCallCancelled, PipelineRun
from serve_app.model import GenerationOutOfMemory, SDTurboGenerator, load_pipeline, resolve_model


@pytest.fixture(scope="module")
def generator(tiny_model_dir, cache_dir):
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cpu", dtype="float32")
    runs: list[PipelineRun] = []
    generator = SDTurboGenerator(pipe, on_pipeline_run=runs.append)
    generator.runs = runs  # what the generator reported, for the tests
    return generator


def pixels(image):
    return np.asarray(image, dtype=np.float64) / 255.0


def test_seeded_request_alone_is_byte_identical_across_runs(generator):
    spec = GenerationSpec(prompt="a red bicycle", seed=1234, width=128, height=128)
    first = generator.generate([spec])[0]
    second = generator.generate([spec])[0]
    assert first.image.tobytes() == second.image.tobytes()
    assert first.image.size == (128, 128) and first.batch_size == 1


def test_seeded_request_is_the_same_image_whatever_it_is_batched_with(generator):
    target = GenerationSpec(prompt="a red bicycle", seed=99, width=128, height=128)
    alone = generator.generate([target])[0]
    companions = [GenerationSpec(prompt=f"other {i}", seed=i, width=128, height=128) for i in range(3)]
    batched = generator.generate([companions[0], target, *companions[1:]])
    assert [g.batch_size for g in batched] == [4, 4, 4, 4]
    assert np.abs(pixels(alone.image) - pixels(batched[1].image)).mean() <= 2 / 255
    # Different seeds really give different images (the comparison above can fail).
    assert np.abs(pixels(batched[0].image) - pixels(batched[1].image)).mean() > 2 / 255


def test_a_call_is_one_group_formed_by_the_device_loop_never_regrouped_here(generator):
    specs = [
        GenerationSpec(prompt="a", seed=1, width=64, height=128),
        GenerationSpec(prompt="b", seed=2, width=128, height=64, num_inference_steps=2),
    ]
    with pytest.raises(ValueError, match="one group"):
        generator.generate(specs)
    guided = [GenerationSpec(prompt=p, seed=i, width=96, height=96, guidance_scale=2.0, negative_prompt="blur") for i, p in enumerate("cd")]
    results = generator.generate(guided)
    assert [r.image.size for r in results] == [(96, 96)] * 2 and [r.batch_size for r in results] == [2, 2]


def test_the_generator_reports_each_pipeline_run_itself(generator):
    generator.runs.clear()
    generator.generate([GenerationSpec(prompt=str(i), seed=i, width=64, height=64) for i in range(3)])
    (run,) = generator.runs
    assert run.batch_size == 3 and run.inference_ms > 0


def test_warm_up_runs_are_not_reported(generator):
    # The metrics count the calls that served requests (the EMF BatchSize records among them).
    generator.runs.clear()
    assert generator.warmup(batch_sizes=[1, 2], width=64, height=64) > 0
    assert generator.runs == []


def test_out_of_memory_splits_the_batch_and_retries(generator, monkeypatch):
    real_run = generator._run_pipeline
    sizes = []

    def run_with_memory_for_two(specs, should_stop, on_run):
        sizes.append(len(specs))
        if len(specs) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_run(specs, should_stop, on_run)

    monkeypatch.setattr(generator, "_run_pipeline", run_with_memory_for_two)
    specs = [GenerationSpec(prompt=str(i), seed=i, width=64, height=64) for i in range(5)]
    results = generator.generate(specs)
    assert sizes == [5, 2, 3, 1, 2]
    assert [r.batch_size for r in results] == [2, 2, 1, 2, 2]
    assert [run.batch_size for run in generator.runs[-3:]] == [2, 1, 2]  # the runs made, not the call asked for


def test_a_single_image_that_does_not_fit_is_a_clear_error(generator, monkeypatch):
    def always_oom(specs, should_stop, on_run):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(generator, "_run_pipeline", always_oom)
    with pytest.raises(GenerationOutOfMemory, match="64x64"):
        generator.generate([GenerationSpec(prompt="x", seed=1, width=64, height=64)])


def test_device_stats_are_empty_on_cpu(generator):
    assert generator.device_stats() == {}


def test_a_call_nobody_waits_for_stops_after_the_current_step(generator):
    polls = []

    def gone_after_first_step():
        polls.append(1)
        return len(polls) > 1  # asked before the call starts, then after each step

    spec = GenerationSpec(prompt="abandoned", seed=1, width=64, height=64, num_inference_steps=4)
    with pytest.raises(PipelineCallCancelled):
        generator.generate([spec], should_stop=gone_after_first_step)
    assert len(polls) == 2  # stopped after step 1 of 4: no more steps, no VAE decode


def test_a_call_abandoned_before_it_starts_never_runs(generator, monkeypatch):
    monkeypatch.setattr(generator, "pipe", None)  # any use of the pipeline would fail
    with pytest.raises(PipelineCallCancelled):
        generator.generate([GenerationSpec(prompt="x", seed=1, width=64, height=64)], should_stop=lambda: True)


def test_a_call_still_wanted_runs_every_step(generator):
    polls = []
    spec = GenerationSpec(prompt="wanted", seed=1, width=64, height=64, num_inference_steps=3)
    (result,) = generator.generate([spec], should_stop=lambda: polls.append(1) and False)
    assert result.image.size == (64, 64) and len(polls) == 4


def test_on_the_cpu_jpeg_stays_with_the_cpu_encoder(generator, monkeypatch):
    from serve_app.model import jpeg as gpu_jpeg
    from serve_app.model.generator import to_host

    # Asked for GPU JPEG on a CPU pipeline: nothing is encoded on the device, the CPU path encodes.
    cpu = SDTurboGenerator(generator.pipe, gpu_jpeg_quality=90)
    assert cpu.gpu_jpeg_quality is None
    image = cpu.generate([GenerationSpec(prompt="x", seed=1, width=64, height=64)])[0]
    assert image.jpeg is None and image.jpeg_quality is None and image.image.size == (64, 64)
    # The device encoder itself refuses tensors that are not on CUDA, and a torchvision that does not
    # import (as on this machine's CPU torch) turns the GPU path off rather than failing.
    assert gpu_jpeg.encode_jpeg_on_device(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 90) == [None, None]
    # The encoded images come back in one copy, split by their lengths.
    encoded = [torch.tensor([0xFF, 0xD8, 1], dtype=torch.uint8), torch.tensor([0xFF, 0xD9], dtype=torch.uint8)]
    assert gpu_jpeg.bytes_of(encoded) == [b"\xff\xd8\x01", b"\xff\xd9"]
    gpu_jpeg._encode_jpeg.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)  # `import torchvision` raises
    assert gpu_jpeg._encode_jpeg() is None and not gpu_jpeg.gpu_jpeg_available(torch.device("cuda"))
    gpu_jpeg._encode_jpeg.cache_clear()
    # The host copy of CPU pixels is the tensor's own values (pinned memory only applies on CUDA).
    pixels_u8 = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 2, 2)
    assert torch.equal(to_host(pixels_u8), pixels_u8)
