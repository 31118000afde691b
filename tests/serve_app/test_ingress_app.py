"""The ingress's app wired from plain values, without Ray (serve_app/ingress_app.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from serve_app.ingress_app import build_ingress_app
from serve_app.model.resolved import ResolvedDecoder, ResolvedModel
from serve_app.settings import Settings
from tests.serve_app.fakes import WordCounter, fixed_image_model

RESOLVED = ResolvedModel(
    "/unused", "preset:tiny", None, True, tiny_decoder=ResolvedDecoder("/unused", "preset:taesd-random", None, True)
)


def build(calls=None, **overrides):
    settings = Settings.load(overrides, environ={})
    return build_ingress_app(settings, RESOLVED, fixed_image_model(b"img", calls=calls), token_counter=WordCounter())


def test_ping_follows_the_model_and_the_drain_and_the_model_info_comes_from_the_resolved_sources():
    ingress = build()
    client = TestClient(ingress.app)
    assert client.get("/ping").status_code == 503  # no model replica known to run yet
    ingress.readiness.observe(True)
    ping = client.get("/ping")
    assert ping.status_code == 200
    assert ping.json()["model"] == {
        "name": "default",
        "id": "preset:tiny",
        "revision": None,
        "random_weights": True,
        "tiny_decoder": {"id": "preset:taesd-random", "revision": None, "random_weights": True},
    }
    assert ingress.inflight.drain() == 0
    assert client.get("/ping").status_code == 503
    refused = client.post("/predict", json={"prompt": "a"})
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]


def test_a_request_reaches_the_model_call_as_one_job_and_is_counted_while_it_waits():
    calls = []
    ingress = build(calls)
    ingress.readiness.observe(True)
    response = TestClient(ingress.app).post("/predict", json={"prompt": "a cat", "seed": 3})
    assert response.status_code == 200 and response.json()["seed"] == 3
    assert [spec.seed for spec in calls] == [3]
    assert ingress.inflight.waiting == 0 and ingress.inflight.open == 0


def test_the_rate_limit_is_part_of_admission():
    ingress = build(rate_limit_per_minute="1")
    ingress.readiness.observe(True)
    client = TestClient(ingress.app)
    assert client.post("/predict", json={"prompt": "a"}).status_code == 200
    assert client.post("/predict", json={"prompt": "a"}).status_code == 429


def test_while_no_model_replica_runs_ping_and_requests_get_503_with_retry_after():
    calls = []
    ingress = build(calls)
    client = TestClient(ingress.app)
    ingress.readiness.observe(False, "no model replica is running (SDTurboModel is UNHEALTHY)")
    ping = client.get("/ping")
    assert ping.status_code == 503 and ping.headers["Retry-After"] == "2"
    refused = client.post("/predict", json={"prompt": "a"})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
    assert refused.json()["error"]["type"] == "not_ready"
    assert "no model replica is running (SDTurboModel is UNHEALTHY)" in refused.json()["error"]["message"]
    assert calls == []  # never reached the model
    ingress.readiness.observe(True)
    assert client.post("/predict", json={"prompt": "a"}).status_code == 200
