import io

import pytest
from PIL import Image

from serve_app.encoding import encode_image


@pytest.mark.parametrize("fmt, pil_name", [("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_encodes_each_format_decodably(fmt, pil_name):
    image = Image.new("RGB", (64, 32), (200, 10, 10))
    data = encode_image(image, fmt, quality=80)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == pil_name and decoded.size == (64, 32)


def test_png_is_lossless_and_jpeg_quality_changes_size():
    image = Image.effect_noise((64, 64), 50).convert("RGB")
    png = Image.open(io.BytesIO(encode_image(image, "png", 90))).convert("RGB")
    assert png.tobytes() == image.tobytes()
    assert len(encode_image(image, "jpeg", 20)) < len(encode_image(image, "jpeg", 95))


# --- the JPEG contract, whichever encoder made the bytes ------------------------------------------
def exif_jpeg(size=(8, 8)) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "a description"
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_the_cpu_jpeg_meets_the_contract_at_the_requested_quality():
    from serve_app.encoding import jpeg_problems

    image = Image.effect_noise((64, 48), 50).convert("RGB")
    low, high = encode_image(image, "jpeg", 20), encode_image(image, "jpeg", 95)
    for data in (low, high):
        assert jpeg_problems(data, 64, 48) == []
        assert Image.open(io.BytesIO(data)).size == (64, 48)
    assert len(low) < len(high)
    # The contract's checks each catch their case.
    assert jpeg_problems(high, 48, 64) == ["a 64x48 frame, not 48x64"]
    assert jpeg_problems(exif_jpeg(), 8, 8) == ["an EXIF segment"]
    assert jpeg_problems(high[:-2], 64, 48) == ["no end-of-image marker"]
    assert jpeg_problems(b"\x89PNG", 64, 48) == ["no JPEG start-of-image marker"]


def test_device_jpeg_bytes_are_used_only_for_jpeg_at_their_quality_and_only_when_they_meet_the_contract():
    from serve_app.encoding import encoded_on_device

    image = Image.effect_noise((64, 48), 50).convert("RGB")
    jpeg = encode_image(image, "jpeg", 90)  # stands in for the GPU's bytes: the same contract
    assert encoded_on_device(image, jpeg, 90, "jpeg", 90) is jpeg
    assert encoded_on_device(image, jpeg, 90, "jpeg", 80) is None  # another quality: the CPU encodes
    assert encoded_on_device(image, jpeg, 90, "png", 90) is None
    assert encoded_on_device(image, None, None, "jpeg", 90) is None  # not encoded on a device
    assert encoded_on_device(Image.new("RGB", (8, 8)), exif_jpeg(), 90, "jpeg", 90) is None  # refused: EXIF
    assert encoded_on_device(Image.new("RGB", (16, 8)), jpeg, 90, "jpeg", 90) is None  # refused: wrong size
