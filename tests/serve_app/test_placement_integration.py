"""One model replica per GPU, proved without GPUs: Ray accepts declared GPUs on a CPU-only
machine, assigns each replica its own GPU id (CUDA_VISIBLE_DEVICES), and the replicas, finding
no CUDA, run on CPU. The replica count comes from the Ray cluster's resources, not from torch."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.live_app import running_serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def base_url(cache_dir, tiny_model_dir):
    # Two declared GPUs, two CPUs: the ingress takes 0.5, the two replicas 0.75 each.
    overrides = {"max_batch_size": "2", "batch_wait_timeout_s": "0.05", "warmup": "false"}
    with running_serve_app(overrides, cache_dir, num_cpus=2, num_gpus=2) as url:
        yield url


def replica_stats(expected: int) -> dict[str, dict]:
    """stats() of each model replica, by actor name (calls are routed to either replica)."""
    from ray import serve

    handle = serve.get_deployment_handle("SDTurboModel", app_name="sd-turbo")
    seen: dict[str, dict] = {}
    for _ in range(60):
        stats = handle.stats.remote().result(timeout_s=30)
        seen[stats["actor_name"]] = stats
        if len(seen) == expected:
            break
    return seen


def test_auto_gives_each_declared_gpu_its_own_replica_and_both_serve(base_url):
    # 1. Traffic: more concurrent requests than one replica holds (2 x max_batch_size).
    def one(i):
        payload = {"prompt": f"placement {i}", "seed": i, "width": 64, "height": 64}
        return httpx.post(base_url + "/predict", json=payload, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(one, range(12)))
    assert [r.status_code for r in responses] == [200] * 12, [r.text for r in responses]

    # 2. Two replicas, each pinned to its own GPU id, each having generated images, on CPU.
    stats = list(replica_stats(expected=2).values())
    assert len(stats) == 2
    assert sorted(s["cuda_visible_devices"] for s in stats) == ["0", "1"]
    # Ray's assignment (ints, or strings when CUDA_VISIBLE_DEVICES was preset): one GPU each.
    assert sorted([str(gpu) for gpu in s["gpu_ids"]] for s in stats) == [["0"], ["1"]]
    assert all(s["device"] == "cpu" for s in stats)
    # Images each replica generated: its pipeline calls by size (warm-up is off).
    images = [sum(int(size) * calls for size, calls in s["batch_sizes"].items()) for s in stats]
    assert all(count > 0 for count in images) and sum(images) == 12, images


def test_more_replicas_than_declared_gpus_is_refused_before_anything_starts(base_url, cache_dir):
    from serve_app.app import build_app
    from serve_app.cluster import DoesNotFit

    with pytest.raises(DoesNotFit, match=r"num_replicas=3 needs 3 GPUs \(one per model replica\); this Ray cluster has 2"):
        build_app({"model": "tiny", "cache_dir": cache_dir, "num_replicas": "3"})
