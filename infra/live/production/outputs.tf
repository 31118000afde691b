output "endpoint_name" {
  description = "The production endpoint (the release workflow's smoke test calls it)."
  value       = module.sd_turbo.endpoint_name
}

output "github_actions_role_arn" {
  description = "Set it as the repository variable AWS_ROLE_ARN after the bootstrap apply."
  value       = module.sd_turbo.github_actions_role_arn
}

output "ecr_repository_url" {
  description = "Where the release workflow pushes the image (repository name: the ECR_REPOSITORY variable)."
  value       = module.sd_turbo.ecr_repository_url
}

output "dashboard_url" {
  description = "CloudWatch dashboard of the endpoint."
  value       = module.sd_turbo.dashboard_url
}

output "invoke_endpoint_command" {
  description = "AWS CLI command that calls the endpoint."
  value       = module.sd_turbo.invoke_endpoint_command
}
