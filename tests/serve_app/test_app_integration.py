"""The real Ray Serve application, tiny model, real HTTP on loopback."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import time

import httpx
import pytest
from PIL import Image

from tests.live_app import running_serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def base_url(cache_dir, tiny_model_dir):
    # The batch_wait_timeout_s that ships (Settings' default): batches form behind a running call.
    with running_serve_app({"max_batch_size": "4"}, cache_dir) as url:
        yield url


def decode(body):
    return Image.open(io.BytesIO(base64.b64decode(body["image"])))


@pytest.mark.parametrize("route", ["/predict", "/invocations"])
def test_generates_an_image(base_url, route):
    response = httpx.post(base_url + route, json={"prompt": f"a lighthouse at {route}", "width": 256, "height": 192}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    image = decode(body)
    assert image.format == "JPEG" and image.size == (256, 192)
    assert body["model"] == {"name": "tiny", "id": "preset:tiny", "revision": None, "random_weights": True, "tiny_decoder": None}
    assert body["timings_ms"]["inference"] > 0


def test_the_ingress_replica_process_never_loads_torch(base_url):
    from pathlib import Path

    from ray import serve

    stats = serve.get_app_handle("sd-turbo").process_stats.remote().result()
    assert stats["torch_loaded"] is False and stats["diffusers_loaded"] is False
    # Also from outside the process: no torch shared library is mapped into it.
    maps = Path(f"/proc/{stats['pid']}/maps").read_text()
    assert "libtorch" not in maps
    # Its peers report the weights as random, never as the real model's.
    assert httpx.get(base_url + "/ping").json()["model"]["random_weights"] is True


def _listening_socket_inodes(port: int) -> set[str]:
    from pathlib import Path

    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def test_the_ingress_replica_itself_listens_on_the_http_port_and_shares_it(base_url):
    # Direct ingress (serve_app/direct_ingress.py): no Ray proxy between client and ingress.
    import os
    import socket
    from pathlib import Path

    from ray import serve

    stats = serve.get_app_handle("sd-turbo").process_stats.remote().result()
    assert stats["direct_ingress"] is True
    port = int(base_url.rsplit(":", 1)[1])
    listeners = _listening_socket_inodes(port)
    fd_dir = Path(f"/proc/{stats['pid']}/fd")
    owned = {os.readlink(fd).removeprefix("socket:[").removesuffix("]") for fd in fd_dir.iterdir()
             if os.readlink(fd).startswith("socket:[")}
    assert listeners and listeners <= owned, (listeners, stats["pid"])
    # It was bound with SO_REUSEPORT, so the container's port responder can hand the port over
    # without a gap: another SO_REUSEPORT socket of this user may bind the same port (it never
    # listens, so it takes no connection).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind(("127.0.0.1", port))


def test_the_ingress_reads_the_model_deployments_health_from_the_cheap_status(base_url):
    # What /ping follows once the app has started (serve.status() is too slow to poll).
    from serve_app.model_replica import MODEL_DEPLOYMENT
    from serve_app.ray_private import deployment_healthy

    assert deployment_healthy("sd-turbo", MODEL_DEPLOYMENT) is True
    assert deployment_healthy("no-such-app", MODEL_DEPLOYMENT) is False


def test_both_replicas_run_their_code_on_the_actor_event_loop_not_a_separate_thread(base_url):
    # serve_app/app.py sets Serve's user-code and router threads off for both deployments: one
    # thread hand-over less each way on every request (issue 11).
    from ray import serve

    ingress = serve.get_app_handle("sd-turbo").process_stats.remote().result()["user_code_thread"]
    model = serve.get_deployment_handle("SDTurboModel", app_name="sd-turbo").stats.remote().result()["user_code_thread"]
    # Serve's separate user-code thread runs its `_run_user_code_event_loop` (ray/serve/_private/replica.py).
    assert "_run_user_code_event_loop" not in ingress and "_run_user_code_event_loop" not in model, (ingress, model)


def test_both_replicas_run_at_normal_cpu_priority(base_url):
    # Ray starts workers at nice 15 unless told otherwise; the project's Ray head says 0
    # (serve_app/launch.py: RAY_HEAD_ENV_DEFAULTS), so the pipeline thread is not starved by the
    # log relay and Ray's agents on a busy host.
    from ray import serve

    ingress = serve.get_app_handle("sd-turbo").process_stats.remote().result()
    model = serve.get_deployment_handle("SDTurboModel", app_name="sd-turbo").stats.remote().result()
    assert (ingress["niceness"], model["niceness"]) == (0, 0)


def test_seeded_repeat_is_cached_and_identical(base_url):
    payload = {"prompt": "a cached lighthouse", "seed": 5, "width": 128, "height": 128, "output_format": "png"}
    first = httpx.post(base_url + "/predict", json=payload, timeout=60).json()
    second = httpx.post(base_url + "/predict", json=payload, timeout=60).json()
    assert not first["cached"] and second["cached"]
    assert first["image"] == second["image"]


def test_accept_header_returns_raw_image_bytes(base_url):
    response = httpx.post(
        base_url + "/predict", json={"prompt": "raw", "width": 128, "height": 128}, headers={"Accept": "image/webp"}, timeout=60
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(response.content)).format == "WEBP"
    assert int(response.headers["x-batch-size"]) >= 1


def test_concurrent_mixed_size_requests_are_batched_and_ping_stays_fast(base_url):
    sizes = [(128, 128), (128, 128), (192, 128), (128, 128), (192, 128), (128, 128), (128, 128), (192, 128)]

    def one(i):
        width, height = sizes[i]
        payload = {"prompt": f"burst {i}", "seed": 100 + i, "width": width, "height": height}
        return httpx.post(base_url + "/predict", json=payload, timeout=120)

    ping_statuses = []
    with concurrent.futures.ThreadPoolExecutor(len(sizes)) as pool:
        futures = [pool.submit(one, i) for i in range(len(sizes))]
        while not all(f.done() for f in futures):
            # The SageMaker contract: /ping answers within 2 s even while the model is busy.
            ping_statuses.append(httpx.get(base_url + "/ping", timeout=2).status_code)
            time.sleep(0.05)
        responses = [f.result() for f in futures]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert [decode(b).size for b in bodies] == sizes
    assert [b["seed"] for b in bodies] == [100 + i for i in range(len(sizes))]
    assert max(b["batch_size"] for b in bodies) > 1
    assert ping_statuses and set(ping_statuses) == {200}


@pytest.mark.parametrize(
    "kwargs, status, field",
    [
        ({"content": b"{oops", "headers": {"Content-Type": "application/json"}}, 400, None),
        ({"content": b"prompt=x", "headers": {"Content-Type": "text/plain"}}, 415, None),
        ({"content": b'{"prompt": "' + b"x" * 70000 + b'"}', "headers": {"Content-Type": "application/json"}}, 413, None),
        ({"json": {"prompt": "x", "height": 4096}}, 422, "height"),
        ({"json": {"prompt": "x", "output_format": "tiff"}}, 422, "output_format"),
        ({"json": {"prompt": "a very long prompt " * 30}}, 422, "prompt"),
    ],
)
def test_bad_input_over_real_http(base_url, kwargs, status, field):
    response = httpx.post(base_url + "/predict", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
