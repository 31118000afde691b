################################################################################
# Model
################################################################################

variable "name" {
  description = "Endpoint name; also the prefix of the model and endpoint configuration names and the log group suffix."
  type        = string
}

variable "execution_role_arn" {
  description = "Role SageMaker assumes to pull the image, read model data and write logs."
  type        = string
}

variable "image_uri" {
  description = "Serving image (ECR URI). Null fails the plan with a message saying what to set."
  type        = string
  default     = null
}

variable "model_data_url" {
  description = "s3:// URL of a model.tar.gz unpacked into /opt/ml/model. Null: none (weights come from the image or the Hub)."
  type        = string
  default     = null
}

variable "model_data_source" {
  description = "s3:// prefix of uncompressed weights SageMaker copies into /opt/ml/model (S3Prefix, CompressionType None). Null: none."
  type        = string
  default     = null
}

variable "environment" {
  description = "Environment of the serving container."
  type        = map(string)
  default     = {}
}

variable "vpc_config" {
  description = "Subnets (two zones) and security groups of the model's network interfaces; null: SageMaker's own network."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null
}

variable "enable_network_isolation" {
  description = "Run the container without network access (only with model_data_url or baked weights)."
  type        = bool
  default     = false
}

################################################################################
# Production variant
################################################################################

variable "variant_name" {
  description = "Production variant name; keep it stable across deployments (blue/green updates target it)."
  type        = string
  default     = "AllTraffic"
}

variable "instance_type" {
  description = "Instance type of the variant (ml.<family>.<size>)."
  type        = string

  validation {
    condition     = can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like ml.<family>.<size>."
  }
}

variable "initial_instance_count" {
  description = "Instances when the endpoint is created (at least 1; autoscaling may take an async endpoint to 0 later)."
  type        = number
  default     = 1

  validation {
    condition     = var.initial_instance_count >= 1
    error_message = "initial_instance_count must be at least 1."
  }
}

variable "routing_strategy" {
  description = "Real-time routing of requests over the variant's instances (LEAST_OUTSTANDING_REQUESTS or RANDOM); null for SageMaker's default (async endpoints)."
  type        = string
  default     = null
}

variable "volume_size_in_gb" {
  description = "ML storage volume size. Null for instance types with local NVMe storage, where SageMaker rejects it."
  type        = number
  default     = null
}

# The values hashicorp/aws 5.100 accepts (its validation enumerates the SDK's
# ProductionVariantInferenceAmiVersion): check with `terraform validate` after a provider upgrade.
# al2023-ami-sagemaker-inference-gpu-4-1 (driver 580, the CUDA 13 host the image needs without
# forward compatibility) is not among them: it needs a 6.x provider (see docs/infra.md).
variable "inference_ami_version" {
  description = "Host AMI of the variant (NVIDIA driver / CUDA version). Null: SageMaker's default for the instance type (driver 470 on g4dn/g5/p4d, 535 on g6/p5)."
  type        = string
  default     = "al2-ami-sagemaker-inference-gpu-3-1"

  validation {
    condition = var.inference_ami_version == null ? true : contains([
      "al2-ami-sagemaker-inference-gpu-2",
      "al2-ami-sagemaker-inference-gpu-2-1",
      "al2-ami-sagemaker-inference-gpu-3-1",
      "al2-ami-sagemaker-inference-neuron-2",
    ], var.inference_ami_version)
    error_message = "inference_ami_version must be one of al2-ami-sagemaker-inference-gpu-2, al2-ami-sagemaker-inference-gpu-2-1, al2-ami-sagemaker-inference-gpu-3-1, al2-ami-sagemaker-inference-neuron-2 (what AWS provider 5.100 accepts), or null."
  }
}

