################################################################################
# Application Auto Scaling of one SageMaker production variant
#   real-time: target tracking on invocations per instance (or concurrency)
#   async:     target tracking on ApproximateBacklogSizePerInstance, min capacity 0,
#              plus a step policy that scales 0 -> 1 on HasBacklogWithoutCapacity
################################################################################

locals {
  realtime_predefined_metric = {
    invocations = "SageMakerVariantInvocationsPerInstance"
    concurrency = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
  }
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "sagemaker"
  resource_id        = "endpoint/${var.endpoint_name}/variant/${var.variant_name}"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.async || var.min_capacity >= 1
      error_message = "Real-time endpoints cannot scale to zero: min_capacity must be at least 1 (only async endpoints scale to zero)."
    }
    precondition {
      condition     = var.max_capacity >= var.min_capacity
      error_message = "max_capacity must be >= min_capacity."
    }
  }
}

resource "aws_appautoscaling_policy" "realtime" {
  count = var.async ? 0 : 1

  name               = "${var.name}-${var.realtime_scaling_metric}-target-tracking"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.realtime_target_value
    scale_in_cooldown  = var.scale_in_cooldown
    scale_out_cooldown = var.scale_out_cooldown

    predefined_metric_specification {
      predefined_metric_type = local.realtime_predefined_metric[var.realtime_scaling_metric]
    }
  }
}

resource "aws_appautoscaling_policy" "async_backlog" {
  count = var.async ? 1 : 0

  name               = "${var.name}-backlog-target-tracking"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.async_backlog_target_per_instance
    scale_in_cooldown  = var.scale_in_cooldown
    scale_out_cooldown = var.scale_out_cooldown

    customized_metric_specification {
      metric_name = "ApproximateBacklogSizePerInstance"
      namespace   = "AWS/SageMaker"
      statistic   = "Average"

      dimensions {
        name  = "EndpointName"
        value = var.endpoint_name
      }
    }
  }
}

# Target tracking alone never leaves 0 instances (per-instance backlog is undefined at 0):
# this step policy, fired by the HasBacklogWithoutCapacity alarm, adds the first instance.
resource "aws_appautoscaling_policy" "async_scale_from_zero" {
  count = var.async ? 1 : 0

  name               = "${var.name}-has-backlog-without-capacity"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = var.scale_out_cooldown
    metric_aggregation_type = "Average"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "has_backlog_without_capacity" {
  count = var.async ? 1 : 0

  alarm_name          = "${var.name}-has-backlog-without-capacity"
  alarm_description   = "Async requests are queued while the endpoint has 0 instances: scale 0 -> 1."
  namespace           = "AWS/SageMaker"
  metric_name         = "HasBacklogWithoutCapacity"
  dimensions          = { EndpointName = var.endpoint_name }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_appautoscaling_policy.async_scale_from_zero[0].arn]
  tags                = var.tags
}
