# terraform test with a mocked AWS provider: no credentials, no network.
# Asserts what the module plans/applies for the real-time and async variants, autoscaling,
# alarms, blue/green canary rollback, encryption and the GitHub OIDC role.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
      arn        = "arn:aws:iam::123456789012:user/test"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition  = "aws"
      dns_suffix = "amazonaws.com"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:us-east-1:123456789012:repository/sd-turbo"
      repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-turbo"
    }
  }
  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:us-east-1:123456789012:sd-turbo-topic"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/sd-turbo-role"
    }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:00000000-0000-0000-0000-000000000000:resource/sagemaker/endpoint/sd-turbo/variant/AllTraffic:policyName/sd-turbo-policy"
    }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = {
      arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    }
  }
}

variables {
  image_tag = "0123456789abcdef"
}

run "realtime_defaults" {
  command = apply

  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].production_variants[0].instance_type == "ml.g5.xlarge"
    error_message = "production default instance type must be ml.g5.xlarge"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].production_variants[0].container_startup_health_check_timeout_in_seconds == 900
    error_message = "startup health check timeout must be sized for the model (900 s)"
  }
  assert {
    condition     = length(aws_sagemaker_endpoint_configuration.this[0].async_inference_config) == 0
    error_message = "real-time endpoint must not have an async config"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].kms_key_arn == null
    error_message = "g5 has local NVMe storage: SageMaker rejects a volume KMS key, so none may be set"
  }
  assert {
    condition     = aws_sagemaker_model.this[0].primary_container[0].image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-turbo:0123456789abcdef"
    error_message = "image must be <ecr url>:<image_tag>"
  }
  assert {
    condition     = aws_sagemaker_model.this[0].primary_container[0].environment["SDTURBO_MODEL"] == "stabilityai/sd-turbo" && aws_sagemaker_model.this[0].primary_container[0].environment["SDTURBO_MAX_BATCH_SIZE"] == "4"
    error_message = "SDTURBO_* environment missing"
  }

  # Blue/green canary with automatic rollback on the error/latency alarms.
  assert {
    condition     = aws_sagemaker_endpoint.this[0].deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].type == "CANARY"
    error_message = "deployment must be a canary"
  }
  assert {
    condition     = aws_sagemaker_endpoint.this[0].deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].canary_size[0].value == 25
    error_message = "canary size must default to 25%"
  }
  assert {
    condition = toset([for a in aws_sagemaker_endpoint.this[0].deployment_config[0].auto_rollback_configuration[0].alarms : a.alarm_name]) == toset([
      "sd-turbo-invocation-5xx-errors", "sd-turbo-model-errors", "sd-turbo-model-latency-p90",
    ])
    error_message = "rollback alarms must be 5xx, model errors and latency"
  }

  # Autoscaling: target tracking on invocations per instance, never below 1.
  assert {
    condition     = aws_appautoscaling_target.this[0].min_capacity == 1 && aws_appautoscaling_target.this[0].max_capacity == 2
    error_message = "real-time scalable target must be 1..2"
  }
  assert {
    condition     = aws_appautoscaling_target.this[0].resource_id == "endpoint/sd-turbo/variant/AllTraffic"
    error_message = "wrong scalable target resource id"
  }
  assert {
    condition     = aws_appautoscaling_policy.realtime[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "SageMakerVariantInvocationsPerInstance"
    error_message = "real-time policy must track invocations per instance"
  }
  assert {
    condition     = length(aws_appautoscaling_policy.async_backlog) == 0 && length(aws_appautoscaling_policy.async_scale_from_zero) == 0
    error_message = "no async policies on a real-time endpoint"
  }

  # Alarms.
  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.this)) == toset(["gpu-utilization", "gpu-memory-utilization", "invocation-5xx-errors", "model-errors", "model-latency-p90"])
    error_message = "unexpected alarm set for real-time"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["gpu-utilization"].namespace == "/aws/sagemaker/Endpoints" && aws_cloudwatch_metric_alarm.this["gpu-utilization"].metric_name == "GPUUtilization"
    error_message = "GPU alarm must use /aws/sagemaker/Endpoints GPUUtilization"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["gpu-memory-utilization"].metric_name == "GPUMemoryUtilization" && aws_cloudwatch_metric_alarm.this["gpu-memory-utilization"].dimensions["VariantName"] == "AllTraffic"
    error_message = "GPU memory alarm wrong"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["model-latency-p90"].threshold == 3000000 && aws_cloudwatch_metric_alarm.this["model-latency-p90"].extended_statistic == "p90"
    error_message = "latency alarm must be p90 with the threshold converted to microseconds"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["invocation-5xx-errors"].namespace == "AWS/SageMaker" && aws_cloudwatch_metric_alarm.this["invocation-5xx-errors"].metric_name == "Invocation5XXErrors"
    error_message = "5xx alarm wrong"
  }

  # Encryption and ECR hygiene.
  assert {
    condition     = aws_kms_key.this[0].enable_key_rotation
    error_message = "KMS key rotation must be on"
  }
  assert {
    condition     = aws_ecr_repository.this[0].image_tag_mutability == "IMMUTABLE" && aws_ecr_repository.this[0].image_scanning_configuration[0].scan_on_push
    error_message = "ECR must be immutable and scan on push"
  }
  assert {
    condition     = aws_ecr_repository.this[0].encryption_configuration[0].encryption_type == "KMS"
    error_message = "ECR must be KMS-encrypted"
  }
  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == aws_kms_key.this[0].arn
    error_message = "alarm topic must be encrypted"
  }
  assert {
    condition     = length(aws_s3_bucket.this) == 0
    error_message = "no bucket for a real-time endpoint by default"
  }
  assert {
    condition     = length(aws_iam_role.github_actions) == 0 && output.github_actions_role_arn == null
    error_message = "GitHub role must be opt-in"
  }
  assert {
    condition     = startswith(output.invoke_endpoint_command, "aws sagemaker-runtime invoke-endpoint --region us-east-1 --endpoint-name sd-turbo ")
    error_message = "invoke command wrong"
  }
}

