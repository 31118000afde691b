output "role_arn" {
  description = "Role for aws-actions/configure-aws-credentials (role-to-assume)."
  value       = aws_iam_role.this.arn
}

output "oidc_provider_arn" {
  description = "The GitHub OIDC provider the role trusts (created or looked up)."
  value       = local.oidc_arn
}

output "trusted_subjects" {
  description = "OIDC sub claims the role trusts."
  value       = local.subjects
}
