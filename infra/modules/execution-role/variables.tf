variable "name" {
  description = "Role (and inline policy) name."
  type        = string
}

variable "description" {
  description = "Role description."
  type        = string
  default     = "SageMaker execution role"
}

variable "ecr_repository_arns" {
  description = "ECR repositories the endpoint pulls its image from."
  type        = list(string)
  default     = []
}

variable "s3_read_arns" {
  description = "S3 object ARNs (patterns) the container reads: async request bodies."
  type        = list(string)
  default     = []
}

variable "s3_write_arns" {
  description = "S3 object ARNs (patterns) SageMaker writes for the container: async responses and failures."
  type        = list(string)
  default     = []
}

variable "model_data_url" {
  description = "s3:// URL of a model.tar.gz the endpoint downloads (read access to that one object). Null: none."
  type        = string
  default     = null

  validation {
    condition     = var.model_data_url == null || can(regex("^s3://[^/]+/.+", var.model_data_url))
    error_message = "model_data_url must look like s3://bucket/key."
  }
}

variable "in_vpc" {
  description = "The model runs in a VPC: SageMaker needs to create and remove its network interfaces there."
  type        = bool
  default     = false
}

variable "model_data_source" {
  description = "s3:// prefix of uncompressed weights the role may read (GetObject under it, ListBucket of it)."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key the container uses (encrypted bucket, volume, async output)."
  type        = string
}

variable "log_group_name" {
  description = "The endpoint's CloudWatch log group (/aws/sagemaker/Endpoints/<endpoint>)."
  type        = string
}

variable "metric_namespaces" {
  description = "CloudWatch namespaces the container may put metrics into (StringLike patterns)."
  type        = list(string)
  default     = ["/aws/sagemaker/Endpoints", "AWS/SageMaker"]
}

variable "sns_publish_topic_arns" {
  description = "SNS topics SageMaker publishes async notifications to."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of the role."
  type        = map(string)
  default     = {}
}
