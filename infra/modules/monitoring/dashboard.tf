################################################################################
# CloudWatch dashboard "<name>": the endpoint's own metrics, the app's EMF metrics and an
# estimated cost per 1,000 images. Every SageMaker metric on it is one SageMaker publishes for
# the endpoint's type (tests/infra/sagemaker_metrics.py lists them with their AWS pages; the
# moto tests check the dashboard against that list):
#
#   AWS/SageMaker             real-time: Invocations, InvocationsPerInstance, 4xx/5xx,
#                             InvocationModelErrors, ModelLatency (µs).
#                             async: no Invocations / InvocationsPerInstance /
#                             InvocationModelErrors; 4xx/5xx and ModelLatency, the backlog
#                             (ApproximateBacklogSize, ...PerInstance, HasBacklogWithoutCapacity,
#                             EndpointName only), TimeInBacklog, TotalProcessingTime and the
#                             failure counts (EndpointName + VariantName).
#   /aws/sagemaker/Endpoints  per-instance host metrics: CPUUtilization (instance count, below),
#                             GPUUtilization, GPUMemoryUtilization (summed over the instance's GPUs)
#   <app_metric_namespace>    what the app writes as CloudWatch Embedded Metric Format lines on
#                             stdout (SageMaker ships them to CloudWatch Logs, which extracts the
#                             metrics), dimensions EndpointName + VariantName (the container gets
#                             both as SDTURBO_ENDPOINT_NAME / SDTURBO_VARIANT_NAME), Rejections also
#                             by ErrorType, the model replicas' metrics also by Model (the served
#                             model's name: one series per model behind the endpoint).
#
# Instance count: SageMaker publishes no instance-count metric for a variant. Its host metrics
# come from every instance in service once a minute, traffic or not, so the SampleCount of
# CPUUtilization over a period, divided by the period's minutes, is the number of instances (on
# both endpoint types; an async endpoint scaled to zero shows no point).
#
# Cost per 1,000 images = price x instances x hours in the period / images x 1,000, where
# images is the app's EMF `Images` (images the model generated and encoded; cache hits and
# safety-refused images are not counted) rather than invocations: async endpoints publish no
# Invocations, and Images means the same on real-time and async endpoints. If the image emits
# no EMF, the cost line stays empty rather than wrong.
################################################################################

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name

  sm   = "AWS/SageMaker"
  host = "/aws/sagemaker/Endpoints"
  app  = var.app_metric_namespace
  dims = ["EndpointName", var.endpoint_name, "VariantName", var.variant_name]

  # Properties shared by every graph; each widget adds title, metrics and axes.
  graph = { region = local.region, view = "timeSeries", stacked = false, period = var.dashboard_period_seconds }

  instances_expression = "host_samples / (PERIOD(host_samples) / 60)"
  instance_inputs = [
    concat([local.host, "CPUUtilization"], local.dims, [{ stat = "SampleCount", id = "host_samples", visible = false }]),
  ]
  # Async endpoints publish ModelLatency with Average/Sum/Min/Max/SampleCount only.
  latency_stats = var.async ? ["Average", "Maximum"] : ["p50", "p95", "p99"]

  gpu_widgets = [
    for g in [
      { title = "GPU utilisation", metric = "GPUUtilization", threshold = local.gpu_utilization_threshold },
      { title = "GPU memory utilisation", metric = "GPUMemoryUtilization", threshold = local.gpu_memory_utilization_threshold },
      ] : merge(local.graph, {
        title = "${g.title} (% summed over ${local.gpus_text}: 0-${100 * var.gpus_per_instance})"
        metrics = [
          concat([local.host, g.metric], local.dims, [{ stat = "Average", id = "sum", label = "${g.metric} (sum over GPUs)" }]),
          [{ expression = "sum / ${var.gpus_per_instance}", label = "mean per GPU (%)", id = "mean" }],
        ]
        yAxis       = { left = { min = 0, max = 100 * var.gpus_per_instance } }
        annotations = { horizontal = [{ label = "alarm", value = g.threshold }] }
    })
  ]

  # The two shapes differ (text vs graph): encode both branches so the conditional has one type.
  cost_widget = jsondecode(var.instance_price_usd_per_hour == null ? jsonencode({
    type       = "text"
    properties = { markdown = "### Estimated cost per 1,000 images\nSet `instance_price_usd_per_hour` (the on-demand USD/hour of ${var.instance_type} in ${local.region}) to chart it." }
    }) : jsonencode({
    type = "metric"
    properties = merge(local.graph, {
      title = "Estimated cost: USD per 1,000 images (${var.instance_type} at ${var.instance_price_usd_per_hour} USD/h)"
      metrics = concat([
        [{ expression = "${var.instance_price_usd_per_hour} * (${local.instances_expression}) * PERIOD(host_samples) / 3600 / images * 1000", label = "USD per 1,000 images", id = "cost" }],
        [{ expression = "${var.instance_price_usd_per_hour} * (${local.instances_expression})", label = "USD per hour (instances x price)", id = "spend", yAxis = "right" }],
        concat([local.app, "Images"], local.dims, [{ stat = "Sum", id = "images", visible = false }]),
      ], local.instance_inputs)
      yAxis = { left = { min = 0, label = "USD / 1,000 images" }, right = { min = 0, label = "USD / hour" } }
    })
  }))

  # Widgets in reading order; laid out two per row below the header.
  widgets = concat(
    # The two branches differ in shape: encode both so the conditional has one type.
    jsondecode(var.async ? jsonencode([
      { type = "metric", properties = merge(local.graph, {
        title = "Async requests: time in backlog, total processing time (ms)"
        metrics = [
          [{ expression = "backlog_us / 1000", label = "TimeInBacklog average (ms)", id = "backlog_ms" }],
          concat([local.sm, "TimeInBacklog"], local.dims, [{ stat = "Average", id = "backlog_us", visible = false }]),
          concat([local.sm, "TotalProcessingTime"], local.dims, [{ stat = "Average", label = "TotalProcessingTime average (ms)" }]),
        ]
        yAxis = { left = { min = 0, label = "ms" } }
      }) },
      { type = "metric", properties = merge(local.graph, {
        title = "Errors (4xx, 5xx, async failures)"
        metrics = [
          for m in ["Invocation4XXErrors", "Invocation5XXErrors", "InvocationFailures", "RequestDownloadFailures", "ResponseUploadFailures", "NotificationFailures"] :
          concat([local.sm, m], local.dims, [{ stat = "Sum", label = m }])
        ]
      }) },
      ]) : jsonencode([
      { type = "metric", properties = merge(local.graph, {
        title = "Invocations"
        metrics = [
          concat([local.sm, "Invocations"], local.dims, [{ stat = "Sum", label = "Invocations" }]),
          concat([local.sm, "InvocationsPerInstance"], local.dims, [{ stat = "Sum", label = "Invocations per instance" }]),
        ]
      }) },
      { type = "metric", properties = merge(local.graph, {
        title = "Errors (4xx, 5xx, model errors)"
        metrics = [
          for m in ["Invocation4XXErrors", "Invocation5XXErrors", "InvocationModelErrors"] :
          concat([local.sm, m], local.dims, [{ stat = "Sum", label = m }])
        ]
      }) },
    ])),
    [
      { type = "metric", properties = merge(local.graph, {
        title = "ModelLatency ${join(" / ", local.latency_stats)} (ms)"
        metrics = concat(
          [for i, p in local.latency_stats : [{ expression = "lat${i} / 1000", label = p, id = "lat${i}ms" }]],
          [for i, p in local.latency_stats : concat([local.sm, "ModelLatency"], local.dims, [{ stat = p, id = "lat${i}", visible = false }])],
        )
        yAxis       = { left = { min = 0, label = "ms" } }
        annotations = { horizontal = [{ label = "p90 rollback alarm", value = var.model_latency_threshold_ms }] }
      }) },
      { type = "metric", properties = merge(local.graph, {
        title   = "Instances in service"
        metrics = concat([[{ expression = local.instances_expression, label = "instances (CPUUtilization samples per minute)", id = "instances" }]], local.instance_inputs)
        yAxis   = { left = { min = 0 } }
        annotations = { horizontal = [
          for a in [{ label = "min capacity", value = var.min_capacity }, { label = "max capacity", value = var.max_capacity }] : a if a.value != null
        ] }
      }) },
    ],
    [for w in local.gpu_widgets : { type = "metric", properties = w } if local.has_gpus],
    var.async ? [{ type = "metric", properties = merge(local.graph, {
      title = "Async backlog"
      metrics = [
        for m in ["ApproximateBacklogSize", "ApproximateBacklogSizePerInstance", "HasBacklogWithoutCapacity"] :
        [local.sm, m, "EndpointName", var.endpoint_name, { stat = "Average", label = m }]
      ]
    }) }] : [],
    [
      { type = "metric", properties = merge(local.graph, {
        title = "App: images per pipeline call (BatchSize)"
        metrics = [
          for s in ["Average", "Maximum"] : concat([local.app, "BatchSize"], local.dims, [{ stat = s, label = "BatchSize ${lower(s)}" }])
        ]
        yAxis = { left = { min = 0 } }
      }) },
      { type = "metric", properties = merge(local.graph, {
        title = "App: queue / inference / encode time (ms)"
        metrics = [
          for ms in setproduct(["QueueMs", "InferenceMs", "EncodeMs"], ["p50", "p95"]) :
          concat([local.app, ms[0]], local.dims, [{ stat = ms[1], label = "${ms[0]} ${ms[1]}" }])
        ]
        yAxis = { left = { min = 0, label = "ms" } }
      }) },
      { type = "metric", properties = merge(local.graph, {
        title = "App: images, cache, safety refusals"
        metrics = [
          for m in ["Images", "CacheHits", "CacheMisses", "SafetyRefusals"] : concat([local.app, m], local.dims, [{ stat = "Sum", label = m }])
        ]
      }) },
      { type = "metric", properties = merge(local.graph, {
        title = "App: images and inference time (p50, ms) by model"
        metrics = [
          for m in [["Images", "Sum", "images"], ["InferenceMs", "p50", "inference"]] : [{
            expression = "SEARCH('{${local.app},EndpointName,VariantName,Model} MetricName=\"${m[0]}\" EndpointName=\"${var.endpoint_name}\" VariantName=\"${var.variant_name}\"', '${m[1]}', ${var.dashboard_period_seconds})"
            label      = m[0]
            id         = m[2]
          }]
        ]
      }) },
      { type = "metric", properties = merge(local.graph, {
        title = "App: rejections by error type"
        metrics = [[{
          expression = "SEARCH('{${local.app},EndpointName,VariantName,ErrorType} MetricName=\"Rejections\" EndpointName=\"${var.endpoint_name}\" VariantName=\"${var.variant_name}\"', 'Sum', ${var.dashboard_period_seconds})"
          label      = "Rejections"
          id         = "rejections"
        }]]
      }) },
      local.cost_widget,
    ],
  )

  header = {
    type   = "text"
    x      = 0
    y      = 0
    width  = 24
    height = 2
    properties = {
      markdown = "## SD-Turbo endpoint `${var.endpoint_name}` (variant `${var.variant_name}`, ${var.async ? "async" : "real-time"}, ${var.instance_type}: ${var.gpus_per_instance} GPU${var.gpus_per_instance == 1 ? "" : "s"} per instance)\nGPU utilisation and memory are summed over an instance's GPUs (0-${100 * var.gpus_per_instance} %). App metrics come from the container's EMF log lines (namespace `${local.app}`). The cost is an estimate: instances x price x time / images."
    }
  }

  dashboard_body = jsonencode({
    widgets = concat([local.header], [
      for i, w in local.widgets : merge(w, { x = (i % 2) * 12, y = 2 + floor(i / 2) * 6, width = 12, height = 6 })
    ])
  })
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = local.dashboard_body
}
