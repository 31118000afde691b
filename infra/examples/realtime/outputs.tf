output "endpoint_name" {
  description = "SageMaker endpoint name."
  value       = module.sd_turbo.endpoint_name
}

output "endpoint_type" {
  description = "realtime or async."
  value       = module.sd_turbo.endpoint_type
}

output "ecr_repository_url" {
  description = "ECR repository to push the image to."
  value       = module.sd_turbo.ecr_repository_url
}

output "image_uri" {
  description = "Image the endpoint runs."
  value       = module.sd_turbo.image_uri
}

output "bucket_name" {
  description = "Async input/output bucket."
  value       = module.sd_turbo.bucket_name
}

output "async_input_s3_uri" {
  description = "Upload async requests here."
  value       = module.sd_turbo.async_input_s3_uri
}

output "async_output_s3_uri" {
  description = "Async responses land here."
  value       = module.sd_turbo.async_output_s3_uri
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.sd_turbo.alarm_topic_arn
}

output "github_actions_role_arn" {
  description = "Role for aws-actions/configure-aws-credentials."
  value       = module.sd_turbo.github_actions_role_arn
}

output "invoke_endpoint_command" {
  description = "AWS CLI command that calls the endpoint."
  value       = module.sd_turbo.invoke_endpoint_command
}

output "region" {
  description = "Region of the stack."
  value       = var.region
}
