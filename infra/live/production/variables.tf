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

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider; false when the account already has one (it is looked up)."
  type        = bool
  default     = true
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
