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
