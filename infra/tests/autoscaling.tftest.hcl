# terraform test of modules/autoscaling (mocked AWS provider).

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  endpoint_name = "sd-turbo"
  name          = "sd-turbo"
  variant_name  = "AllTraffic"
  min_capacity  = 1
  max_capacity  = 2
}

run "realtime_target_tracking" {
  command = plan

  module {
    source = "./modules/autoscaling"
  }

  assert {
    condition     = aws_appautoscaling_target.this.resource_id == "endpoint/sd-turbo/variant/AllTraffic" && aws_appautoscaling_target.this.min_capacity == 1 && aws_appautoscaling_target.this.max_capacity == 2
    error_message = "real-time scalable target must be the variant, 1..2"
  }
  assert {
    condition     = aws_appautoscaling_policy.realtime[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    error_message = "real-time policy tracks concurrency (high resolution) by default"
  }
  assert {
    condition     = length(aws_appautoscaling_policy.async_backlog) == 0 && length(aws_appautoscaling_policy.async_scale_from_zero) == 0
    error_message = "no async policies on a real-time endpoint"
  }
}

run "concurrency_scaling" {
  command = plan

  module {
    source = "./modules/autoscaling"
  }

  variables {
    realtime_scaling_metric = "concurrency"
    realtime_target_value   = 4
  }

  assert {
    condition     = aws_appautoscaling_policy.realtime[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    error_message = "concurrency scaling must use the high-resolution concurrency metric"
  }
}

run "realtime_cannot_scale_to_zero" {
  command = plan

  module {
    source = "./modules/autoscaling"
  }

  variables {
    min_capacity = 0
  }

  expect_failures = [aws_appautoscaling_target.this]
}

run "async_scale_to_zero_and_back" {
  command = apply

  module {
    source = "./modules/autoscaling"
  }

  variables {
    async        = true
    min_capacity = 0
  }

  assert {
    condition     = aws_appautoscaling_target.this.min_capacity == 0
    error_message = "async must scale to zero"
  }
  assert {
    condition     = aws_appautoscaling_policy.async_backlog[0].target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metric_name == "ApproximateBacklogSizePerInstance"
    error_message = "async target tracking must use the backlog per instance"
  }
  assert {
    condition     = aws_appautoscaling_policy.async_scale_from_zero[0].policy_type == "StepScaling" && one(aws_appautoscaling_policy.async_scale_from_zero[0].step_scaling_policy_configuration[0].step_adjustment).scaling_adjustment == 1
    error_message = "0->1 step policy missing"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.has_backlog_without_capacity[0].metric_name == "HasBacklogWithoutCapacity" && aws_cloudwatch_metric_alarm.has_backlog_without_capacity[0].alarm_actions == toset([aws_appautoscaling_policy.async_scale_from_zero[0].arn])
    error_message = "HasBacklogWithoutCapacity alarm must trigger the step policy"
  }
  assert {
    condition     = length(aws_appautoscaling_policy.realtime) == 0
    error_message = "no real-time policy on an async endpoint"
  }
}
