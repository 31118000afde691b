"""Batching that follows the device, through the real Ray Serve app (tiny model, loopback HTTP).

The app runs with the default batching settings (only max_batch_size lowered to 4). A "slow"
request (SD-Turbo's largest size, 768x768, at its most steps: seconds on a CPU) keeps the device busy so that "while a
call runs" is a state the test checks through the replica's stats, not a guess about timing.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import time

import httpx
import pytest

from tests.live_app import post, running_serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SMALL = {"width": 128, "height": 128}
SLOW = {"width": 768, "height": 768, "num_inference_steps": 4}


@pytest.fixture(scope="module")
def base_url(cache_dir, tiny_model_dir):
    with running_serve_app({"max_batch_size": "4"}, cache_dir) as url:
        yield url


def model_stats():
    from ray import serve

    return serve.get_deployment_handle("SDTurboModel", app_name="sd-turbo").stats.remote().result()


def wait_for(predicate, what, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def device_busy() -> bool:
    return model_stats()["device_busy"]


def test_a_lone_request_on_an_idle_replica_starts_at_once(base_url):
    for i in range(5):
        response = post(base_url, {"prompt": f"alone {i}", **SMALL})
        assert response.status_code == 200, response.text
        assert response.json()["batch_size"] == 1
    delays = model_stats()["recent_batching_delays_ms"][-5:]
    # From reaching the replica to the pipeline call starting. The design this replaced held
    # every lone request for its batch timeout (20 ms by default); no timer is left to wait for.
    assert statistics.median(delays) < 10.0, delays


def test_requests_arriving_during_a_running_call_join_the_next_call(base_url):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = pool.submit(post, base_url, {"prompt": "keeps the device busy", **SLOW})
        wait_for(device_busy, "the slow call to start")
        completed_before = model_stats()["calls"].get("completed", 0)
        # Spread over 300 ms: far more than any batch timer, all while the slow call runs.
        joiners = []
        for i in range(3):
            joiners.append(pool.submit(post, base_url, {"prompt": f"joiner {i}", **SMALL}))
            time.sleep(0.15)
        wait_for(lambda: model_stats()["waiting_for_device"] == 3, "the joiners to reach the replica", 30)
        stats = model_stats()
        assert stats["device_busy"] and stats["calls"].get("completed", 0) == completed_before, (
            "the slow call ended before every joiner arrived; the test could not check anything"
        )
        responses = [f.result() for f in joiners]
        assert slow.result().status_code == 200
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert [r.json()["batch_size"] for r in responses] == [3, 3, 3]


def test_a_request_abandoned_while_queued_is_never_generated(base_url):
    before = model_stats()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, base_url, {"prompt": "keeps the device busy", **SLOW})
        wait_for(device_busy, "the slow call to start")
        with pytest.raises(httpx.TimeoutException):
            post(base_url, {"prompt": "impatient", **SMALL}, timeout=0.5)
        wait_for(
            lambda: model_stats()["abandoned"].get("queued", 0) > before["abandoned"].get("queued", 0)
            or model_stats()["waiting_for_device"] == 0,
            "the cancellation to reach the replica",
            30,
        )
        assert device_busy(), "the slow call ended before the cancellation arrived; nothing was checked"
        patient = pool.submit(post, base_url, {"prompt": "patient", **SMALL})
        assert slow.result().status_code == 200
        response = patient.result()
    assert response.status_code == 200 and response.json()["batch_size"] == 1
    after = model_stats()
    # Two pipeline calls (the slow one, then the patient one alone); the impatient request was dropped.
    assert after["calls"].get("completed", 0) - before["calls"].get("completed", 0) == 2
    assert after["abandoned"].get("queued", 0) - before["abandoned"].get("queued", 0) == 1


def test_a_running_call_whose_client_left_stops_at_the_next_step(base_url):
    before = model_stats()
    with pytest.raises(httpx.TimeoutException):
        post(base_url, {"prompt": "left during the call", **SLOW, "num_inference_steps": 4}, timeout=0.5)
    wait_for(
        lambda: model_stats()["calls"].get("cancelled", 0) > before["calls"].get("cancelled", 0),
        "the abandoned call to stop",
    )
    after = model_stats()
    assert after["abandoned"].get("running", 0) - before["abandoned"].get("running", 0) == 1
    assert after["calls"].get("completed", 0) == before["calls"].get("completed", 0)
    # The replica is free again at once.
    response = post(base_url, {"prompt": "next", **SMALL})
    assert response.status_code == 200 and response.json()["batch_size"] == 1
