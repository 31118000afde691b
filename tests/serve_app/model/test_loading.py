import shutil

import pytest
import torch

from serve_app.model import ModelLoadError, configure_pipeline, load_pipeline, resolve_model


def test_local_directory_loads_through_from_pretrained(tiny_model_dir, tmp_path, cache_dir):
    copy = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, copy)
    resolved = resolve_model(str(copy), "ignored", cache_dir)
    assert resolved.local_dir == str(copy) and not resolved.is_random
    pipe = load_pipeline(resolved=resolved, device="cpu", dtype="float32")
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"
    assert pipe.safety_checker is None


def test_broken_weights_fail_at_resolve_and_at_load_with_the_source_named(tiny_model_dir, tmp_path, cache_dir):
    from serve_app.model.resolved import ResolvedModel

    copy = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, copy)
    for weights in (copy / "unet").glob("*.safetensors"):
        weights.write_bytes(b"not safetensors")
    # Refused before any replica loads it (serve_app/model/directory.py), the file named.
    with pytest.raises(ModelLoadError, match=r"cannot be served: .*/unet/.*is not a whole safetensors file"):
        resolve_model(str(copy), None, cache_dir)
    # A directory that broke after it was resolved: loading still names the source.
    with pytest.raises(ModelLoadError, match="could not load it"):
        load_pipeline(resolved=ResolvedModel(str(copy), str(copy), None, False))


def test_cuda_requested_without_a_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        load_pipeline("tiny", device="cuda")


def test_configured_pipeline_knows_its_device_without_searching_its_modules(tiny_model_dir, cache_dir, monkeypatch):
    from diffusers import StableDiffusionPipeline

    from serve_app.model import pin_execution_device

    plain = load_pipeline("tiny", cache_dir=cache_dir)
    pipe = configure_pipeline(load_pipeline("tiny", cache_dir=cache_dir))
    # diffusers' search walks every module (hasattr on each); the configured pipeline never does.
    walked = []
    original = torch.nn.Module.modules
    monkeypatch.setattr(torch.nn.Module, "modules", lambda self: walked.append(1) or original(self))
    assert plain._execution_device == torch.device("cpu") and walked
    walked.clear()
    assert pipe._execution_device == torch.device("cpu")
    image = pipe(prompt="a lighthouse", num_inference_steps=1, guidance_scale=0.0, width=64, height=64,
                 generator=torch.Generator().manual_seed(0), output_type="np").images
    assert image.shape == (1, 64, 64, 3)
    assert not walked
    # Still the pipeline it was, and pinning again changes nothing.
    assert isinstance(pipe, StableDiffusionPipeline) and type(pipe).__name__ == "StableDiffusionPipeline"
    pinned_class = type(pipe)
    assert pin_execution_device(pipe) is pipe and type(pipe) is pinned_class
