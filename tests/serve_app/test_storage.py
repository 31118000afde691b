"""S3 delivery against a moto S3 server on loopback: object written, presigned URL returns it."""

from __future__ import annotations

import asyncio

import boto3
import httpx
import pytest

from serve_app.errors import InvalidField, ResponseTooLarge
from serve_app.http import json_response_bytes, response_with_image
from serve_app.protocol import GenerateRequest
from serve_app.storage import S3ImageStore
from tests.conftest import free_port
from tests.serve_app.fakes import fixed_image_model, make_service

BUCKET = "sd-turbo-outputs"


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


def service(settings_overrides, image: bytes, store=None):
    return make_service(fixed_image_model(image), settings_overrides, store=store)


def test_s3_delivery_writes_the_object_and_the_presigned_url_fetches_it(s3_client, s3_endpoint):
    store = S3ImageStore(BUCKET, "outputs/", 600, endpoint_url=s3_endpoint)
    image = b"\xff\xd8 jpeg bytes \xff\xd9"
    outcome = asyncio.run(
        service({}, image, store).generate(GenerateRequest(prompt="p", delivery="s3"), "req-1")
    )
    body = response_with_image(outcome)
    assert body["image"] is None and body["s3_uri"] == f"s3://{BUCKET}/outputs/default/req-1.jpeg"
    assert s3_client.get_object(Bucket=BUCKET, Key="outputs/default/req-1.jpeg")["Body"].read() == image
    fetched = httpx.get(body["image_url"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == image


def test_oversized_answers_go_to_s3_when_configured_and_are_refused_otherwise(s3_client, s3_endpoint):
    big = b"x" * 3000
    limit = {"max_response_bytes": "4000"}  # base64 of 3000 bytes + JSON overhead > 4000
    with pytest.raises(ResponseTooLarge, match="over the 4000-byte limit"):
        asyncio.run(service(limit, big).generate(GenerateRequest(prompt="p"), "r", response_bytes=json_response_bytes))
    # Raw bytes (Accept: image/...) are smaller than base64 JSON and fit.
    raw = asyncio.run(service(limit, big).generate(GenerateRequest(prompt="p"), "r"))
    assert raw.response.image_url is None
    store = S3ImageStore(BUCKET, "big/", 600, endpoint_url=s3_endpoint)
    routed = asyncio.run(
        service(limit, big, store).generate(GenerateRequest(prompt="p"), "r2", response_bytes=json_response_bytes)
    )
    assert routed.response.s3_uri == f"s3://{BUCKET}/big/default/r2.jpeg"


def test_s3_delivery_without_a_bucket_is_a_clear_422():
    with pytest.raises(InvalidField) as info:
        asyncio.run(service({}, b"x").generate(GenerateRequest(prompt="p", delivery="s3"), "r"))
    assert info.value.field == "delivery" and "SDTURBO_S3_OUTPUT_BUCKET" in info.value.message
