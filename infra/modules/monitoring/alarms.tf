################################################################################
# CloudWatch alarms -> SNS (alarm_topic_arn)
#   GPU utilisation / GPU memory        namespace /aws/sagemaker/Endpoints
#   5xx, model errors, model latency    namespace AWS/SageMaker, the whole variant (notify)
#   new fleet: 5xx rate, latency p90    namespace AWS/SageMaker, dimension EndpointConfigName of
#                                       the configuration being deployed: the blue/green
#                                       deployment's rollback alarms
#   async backlog age                   namespace AWS/SageMaker (async only)
#
# Rollback judges the new (green) fleet only, on server errors and latency: SageMaker publishes
# the invocation metrics with EndpointConfigName = <new configuration> once the new fleet takes
# traffic (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html,
# "Monitor model latency on the new fleet"), so a blue fleet that already errs does not stop a
# fix, and client errors (the service's 4xx: 422 invalid request, 429 busy) never roll back.
# InvocationModelErrors counts every non-2xx answer of the container, 4xx included: it notifies,
# it does not roll back.
#
# SageMaker's GPUUtilization and GPUMemoryUtilization are the SUM over an instance's GPUs
# (0-100 % per GPU, so 0-400 % on a 4-GPU instance), averaged over the instances: a per-GPU
# threshold is multiplied by gpus_per_instance. A CPU instance (0 GPUs) gets no GPU alarms.
################################################################################

locals {
  has_gpus = var.gpus_per_instance > 0

  variant_dimensions = {
    EndpointName = var.endpoint_name
    VariantName  = var.variant_name
  }
  new_fleet_dimensions = merge(local.variant_dimensions, { EndpointConfigName = var.endpoint_config_name })

  gpu_utilization_threshold        = var.gpu_utilization_threshold * var.gpus_per_instance
  gpu_memory_utilization_threshold = var.gpu_memory_utilization_threshold * var.gpus_per_instance
  gpus_text                        = "${var.gpus_per_instance} GPU${var.gpus_per_instance == 1 ? "" : "s"} of ${var.instance_type}"

  alarms = merge(
    local.has_gpus ? {
      gpu-utilization = {
        description = "GPU utilisation above ${var.gpu_utilization_threshold}% per GPU (${local.gpu_utilization_threshold}% summed over the ${local.gpus_text}), sustained: the variant is saturated."
        namespace   = "/aws/sagemaker/Endpoints"
        metric      = "GPUUtilization"
        statistic   = "Average"
        extended    = null
        threshold   = local.gpu_utilization_threshold
        dimensions  = local.variant_dimensions
        rollback    = false
      }
      gpu-memory-utilization = {
        description = "GPU memory above ${var.gpu_memory_utilization_threshold}% per GPU (${local.gpu_memory_utilization_threshold}% summed over the ${local.gpus_text}): risk of CUDA OOM (lower SDTURBO_MAX_BATCH_SIZE or use a larger GPU)."
        namespace   = "/aws/sagemaker/Endpoints"
        metric      = "GPUMemoryUtilization"
        statistic   = "Average"
        extended    = null
        threshold   = local.gpu_memory_utilization_threshold
        dimensions  = local.variant_dimensions
        rollback    = false
      }
    } : {},
    {
      invocation-5xx-errors = {
        description = "More than ${var.error_5xx_threshold} 5xx responses per ${var.alarm_period_seconds}s (all fleets)."
        namespace   = "AWS/SageMaker"
        metric      = "Invocation5XXErrors"
        statistic   = "Sum"
        extended    = null
        threshold   = var.error_5xx_threshold
        dimensions  = local.variant_dimensions
        rollback    = false
      }
      model-errors = {
        description = "More than ${var.model_error_threshold} model errors (non-2xx from the container, client 4xx included) per ${var.alarm_period_seconds}s. Notifies only: client errors never roll back."
        namespace   = "AWS/SageMaker"
        metric      = "InvocationModelErrors"
        statistic   = "Sum"
        extended    = null
        threshold   = var.model_error_threshold
        dimensions  = local.variant_dimensions
        rollback    = false
      }
      model-latency-p90 = {
        description = "p90 ModelLatency above ${var.model_latency_threshold_ms} ms (all fleets)."
        namespace   = "AWS/SageMaker"
        metric      = "ModelLatency"
        statistic   = null
        extended    = "p90"
        threshold   = var.model_latency_threshold_ms * 1000 # CloudWatch reports microseconds
        dimensions  = local.variant_dimensions
        rollback    = false
      }
      new-fleet-5xx-rate = {
        description = "The fleet of endpoint configuration ${var.endpoint_config_name} answers more than ${var.rollback_5xx_rate_threshold * 100}% of its requests with 5xx. Rolls back a deployment in progress."
        namespace   = "AWS/SageMaker"
        metric      = "Invocation5XXErrors"
        statistic   = "Average"
        extended    = null
        threshold   = var.rollback_5xx_rate_threshold
        dimensions  = local.new_fleet_dimensions
        rollback    = true
      }
      new-fleet-latency-p90 = {
        description = "p90 ModelLatency of the fleet of endpoint configuration ${var.endpoint_config_name} above ${var.model_latency_threshold_ms} ms. Rolls back a deployment in progress."
        namespace   = "AWS/SageMaker"
        metric      = "ModelLatency"
        statistic   = null
        extended    = "p90"
        threshold   = var.model_latency_threshold_ms * 1000
        dimensions  = local.new_fleet_dimensions
        rollback    = true
      }
    },
    var.async ? {
      async-backlog-age = {
        description = "Oldest queued async request is older than ${var.async_backlog_age_threshold_seconds}s."
        namespace   = "AWS/SageMaker"
        metric      = "ApproximateAgeOfOldestRequest"
        statistic   = "Maximum"
        extended    = null
        threshold   = var.async_backlog_age_threshold_seconds
        dimensions  = { EndpointName = var.endpoint_name }
        rollback    = false
      }
    } : {},
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

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
  alarm_actions      = [var.alarm_topic_arn]
  ok_actions         = [var.alarm_topic_arn]
  tags               = var.tags
}
