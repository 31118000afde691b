"""JPEG encoding on the GPU (nvjpeg through ``torchvision.io.encode_jpeg``), for images already on CUDA.

One batched call encodes a whole pipeline call's images on the device; only the JPEG bytes
(tens of KB per image) come back to the host, and the host's encode threads are left for PNG,
WebP and the JPEGs of other qualities. The bytes meet the CPU path's contract
(``serve_app/encoding.py``): JPEG at the requested quality, no EXIF, the image's size; the model
replica checks each with ``serve_app.encoding.jpeg_problems`` and encodes an image whose bytes fail
it on the CPU instead.

torchvision is optional: imported on first use, only for CUDA tensors. Where it is missing or does
not match torch's build (its C++ operators fail to register), everything stays on the CPU path.
"""

from __future__ import annotations

import functools
import itertools
import logging

import torch

logger = logging.getLogger(__name__)


@functools.cache
def _encode_jpeg():
    """``torchvision.io.encode_jpeg``, or None where torchvision does not import (said once, in the log)."""
    try:
        from torchvision.io import encode_jpeg
    except Exception as exc:  # noqa: BLE001 - ImportError, or a torchvision built for another torch
        logger.info("JPEG stays on the CPU: torchvision does not import (%s: %s)", type(exc).__name__, exc)
        return None
    return encode_jpeg


def gpu_jpeg_available(device: torch.device) -> bool:
    """Whether images on ``device`` can be JPEG-encoded there: a CUDA device and a torchvision that imports."""
    return device.type == "cuda" and _encode_jpeg() is not None


def encode_jpeg_on_device(pixels: torch.Tensor, quality: int) -> list[bytes | None]:
    """JPEG bytes of each image of ``pixels`` (uint8, NCHW, RGB, on a CUDA device) at ``quality``,
    in one batched nvjpeg call; all None when the encoder fails: the caller encodes those on the CPU."""
    encode = _encode_jpeg()
    if encode is None or pixels.device.type != "cuda":
        return [None] * len(pixels)
    try:
        encoded = encode(list(pixels.unbind(0)), quality=quality)
    except Exception as exc:  # noqa: BLE001 - an nvjpeg failure costs the call its GPU encode, not its images
        logger.warning("GPU JPEG encoding failed, encoding on the CPU: %s: %s", type(exc).__name__, exc)
        return [None] * len(pixels)
    return bytes_of(encoded)


def bytes_of(encoded: list[torch.Tensor]) -> list[bytes]:
    """Each encoded image's bytes, from one copy of them all (tens of KB per image, where the pixels
    would be 768 KB at 512x512): one wait for the device, not one per image; each image's length is
    known from its shape, without the device."""
    lengths = [t.numel() for t in encoded]
    flat = torch.cat([t.reshape(-1) for t in encoded]).cpu().numpy().tobytes()
    offsets = [0, *itertools.accumulate(lengths)]
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]