run "async_scale_to_zero" {
  command = apply

  variables {
    endpoint_type = "async"
  }

  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].async_inference_config[0].output_config[0].s3_output_path == "s3://${aws_s3_bucket.this[0].id}/async-outputs/"
    error_message = "async output path wrong"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].async_inference_config[0].output_config[0].s3_failure_path == "s3://${aws_s3_bucket.this[0].id}/async-failures/"
    error_message = "async failure path wrong"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].async_inference_config[0].output_config[0].kms_key_id == aws_kms_key.this[0].arn
    error_message = "async output must be KMS-encrypted"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].async_inference_config[0].output_config[0].notification_config[0].success_topic == aws_sns_topic.async_success[0].arn
    error_message = "success topic missing"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].async_inference_config[0].output_config[0].notification_config[0].error_topic == aws_sns_topic.async_error[0].arn
    error_message = "error topic missing"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].async_inference_config[0].client_config[0].max_concurrent_invocations_per_instance == 4
    error_message = "max concurrent invocations per instance must default to 4"
  }
  assert {
    condition     = aws_appautoscaling_target.this[0].min_capacity == 0
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
    condition     = aws_cloudwatch_metric_alarm.this["async-backlog-age"].metric_name == "ApproximateAgeOfOldestRequest"
    error_message = "backlog age alarm missing"
  }
  assert {
    condition     = length(aws_appautoscaling_policy.realtime) == 0
    error_message = "no real-time policy on an async endpoint"
  }
  assert {
    condition = (
      aws_s3_bucket_public_access_block.this[0].block_public_acls && aws_s3_bucket_public_access_block.this[0].block_public_policy &&
      aws_s3_bucket_public_access_block.this[0].ignore_public_acls && aws_s3_bucket_public_access_block.this[0].restrict_public_buckets
    )
    error_message = "bucket public access must be blocked"
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
    error_message = "bucket must be SSE-KMS"
  }
  assert {
    condition     = length([for r in aws_s3_bucket_lifecycle_configuration.this[0].rule : r if try(r.expiration[0].days, 0) == 7]) == 3
    error_message = "async prefixes must expire after 7 days"
  }
  assert {
    condition     = strcontains(output.invoke_endpoint_command, "aws sagemaker-runtime invoke-endpoint-async")
    error_message = "async invoke command wrong"
  }
}

