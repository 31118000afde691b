output "endpoint_name" {
  description = "SageMaker endpoint name (what invoke-endpoint calls)."
  value       = one(module.endpoint[*].endpoint_name)
}

output "endpoint_arn" {
  description = "SageMaker endpoint ARN."
  value       = one(module.endpoint[*].endpoint_arn)
}

output "endpoint_type" {
  description = "\"realtime\" or \"async\"."
  value       = var.endpoint_type
}

output "endpoint_config_name" {
  description = "Current endpoint configuration (changes on every model/config change; the endpoint moves to it by blue/green canary deployment)."
  value       = one(module.endpoint[*].endpoint_config_name)
}

output "model_name" {
  description = "Current SageMaker model name."
  value       = one(module.endpoint[*].model_name)
}

output "variant_name" {
  description = "Production variant name."
  value       = var.variant_name
}

output "container_environment" {
  description = "Environment of the serving container (SDTURBO_* settings; batching knobs only when set)."
  value       = local.container_environment
}

output "gpus_per_instance" {
  description = "GPUs per instance of instance_type (scales the GPU alarms and the dashboard's GPU axes)."
  value       = local.gpus_per_instance
}

output "image_uri" {
  description = "Image the model runs."
  value       = local.image_uri
}

output "ecr_repository_url" {
  description = "ECR repository URL to docker push to (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = one(module.ecr[*].repository_url)
}

output "ecr_repository_arn" {
  description = "ECR repository ARN."
  value       = one(module.ecr[*].repository_arn)
}

output "bucket_name" {
  description = "S3 bucket for async inputs/outputs (null when not created)."
  value       = try(local.bucket.id, null)
}

output "async_input_s3_uri" {
  description = "Where to upload async request bodies (s3://bucket/async-inputs/)."
  value       = local.bucket == null ? null : "s3://${local.bucket.id}/${local.bucket.prefixes.input}"
}

output "async_output_s3_uri" {
  description = "Where SageMaker writes async responses."
  value       = local.is_async ? "s3://${local.bucket.id}/${local.bucket.prefixes.output}" : null
}

output "async_failure_s3_uri" {
  description = "Where SageMaker writes async failures."
  value       = local.is_async ? "s3://${local.bucket.id}/${local.bucket.prefixes.failure}" : null
}

output "async_success_topic_arn" {
  description = "SNS topic notified when an async request succeeds."
  value       = try(module.topics["async-success"].arn, null)
}

output "async_error_topic_arn" {
  description = "SNS topic notified when an async request fails."
  value       = try(module.topics["async-error"].arn, null)
}

output "execution_role_arn" {
  description = "SageMaker execution role ARN."
  value       = module.execution_role.arn
}

output "kms_key_arn" {
  description = "KMS key used for the bucket, topics, logs, ECR and async output."
  value       = local.kms_key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic the CloudWatch alarms notify."
  value       = module.topics["alarms"].arn
}

output "alarm_names" {
  description = "CloudWatch alarm names by key."
  value       = try(module.monitoring[0].alarm_names, {})
}

output "alarm_thresholds" {
  description = "CloudWatch alarm thresholds as applied, by key (GPU alarms: per-GPU percentage x GPUs per instance)."
  value       = try(module.monitoring[0].alarm_thresholds, {})
}

output "rollback_alarm_names" {
  description = "Alarms that roll back a blue/green deployment."
  value       = try(module.monitoring[0].rollback_alarm_names, [])
}

output "dashboard_name" {
  description = "CloudWatch dashboard with the endpoint's and the app's metrics and the cost per 1,000 images."
  value       = try(module.monitoring[0].dashboard_name, null)
}

output "dashboard_url" {
  description = "Console URL of the dashboard."
  value       = try(module.monitoring[0].dashboard_url, null)
}

output "autoscaling_resource_id" {
  description = "Application Auto Scaling resource id (endpoint/<name>/variant/<variant>)."
  value       = one(module.autoscaling[*].resource_id)
}

output "github_actions_role_arn" {
  description = "IAM role for GitHub Actions (aws-actions/configure-aws-credentials role-to-assume). Null unless create_github_oidc_role."
  value       = one(module.github_oidc[*].role_arn)
}

output "invoke_endpoint_command" {
  description = "Exact AWS CLI command that calls the endpoint (real-time: writes the JSON response to response.json; async: uploads request.json and queues it)."
  value = !var.create_endpoint ? null : (local.is_async ? join(" ", [
    "aws s3 cp request.json s3://${local.bucket.id}/${local.bucket.prefixes.input}request.json --region ${local.region} &&",
    "aws sagemaker-runtime invoke-endpoint-async --region ${local.region} --endpoint-name ${module.endpoint[0].endpoint_name}",
    "--content-type application/json --input-location s3://${local.bucket.id}/${local.bucket.prefixes.input}request.json",
    ]) : join(" ", [
    "aws sagemaker-runtime invoke-endpoint --region ${local.region} --endpoint-name ${module.endpoint[0].endpoint_name}",
    "--content-type application/json --accept application/json --cli-binary-format raw-in-base64-out",
    "--body '{\"prompt\": \"a photo of an astronaut riding a horse\", \"num_inference_steps\": 1, \"seed\": 42}' response.json",
  ]))
}
