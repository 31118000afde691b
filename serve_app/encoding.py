"""Encoding generated images. CPU-bound: callers run it in a worker thread, off the event loop."""

from __future__ import annotations

import io

from PIL import Image

_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def encode_image(image: Image.Image, output_format: str, quality: int) -> bytes:
    """Encode ``image``; ``quality`` applies to JPEG and WebP.

    Speed over the last byte: no JPEG ``optimize`` pass, PNG at zlib level 1, WebP method 2.
    At 512x512 these are the difference between a few and tens of milliseconds per image.
    """
    buffer = io.BytesIO()
    fmt = _PIL_FORMATS[output_format]
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, fmt, quality=quality)
    elif fmt == "PNG":
        image.save(buffer, fmt, compress_level=1)
    else:
        image.save(buffer, fmt, quality=quality, method=2)
    return buffer.getvalue()
