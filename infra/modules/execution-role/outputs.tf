output "arn" {
  description = "Role ARN (the SageMaker model's execution_role_arn)."
  value       = aws_iam_role.this.arn

  # CreateModel checks that the role can pull the image: hand the ARN out only once the
  # policy is attached.
  depends_on = [aws_iam_role_policy.this]
}

output "statement_resources" {
  description = "Resources of each statement of the inline policy, by statement id: what the container can touch, for review and tests."
  value       = { for s in data.aws_iam_policy_document.this.statement : s.sid => s.resources }
}
