# terraform test of modules/monitoring (mocked AWS provider): alarms scaled to the GPUs of the
# instance type, rollback alarms, and the dashboard's widgets (endpoint metrics, the app's EMF
# metrics, the cost per 1,000 images).

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name                 = "sd-turbo"
  endpoint_name        = "sd-turbo"
  endpoint_config_name = "sd-turbo-20261204000000000000000001"
  variant_name         = "AllTraffic"
  instance_type        = "ml.g5.12xlarge"
  gpus_per_instance    = 4
  alarm_topic_arn      = "arn:aws:sns:us-east-1:123456789012:sd-turbo-alarms"

  instance_price_usd_per_hour = 7.5
  min_capacity                = 1
  max_capacity                = 3
}

run "four_gpus_realtime" {
  command = apply

  module {
    source = "./modules/monitoring"
  }

  # Alarms: CloudWatch sums GPUUtilization / GPUMemoryUtilization over the 4 GPUs (0-400 %).
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["gpu-utilization"].threshold == 360 && aws_cloudwatch_metric_alarm.this["gpu-memory-utilization"].threshold == 360
    error_message = "a 90 % per-GPU threshold on 4 GPUs is 360"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["gpu-utilization"].namespace == "/aws/sagemaker/Endpoints" && aws_cloudwatch_metric_alarm.this["gpu-utilization"].metric_name == "GPUUtilization" && aws_cloudwatch_metric_alarm.this["gpu-utilization"].dimensions == tomap({ EndpointName = "sd-turbo", VariantName = "AllTraffic" })
    error_message = "GPU alarm must watch /aws/sagemaker/Endpoints GPUUtilization of the variant"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_metric_alarm.this["gpu-utilization"].alarm_description, "360% summed over the 4 GPUs of ml.g5.12xlarge")
    error_message = "the alarm description must explain the scaled threshold"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["model-latency-p90"].threshold == 3000000 && aws_cloudwatch_metric_alarm.this["model-latency-p90"].extended_statistic == "p90"
    error_message = "latency alarm must be p90 with the threshold converted to microseconds"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["invocation-5xx-errors"].namespace == "AWS/SageMaker" && aws_cloudwatch_metric_alarm.this["invocation-5xx-errors"].statistic == "Sum" && aws_cloudwatch_metric_alarm.this["invocation-5xx-errors"].alarm_actions == toset([var.alarm_topic_arn])
    error_message = "5xx alarm wrong"
  }
  assert {
    condition     = toset(output.rollback_alarm_names) == toset(["sd-turbo-new-fleet-5xx-rate", "sd-turbo-new-fleet-latency-p90"])
    error_message = "rollback alarms must be the new fleet's 5xx rate and latency, never model errors (client 4xx count there)"
  }
  assert {
    condition = alltrue([
      for k in ["new-fleet-5xx-rate", "new-fleet-latency-p90"] :
      aws_cloudwatch_metric_alarm.this[k].dimensions == tomap({ EndpointName = "sd-turbo", VariantName = "AllTraffic", EndpointConfigName = "sd-turbo-20261204000000000000000001" })
    ])
    error_message = "rollback alarms watch the fleet of the configuration being deployed (EndpointConfigName)"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["new-fleet-5xx-rate"].metric_name == "Invocation5XXErrors" && aws_cloudwatch_metric_alarm.this["new-fleet-5xx-rate"].statistic == "Average" && aws_cloudwatch_metric_alarm.this["new-fleet-5xx-rate"].threshold == 0.01
    error_message = "the 5xx rollback alarm is a rate (Average of the 0/1 metric), 1 % by default"
  }

  # Dashboard.
  assert {
    condition     = aws_cloudwatch_dashboard.this[0].dashboard_name == "sd-turbo"
    error_message = "dashboard name"
  }
  assert {
    condition = alltrue([for t in [
      "Invocations", "Errors (4xx, 5xx, model errors)", "ModelLatency p50 / p95 / p99 (ms)", "Instances in service",
      "GPU utilisation (% summed over 4 GPUs of ml.g5.12xlarge: 0-400)", "GPU memory utilisation (% summed over 4 GPUs of ml.g5.12xlarge: 0-400)",
      "App: images per pipeline call (BatchSize)", "App: queue / inference / encode time (ms)", "App: images, cache, safety refusals",
      "App: rejections by error type", "Estimated cost: USD per 1,000 images (ml.g5.12xlarge at 7.5 USD/h)",
    ] : contains([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : try(w.properties.title, "")], t)])
    error_message = "the dashboard must show invocations, errors, latency, instances, GPU, the app's metrics and the cost"
  }
  assert {
    condition = alltrue([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.yAxis.left.max == 400 && w.properties.annotations.horizontal[0].value == 360
      if startswith(try(w.properties.title, ""), "GPU ")
    ])
    error_message = "the GPU graphs must span 0-400 % with the alarm line at 360"
  }
  assert {
    # Every EMF metric of the app's contract (namespace SDTurbo, dimensions EndpointName + VariantName).
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[1] if try(m[0] == "SDTurbo" && slice(m, 2, 6) == ["EndpointName", "sd-turbo", "VariantName", "AllTraffic"], false)
      ]
    ])) == toset(["BatchSize", "QueueMs", "InferenceMs", "EncodeMs", "CacheHits", "CacheMisses", "SafetyRefusals", "Images"])
    error_message = "the dashboard must chart the app's EMF metrics with the endpoint and variant dimensions"
  }
  assert {
    condition = anytrue([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : anytrue([
        for m in try(w.properties.metrics, []) : startswith(try(m[0].expression, ""), "SEARCH('{SDTurbo,EndpointName,VariantName,ErrorType} MetricName=\"Rejections\" EndpointName=\"sd-turbo\" VariantName=\"AllTraffic\"'")
      ])
    ])
    error_message = "rejections must be charted by ErrorType (SEARCH over the extra dimension)"
  }
  assert {
    condition = anytrue([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : anytrue([
        for m in try(w.properties.metrics, []) : try(m[0].expression, "") == "7.5 * (host_samples / (PERIOD(host_samples) / 60)) * PERIOD(host_samples) / 3600 / images * 1000"
      ])
    ])
    error_message = "cost per 1,000 images = price x instances x hours / images x 1000"
  }
  assert {
    condition = alltrue([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.x + w.width <= 24 && w.width > 0 && w.height > 0
    ])
    error_message = "every widget must fit the 24-column grid"
  }
}

