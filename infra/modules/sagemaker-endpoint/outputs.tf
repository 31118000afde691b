output "endpoint_name" {
  description = "Endpoint name (what invoke-endpoint calls)."
  value       = aws_sagemaker_endpoint.this.name
}

output "endpoint_arn" {
  description = "Endpoint ARN."
  value       = aws_sagemaker_endpoint.this.arn
}

output "endpoint_config_name" {
  description = "Current endpoint configuration."
  value       = aws_sagemaker_endpoint_configuration.this.name
}

output "model_name" {
  description = "Current model name."
  value       = aws_sagemaker_model.this.name
}

output "log_group_name" {
  description = "The endpoint's CloudWatch log group (container stdout/stderr, EMF records)."
  value       = aws_cloudwatch_log_group.this.name
}

output "production_variant" {
  description = "The production variant as configured (instance type, host AMI, timeouts...)."
  value       = aws_sagemaker_endpoint_configuration.this.production_variants[0]
}

output "async_inference_config" {
  description = "The async inference configuration as configured (null for a real-time endpoint)."
  value       = one(aws_sagemaker_endpoint_configuration.this.async_inference_config)
}

output "volume_kms_key_arn" {
  description = "KMS key of the ML storage volume (null on instance types with local NVMe storage)."
  value       = aws_sagemaker_endpoint_configuration.this.kms_key_arn
}

output "enable_network_isolation" {
  description = "Whether the model runs with network isolation."
  value       = aws_sagemaker_model.this.enable_network_isolation
}

output "deployment_traffic_routing" {
  description = "How a release shifts traffic to the new fleet (CANARY or ALL_AT_ONCE)."
  value       = aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].type
}
