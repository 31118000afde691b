"""How much GPU memory a served model needs, estimated before any replica loads it.

Torch-free: the parameter counts come from the safetensors headers of the model directory (a
JSON table of every tensor's shape at the start of each file), so the app builder can refuse
models that do not fit the GPU together before anything is loaded.

The activation figures are the measured ones of the full-size SD-Turbo architecture on an H100
(docs/benchmarks.md, fp16, 512x512, 1 step: peak 3,156 MiB at batch 1 and 6,646 MiB at batch 8,
with 2.4 GiB of weights): about 700 MiB at batch 1 beyond the weights and 500 MiB per further
image, most of it the VAE decode. SDXL-Turbo decodes with the same VAE architecture, in float32
(its VAE overflows float16, serve_app/model/decoders.py): twice the per-image figure is assumed
for it, an estimate until measured on a GPU.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

# The components a replica loads onto the device.
_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
MIB = 2**20
BASE_ACTIVATION_BYTES = 700 * MIB
PER_IMAGE_ACTIVATION_BYTES = 500 * MIB


@dataclass(frozen=True)
class MemoryEstimate:
    name: str
    weights_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    def describe(self) -> str:
        return (
            f"{self.name}: {self.total_bytes / 2**30:.1f} GiB = {self.weights_bytes / 2**30:.1f} weights + "
            f"{self.activation_bytes / 2**30:.1f} activations"
        )


def safetensors_parameters(path: Path) -> int:
    """The number of parameters in one safetensors file, from its header alone."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in tensor["shape"]:
            count *= dim
        total += count
    return total


def component_parameters(model_dir: str | Path) -> dict[str, int]:
    """Parameters per component folder (one precision's files: the full-precision ones when present)."""
    counts = {}
    for component in _COMPONENTS:
        folder = Path(model_dir) / component
        files = sorted(folder.glob("*.safetensors"))
        full = [f for f in files if ".fp16." not in f.name]
        if files:
            counts[component] = sum(safetensors_parameters(f) for f in (full or files))
    return counts


def estimate_model_memory(
    model_dir: str | Path, name: str, family: str, dtype_bytes: int, max_batch_size: int
) -> MemoryEstimate:
    """Weights in the serving precision (SDXL's VAE in float32) plus activations at a full batch
    of 512x512 images."""
    counts = component_parameters(model_dir)
    upcast_vae = family == "sdxl" and dtype_bytes == 2
    weights = sum(count * (4 if component == "vae" and upcast_vae else dtype_bytes) for component, count in counts.items())
    per_image = PER_IMAGE_ACTIVATION_BYTES * (2 if upcast_vae or dtype_bytes == 4 else 1)
    activations = BASE_ACTIVATION_BYTES + max(0, max_batch_size - 1) * per_image
    return MemoryEstimate(name, weights, activations)
