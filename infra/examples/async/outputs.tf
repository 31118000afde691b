output "invoke_endpoint_command" {
  description = "AWS CLI commands that upload request.json to the async input prefix and queue it; the response lands under sd_turbo.async_output_s3_uri."
  value       = module.sd_turbo.invoke_endpoint_command
}

output "sd_turbo" {
  description = "All outputs of the stack (bucket and prefixes, topics, endpoint, dashboard...)."
  value       = module.sd_turbo
}
