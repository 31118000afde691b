"""The HTTP transport on its own (no Ray): routes, negotiation and every bad-input case."""

import base64
import io
import json

import pytest
from PIL import Image

from serve_app.http import create_http_app, negotiate_image_format, new_request_id, response_with_image
from serve_app.protocol import GenerateResponse, ModelInfo, Timings
from serve_app.serving import ImageOutcome, ImageService, ServedModel
from serve_app.settings import Settings
from tests.serve_app.fakes import WordCounter, fixed_image_model, make_http_client, make_service


def jpeg_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def state():
    return {"ready": True, "calls": []}


@pytest.fixture
def client(state):
    calls = state["calls"] = []
    model = fixed_image_model(jpeg_bytes(), batch_size=2, timings=(1.0, 2.0, 3.0), calls=calls)
    service = make_service(model, {"max_body_bytes": "2048"}, model_id="preset:tiny")
    return make_http_client(service, lambda: state["ready"], max_body_bytes=2048)


@pytest.mark.parametrize("route", ["/predict", "/invocations"])
def test_generate_returns_json_with_base64_image(client, route):
    response = client.post(route, json={"prompt": "a cat", "seed": 3}, headers={"X-Request-Id": "r-1"})
    assert response.status_code == 200
    body = response.json()
    assert Image.open(io.BytesIO(base64.b64decode(body["image"]))).format == "JPEG"
    assert body["seed"] == 3 and body["batch_size"] == 2 and body["request_id"] == "r-1"
    assert body["model"] == {"name": "default", "id": "preset:tiny", "revision": None, "random_weights": True, "tiny_decoder": None}
    assert set(body["timings_ms"]) == {"queue", "inference", "encode", "total"}


