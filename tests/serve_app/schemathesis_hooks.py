"""Schemathesis extension for tests/serve_app/test_api_contract.py (loaded with SCHEMATHESIS_HOOKS).

1. One check replaces the built-in ``positive_data_acceptance``, stricter than it: a request the
published schema allows gets a 2xx (the built-in also lets 404, 409, 429 and 5xx pass). The only
refusals of schema-valid requests it accepts are the two the README documents as depending on the
loaded model and the server's configuration, which the schema does not state: a prompt over the
text encoder's token limit and ``delivery: s3`` on a server without an S3 bucket. (Each server's
schema lists exactly the decoders it loaded, so a ``decoder`` it refuses is schema-invalid.)

2. Schema-valid requests ask for images of at most 128x128: a 1024x1024 image at 4 steps takes
seconds on a busy 2-core CPU even with the tiny model, and the size says nothing about the
contract (status codes, content types, response schema), which is what is checked here. The
bounds themselves are fuzzed by the schema-invalid cases, which are sent as generated.
"""

from __future__ import annotations

import schemathesis

_BEYOND_THE_SCHEMA = (
    # (field, words of the message): the model's tokenizer and the server's S3 configuration.
    ("prompt", "tokens long"),
    ("negative_prompt", "tokens long"),
    ("delivery", "is not configured on this server"),
)


# Largest side of a schema-valid request's image (a multiple of 8, within the schema's bounds).
MAX_TEST_SIDE = 128


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    for side in ("width", "height"):
        if isinstance(case.body.get(side), (int, float)) and case.body[side] > MAX_TEST_SIDE:
            case.body[side] = MAX_TEST_SIDE


@schemathesis.check
def schema_valid_requests_are_accepted(ctx, response, case):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if 200 <= response.status_code < 300:
        return True
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    for field, words in _BEYOND_THE_SCHEMA:
        if response.status_code == 422 and error.get("field") == field and words in error.get("message", ""):
            return True
    raise AssertionError(f"a request the schema allows was refused: {response.status_code} {error or response.text_lossy[:200]}")
