"""Two models behind one endpoint: the real Ray Serve application serving `tiny` (SD-Turbo's
architecture) and `tiny-xl` (SDXL-Turbo's) over loopback HTTP."""

from __future__ import annotations

import base64
import concurrent.futures
import io

import httpx
import pytest
from PIL import Image

from tests.live_app import running_serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MODELS = ("tiny", "tiny-xl")


@pytest.fixture(scope="module")
def base_url(cache_dir, tiny_model_dir, tiny_xl_model_dir):
    with running_serve_app({"models": ",".join(MODELS), "max_batch_size": "8"}, cache_dir) as url:
        yield url


def post(base_url: str, body: dict) -> httpx.Response:
    return httpx.post(base_url + "/predict", json={"width": 64, "height": 64, **body}, timeout=180)


def test_both_models_answer_and_say_which_made_the_image(base_url):
    for name in MODELS:
        response = post(base_url, {"prompt": f"a lighthouse by {name}", "model": name, "seed": 7})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"]["name"] == name and body["model"]["id"] == f"preset:{name}"
        assert Image.open(io.BytesIO(base64.b64decode(body["image"]))).size == (64, 64)
    # No model named: the default, the first of the list.
    assert post(base_url, {"prompt": "a lighthouse"}).json()["model"]["name"] == "tiny"
    # The same seeded request for the two models: two different images (two models, two cache keys).
    images = [post(base_url, {"prompt": "same", "model": name, "seed": 3}).json()["image"] for name in MODELS]
    assert images[0] != images[1]


def test_get_models_lists_both_with_their_limits(base_url):
    models = httpx.get(base_url + "/models", timeout=30).json()["models"]
    assert [(m["name"], m["family"], m["default"]) for m in models] == [
        ("tiny", "sd-turbo", True),
        ("tiny-xl", "sdxl-turbo", False),
    ]
    assert all(m["max_prompt_tokens"] == 75 and m["max_steps"] == 4 for m in models)
    # Each model's own size limit: SD-Turbo stops at 768 a side, SDXL-Turbo at 1024 (the schema's).
    assert [m["max_side"] for m in models] == [768, 1024]
    refused = post(base_url, {"prompt": "a", "model": "tiny", "width": 1024})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "width"
    assert "tiny's limits" in refused.json()["error"]["message"]
    schema = httpx.get(base_url + "/openapi.json", timeout=30).json()
    assert schema["components"]["schemas"]["GenerateRequest"]["properties"]["model"]["anyOf"][0]["enum"] == list(MODELS)


def test_an_unknown_model_is_refused_naming_the_field(base_url):
    response = post(base_url, {"prompt": "a", "model": "sd-turbo"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "model" and "tiny, tiny-xl" in error["message"]
    # An SDXL prompt is checked with both of its tokenizers: over 75 tokens is refused for it too.
    long = post(base_url, {"prompt": " ".join(["cat"] * 76), "model": "tiny-xl"})
    assert long.status_code == 422 and long.json()["error"]["field"] == "prompt"


def test_a_batch_never_mixes_models(base_url):
    from ray import serve

    # Three requests per model at once, on a server whose calls hold up to 8: a call that mixed
    # the two models would report a batch of more than 3.
    bodies = [{"prompt": f"p{i}", "model": MODELS[i % 2], "seed": 100 + i} for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda body: post(base_url, body), bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert [r.json()["model"]["name"] for r in responses] == [b["model"] for b in bodies]
    assert max(r.json()["batch_size"] for r in responses) <= 3
    # Each model has its own deployment, whose calls only ever held its own model's requests.
    for deployment, name in (("SDTurboModel", "tiny"), ("SDTurboModel-tiny-xl", "tiny-xl")):
        stats = serve.get_deployment_handle(deployment, app_name="sd-turbo").stats.remote().result()
        assert stats["model"] == name and stats["call_models"] == [name]