run "non_nvme_instance_encrypts_volume" {
  command = plan

  variables {
    instance_type = "ml.m5.xlarge"
  }

  assert {
    condition     = aws_sagemaker_endpoint_configuration.this[0].kms_key_arn != null
    error_message = "instances without local NVMe must get a KMS-encrypted volume"
  }
}

run "concurrency_scaling" {
  command = plan

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

  variables {
    min_capacity = 0
  }

  expect_failures = [aws_appautoscaling_target.this]
}

run "invalid_endpoint_type" {
  command = plan

  variables {
    endpoint_type = "serverless"
  }

  expect_failures = [var.endpoint_type]
}

run "bootstrap_without_endpoint" {
  command = plan

  variables {
    image_tag       = null
    create_endpoint = false
  }

  assert {
    condition     = length(aws_sagemaker_endpoint.this) == 0 && length(aws_sagemaker_model.this) == 0 && length(aws_appautoscaling_target.this) == 0
    error_message = "bootstrap must not create the endpoint"
  }
  assert {
    condition     = length(aws_ecr_repository.this) == 1
    error_message = "bootstrap must create the ECR repository"
  }
}

run "endpoint_needs_an_image" {
  command = plan

  variables {
    image_tag = null
  }

  expect_failures = [aws_sagemaker_model.this]
}

run "github_oidc_role" {
  command = apply

  variables {
    create_github_oidc_role = true
    github_repository       = "acme/sd-turbo-serve"
  }

  assert {
    condition     = output.github_actions_role_arn == aws_iam_role.github_actions[0].arn
    error_message = "github_actions_role_arn output missing"
  }
  assert {
    condition     = aws_iam_openid_connect_provider.github[0].url == "https://token.actions.githubusercontent.com" && aws_iam_openid_connect_provider.github[0].client_id_list == toset(["sts.amazonaws.com"])
    error_message = "OIDC provider wrong"
  }
  assert {
    condition = toset(flatten([
      for c in data.aws_iam_policy_document.github_assume[0].statement[0].condition : c.values if c.variable == "token.actions.githubusercontent.com:sub"
      ])) == toset([
      "repo:acme/sd-turbo-serve:ref:refs/heads/main",
      "repo:acme/sd-turbo-serve:environment:production",
    ])
    error_message = "trust policy must be pinned to the repository's main branch and production environment"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.github_actions[0].statement : !(contains(s.resources, "*") && anytrue([for a in s.actions : strcontains(a, "*")]))
    ])
    error_message = "no statement may combine wildcard actions and resources"
  }
}

run "github_oidc_existing_provider" {
  command = plan

  variables {
    create_github_oidc_role     = true
    create_github_oidc_provider = false
    github_repository           = "acme/sd-turbo-serve"
    github_environment          = null
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.github) == 0 && length(data.aws_iam_openid_connect_provider.github) == 1
    error_message = "existing provider must be looked up, not created"
  }
  assert {
    condition = toset(flatten([
      for c in data.aws_iam_policy_document.github_assume[0].statement[0].condition : c.values if c.variable == "token.actions.githubusercontent.com:sub"
    ])) == toset(["repo:acme/sd-turbo-serve:ref:refs/heads/main"])
    error_message = "without an environment only the branch is trusted"
  }
}

run "external_ecr_image_is_pullable" {
  command = plan

  variables {
    image_tag = null
    image_uri = "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shared/sd-turbo:v1"
  }

  assert {
    condition     = aws_sagemaker_model.this[0].primary_container[0].image == "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shared/sd-turbo:v1"
    error_message = "image_uri must override image_tag"
  }
  assert {
    condition = contains(flatten([
      for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "EcrPull"
    ]), "arn:aws:ecr:eu-west-1:210987654321:repository/shared/sd-turbo")
    error_message = "the execution role must be able to pull an image_uri from another ECR repository"
  }
}
