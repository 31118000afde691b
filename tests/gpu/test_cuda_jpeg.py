"""GPU JPEG (nvjpeg through torchvision): the bytes meet the CPU path's contract and decode to the CPU
path's image within a tolerance.

Skipped where there is no GPU (CI), or no torchvision that imports beside this torch. Run on a GPU
machine with `pytest tests/gpu -s`.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from serve_app.batching import GenerationSpec  # noqa: E402
from serve_app.encoding import encode_image, encoded_on_device, jpeg_problems  # noqa: E402
from serve_app.model import SDTurboGenerator, load_pipeline, resolve_model  # noqa: E402
from serve_app.model.jpeg import encode_jpeg_on_device, gpu_jpeg_available  # noqa: E402

# Mean |GPU-decoded - CPU-decoded| in 8-bit levels on a smooth image (both encoders quantise the same
# DCT with the same quality's tables; their rounding and colour conversion may differ slightly).
SMOOTH_MEAN_LEVELS = 2.0


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def on_gpu():
    if not gpu_jpeg_available(torch.device("cuda")):
        pytest.skip("torchvision does not import beside this torch: JPEG stays on the CPU")


def smooth_batch(n: int = 4, size: int = 256) -> torch.Tensor:
    ramp = torch.linspace(0, 255, size)
    images = []
    for i in range(n):
        red = ramp.view(1, -1).expand(size, size)
        green = ramp.view(-1, 1).expand(size, size)
        blue = torch.full((size, size), 40.0 * i)
        images.append(torch.stack([red, green, blue]))
    return torch.stack(images).round().to(torch.uint8).cuda()


@pytest.mark.parametrize("quality", [50, 90])
def test_gpu_jpeg_meets_the_contract_and_decodes_to_the_cpu_paths_image(on_gpu, quality):
    pixels = smooth_batch()
    gpu = encode_jpeg_on_device(pixels, quality)
    cpu = [encode_image(Image.fromarray(p.permute(1, 2, 0).cpu().numpy()), "jpeg", quality) for p in pixels]
    for gpu_bytes, cpu_bytes in zip(gpu, cpu, strict=True):
        assert gpu_bytes is not None and jpeg_problems(gpu_bytes, 256, 256) == []
        diff = np.abs(decoded(gpu_bytes) - decoded(cpu_bytes)).mean()
        print(f"\n[gpu] nvjpeg q{quality}: {len(gpu_bytes)} bytes (PIL {len(cpu_bytes)}), "
              f"mean |gpu - cpu| decoded = {diff:.3f} levels")
        assert diff <= SMOOTH_MEAN_LEVELS
    # The quality setting reaches the encoder.
    if quality == 50:
        assert len(encode_jpeg_on_device(pixels[:1], 95)[0]) > len(gpu[0])


def test_the_generator_encodes_its_call_on_the_gpu_and_the_replica_accepts_the_bytes(on_gpu, cache_dir, tiny_model_dir):
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cuda", dtype="float16")
    generator = SDTurboGenerator(pipe, gpu_jpeg_quality=90)
    images = generator.generate([GenerationSpec(prompt=f"p{i}", seed=i) for i in range(3)])
    for g in images:
        assert g.jpeg is not None and g.jpeg_quality == 90
        assert encoded_on_device(g.image, g.jpeg, g.jpeg_quality, "jpeg", 90) is g.jpeg
        assert Image.open(io.BytesIO(g.jpeg)).size == (512, 512)
