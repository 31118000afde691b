"""The image safety checker in the real Ray Serve app (tiny model, loopback): a flagged image is
refused with 422 while the request batched with it is answered, and the refusal is counted.

The checker is the `random` preset (the published ViT-L/14 architecture, random weights, which
flags nothing on its own); `fault_injection_unsafe_seeds` makes the checker report seed 13.
"""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.live_app import post, running_serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
FLAGGED_SEED = 13


@pytest.fixture(scope="module")
def metrics_port():
    return free_port()


@pytest.fixture(scope="module")
def base_url(cache_dir, tiny_model_dir, safety_preset_dir, metrics_port):
    overrides = {
        "safety_checker": "random",
        "fault_injection_unsafe_seeds": str(FLAGGED_SEED),
        "max_batch_size": "2",
        # Long enough that two requests sent together share one pipeline call on a busy CPU.
        "batch_wait_timeout_s": "1.0",
        "request_timeout_s": "240",
    }
    with running_serve_app(overrides, cache_dir, metrics_port=metrics_port) as url:
        yield url


def test_flagged_image_is_refused_and_its_batch_companion_is_answered(base_url, metrics_port):
    payloads = [
        {"prompt": "flagged one", "seed": FLAGGED_SEED, "width": 64, "height": 64},
        {"prompt": "fine one", "seed": FLAGGED_SEED + 1, "width": 64, "height": 64},
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        flagged, fine = pool.map(lambda p: post(base_url, p, timeout=300), payloads)
    assert flagged.status_code == 422, flagged.text
    body = flagged.json()
    assert body["error"]["type"] == "image_blocked" and "image" not in body
    assert fine.status_code == 200 and fine.json()["image"]
    assert fine.json()["batch_size"] == 2  # it shared the pipeline call with the flagged image

    # A seeded refusal is not cached: asked again, it is screened (and refused) again.
    again = post(base_url, payloads[0], timeout=300)
    assert again.status_code == 422 and again.json()["error"]["type"] == "image_blocked"

    # Counted: the checker's own counter and the rejections by type.
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        samples = [line for line in text.splitlines() if not line.startswith("#")]
        # Ray exports them as ray_sdturbo_*_total{...} VALUE.
        refusals = [line for line in samples if "sdturbo_safety_refusals" in line]
        blocked = [line for line in samples if "sdturbo_rejections" in line and 'error_type="image_blocked"' in line]
        if refusals and float(refusals[0].split()[-1]) >= 2 and blocked and float(blocked[0].split()[-1]) >= 2:
            break
        assert time.monotonic() < deadline, f"refusal metrics never appeared: {refusals} {blocked}"
        time.sleep(1)
