"""CloudWatch Embedded Metric Format (EMF): the service's metrics as JSON lines on stdout.

SageMaker ships a container's stdout to CloudWatch Logs (``/aws/sagemaker/Endpoints/<name>``),
and CloudWatch Logs turns every log event that is an EMF document into metric data points, so
the metrics reach CloudWatch without an agent or a PutMetricData call. Each record is one line:

    {"_aws": {"Timestamp": 1764028800000, "CloudWatchMetrics": [{"Namespace": "SDTurbo",
      "Dimensions": [["EndpointName", "VariantName"]], "Metrics": [{"Name": "QueueMs",
      "Unit": "Milliseconds"}, ...]}]}, "EndpointName": "sd-turbo", "VariantName": "AllTraffic",
     "QueueMs": 12.5, ...}

The namespace, dimensions and metric names are a contract with the Terraform dashboard
(``infra/``): change them together. ``Rejections`` carries an extra ``ErrorType`` dimension. A
model replica's records carry its served model's name as ``Model`` and are published twice: under
the endpoint's dimensions (the totals the dashboard and alarms read, whatever the models) and with
``Model`` added (each model's own series).

A log event must be the JSON document and nothing else, so inside Ray the forwarded worker
output must not get Ray's ``(pid=...)`` prefix and must not be deduplicated across replicas:
``RAY_LOG_FORWARDING_ENV`` is what the container entrypoint sets before Ray starts.

Pure Python and synchronous (one locked write and flush per record): no Ray, no torch, no AWS SDK.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

logger = logging.getLogger("sd_turbo.emf")

NAMESPACE = "SDTurbo"
DIMENSIONS = ("EndpointName", "VariantName")
ERROR_DIMENSIONS = (*DIMENSIONS, "ErrorType")
MODEL_DIMENSIONS = (*DIMENSIONS, "Model")
# Every metric the service emits, with its CloudWatch unit.
UNITS: dict[str, str] = {
    "BatchSize": "Count",  # images per pipeline call, one value per call
    "QueueMs": "Milliseconds",  # per request: hand-over to the pipeline call starting
    "InferenceMs": "Milliseconds",  # per request: the pipeline call that made its image
    "EncodeMs": "Milliseconds",  # per request: image encoding
    "Images": "Count",  # images generated and encoded (cache hits and refusals excluded)
    "CacheHits": "Count",
    "CacheMisses": "Count",
    "SafetyRefusals": "Count",  # images withheld because the safety checker flagged them
    "Rejections": "Count",  # refused requests, by ErrorType
}
# Metrics published under ERROR_DIMENSIONS instead of DIMENSIONS.
ERROR_METRICS = frozenset({"Rejections"})

# Environment for the process that starts Ray (the driver prints the replicas' output).
RAY_LOG_FORWARDING_ENV = {
    # Lines from replicas reach the driver's stdout as they were written, without "(pid=...) ".
    "RAY_DISABLE_WORKER_LOG_PREFIX": "1",
    # Ray collapses similar lines from different processes into "[repeated Nx]": that would drop
    # other replicas' records (and their values) on the floor.
    "RAY_DEDUP_LOGS": "0",
}


class EmfWriter:
    """Writes one EMF document per call to ``stream`` (default: the process's current stdout)."""

    def __init__(
        self,
        endpoint_name: str,
        variant_name: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        model: str | None = None,
    ):
        if not endpoint_name or not variant_name:
            raise ValueError("EMF records need an endpoint name and a variant name")
        self.dimensions = {"EndpointName": endpoint_name, "VariantName": variant_name}
        if model:
            self.dimensions["Model"] = model
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, model: str | None = None) -> EmfWriter | None:
        """A writer when ``endpoint_name`` is set (Terraform sets it on SageMaker), else None;
        ``model``: the served model a model replica's records are about."""
        if not settings.endpoint_name:
            return None
        return cls(settings.endpoint_name, settings.variant_name, model=model)

    def record(self, metrics: Mapping[str, float], error_type: str | None = None) -> dict[str, Any]:
        """The EMF document for ``metrics`` (name -> value) observed now."""
        unknown = sorted(set(metrics) - set(UNITS))
        if unknown:
            raise ValueError(f"not EMF metrics of this service: {unknown}")
        if (error_type is None) == bool(set(metrics) & ERROR_METRICS):
            raise ValueError(f"{sorted(ERROR_METRICS)} need an error_type, and only they take one")
        directives = []
        for dimensions, names in (
            (DIMENSIONS, [n for n in metrics if n not in ERROR_METRICS]),
            (ERROR_DIMENSIONS, [n for n in metrics if n in ERROR_METRICS]),
        ):
            if names:
                # A model's records: the endpoint's totals and the model's own series.
                both = dimensions == DIMENSIONS and "Model" in self.dimensions
                directives.append(
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [list(dimensions), list(MODEL_DIMENSIONS)] if both else [list(dimensions)],
                        "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in names],
                    }
                )
        document: dict[str, Any] = {
            "_aws": {"Timestamp": int(self._clock() * 1000), "CloudWatchMetrics": directives},
            **self.dimensions,
        }
        if error_type is not None:
            document["ErrorType"] = error_type
        document.update({name: _number(value) for name, value in metrics.items()})
        return document

    def emit(self, metrics: Mapping[str, float], error_type: str | None = None) -> None:
        """Write the record; a metrics failure is logged, never raised into a request."""
        try:
            line = json.dumps(self.record(metrics, error_type), separators=(",", ":"), allow_nan=False) + "\n"
            stream = self._stream or sys.stdout
            # One write and a flush per record: a line never interleaves with another thread's,
            # and it leaves the process at once (stdout into a file or pipe is block-buffered).
            with self._lock:
                stream.write(line)
                stream.flush()
        except Exception:  # noqa: BLE001
            logger.exception("could not write an EMF record for %s", sorted(metrics))


def _number(value: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"EMF metric values are finite numbers, got {value!r}")
    # Milliseconds to the microsecond: enough for CloudWatch, short lines in the log.
    return value if isinstance(value, int) else round(value, 3)
