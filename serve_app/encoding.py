"""Encoding generated images. CPU-bound: callers run it in a worker thread, off the event loop."""

from __future__ import annotations

import io
import logging

from PIL import Image

logger = logging.getLogger(__name__)

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


# Start-of-frame markers (baseline, extended, progressive): they carry the image's height and width.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2}


def jpeg_problems(data: bytes, width: int, height: int) -> list[str]:
    """What keeps ``data`` from being the JPEG this service returns (empty: none).

    The contract every JPEG meets, whichever encoder made it (PIL here, nvjpeg in
    ``serve_app/model/jpeg.py``): starts with SOI and ends with EOI, carries no EXIF (APP1) segment,
    and its frame is ``width`` x ``height``. Reads only the segment headers before the scan.
    """
    if not data.startswith(b"\xff\xd8"):
        return ["no JPEG start-of-image marker"]
    problems = [] if data.rstrip(b"\x00").endswith(b"\xff\xd9") else ["no end-of-image marker"]
    frame = None
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif"):
            problems.append("an EXIF segment")
        if marker in _SOF_MARKERS and len(segment) >= 5:
            frame = (int.from_bytes(segment[3:5], "big"), int.from_bytes(segment[1:3], "big"))
        if marker == 0xDA:  # start of scan: the headers end here
            break
        pos += 2 + length
    if frame is None:
        problems.append("no frame header")
    elif frame != (width, height):
        problems.append(f"a {frame[0]}x{frame[1]} frame, not {width}x{height}")
    return problems


def encoded_on_device(image: Image.Image, jpeg: bytes | None, jpeg_quality: int | None, output_format: str,
                      quality: int) -> bytes | None:
    """The JPEG the GPU already encoded for ``image`` (``jpeg`` at ``jpeg_quality``) when it is what
    the request asks for (JPEG at that quality) and meets this module's contract (``jpeg_problems``);
    None: encode ``image`` with ``encode_image`` instead."""
    if output_format != "jpeg" or jpeg is None or jpeg_quality != quality:
        return None
    problems = jpeg_problems(jpeg, *image.size)
    if problems:
        logger.warning("GPU JPEG bytes refused (%s): encoding on the CPU", "; ".join(problems))
        return None
    return jpeg