variable "container_startup_health_check_timeout_in_seconds" {
  description = "How long SageMaker waits for GET /ping to answer 200 after the container starts."
  type        = number
  default     = 900

  validation {
    condition     = var.container_startup_health_check_timeout_in_seconds >= 60 && var.container_startup_health_check_timeout_in_seconds <= 3600
    error_message = "container_startup_health_check_timeout_in_seconds must be between 60 and 3600."
  }
}

variable "model_data_download_timeout_in_seconds" {
  description = "Timeout for downloading model_data_url to the instance (used only with model_data_url)."
  type        = number
  default     = 1200

  validation {
    condition     = var.model_data_download_timeout_in_seconds >= 60 && var.model_data_download_timeout_in_seconds <= 3600
    error_message = "model_data_download_timeout_in_seconds must be between 60 and 3600."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the log group, the async output and (see volume_encryption) the ML storage volume."
  type        = string
}

variable "volume_encryption" {
  description = "Set the endpoint configuration's kms_key_arn (ML storage volume). Null = automatic: on, except for instance families with local NVMe storage (g4dn, g5, g6, g6e, p4d, p5, *d), where SageMaker rejects it and the instance store is hardware-encrypted."
  type        = bool
  default     = null
}

################################################################################
# Async inference (null: a real-time endpoint)
################################################################################

variable "async_inference" {
  description = "Async inference configuration; null makes a real-time endpoint."
  type = object({
    s3_output_path                           = string
    s3_failure_path                          = string
    success_topic_arn                        = string
    error_topic_arn                          = string
    max_concurrent_invocations_per_instance  = number
    include_response_in_success_notification = optional(bool, false)
  })
  default = null

  validation {
    condition     = var.async_inference == null ? true : var.async_inference.max_concurrent_invocations_per_instance >= 1 && var.async_inference.max_concurrent_invocations_per_instance <= 1000
    error_message = "async_inference.max_concurrent_invocations_per_instance must be between 1 and 1000."
  }
}

################################################################################
# Deployment guardrails
################################################################################

variable "deployment" {
  description = "Blue/green deployment: traffic routing (CANARY or ALL_AT_ONCE), canary size (INSTANCE_COUNT or CAPACITY_PERCENT), its baking time, the final baking time before the old fleet is terminated, and the overall timeout (seconds)."
  type = object({
    traffic_routing                      = optional(string, "CANARY")
    canary_size_type                     = optional(string, "INSTANCE_COUNT")
    canary_size_value                    = optional(number, 1)
    canary_wait_interval_in_seconds      = optional(number, 600)
    termination_wait_in_seconds          = optional(number, 300)
    maximum_execution_timeout_in_seconds = optional(number, 3600)
  })
  default = {}

  validation {
    condition     = contains(["CANARY", "ALL_AT_ONCE"], var.deployment.traffic_routing) && contains(["CAPACITY_PERCENT", "INSTANCE_COUNT"], var.deployment.canary_size_type) && var.deployment.canary_size_value >= 1
    error_message = "deployment.traffic_routing must be CANARY or ALL_AT_ONCE, canary_size_type CAPACITY_PERCENT or INSTANCE_COUNT, and canary_size_value at least 1."
  }
  validation {
    condition = (
      var.deployment.canary_wait_interval_in_seconds >= 0 && var.deployment.canary_wait_interval_in_seconds <= 3600 &&
      var.deployment.termination_wait_in_seconds >= 0 && var.deployment.termination_wait_in_seconds <= 3600 &&
      var.deployment.maximum_execution_timeout_in_seconds >= 600 && var.deployment.maximum_execution_timeout_in_seconds <= 14400
    )
    error_message = "deployment: the canary wait and termination wait must be 0-3600 s, the maximum execution timeout 600-14400 s."
  }
}

variable "rollback_alarm_names" {
  description = "CloudWatch alarms that roll back a deployment in progress (they must exist before the endpoint)."
  type        = list(string)
  default     = []
}

variable "log_retention_in_days" {
  description = "Retention of the endpoint's log group."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
