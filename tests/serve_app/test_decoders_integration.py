"""Both decoders in the real Ray Serve app: chosen per request, grouped per decoder, reported back."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.live_app import post, running_serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def base_url(cache_dir, tiny_model_dir):
    overrides = {
        "decoders": "full,tiny",
        "tiny_decoder": "taesd-random",
        "max_batch_size": "4",
        "batch_wait_timeout_s": "0.3",
    }
    with running_serve_app(overrides, cache_dir) as url:
        yield url


def small(**fields):
    """A 64 x 64 request with ``fields``."""
    return {"width": 64, "height": 64, **fields}


def test_default_is_the_full_decoder_and_the_model_reports_its_tiny_decoder(base_url):
    body = post(base_url, small(prompt="a lighthouse", seed=1)).json()
    assert body["decoder"] == "full"
    # The random preset says so: its images are never passed off as TAESD's.
    assert body["model"]["tiny_decoder"] == {"id": "preset:taesd-random", "revision": None, "random_weights": True}


def test_a_request_chooses_the_tiny_decoder_and_the_raw_answer_says_so(base_url):
    response = httpx.post(
        base_url + "/predict",
        json={"prompt": "a lighthouse", "seed": 1, "width": 64, "height": 64, "decoder": "tiny"},
        headers={"Accept": "image/png"},
        timeout=120,
    )
    assert response.status_code == 200 and response.headers["x-decoder"] == "tiny"
    full = post(base_url, small(prompt="a lighthouse", seed=1, output_format="png")).json()
    assert full["decoder"] == "full"


def test_concurrent_requests_for_both_decoders_are_grouped_per_decoder(base_url):
    decoders = ["full", "tiny", "full", "tiny"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(
            pool.map(lambda i: post(base_url, small(prompt=f"p{i}", seed=100 + i, decoder=decoders[i])).json(), range(4))
        )
    assert [b["decoder"] for b in bodies] == decoders
    # A pipeline call holds one decoder's requests only: at most the two of each kind.
    assert all(1 <= b["batch_size"] <= 2 for b in bodies)


def test_an_unknown_decoder_is_a_422_naming_the_field(base_url):
    response = post(base_url, small(prompt="a lighthouse", decoder="fastest"))
    assert response.status_code == 422 and response.json()["error"]["field"] == "decoder"
