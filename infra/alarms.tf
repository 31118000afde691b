################################################################################
# CloudWatch alarms -> SNS topic "<name>-alarms"
#   GPU utilisation / GPU memory        namespace /aws/sagemaker/Endpoints
#   5xx, model errors, model latency    namespace AWS/SageMaker (also deployment rollback alarms)
#   async backlog age                   namespace AWS/SageMaker (async only)
################################################################################

locals {
  variant_dimensions = {
    EndpointName = local.endpoint_name
    VariantName  = local.variant_name
  }

  alarms = merge(
    {
      gpu-utilization = {
        description = "GPU utilisation above ${var.gpu_utilization_threshold}% (sustained): the variant is saturated."
        namespace   = "/aws/sagemaker/Endpoints"
        metric      = "GPUUtilization"
        statistic   = "Average"
        extended    = null
        threshold   = var.gpu_utilization_threshold
        dimensions  = local.variant_dimensions
        rollback    = false
      }
      gpu-memory-utilization = {
        description = "GPU memory utilisation above ${var.gpu_memory_utilization_threshold}%: risk of CUDA OOM (lower SDTURBO_MAX_BATCH_SIZE or use a larger GPU)."
        namespace   = "/aws/sagemaker/Endpoints"
        metric      = "GPUMemoryUtilization"
        statistic   = "Average"
        extended    = null
        threshold   = var.gpu_memory_utilization_threshold
        dimensions  = local.variant_dimensions
        rollback    = false
      }
      invocation-5xx-errors = {
        description = "More than ${var.error_5xx_threshold} 5xx responses per ${var.alarm_period_seconds}s. Rolls back a deployment in progress."
        namespace   = "AWS/SageMaker"
        metric      = "Invocation5XXErrors"
        statistic   = "Sum"
        extended    = null
        threshold   = var.error_5xx_threshold
        dimensions  = local.variant_dimensions
        rollback    = true
      }
      model-errors = {
        description = "More than ${var.model_error_threshold} model errors (non-2xx from the container) per ${var.alarm_period_seconds}s. Rolls back a deployment in progress."
        namespace   = "AWS/SageMaker"
        metric      = "InvocationModelErrors"
        statistic   = "Sum"
        extended    = null
        threshold   = var.model_error_threshold
        dimensions  = local.variant_dimensions
        rollback    = true
      }
      model-latency-p90 = {
        description = "p90 ModelLatency above ${var.model_latency_threshold_ms} ms. Rolls back a deployment in progress."
        namespace   = "AWS/SageMaker"
        metric      = "ModelLatency"
        statistic   = null
        extended    = "p90"
        threshold   = var.model_latency_threshold_ms * 1000 # CloudWatch reports microseconds
        dimensions  = local.variant_dimensions
        rollback    = true
      }
    },
    local.is_async ? {
      async-backlog-age = {
        description = "Oldest queued async request is older than ${var.async_backlog_age_threshold_seconds}s."
        namespace   = "AWS/SageMaker"
        metric      = "ApproximateAgeOfOldestRequest"
        statistic   = "Maximum"
        extended    = null
        threshold   = var.async_backlog_age_threshold_seconds
        dimensions  = { EndpointName = local.endpoint_name }
        rollback    = false
      }
    } : {},
  )

  rollback_alarm_names = [for k, v in local.alarms : "${var.name}-${k}" if v.rollback]
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.create_endpoint ? local.alarms : {}

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended
  period              = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  # No data = no traffic or no instances (async scaled to zero): not an incident.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.alarms.arn]
  ok_actions         = [aws_sns_topic.alarms.arn]
  tags               = local.tags
}
