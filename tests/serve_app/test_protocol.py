import pytest
from pydantic import ValidationError

from serve_app.protocol import MAX_SEED, GenerateRequest


def test_defaults():
    request = GenerateRequest(prompt="a fox")
    assert (request.num_inference_steps, request.guidance_scale, request.width, request.height) == (1, 0.0, 512, 512)
    assert request.seed is None and request.output_format is None


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": "ok", "negative_prompt": "bad\x1b[31m"}, "negative_prompt"),
        ({"prompt": "ok", "seed": -1}, "seed"),
        ({"prompt": "ok", "seed": MAX_SEED + 1}, "seed"),
        ({"prompt": "ok", "num_inference_steps": 0}, "num_inference_steps"),
        ({"prompt": "ok", "num_inference_steps": 5}, "num_inference_steps"),
        ({"prompt": "ok", "guidance_scale": -0.5}, "guidance_scale"),
        ({"prompt": "ok", "guidance_scale": 50}, "guidance_scale"),
        ({"prompt": "ok", "width": 500}, "width"),
        ({"prompt": "ok", "height": 2048}, "height"),
        ({"prompt": "ok", "width": 32}, "width"),
        ({"prompt": "ok", "output_format": "gif"}, "output_format"),
        ({"prompt": "ok", "quality": 0}, "quality"),
        ({"prompt": "ok", "colour": "red"}, "colour"),
    ],
)
def test_out_of_range_values_name_their_field(payload, field):
    with pytest.raises(ValidationError) as info:
        GenerateRequest.model_validate(payload)
    assert info.value.errors()[0]["loc"][0] == field


def test_ordinary_whitespace_is_allowed():
    assert GenerateRequest(prompt="line one\nline\ttwo").prompt.startswith("line")
