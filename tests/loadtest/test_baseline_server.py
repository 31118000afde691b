"""The baseline server checks requests against the service's own API limits (SD-Turbo's)."""

import pytest

from loadtest.baseline_server import RequestError, validate
from serve_app.protocol import FAMILY_LIMITS, MAX_GUIDANCE_SCALE

MAX_SIDE, MAX_STEPS = FAMILY_LIMITS["sd"].max_side, FAMILY_LIMITS["sd"].max_steps


def test_the_limits_are_the_apis():
    accepted = validate({"prompt": "a", "guidance_scale": MAX_GUIDANCE_SCALE, "num_inference_steps": MAX_STEPS, "width": MAX_SIDE})
    assert accepted["guidance_scale"] == MAX_GUIDANCE_SCALE and accepted["width"] == MAX_SIDE


@pytest.mark.parametrize(
    "field, value",
    [("guidance_scale", MAX_GUIDANCE_SCALE + 0.5), ("num_inference_steps", MAX_STEPS + 1), ("width", MAX_SIDE + 8), ("seed", 2**32)],
)
def test_values_beyond_the_apis_limits_are_refused(field, value):
    with pytest.raises(RequestError) as info:
        validate({"prompt": "a", field: value})
    assert info.value.status == 422 and info.value.field == field
