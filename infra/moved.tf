# State moves from the single-module layout (every resource in infra/*.tf) to the modules, so
# that a stack deployed before the split plans no replacement of its key, repository, bucket,
# roles or endpoint (terraform plan shows "has moved to").

moved {
  from = aws_kms_key.this[0]
  to   = module.kms[0].aws_kms_key.this
}
moved {
  from = aws_kms_alias.this[0]
  to   = module.kms[0].aws_kms_alias.this
}

moved {
  from = aws_ecr_repository.this[0]
  to   = module.ecr[0].aws_ecr_repository.this
}
moved {
  from = aws_ecr_lifecycle_policy.this[0]
  to   = module.ecr[0].aws_ecr_lifecycle_policy.this
}

moved {
  from = aws_s3_bucket.this[0]
  to   = module.async_bucket[0].aws_s3_bucket.this
}
moved {
  from = aws_s3_bucket_public_access_block.this[0]
  to   = module.async_bucket[0].aws_s3_bucket_public_access_block.this
}
moved {
  from = aws_s3_bucket_ownership_controls.this[0]
  to   = module.async_bucket[0].aws_s3_bucket_ownership_controls.this
}
moved {
  from = aws_s3_bucket_server_side_encryption_configuration.this[0]
  to   = module.async_bucket[0].aws_s3_bucket_server_side_encryption_configuration.this
}
moved {
  from = aws_s3_bucket_versioning.this[0]
  to   = module.async_bucket[0].aws_s3_bucket_versioning.this
}
moved {
  from = aws_s3_bucket_lifecycle_configuration.this[0]
  to   = module.async_bucket[0].aws_s3_bucket_lifecycle_configuration.this
}
moved {
  from = aws_s3_bucket_policy.this[0]
  to   = module.async_bucket[0].aws_s3_bucket_policy.this
}

moved {
  from = aws_sns_topic.alarms
  to   = module.topics["alarms"].aws_sns_topic.this
}
moved {
  from = aws_sns_topic_subscription.alarm_email
  to   = module.topics["alarms"].aws_sns_topic_subscription.email
}
moved {
  from = aws_sns_topic.async_success[0]
  to   = module.topics["async-success"].aws_sns_topic.this
}
moved {
  from = aws_sns_topic.async_error[0]
  to   = module.topics["async-error"].aws_sns_topic.this
}

moved {
  from = aws_iam_role.execution
  to   = module.execution_role.aws_iam_role.this
}
moved {
  from = aws_iam_role_policy.execution
  to   = module.execution_role.aws_iam_role_policy.this
}

moved {
  from = aws_cloudwatch_log_group.endpoint[0]
  to   = module.endpoint[0].aws_cloudwatch_log_group.this
}
moved {
  from = aws_sagemaker_model.this[0]
  to   = module.endpoint[0].aws_sagemaker_model.this
}
moved {
  from = aws_sagemaker_endpoint_configuration.this[0]
  to   = module.endpoint[0].aws_sagemaker_endpoint_configuration.this
}
moved {
  from = aws_sagemaker_endpoint.this[0]
  to   = module.endpoint[0].aws_sagemaker_endpoint.this
}

moved {
  from = aws_cloudwatch_metric_alarm.this
  to   = module.monitoring[0].aws_cloudwatch_metric_alarm.this
}

moved {
  from = aws_appautoscaling_target.this[0]
  to   = module.autoscaling[0].aws_appautoscaling_target.this
}
moved {
  from = aws_appautoscaling_policy.realtime
  to   = module.autoscaling[0].aws_appautoscaling_policy.realtime
}
moved {
  from = aws_appautoscaling_policy.async_backlog
  to   = module.autoscaling[0].aws_appautoscaling_policy.async_backlog
}
moved {
  from = aws_appautoscaling_policy.async_scale_from_zero
  to   = module.autoscaling[0].aws_appautoscaling_policy.async_scale_from_zero
}
moved {
  from = aws_cloudwatch_metric_alarm.has_backlog_without_capacity
  to   = module.autoscaling[0].aws_cloudwatch_metric_alarm.has_backlog_without_capacity
}

moved {
  from = aws_iam_openid_connect_provider.github
  to   = module.github_oidc[0].aws_iam_openid_connect_provider.this
}
moved {
  from = aws_iam_role.github_actions[0]
  to   = module.github_oidc[0].aws_iam_role.this
}
moved {
  from = aws_iam_role_policy.github_actions[0]
  to   = module.github_oidc[0].aws_iam_role_policy.this
}
