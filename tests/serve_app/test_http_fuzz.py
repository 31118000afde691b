"""Property-based fuzzing of /predict and /invocations: arbitrary JSON never yields a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve_app.protocol import GenerateRequest
from tests.serve_app.fakes import fixed_image_model, make_http_client, make_service

FIELDS = list(GenerateRequest.model_fields) + ["extra", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
payloads = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6) | json_values


CLIENT = make_http_client(make_service(fixed_image_model(b"img")), max_body_bytes=65536)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, route=st.sampled_from(["/predict", "/invocations"]))
def test_arbitrary_json_gets_200_or_a_4xx_with_an_error_body(payload, route):
    body = json.dumps(payload, allow_nan=True).encode()
    response = CLIENT.post(route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["error"]["message"]


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_arbitrary_bytes_never_break_the_server(raw, content_type):
    response = CLIENT.post("/predict", content=raw, headers={"Content-Type": content_type} if content_type else {})
    assert response.status_code < 500
