"""The service's metric events: Prometheus as before, and one EMF record per event with its values."""

from __future__ import annotations

import io

from serve_app.batching import PipelineRun
from serve_app.device_loop import CallRecord
from serve_app.emf import EmfWriter
from serve_app.metrics import IngressMetrics, ModelMetrics
from tests.serve_app.emf_documents import emf_lines, metrics_of


def emf_stream():
    stream = io.StringIO()
    return EmfWriter("ep", "AllTraffic", stream=stream), stream


def test_model_events_become_emf_records_with_their_values():
    emf, stream = emf_stream()
    metrics = ModelMetrics(emf=emf)
    # One BatchSize value per pipeline run, not per image; a call's outcome and waits add no EMF line.
    metrics.pipeline_run(PipelineRun(6, 210.5))
    metrics.pipeline_call(CallRecord(6, "completed", 210.5, waits_ms=(1.0,) * 6))
    metrics.image_done(queue_ms=12.25, inference_ms=210.5, encode_ms=3.5)
    metrics.safety_refused()
    batch, image, refusal = emf_lines(stream.getvalue())
    assert {k: v[0] for k, v in metrics_of(batch).items()} == {"BatchSize": 6}
    assert {k: v[0] for k, v in metrics_of(image).items()} == {
        "QueueMs": 12.25, "InferenceMs": 210.5, "EncodeMs": 3.5, "Images": 1
    }
    assert {k: v[0] for k, v in metrics_of(refusal).items()} == {"SafetyRefusals": 1}


def test_ingress_events_become_emf_records():
    emf, stream = emf_stream()
    metrics = IngressMetrics(emf=emf)
    metrics.cache_hit()
    metrics.cache_miss()
    metrics.rejected("image_blocked")
    hit, miss, rejection = emf_lines(stream.getvalue())
    assert metrics_of(hit)["CacheHits"][0] == 1 and metrics_of(miss)["CacheMisses"][0] == 1
    assert metrics_of(rejection)["Rejections"][0] == 1 and rejection["ErrorType"] == "image_blocked"


def test_without_an_endpoint_name_only_prometheus_counts(capsys):
    metrics = ModelMetrics()
    ingress = IngressMetrics()
    # No EMF writer: nothing written (EMF goes to stdout), nothing raised ...
    metrics.pipeline_run(PipelineRun(2, 1.0))
    metrics.pipeline_call(CallRecord(2, "completed", 1.0, waits_ms=(0.5, 0.25)))
    metrics.image_done(queue_ms=1.0, inference_ms=1.0, encode_ms=1.0)
    metrics.safety_refused()
    ingress.cache_miss()
    ingress.rejected("overloaded")
    assert metrics.emf is None and ingress.emf is None
    assert capsys.readouterr() == ("", "")
    # ... and still counted: one call, one pipeline run of two images.
    snapshot = metrics.snapshot()
    assert snapshot["calls"] == {"completed": 1} and snapshot["batch_sizes"] == {2: 1}


def test_a_calls_waits_are_its_requests_batching_delays_and_runs_count_batch_sizes():
    metrics = ModelMetrics()
    metrics.pipeline_call(CallRecord(2, "completed", 5.0, waits_ms=(0.5, 0.25)))
    # An out-of-memory split: one device-loop call, two pipeline runs.
    metrics.pipeline_run(PipelineRun(1, 2.0))
    metrics.pipeline_run(PipelineRun(1, 2.5))
    snapshot = metrics.snapshot()
    assert snapshot["recent_batching_delays_ms"] == [0.5, 0.25]
    assert snapshot["calls"] == {"completed": 1} and snapshot["batch_sizes"] == {1: 2}
