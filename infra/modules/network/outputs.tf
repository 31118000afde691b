output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "subnet_ids" {
  description = "Private subnets, one per zone (the model's VpcConfig)."
  value       = aws_subnet.private[*].id
}

output "model_security_group_id" {
  description = "Security group of the model containers (the model's VpcConfig)."
  value       = aws_security_group.model.id
}

output "vpc_endpoint_ids" {
  description = "VPC endpoints by service (s3, ecr-api, ecr-dkr, logs, sts, sagemaker-runtime)."
  value       = merge({ s3 = aws_vpc_endpoint.s3.id }, { for k, v in aws_vpc_endpoint.interface : k => v.id })
}
