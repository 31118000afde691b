"""The soak tool: its arithmetic and process reading, then a 2.5-minute soak of the live app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from loadtest.ports import free_port
from loadtest.soak import (
    Bounds,
    LoadMix,
    ProcessSample,
    Sample,
    analyse,
    object_store_bytes,
    process_name,
    process_tree,
    sample_process,
    slope,
    warmed_up,
)
from tests.live_app import running_serve_app
from tests.loadtest.loadtest_helpers import REPO_ROOT, subprocess_env

MIB = 1024 * 1024
BOUNDS = Bounds(rss_mib_per_1k=8, rss_growth_mib=256, fd_growth=16, thread_growth=16, object_store_growth_mib=16)


def test_slope_is_the_least_squares_fit():
    assert slope([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(2.0)
    assert slope([0, 1, 2], [5, 5, 5]) == 0.0
    assert slope([1], [3]) == 0.0 and slope([2, 2], [1, 9]) == 0.0


def test_the_baseline_waits_for_both_the_warm_up_time_and_its_requests():
    assert warmed_up(elapsed_s=30, requests=0, warmup_s=30, warmup_requests=0)
    assert not warmed_up(elapsed_s=29.9, requests=5000, warmup_s=30, warmup_requests=2000)
    assert not warmed_up(elapsed_s=60, requests=1999, warmup_s=30, warmup_requests=2000)
    assert warmed_up(elapsed_s=60, requests=2000, warmup_s=30, warmup_requests=2000)


def test_object_store_bytes_sums_ray_gauge_without_worker_heap():
    text = "\n".join(
        [
            "# TYPE ray_object_store_memory gauge",
            'ray_object_store_memory{Location="MMAP_SHM",ObjectState="SEALED",SessionName="s"} 1048576.0',
            'ray_object_store_memory{Location="SPILLED",SessionName="s"} 2048.0',
            'ray_object_store_memory{Location="WORKER_HEAP",SessionName="s"} 999.0',
            'ray_object_store_available_memory{SessionName="s"} 5.0',
        ]
    )
    assert object_store_bytes(text) == 1048576 + 2048
    assert object_store_bytes("# nothing yet\n") is None


def test_process_tree_finds_descendants_and_leaves_out_excluded(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        assert os.getpid() in tree and child.pid in tree
        assert child.pid not in process_tree(os.getpid(), exclude=[child.pid])
        sample = sample_process(child.pid)
        assert sample is not None and sample.rss_bytes > 0 and sample.fds >= 3 and sample.threads >= 1
        assert process_name(child.pid).startswith("python")
    finally:
        child.kill()
        child.wait()
    assert sample_process(child.pid) is None  # gone


def _samples(rss_mib: list[float], fds: list[int], store: list[int | None]) -> list[Sample]:
    return [
        Sample(at_s=i * 10.0, requests=i * 500, processes=[ProcessSample(7, "ray::ServeReplica:x:SDTurboModel", int(r * MIB), f, 20)],
               object_store_bytes=s)
        for i, (r, f, s) in enumerate(zip(rss_mib, fds, store))
    ]


def test_flat_figures_pass_and_growth_beyond_each_bound_fails():
    flat = _samples([300, 301, 300, 302, 301], [40, 41, 40, 40, 41], [0, 4096, 0, 0, 0])
    reports, totals, failures = analyse(flat, BOUNDS)
    assert failures == [] and reports[0].rss_mib == (300, 301) and totals["rss_mib"] == (300.0, 301.0)

    leaking = _samples([300, 320, 340, 360, 380], [40, 40, 40, 40, 40], [0, 0, 0, 0, 0])  # 40 MiB per 1k
    _, _, failures = analyse(leaking, BOUNDS)
    assert len(failures) == 1 and "40.00 MiB per 1,000 requests" in failures[0]

    fds = _samples([300] * 5, [40, 45, 50, 55, 60], [0] * 5)
    assert "open descriptors 40 -> 60" in analyse(fds, BOUNDS)[2][0]

    store = _samples([300] * 5, [40] * 5, [0, 0, 0, 0, 64 * MIB])
    assert "object store grew 64.0 MiB" in analyse(store, BOUNDS)[2][0]

    vanished = flat[:-1] + [Sample(50.0, 2500, [], 0)]
    assert "vanished" in analyse(vanished, BOUNDS)[2][0]


def test_load_mix_repeats_some_requests_and_cancels_about_a_tenth():
    import random

    mix = LoadMix([(64, 64), (128, 128)])
    rng = random.Random(1)
    drawn = [mix.next(rng) for _ in range(4000)]
    repeated = {json.dumps(body, sort_keys=True) for body in mix._repeated}
    repeats = sum(json.dumps(body, sort_keys=True) in repeated for body, _ in drawn)
    assert 0.25 < repeats / len(drawn) < 0.35
    new = [body for body, _ in drawn if json.dumps(body, sort_keys=True) not in repeated]
    assert 0.4 < sum("seed" in body for body in new) / len(new) < 0.6  # half cached, half never
    assert 0.08 < sum(cancel for _, cancel in drawn) / len(drawn) < 0.12
    assert {body["output_format"] for body, _ in drawn} == {"jpeg", "png", "webp"}


@pytest.mark.integration
@pytest.mark.timeout(480)
def test_a_soak_of_the_live_app_finds_no_error_and_no_growth(cache_dir, tmp_path):
    """2.5 minutes of mixed load on the live app (tiny preset): no failed request, no process of
    the cluster growing beyond the tool's default bounds, Ray's object store back where it was."""
    metrics_port = free_port()
    # A small result cache: filled during the warm-up, evicting while measured. (At its default
    # 64 MiB it fills for the first ~5,000 requests, which a 2.5-minute run would read as growth:
    # docs/benchmarks.md section 7.)
    overrides = {"max_batch_size": "4", "cache_max_bytes": str(2 * 1024 * 1024)}
    with running_serve_app(overrides, cache_dir, metrics_port=metrics_port) as url:
        started = time.monotonic()
        result_file = tmp_path / "soak.json"
        soak = subprocess.run(
            [
                sys.executable, "-m", "loadtest.soak", "--url", url, "--pid", str(os.getpid()),
                "--metrics-url", f"http://127.0.0.1:{metrics_port}/metrics",
                # The baseline after 30 s and 2,000 requests (alone, the 2-core machine answers
                # about 40 a second; beside another test file's load, fewer): the growth of the
                # first thousand requests is the server settling, not a leak (loadtest/soak.py).
                "--duration-s", "150", "--warmup-s", "30", "--warmup-requests", "2000", "--json", str(result_file),
            ],
            cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=400,
        )
        print(soak.stdout[-6000:])
        assert soak.returncode == 0, soak.stdout[-6000:] + soak.stderr[-3000:]
    result = json.loads(result_file.read_text())
    assert time.monotonic() - started >= 150
    requests = result["requests"]
    assert requests["errors"] == 0 and requests["ok"] > 50, requests
    assert requests["cancelled"] > 0 and requests["cached"] > 0, requests
    names = {p["name"] for p in result["processes"]}
    # The cluster's processes are all measured: both replicas, the controller, the raylet, the GCS.
    assert any("SDTurboModel" in n for n in names) and any("Ingress" in n for n in names), names
    assert any("ServeController" in n for n in names) and {"raylet", "gcs_server"} <= names, names
    assert result["totals"]["object_store"]["end_bytes"] is not None
