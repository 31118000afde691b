output "invoke_endpoint_command" {
  description = "AWS CLI command that calls the endpoint and writes the JSON response (base64 image) to response.json."
  value       = module.sd_turbo.invoke_endpoint_command
}

output "sd_turbo" {
  description = "All outputs of the stack (ECR repository, endpoint, alarms, dashboard...)."
  value       = module.sd_turbo
}