run "cpu_instance_no_price_async" {
  command = plan

  module {
    source = "./modules/monitoring"
  }

  variables {
    async                       = true
    instance_type               = "ml.m5.xlarge"
    gpus_per_instance           = 0
    instance_price_usd_per_hour = null
  }

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.this)) == toset(["invocation-5xx-errors", "model-errors", "model-latency-p90", "new-fleet-5xx-rate", "new-fleet-latency-p90", "async-backlog-age"])
    error_message = "no GPU alarms on a CPU instance; the backlog-age alarm on an async endpoint"
  }
  assert {
    condition     = !anytrue([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : startswith(try(w.properties.title, ""), "GPU ")])
    error_message = "no GPU graphs on a CPU instance"
  }
  assert {
    condition     = contains([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : try(w.properties.title, "")], "Async backlog")
    error_message = "async endpoints get the backlog graph"
  }
  assert {
    condition     = anytrue([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : strcontains(try(w.properties.markdown, ""), "Set `instance_price_usd_per_hour`")])
    error_message = "without a price the cost widget must say what to set"
  }
}

run "per_gpu_threshold_above_100_is_refused" {
  command = plan

  module {
    source = "./modules/monitoring"
  }

  variables {
    gpu_utilization_threshold = 360
  }

  expect_failures = [var.gpu_utilization_threshold]
}
