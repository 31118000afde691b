import pytest
from pydantic import ValidationError

from serve_app.protocol import (
    FAMILY_LIMITS,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    GenerateRequest,
    request_model_for,
)


def test_defaults():
    # Size and steps are left to the model the request names (serve_app/serving.py fills them in).
    request = GenerateRequest(prompt="a fox")
    assert (request.num_inference_steps, request.guidance_scale, request.width, request.height) == (None, 0.0, None, None)
    assert request.seed is None and request.output_format is None


def test_each_family_has_its_own_limits_and_the_plain_schema_the_loosest():
    sd, sdxl = FAMILY_LIMITS["sd"], FAMILY_LIMITS["sdxl"]
    assert (sd.default_side, sd.max_side, sd.max_steps) == (512, 768, 4)
    assert (sdxl.default_side, sdxl.max_side, sdxl.max_steps) == (512, 1024, 4)
    assert (MIN_SIDE, MAX_SIDE, MAX_STEPS) == (64, 1024, 4)
    properties = GenerateRequest.model_json_schema()["properties"]
    assert {"minimum": MIN_SIDE, "maximum": MAX_SIDE, "multipleOf": 8}.items() <= properties["width"]["anyOf"][0].items()
    assert {"minimum": 1, "maximum": MAX_STEPS}.items() <= properties["num_inference_steps"]["anyOf"][0].items()


@pytest.mark.parametrize("families, max_side", [(("sd",), 768), (("sdxl",), 1024), (("sd", "sdxl"), 1024)])
def test_a_servers_schema_publishes_the_loosest_limits_of_its_models(families, max_side):
    request_model = request_model_for(("full",), tuple(f"m{i}" for i in range(len(families))), families)
    properties = request_model.model_json_schema()["properties"]
    for side in ("width", "height"):
        assert properties[side]["anyOf"][0]["maximum"] == max_side
    request_model.model_validate({"prompt": "ok", "width": max_side, "model": "m0"})
    with pytest.raises(ValidationError) as info:
        request_model.model_validate({"prompt": "ok", "height": max_side + 8})
    assert info.value.errors()[0]["loc"][0] == "height"


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


@pytest.mark.parametrize(
    "field, value",
    [
        ("guidance_scale", False),
        ("guidance_scale", "1.5"),
        ("seed", "3"),
        ("seed", True),
        ("width", 512.5),
        ("num_inference_steps", "2"),
        ("prompt", 42),
    ],
)
def test_values_of_another_json_type_are_refused_not_converted(field, value):
    payload = {"prompt": "ok", field: value}
    with pytest.raises(ValidationError) as info:
        GenerateRequest.model_validate(payload)
    assert info.value.errors()[0]["loc"][0] == field


def test_integers_are_numbers_and_whole_numbers_are_integers():
    # As in JSON Schema: 2 is a number, 512.0 an integer.
    request = GenerateRequest(prompt="ok", guidance_scale=2, width=512.0)
    assert request.guidance_scale == 2.0 and request.width == 512 and isinstance(request.width, int)


def test_the_published_patterns_are_the_character_rules():
    import re
    import unicodedata

    from serve_app.protocol import PROMPT_PATTERN, TEXT_PATTERN

    schema = GenerateRequest.model_json_schema()["properties"]
    assert schema["prompt"]["pattern"] == PROMPT_PATTERN
    assert [branch.get("pattern") for branch in schema["negative_prompt"]["anyOf"]] == [TEXT_PATTERN, None]
    text, prompt = re.compile(TEXT_PATTERN), re.compile(PROMPT_PATTERN)
    # Every code point this Python's Unicode data calls a control, format, surrogate or
    # private-use character (tab, newline, carriage return aside) is refused; all others pass.
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if category == "Cs":  # no Unicode text holds one: refused as no valid string
            with pytest.raises(ValidationError):
                GenerateRequest(prompt=f"a{char}b")
        elif category in ("Cc", "Cf", "Co") and char not in "\t\n\r":
            assert text.match(f"a{char}b") is None, f"U+{code:04X}"
        elif unicodedata.category(char) != "Cn":  # unassigned here, maybe assigned in newer data
            assert text.match(f"a{char}b") is not None, f"U+{code:04X}"
            # A prompt of only white space is blank; any other character makes it text.
            assert (prompt.match(f" {char} ") is None) == char.isspace(), f"U+{code:04X}"


def test_the_schema_publishes_every_bound_under_its_json_schema_name():
    properties = GenerateRequest.model_json_schema()["properties"]
    assert {"type": "integer", "minimum": 0, "maximum": MAX_SEED}.items() <= properties["seed"]["anyOf"][0].items()
    assert {"minimum": 1, "maximum": 100}.items() <= properties["quality"]["anyOf"][0].items()

    def keys(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from keys(value)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)

    assert not {"ge", "le", "gt", "lt"} & set(keys(properties))
