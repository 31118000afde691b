variable "region" {
  description = "AWS region of the deployment (the release workflow passes vars.AWS_REGION)."
  type        = string
}

variable "image_tag" {
  description = "Image tag to deploy: the commit SHA the release workflow built and pushed. Null only with create_endpoint = false."
  type        = string
  default     = null
}

variable "create_endpoint" {
  description = "false for the one-off bootstrap apply by an administrator (ECR repository, KMS key, GitHub deploy role; no image exists yet)."
  type        = bool
  default     = true
}

variable "github_repository" {
  description = "\"org/repo\" whose release workflow may assume the deploy role (the workflow passes github.repository)."
  type        = string
}

variable "github_oidc_provider_arn" {
  description = "ARN of the account's existing GitHub OIDC provider (repository variable GITHUB_OIDC_PROVIDER_ARN when the account had one before the bootstrap). Null: the stack creates it."
  type        = string
  default     = null
}

variable "github_subject_format" {
  description = "\"classic\" or \"immutable\" OIDC subject claims (repository variable GITHUB_OIDC_SUBJECT_FORMAT; docs/infra.md)."
  type        = string
  default     = "classic"
}

variable "github_repository_owner_id" {
  description = "github.repository_owner_id (the workflow passes it; used with immutable subject claims)."
  type        = string
  default     = null
}

variable "github_repository_id" {
  description = "github.repository_id (the workflow passes it; used with immutable subject claims)."
  type        = string
  default     = null
}

variable "terraform_state_bucket" {
  description = "S3 bucket holding this state (the deploy role gets access to it)."
  type        = string
}

variable "terraform_state_key_prefix" {
  description = "Key prefix of this state in the bucket (\"\": the whole bucket)."
  type        = string
  default     = ""
}

variable "instance_price_usd_per_hour" {
  description = "On-demand USD/hour of ml.g5.xlarge in the region (SageMaker real-time inference pricing), for the dashboard's cost per 1,000 images. Null: the widget says to set it."
  type        = number
  default     = null
}

variable "alarm_email_endpoints" {
  description = "E-mail addresses notified by the alarms."
  type        = list(string)
  default     = []
}
