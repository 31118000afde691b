"""EMF records: valid against the specification's schema, the contract's names, the values given."""

from __future__ import annotations

import io
import json
import re
import threading

import jsonschema
import pytest

from serve_app.emf import DIMENSIONS, ERROR_DIMENSIONS, NAMESPACE, UNITS, EmfWriter
from serve_app.settings import Settings
from tests.serve_app.emf_documents import emf_lines, metrics_of, validate_emf


def writer(stream=None) -> EmfWriter:
    return EmfWriter("sd-turbo-prod", "AllTraffic", stream=stream, clock=lambda: 1764028800.123456)


def test_a_record_is_valid_emf_and_carries_the_values_given():
    document = writer().record({"QueueMs": 12.3456789, "InferenceMs": 300.5, "EncodeMs": 4.25, "Images": 1})
    validate_emf(document)
    assert document["_aws"]["Timestamp"] == 1764028800123
    assert document["EndpointName"] == "sd-turbo-prod" and document["VariantName"] == "AllTraffic"
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "SDTurbo"
    assert directive["Dimensions"] == [list(DIMENSIONS)] == [["EndpointName", "VariantName"]]
    assert metrics_of(document) == {
        "QueueMs": (12.346, "Milliseconds", [["EndpointName", "VariantName"]]),
        "InferenceMs": (300.5, "Milliseconds", [["EndpointName", "VariantName"]]),
        "EncodeMs": (4.25, "Milliseconds", [["EndpointName", "VariantName"]]),
        "Images": (1, "Count", [["EndpointName", "VariantName"]]),
    }


def test_a_model_replicas_records_are_the_endpoints_totals_and_the_models_own_series():
    from serve_app.emf import MODEL_DIMENSIONS

    emf = EmfWriter("sd-turbo-prod", "AllTraffic", clock=lambda: 1764028800.0, model="tiny-xl")
    document = emf.record({"InferenceMs": 5.0, "Images": 1})
    validate_emf(document)
    assert document["Model"] == "tiny-xl" and MODEL_DIMENSIONS == ("EndpointName", "VariantName", "Model")
    assert metrics_of(document)["Images"] == (1, "Count", [list(DIMENSIONS), list(MODEL_DIMENSIONS)])
    assert EmfWriter.from_settings(Settings.load({"endpoint_name": "e"}, environ={}), model="tiny").dimensions["Model"] == "tiny"


def test_rejections_carry_the_error_type_dimension():
    document = writer().record({"Rejections": 1}, error_type="overloaded")
    validate_emf(document)
    assert document["ErrorType"] == "overloaded"
    assert metrics_of(document) == {"Rejections": (1, "Count", [list(ERROR_DIMENSIONS)])}
    assert ERROR_DIMENSIONS == ("EndpointName", "VariantName", "ErrorType")


def test_every_contract_metric_has_a_cloudwatch_unit():
    assert set(UNITS) == {
        "BatchSize", "QueueMs", "InferenceMs", "EncodeMs", "CacheHits", "CacheMisses", "SafetyRefusals", "Images",
        "Rejections",
    }
    for name in UNITS:
        validate_emf(writer().record({name: 3}, error_type="x" if name == "Rejections" else None))


@pytest.mark.parametrize(
    "metrics, error_type",
    [({"Latency": 1.0}, None), ({"Rejections": 1}, None), ({"Images": 1}, "overloaded"), ({"QueueMs": float("nan")}, None),
     ({"Images": True}, None)],
)
def test_records_outside_the_contract_are_refused(metrics, error_type):
    with pytest.raises(ValueError):
        writer().record(metrics, error_type=error_type)


def test_the_schema_catches_broken_documents():
    good = writer().record({"BatchSize": 8})
    for broken in (
        {k: v for k, v in good.items() if k != "_aws"},
        {**good, "_aws": {**good["_aws"], "Timestamp": "now"}},
        {**good, "_aws": {**good["_aws"], "CloudWatchMetrics": [{"Namespace": "SDTurbo", "Metrics": []}]}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_emf(broken)
    for broken in ({**good, "BatchSize": "8"}, {k: v for k, v in good.items() if k != "EndpointName"}):
        with pytest.raises(AssertionError):
            validate_emf(broken)


def test_emit_writes_one_whole_line_per_record_from_many_threads():
    stream = io.StringIO()
    emf = writer(stream)

    def emit_many(i):
        for _ in range(50):
            emf.emit({"QueueMs": float(i), "Images": 1})

    threads = [threading.Thread(target=emit_many, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    documents = emf_lines(stream.getvalue())
    assert len(documents) == len(stream.getvalue().splitlines()) == 400
    assert sorted({d["QueueMs"] for d in documents}) == [float(i) for i in range(8)]


def test_emit_never_raises_into_the_caller():
    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("stdout closed")

    writer(Broken()).emit({"Images": 1})  # logged, not raised
    writer(io.StringIO()).emit({"NotAMetric": 1})


def test_settings_switch_it_on_with_the_endpoint_name():
    assert EmfWriter.from_settings(Settings.load({}, environ={})) is None
    env = {"SDTURBO_ENDPOINT_NAME": "sd-turbo-prod", "SDTURBO_VARIANT_NAME": "blue"}
    emf = EmfWriter.from_settings(Settings.load({}, environ=env))
    stream = io.StringIO()
    emf._stream = stream
    emf.emit({"CacheHits": 1})
    document = json.loads(stream.getvalue())
    assert (document["EndpointName"], document["VariantName"], document["CacheHits"]) == ("sd-turbo-prod", "blue", 1)


def test_the_terraform_dashboard_reads_the_names_this_writes():
    """The EMF contract has two sides: this module writes, infra/modules/monitoring reads."""
    from pathlib import Path

    monitoring = Path(__file__).resolve().parents[2] / "infra" / "modules" / "monitoring"
    dashboard = (monitoring / "dashboard.tf").read_text()
    variables = (monitoring / "variables.tf").read_text()
    assert re.search(r'variable "app_metric_namespace"[^}]*default\s*=\s*"' + NAMESPACE + '"', variables)
    for name in UNITS:
        assert f'"{name}"' in dashboard, f"the dashboard does not chart {name}"
    assert "{${local.app},EndpointName,VariantName,ErrorType}" in dashboard
    assert "{${local.app},EndpointName,VariantName,Model}" in dashboard
