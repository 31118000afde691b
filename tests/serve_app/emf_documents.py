"""Checking CloudWatch EMF documents: the JSON schema next to this file plus the reference rules
of AWS's specification that a JSON schema cannot express."""

from __future__ import annotations

import json
from numbers import Real
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = json.loads((Path(__file__).with_name("emf.schema.json")).read_text())
MAX_EVENT_BYTES = 256 * 1024  # a CloudWatch Logs event


def validate_emf(document: dict[str, Any]) -> None:
    """Raise if ``document`` is not a valid EMF document."""
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert len(json.dumps(document).encode()) <= MAX_EVENT_BYTES
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(document.get(key), str), f"dimension {key!r} needs a string root member"
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert len(values) <= 100, f"{metric['Name']}: more than 100 values"
            assert all(isinstance(v, Real) and not isinstance(v, bool) for v in values), (
                f"metric {metric['Name']!r} needs a numeric root member, got {value!r}"
            )


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF documents among ``text``'s lines, each validated; other lines are ignored, but a
    line that mentions ``_aws`` must be a whole JSON document (no prefix, no suffix)."""
    documents = []
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)  # fails on anything around the document
        validate_emf(document)
        documents.append(document)
    return documents


def metrics_of(document: dict[str, Any]) -> dict[str, Any]:
    """Metric name -> (value, unit, dimension names) of one document."""
    found = {}
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for metric in directive["Metrics"]:
            found[metric["Name"]] = (document[metric["Name"]], metric.get("Unit"), directive["Dimensions"])
    return found
