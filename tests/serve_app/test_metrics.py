"""The service's metric events: Prometheus as before, and one EMF record per event with its values."""

from __future__ import annotations

import io

from serve_app.emf import EmfWriter
from serve_app.metrics import IngressMetrics, ModelMetrics
from tests.serve_app.emf_documents import emf_lines, metrics_of


def emf_stream():
    stream = io.StringIO()
    return EmfWriter("ep", "AllTraffic", stream=stream), stream


def test_model_events_become_emf_records_with_their_values():
    emf, stream = emf_stream()
    metrics = ModelMetrics(emf=emf)
    metrics.pipeline_call(batch_size=6, inference_ms=210.5)
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


def test_without_an_endpoint_name_only_prometheus_counts():
    metrics = ModelMetrics()
    metrics.pipeline_call(batch_size=2, inference_ms=1.0)  # no EMF writer: nothing written, nothing raised
    IngressMetrics().rejected("overloaded")