def test_accept_image_returns_raw_bytes_with_metadata_headers(client):
    response = client.post("/predict", json={"prompt": "a cat", "seed": 5}, headers={"Accept": "image/png"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-seed"] == "5" and response.headers["x-batch-size"] == "2"
    assert json.loads(response.headers["x-timings-ms"])["inference"] == 2.0
    assert response.headers["x-decoder"] == "full"


def test_the_decoder_field_chooses_the_decoder_and_the_response_says_which(state):
    model = fixed_image_model(jpeg_bytes(), calls=state["calls"])
    client = make_http_client(make_service(model, {"decoders": "full,tiny"}))
    body = client.post("/predict", json={"prompt": "a cat", "decoder": "tiny"}).json()
    assert body["decoder"] == "tiny" and state["calls"][-1].decoder == "tiny"
    raw = client.post("/predict", json={"prompt": "a cat", "decoder": "tiny"}, headers={"Accept": "image/jpeg"})
    assert raw.headers["x-decoder"] == "tiny"
    assert client.post("/predict", json={"prompt": "a cat"}).json()["decoder"] == "full"
    unknown = client.post("/predict", json={"prompt": "a cat", "decoder": "fast"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "decoder"


def test_a_decoder_the_server_has_not_loaded_is_a_clear_422(client, state):
    response = client.post("/predict", json={"prompt": "a cat", "decoder": "tiny"})
    assert response.status_code == 422 and not state["calls"]
    error = response.json()["error"]
    assert error == {
        "type": "validation_error",
        "message": "decoder 'tiny' is not loaded on this server (loaded: full; SDTURBO_DECODERS chooses)",
        "field": "decoder",
    }


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, None),
        ("*/*", None),
        ("application/json", None),
        ("image/webp", "webp"),
        ("application/json;q=0.5, image/jpeg", "jpeg"),
        ("image/png;q=0.1, application/json", None),
        ("text/html", None),
    ],
)
def test_accept_negotiation(accept, expected):
    assert negotiate_image_format(accept) == expected


def test_ping_reflects_readiness(client, state):
    state["ready"] = False
    assert client.get("/ping").status_code == 503
    state["ready"] = True
    response = client.get("/ping")
    assert response.status_code == 200 and response.json()["status"] == "ready"


@pytest.mark.parametrize(
    "kwargs, status, error_type, field",
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed_request", None),
        ({"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400, "malformed_request", None),
        ({"content": b"prompt=cat", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type", None),
        ({"content": b'{"prompt": "cat"}'}, 415, "unsupported_media_type", None),
        ({"json": {"prompt": "x" * 1990, "negative_prompt": "y" * 100}}, 413, "payload_too_large", None),
        ({"json": {}}, 422, "validation_error", "prompt"),
        ({"json": {"prompt": "cat", "width": 100}}, 422, "validation_error", "width"),
        ({"json": {"prompt": "cat", "num_inference_steps": 9}}, 422, "validation_error", "num_inference_steps"),
        ({"json": {"prompt": "cat", "output_format": "bmp"}}, 422, "validation_error", "output_format"),
        ({"json": {"prompt": "cat", "seed": "abc"}}, 422, "validation_error", "seed"),
        ({"json": {"prompt": "cat", "steps": 2}}, 422, "validation_error", "steps"),
        ({"json": {"prompt": "word " * 80}}, 422, "validation_error", "prompt"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client, state, kwargs, status, error_type, field):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type and error["field"] == field and error["message"]
    assert response.json()["request_id"]
    assert state["calls"] == []


def test_openapi_documents_routes_and_error_responses(client):
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/predict"]["post"]
    assert {"400", "413", "415", "422", "503", "504"} <= set(predict["responses"])
    body_ref = predict["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = schema["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]
    assert predict["requestBody"]["required"] is True and "prompt" in body_schema["required"]
    assert "/invocations" in schema["paths"] and "/ping" in schema["paths"]
    assert client.get("/docs").status_code == 200


def make_client(admit=None, on_rejected=None, **settings_overrides):
    service = make_service(fixed_image_model(jpeg_bytes()), settings_overrides)
    return make_http_client(service, admit=admit, on_rejected=on_rejected)


def test_admission_errors_carry_retry_after_and_are_counted():
    from serve_app.guardrails import RateLimiter

    limiter = RateLimiter(per_minute=60, burst=1)
    rejected = []
    client = make_client(admit=lambda request: limiter.acquire(request.client.host), on_rejected=rejected.append)
    assert client.post("/predict", json={"prompt": "a"}).status_code == 200
    response = client.post("/predict", json={"prompt": "a"})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "rate_limited"
    assert rejected == ["rate_limited"]


def test_blocked_prompts_are_refused_and_audited(caplog):
    import logging

    client = make_client(prompt_blocklist="forbidden")
    with caplog.at_level(logging.INFO, logger="sd_turbo.audit"):
        response = client.post("/predict", json={"prompt": "something Forbidden here"})
        allowed = client.post("/predict", json={"prompt": "something fine"})
    assert response.status_code == 422 and response.json()["error"]["type"] == "prompt_blocked"
    assert allowed.status_code == 200
    records = [r.fields for r in caplog.records if r.name == "sd_turbo.audit"]
    assert [r["decision"] for r in records] == ["rejected", "allowed"]
    assert all(len(r["prompt_sha256"]) == 16 for r in records)
    assert "Forbidden" not in caplog.text  # the audit trail holds hashes, never prompt text


def test_an_unexpected_bug_is_a_json_500_with_the_request_id():
    async def broken(job):
        raise RuntimeError("boom")

    response = make_http_client(make_service(broken)).post("/predict", json={"prompt": "a"})
    assert response.status_code == 500 and response.json()["error"]["type"] == "internal_error"


def test_request_ids_honour_sane_client_ids_only():
    assert new_request_id("abc-123") == "abc-123"
    assert new_request_id("bad id") != "bad id"
    assert len(new_request_id(None)) == 32
    assert new_request_id("x" * 200) != "x" * 200


def test_the_json_body_carries_the_image_as_base64_unless_it_went_to_s3():
    meta = dict(
        format="jpeg", seed=7, width=8, height=8, num_inference_steps=1, guidance_scale=0.0, batch_size=1,
        model=ModelInfo(id="m", revision=None, random_weights=False), decoder="full", cached=False,
        timings_ms=Timings(queue=0, inference=0, encode=0, total=0), request_id="r",
    )
    inline = ImageOutcome(b"img-7", GenerateResponse(image=None, **meta))
    assert response_with_image(inline)["image"] == "aW1nLTc="  # base64 of b"img-7"
    stored = ImageOutcome(b"img-7", GenerateResponse(image=None, image_url="https://s3/x", **meta))
    assert response_with_image(stored)["image"] is None


def test_unknown_routes_and_methods_get_the_json_error_body(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]


def test_an_unknown_declared_length_is_read_only_up_to_the_limit(client, state):
    def chunks():
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"x" * 500

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit of 2048" in response.json()["error"]["message"]
    assert state["calls"] == []


def test_a_flagged_image_is_a_documented_422_audited_without_prompt_or_image(caplog):
    import logging

    from serve_app.errors import ImageBlocked

    async def flagging_model(job):
        raise ImageBlocked()

    rejected = []
    client = make_http_client(make_service(flagging_model), on_rejected=rejected.append)
    with caplog.at_level(logging.INFO, logger="sd_turbo.audit"):
        response = client.post("/predict", json={"prompt": "a secret prompt", "seed": 3})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "image_blocked" and "safety checker" in response.json()["error"]["message"]
    assert rejected == ["image_blocked"]
    (record,) = [r.fields for r in caplog.records if r.name == "sd_turbo.audit"]
    assert record["decision"] == "rejected" and record["error_type"] == "image_blocked"
    assert "secret" not in caplog.text and "image" not in record
    described = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]["422"]["description"]
    assert "image_blocked" in described


def test_generation_routes_run_no_dependency_on_a_worker_thread():
    # FastAPI runs a plain `def` endpoint or dependency in its thread pool: two thread hand-overs
    # per request on the ingress's latency path (issue 11). Every one of them must be async.
    import inspect

    from fastapi.routing import APIRoute

    app = create_http_app(make_service(fixed_image_model(b"img")), lambda: True, max_body_bytes=1024)

    def calls(dependant):
        yield dependant.call
        for sub in dependant.dependencies:
            yield from calls(sub)

    def api_routes(routes):
        for route in routes:
            included = getattr(route, "original_router", None)  # an include_router()'d router
            yield from api_routes(included.routes) if included is not None else ()
            if isinstance(route, APIRoute):
                yield route

    routes = {r.path: r for r in api_routes(app.routes)}
    for path in ("/predict", "/invocations", "/ping"):
        sync = [c for c in calls(routes[path].dependant) if c is not None and not inspect.iscoroutinefunction(c)]
        assert sync == [], (path, sync)


@pytest.mark.parametrize("decoders", ["full", "tiny", "full,tiny", "tiny,full"])
def test_the_served_schema_lists_exactly_the_decoders_this_server_loaded(decoders):
    service = make_service(fixed_image_model(b"img"), {"decoders": decoders})
    schema = make_http_client(service).get("/openapi.json").json()
    for path in ("/predict", "/invocations"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/GenerateRequest"}
    decoder = schema["components"]["schemas"]["GenerateRequest"]["properties"]["decoder"]
    # One loaded decoder is published as a "const", several as an "enum".
    (choices,) = [option.get("enum", [option.get("const")]) for option in decoder["anyOf"] if option["type"] == "string"]
    assert sorted(choices) == sorted(service.settings.loaded_decoders)


def test_a_decoder_this_server_did_not_load_is_refused_by_its_schema_with_a_422():
    client = make_http_client(make_service(fixed_image_model(b"img")))  # default: full only
    response = client.post("/predict", json={"prompt": "a", "decoder": "tiny"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "decoder"


# --- several models behind one endpoint ---------------------------------------------------------
def two_model_client(calls: list):
    settings = Settings.load({}, environ={})
    default = ModelInfo(name="tiny", id="preset:tiny", revision=None, random_weights=True)
    xl = ServedModel(ModelInfo(name="tiny-xl", id="preset:tiny-xl", revision=None, random_weights=True), WordCounter(5), "sdxl")
    service = ImageService(settings, default, WordCounter(75), fixed_image_model(b"img", calls=calls), other_models=[xl])
    return make_http_client(service)


def test_a_request_names_its_model_and_the_response_says_which_made_it():
    calls = []
    client = two_model_client(calls)
    named = client.post("/predict", json={"prompt": "a cat", "model": "tiny-xl", "seed": 1})
    default = client.post("/predict", json={"prompt": "a cat", "seed": 1})
    assert named.status_code == default.status_code == 200
    assert named.json()["model"]["name"] == "tiny-xl" and default.json()["model"]["name"] == "tiny"
    # Each model's job reached the model it names; the same seeded request for two models is two images.
    assert [spec.model for spec in calls] == ["tiny-xl", "tiny"]
    raw = client.post("/predict", json={"prompt": "a cat", "model": "tiny-xl"}, headers={"Accept": "image/png"})
    assert raw.headers["X-Model"] == "tiny-xl"


def test_an_unknown_model_is_a_422_naming_the_field_and_the_served_models():
    client = two_model_client([])
    for name in ("sdxl", "x" * 65, 3):
        response = client.post("/predict", json={"prompt": "a", "model": name})
        assert response.status_code == 422, name
        assert response.json()["error"]["field"] == "model"
    message = client.post("/predict", json={"prompt": "a", "model": "sdxl"}).json()["error"]["message"]
    assert "tiny, tiny-xl" in message


def test_token_limits_are_each_models_own():
    client = two_model_client([])
    six_words = "one two three four five six"
    assert client.post("/predict", json={"prompt": six_words}).status_code == 200
    refused = client.post("/predict", json={"prompt": six_words, "model": "tiny-xl"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "prompt"
    assert "tiny-xl's text encoders accept at most 5" in refused.json()["error"]["message"]


def test_get_models_lists_each_served_model_with_its_limits_and_the_schema_enumerates_them():
    client = two_model_client([])
    models = client.get("/models").json()["models"]
    assert [(m["name"], m["default"], m["family"]) for m in models] == [
        ("tiny", True, "sd-turbo"),
        ("tiny-xl", False, "sdxl-turbo"),
    ]
    assert [m["max_prompt_tokens"] for m in models] == [75, 5]
    assert models[1]["max_steps"] == 4 and models[1]["default_width"] == 512 and models[1]["decoders"] == ["full"]
    assert models[1]["model"]["id"] == "preset:tiny-xl"
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["GenerateRequest"]["properties"]["model"]
    assert request["anyOf"][0]["enum"] == ["tiny", "tiny-xl"]


def test_sizes_are_checked_per_model_and_the_schema_is_the_loosest_of_the_served():
    from serve_app.protocol import FAMILY_LIMITS

    client = two_model_client([])
    sd_max, xl_max = FAMILY_LIMITS["sd"].max_side, FAMILY_LIMITS["sdxl"].max_side
    width = client.get("/openapi.json").json()["components"]["schemas"]["GenerateRequest"]["properties"]["width"]
    assert width["anyOf"][0]["maximum"] == xl_max
    assert client.post("/predict", json={"prompt": "a", "model": "tiny-xl", "width": xl_max}).status_code == 200
    refused = client.post("/predict", json={"prompt": "a", "width": xl_max})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "width"
    assert f"64 to {sd_max} pixels" in refused.json()["error"]["message"]
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert (models["tiny"]["max_side"], models["tiny-xl"]["max_side"]) == (sd_max, xl_max)
    # A server of SD-Turbo alone publishes SD-Turbo's bound.
    alone = make_http_client(make_service(fixed_image_model(b"img")))
    width = alone.get("/openapi.json").json()["components"]["schemas"]["GenerateRequest"]["properties"]["width"]
    assert width["anyOf"][0]["maximum"] == sd_max
