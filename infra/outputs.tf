output "endpoint_name" {
  description = "SageMaker endpoint name (what invoke-endpoint calls)."
  value       = local.create_endpoint ? aws_sagemaker_endpoint.this[0].name : null
}

output "endpoint_arn" {
  description = "SageMaker endpoint ARN."
  value       = local.create_endpoint ? aws_sagemaker_endpoint.this[0].arn : null
}

output "endpoint_type" {
  description = "\"realtime\" or \"async\"."
  value       = var.endpoint_type
}

output "endpoint_config_name" {
  description = "Current endpoint configuration (changes on every model/config change; the endpoint moves to it by blue/green canary deployment)."
  value       = local.create_endpoint ? aws_sagemaker_endpoint_configuration.this[0].name : null
}

output "model_name" {
  description = "Current SageMaker model name."
  value       = local.create_endpoint ? aws_sagemaker_model.this[0].name : null
}

output "variant_name" {
  description = "Production variant name."
  value       = local.variant_name
}

output "image_uri" {
  description = "Image the model runs."
  value       = local.image_uri
}

output "ecr_repository_url" {
  description = "ECR repository URL to docker push to (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = var.create_ecr_repository ? aws_ecr_repository.this[0].repository_url : null
}

output "ecr_repository_arn" {
  description = "ECR repository ARN."
  value       = local.ecr_repository_arn
}

output "bucket_name" {
  description = "S3 bucket for async inputs/outputs (null when not created)."
  value       = local.bucket_name
}

output "async_input_s3_uri" {
  description = "Where to upload async request bodies (s3://bucket/async-inputs/)."
  value       = local.create_bucket ? "s3://${local.bucket_name}/${local.async_input_prefix}" : null
}

output "async_output_s3_uri" {
  description = "Where SageMaker writes async responses."
  value       = local.is_async && local.create_bucket ? "s3://${local.bucket_name}/${local.async_output_prefix}" : null
}

output "async_failure_s3_uri" {
  description = "Where SageMaker writes async failures."
  value       = local.is_async && local.create_bucket ? "s3://${local.bucket_name}/${local.async_failure_prefix}" : null
}

output "async_success_topic_arn" {
  description = "SNS topic notified when an async request succeeds."
  value       = local.is_async ? aws_sns_topic.async_success[0].arn : null
}

output "async_error_topic_arn" {
  description = "SNS topic notified when an async request fails."
  value       = local.is_async ? aws_sns_topic.async_error[0].arn : null
}

output "execution_role_arn" {
  description = "SageMaker execution role ARN."
  value       = aws_iam_role.execution.arn
}

output "kms_key_arn" {
  description = "KMS key used for the bucket, topics, logs, ECR and async output."
  value       = local.kms_key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic the CloudWatch alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "CloudWatch alarm names by key."
  value       = { for k, v in aws_cloudwatch_metric_alarm.this : k => v.alarm_name }
}

output "rollback_alarm_names" {
  description = "Alarms that roll back a blue/green deployment."
  value       = local.rollback_alarm_names
}

output "autoscaling_resource_id" {
  description = "Application Auto Scaling resource id (endpoint/<name>/variant/<variant>)."
  value       = local.enable_autoscaling ? aws_appautoscaling_target.this[0].resource_id : null
}

output "github_actions_role_arn" {
  description = "IAM role for GitHub Actions (aws-actions/configure-aws-credentials role-to-assume). Null unless create_github_oidc_role."
  value       = local.create_github_role ? aws_iam_role.github_actions[0].arn : null
}

output "invoke_endpoint_command" {
  description = "Exact AWS CLI command that calls the endpoint (real-time: writes the JSON response to response.json; async: uploads request.json and queues it)."
  value = !local.create_endpoint ? null : (local.is_async ? join(" ", [
    "aws s3 cp request.json s3://${local.bucket_name}/${local.async_input_prefix}request.json --region ${local.region} &&",
    "aws sagemaker-runtime invoke-endpoint-async --region ${local.region} --endpoint-name ${aws_sagemaker_endpoint.this[0].name}",
    "--content-type application/json --input-location s3://${local.bucket_name}/${local.async_input_prefix}request.json",
    ]) : join(" ", [
    "aws sagemaker-runtime invoke-endpoint --region ${local.region} --endpoint-name ${aws_sagemaker_endpoint.this[0].name}",
    "--content-type application/json --accept application/json --cli-binary-format raw-in-base64-out",
    "--body '{\"prompt\": \"a photo of an astronaut riding a horse\", \"num_inference_steps\": 1, \"seed\": 42}' response.json",
  ]))
}
