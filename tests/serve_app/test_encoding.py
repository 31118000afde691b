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
