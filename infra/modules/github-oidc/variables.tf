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

variable "oidc_provider_arn" {
  description = "ARN of the account's existing token.actions.githubusercontent.com OIDC provider (an account has at most one: arn:<partition>:iam::<account>:oidc-provider/token.actions.githubusercontent.com). Null: the module creates it."
  type        = string
  default     = null

  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be arn:<partition>:iam::<account id>:oidc-provider/token.actions.githubusercontent.com (or null to create the provider)."
  }
}

variable "subject_format" {
  description = "How GitHub names the repository in the OIDC subject claim: \"classic\" (repo:org/repo:...) or \"immutable\" (repo:org@<owner id>/repo@<repository id>:..., the default for repositories created or renamed from 2026-07-15; needs github_repository_owner_id and github_repository_id)."
  type        = string
  default     = "classic"

  validation {
    condition     = contains(["classic", "immutable"], var.subject_format)
    error_message = "subject_format must be \"classic\" or \"immutable\"."
  }
  validation {
    condition     = var.subject_format == "classic" || (var.github_repository_owner_id != null && var.github_repository_id != null)
    error_message = "subject_format = \"immutable\" needs github_repository_owner_id and github_repository_id (the workflow's github.repository_owner_id and github.repository_id)."
  }
}

variable "github_repository_owner_id" {
  description = "Numeric id of the repository's owner (github.repository_owner_id), for immutable subject claims."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository_owner_id == null || can(regex("^[0-9]+$", var.github_repository_owner_id))
    error_message = "github_repository_owner_id is a number (github.repository_owner_id)."
  }
}

variable "github_repository_id" {
  description = "Numeric id of the repository (github.repository_id), for immutable subject claims."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository_id == null || can(regex("^[0-9]+$", var.github_repository_id))
    error_message = "github_repository_id is a number (github.repository_id)."
  }
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

variable "manages_vpc" {
  description = "The stack has its own VPC (created by the bootstrap): the role reads it when Terraform refreshes."
  type        = bool
  default     = false
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
