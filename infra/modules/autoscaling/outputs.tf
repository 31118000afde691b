output "resource_id" {
  description = "Application Auto Scaling resource id (endpoint/<name>/variant/<variant>)."
  value       = aws_appautoscaling_target.this.resource_id
}

output "policy_names" {
  description = "Names of the scaling policies attached to the variant."
  value       = concat(aws_appautoscaling_policy.realtime[*].name, aws_appautoscaling_policy.async_backlog[*].name, aws_appautoscaling_policy.async_scale_from_zero[*].name)
}
