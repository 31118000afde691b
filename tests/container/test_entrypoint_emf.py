"""CloudWatch EMF through the container: the entrypoint, run as SageMaker runs it, writes valid
EMF lines to its stdout (what SageMaker ships to CloudWatch Logs) carrying the requests' values,
and its stderr holds the audit decision for a refused image without the prompt.

One start covers every contract metric: an answered request, a cache hit, an image the safety
checker flags (the `random` preset with seed 13 forced unsafe) and a validation error.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.container.test_entrypoint import read_log, start
from tests.serve_app.emf_documents import emf_lines, metrics_of

pytestmark = [pytest.mark.integration]
STDOUT = "stdout.log"


def wait_until_ready(process, url: str, tmp_path: Path) -> None:
    deadline = time.monotonic() + 420
    while True:
        assert process.poll() is None, read_log(tmp_path)
        try:
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, read_log(tmp_path)
        time.sleep(0.5)


def collected(tmp_path: Path, wanted: dict[str, int]) -> dict[str, list]:
    """Metric name -> [(value, document)] of the EMF documents on stdout, once each metric in
    ``wanted`` has appeared that many times (Ray forwards replica output asynchronously)."""
    deadline = time.monotonic() + 60
    while True:
        by_metric: dict[str, list] = {}
        for document in emf_lines((tmp_path / STDOUT).read_text()):
            for name, (value, _unit, _dimensions) in metrics_of(document).items():
                by_metric.setdefault(name, []).append((value, document))
        if all(len(by_metric.get(name, [])) >= count for name, count in wanted.items()) or time.monotonic() > deadline:
            return by_metric
        time.sleep(0.5)


@pytest.mark.timeout(600)
def test_container_stdout_carries_valid_emf_with_the_requests_values(tmp_path, cache_dir, tiny_model_dir, safety_preset_dir):
    port = free_port()
    env = {
        "SDTURBO_MODEL": "tiny",
        "SDTURBO_PORT": str(port),
        "SDTURBO_CACHE_DIR": cache_dir,
        "SDTURBO_ENDPOINT_NAME": "sd-turbo-test",
        "SDTURBO_VARIANT_NAME": "blue",
        "SDTURBO_SAFETY_CHECKER": "random",
        "SDTURBO_FAULT_INJECTION_UNSAFE_SEEDS": "13",
        "SDTURBO_MAX_BATCH_SIZE": "2",
    }
    process = start(env, tmp_path, stdout_file=STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, tmp_path)
        # 1. Four requests: answered, answered from the cache, flagged by the checker, invalid.
        request = {"prompt": "a lighthouse", "seed": 5, "width": 128, "height": 128}
        answered = httpx.post(url + "/invocations", json=request, timeout=300)
        cached = httpx.post(url + "/invocations", json=request, timeout=300)
        flagged = httpx.post(url + "/invocations", json={**request, "prompt": "a private prompt", "seed": 13}, timeout=300)
        invalid = httpx.post(url + "/invocations", json={**request, "width": 100}, timeout=60)
        assert answered.status_code == 200 and cached.json()["cached"] is True, answered.text
        assert flagged.status_code == 422 and flagged.json()["error"]["type"] == "image_blocked", flagged.text
        assert invalid.status_code == 422 and invalid.json()["error"]["type"] == "validation_error"

        # 2. Every "_aws" line on stdout is a whole, valid EMF document with the endpoint's dimensions.
        wanted = {"BatchSize": 2, "QueueMs": 1, "InferenceMs": 1, "EncodeMs": 1, "Images": 1, "CacheHits": 1,
                  "CacheMisses": 2, "SafetyRefusals": 1, "Rejections": 2}
        by_metric = collected(tmp_path, wanted)
        assert set(wanted) <= set(by_metric), (sorted(by_metric), read_log(tmp_path))
        documents = [document for records in by_metric.values() for _, document in records]
        assert {(d["EndpointName"], d["VariantName"]) for d in documents} == {("sd-turbo-test", "blue")}

        # 3. ... carrying the values of the requests.
        timings = answered.json()["timings_ms"]
        (image_value, image_record), = by_metric["Images"]  # one image made (the hit and the refusal made none)
        for metric, key in (("QueueMs", "queue"), ("InferenceMs", "inference"), ("EncodeMs", "encode")):
            assert image_record[metric] == pytest.approx(timings[key], abs=0.01)
        assert [v for v, _ in by_metric["BatchSize"]] == [1, 1]  # the answered and the flagged request's calls
        assert sum(v for v, _ in by_metric["CacheHits"]) == 1 and sum(v for v, _ in by_metric["CacheMisses"]) == 2
        assert sum(v for v, _ in by_metric["SafetyRefusals"]) == 1
        assert sorted(d["ErrorType"] for _, d in by_metric["Rejections"]) == ["image_blocked", "validation_error"]

        # 4. The audit trail (stderr) records the refusal, without the prompt or the image.
        audit = [json.loads(line) for line in read_log(tmp_path).splitlines() if '"sd_turbo.audit"' in line]
        refused = [a for a in audit if a.get("error_type") == "image_blocked"]
        assert len(refused) == 1 and refused[0]["decision"] == "rejected" and refused[0]["status"] == 422
        logs = read_log(tmp_path) + (tmp_path / STDOUT).read_text()
        assert "private prompt" not in logs
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001
                process.kill()
                process.wait()
