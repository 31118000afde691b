################################################################################
# Who may assume the role
################################################################################

variable "github_repository" {
  description = "Repository allowed to assume the role, as \"org/repo\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like \"org/repo\"."
  }
}

variable "github_branch" {
  description = "Trusted branch: jobs on it present the sub claim repo:<repo>:ref:refs/heads/<branch>."
  type        = string
  default     = "main"
}

variable "github_environment" {
  description = "Trusted environment: jobs that name it present repo:<repo>:environment:<env> instead of the branch claim. Null: the branch claim only."
  type        = string
  default     = "production"
}

variable "create_oidc_provider" {
  description = "Create the account's token.actions.githubusercontent.com OIDC provider; false looks up the existing one (an account has at most one)."
  type        = bool
  default     = true
}

################################################################################
# What the role may manage: the stack
################################################################################

variable "name" {
  description = "Stack name: the role is \"<name>-github-actions-deploy\" and may manage resources named \"<name>-*\"."
  type        = string
}

variable "endpoint_name" {
  description = "The stack's SageMaker endpoint (create/update, invoke for the smoke test)."
  type        = string
}

variable "ecr_repository_arns" {
  description = "ECR repositories the workflow pushes to."
  type        = list(string)
  default     = []
}

variable "execution_role_arn" {
  description = "SageMaker execution role the workflow manages and passes to SageMaker."
  type        = string
}

variable "kms_key_arn" {
  description = "The stack's KMS key (use and read)."
  type        = string
}

variable "log_group_name" {
  description = "The endpoint's log group."
  type        = string
}

variable "async_bucket" {
  description = "The stack's async bucket (ARN and key prefixes) the workflow configures and smoke-tests; null when there is none."
  type = object({
    arn      = string
    prefixes = list(string)
  })
  default = null
}

################################################################################
# Terraform state
################################################################################

variable "terraform_state_bucket" {
  description = "S3 bucket of the remote Terraform state the role may read/write. Null: no state permissions."
  type        = string
  default     = null
}

variable "terraform_state_key_prefix" {
  description = "Key prefix inside terraform_state_bucket the role may use (e.g. \"sd-turbo/\")."
  type        = string
  default     = ""
}

variable "terraform_lock_table" {
  description = "DynamoDB table used for state locking. Null: none (S3 native locking, use_lockfile, is covered by the key prefix)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of the role and the OIDC provider."
  type        = map(string)
  default     = {}
}
