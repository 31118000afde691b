"""The CloudWatch metrics SageMaker publishes for an endpoint, by endpoint type, with their pages.

Each entry: metric name -> the dimension sets it is published with. A dashboard (or alarm) that
names a metric or a dimension set missing here stays empty on AWS, which is what the moto tests
check the stack's dashboard against.
"""

from __future__ import annotations

VARIANT = frozenset({"EndpointName", "VariantName"})
ENDPOINT = frozenset({"EndpointName"})

INVOCATION_METRICS_PAGE = "https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html#cloudwatch-metrics-endpoint-invocation"
HOST_METRICS_PAGE = "https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html#cloudwatch-metrics-jobs"
ASYNC_METRICS_PAGE = "https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-monitor.html"
ASYNC_SCALING_PAGE = "https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html"

# /aws/sagemaker/Endpoints: per-instance host metrics, for every endpoint type (HOST_METRICS_PAGE;
# the async page says async endpoints include them).
HOST = {
    m: {VARIANT}
    for m in ("CPUUtilization", "MemoryUtilization", "DiskUtilization", "GPUUtilization", "GPUMemoryUtilization")
}

PUBLISHED = {
    # Real-time endpoints: AWS/SageMaker invocation metrics (INVOCATION_METRICS_PAGE).
    "realtime": {
        "AWS/SageMaker": {
            m: {VARIANT}
            for m in (
                "Invocations", "InvocationsPerInstance", "Invocation4XXErrors", "Invocation5XXErrors",
                "InvocationModelErrors", "ModelLatency", "OverheadLatency", "ModelSetupTime",
            )
        },
        "/aws/sagemaker/Endpoints": HOST,
    },
    # Async endpoints (ASYNC_METRICS_PAGE: "an exhaustive list ... Any metric not listed below is not
    # published", naming Invocations, InvocationsPerInstance and OverheadLatency among the absent):
    # the common 4xx/5xx/ModelLatency, the queue metrics by EndpointName, the per-variant ones, and
    # HasBacklogWithoutCapacity (ASYNC_SCALING_PAGE, the scale-from-zero metric).
    "async": {
        "AWS/SageMaker": {
            **{m: {VARIANT} for m in ("Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency")},
            **{m: {ENDPOINT} for m in (
                "ApproximateBacklogSize", "ApproximateBacklogSizePerInstance", "ApproximateAgeOfOldestRequest",
                "HasBacklogWithoutCapacity",
            )},
            **{m: {VARIANT} for m in (
                "RequestDownloadFailures", "ResponseUploadFailures", "NotificationFailures", "RequestDownloadLatency",
                "ResponseUploadLatency", "ExpiredRequests", "InvocationFailures", "TimeInBacklog", "TotalProcessingTime",
            )},
        },
        "/aws/sagemaker/Endpoints": HOST,
    },
}


def dashboard_metrics(widgets: list[dict]) -> list[tuple[str, str, frozenset]]:
    """(namespace, metric, dimension names) of every metric a dashboard's widgets chart."""
    found = []
    for widget in widgets:
        for metric in widget.get("properties", {}).get("metrics", []):
            if not metric or not isinstance(metric[0], str):
                continue  # a metric-math expression
            fields = [f for f in metric if isinstance(f, str)]
            namespace, name, dims = fields[0], fields[1], fields[2:]
            found.append((namespace, name, frozenset(dims[0::2])))
    return found


def unpublished(widgets: list[dict], endpoint_type: str, app_namespace: str = "SDTurbo") -> list[str]:
    """Dashboard metrics SageMaker does not publish for ``endpoint_type`` (the app's own EMF namespace excepted)."""
    table = PUBLISHED[endpoint_type]
    problems = []
    for namespace, name, dims in dashboard_metrics(widgets):
        if namespace == app_namespace:
            continue
        if name not in table.get(namespace, {}):
            problems.append(f"{namespace} {name}: not published for {endpoint_type} endpoints")
        elif dims not in table[namespace][name]:
            problems.append(f"{namespace} {name}: not published with dimensions {sorted(dims)}")
    return problems
