variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix of the stack (endpoint name, ECR repository, roles, alarms)."
  type        = string
  default     = "sd-turbo"
}

variable "image_tag" {
  description = "Image tag in the stack's ECR repository (the deploy workflow passes the git SHA)."
  type        = string
  default     = null
}

variable "image_uri" {
  description = "Full image URI; overrides image_tag."
  type        = string
  default     = null
}

variable "create_endpoint" {
  description = "false for the bootstrap apply (ECR repository, KMS key, bucket, GitHub OIDC role only)."
  type        = bool
  default     = true
}

variable "instance_type" {
  description = "SageMaker instance type of the variant."
  type        = string
  default     = "ml.g5.xlarge"
}

variable "min_capacity" {
  description = "Minimum instances (null: module default, 1 real-time / 0 async)."
  type        = number
  default     = null
}

variable "max_capacity" {
  description = "Maximum instances."
  type        = number
  default     = 2
}

variable "model_id" {
  description = "SDTURBO_MODEL passed to the container."
  type        = string
  default     = "stabilityai/sd-turbo"
}

variable "model_revision" {
  description = "SDTURBO_MODEL_REVISION passed to the container (pin a commit)."
  type        = string
  default     = null
}

variable "container_environment" {
  description = "Extra SDTURBO_* environment for the container."
  type        = map(string)
  default     = {}
}

variable "alarm_email_endpoints" {
  description = "E-mail addresses for the alarm topic."
  type        = list(string)
  default     = []
}

variable "create_github_oidc_role" {
  description = "Create the GitHub Actions OIDC deploy role."
  type        = bool
  default     = false
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false: look up the existing one)."
  type        = bool
  default     = true
}

variable "github_repository" {
  description = "\"org/repo\" allowed to assume the deploy role."
  type        = string
  default     = null
}

variable "github_branch" {
  description = "Branch allowed to assume the deploy role."
  type        = string
  default     = "main"
}

variable "github_environment" {
  description = "GitHub environment allowed to assume the deploy role (deploy approval)."
  type        = string
  default     = "production"
}

variable "terraform_state_bucket" {
  description = "Remote state bucket the deploy role may use (null: none)."
  type        = string
  default     = null
}

variable "terraform_state_key_prefix" {
  description = "Key prefix in the state bucket."
  type        = string
  default     = ""
}

variable "terraform_lock_table" {
  description = "DynamoDB lock table (null: none / S3 lockfile)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let destroy remove a non-empty bucket and ECR repository (dev and test stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
